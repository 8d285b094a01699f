//! A safe handle on one ALE emulator (`xrl-ale-sys`), and the ROM set `scripts/atari-setup.py` unpacked.

use crate::EnvError;
use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use std::path::{Path, PathBuf};
use xrl_ale_sys as sys;

const ERR_CAP: usize = 512;

pub use xrl_ale_sys::ale_dir;

/// The ROMs found in the setup's directory, among those ale-py 0.12.1 ships ([`super::rom_md5::ROM_MD5`], built
/// into the binary: an edited `md5.json` cannot make ALE load a ROM it does not know).
pub struct Roms {
    pub dir: PathBuf,
    /// ROM id (e.g. `space_invaders`) → its MD5, for the ROM files present.
    pub md5: std::collections::BTreeMap<String, String>,
}

fn setup_hint(dir: &std::path::Path) -> String {
    format!(
        "run `xrl atari setup` (or `python3 scripts/atari-setup.py`) to download ale-py 0.12.1's ROMs, or set \
         XRL_ALE_DIR to where that setup put them (a damaged setup: `xrl atari setup --dir NEW_DIR`, then \
         XRL_ALE_DIR=NEW_DIR); looked in {}",
        dir.display()
    )
}

impl Roms {
    /// The known ROMs present under [`ale_dir`]`/roms`; none at all is an error that says how to set them up.
    pub fn find() -> Result<Roms, EnvError> {
        let dir = ale_dir().join("roms");
        let md5: std::collections::BTreeMap<String, String> = super::rom_md5::ROM_MD5
            .iter()
            .filter(|(id, _)| dir.join(format!("{id}.bin")).is_file())
            .map(|(id, m)| (id.to_string(), m.to_string()))
            .collect();
        if md5.is_empty() {
            return Err(EnvError::InvalidOption {
                id: "ALE".into(),
                message: format!("no Atari ROMs found; {}", setup_hint(&dir)),
            });
        }
        Ok(Roms { dir, md5 })
    }

    /// The ROM's path after checking its MD5: ALE ends the whole process on a ROM it does not know, so a changed
    /// file must be refused here.
    pub fn checked_path(&self, rom: &str) -> Result<PathBuf, EnvError> {
        let path = self.dir.join(format!("{rom}.bin"));
        let Some(expected) = self.md5.get(rom) else {
            return Err(EnvError::InvalidOption {
                id: rom.into(),
                message: format!("no ROM file {}; {}", path.display(), setup_hint(&self.dir)),
            });
        };
        let bytes = std::fs::read(&path).map_err(|e| EnvError::InvalidOption {
            id: rom.into(),
            message: format!("cannot read {} ({e}); {}", path.display(), setup_hint(&self.dir)),
        })?;
        let got = format!("{:x}", <md5::Md5 as md5::Digest>::digest(&bytes));
        if &got != expected {
            return Err(EnvError::InvalidOption {
                id: rom.into(),
                message: format!(
                    "{} has MD5 {got}, not the {expected} of the ROM ale-py 0.12.1 ships; {}",
                    path.display(),
                    setup_hint(&self.dir)
                ),
            });
        }
        Ok(path)
    }
}

/// One emulator. Not shared between threads; each copy of a vector environment owns its own.
pub struct Ale {
    ptr: *mut sys::ALEInterface,
    height: usize,
    width: usize,
}

// SAFETY: an ALEInterface holds no thread-local state and is only touched through `&mut self` (or `&self` for
// reads), so moving it to another thread is sound; ale-py's vector environment runs one per thread the same way.
unsafe impl Send for Ale {}

fn ffi_error(id: &str, what: &str, err: &[c_char; ERR_CAP]) -> EnvError {
    // SAFETY: the shim always NUL-terminates within ERR_CAP.
    let msg = unsafe { CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned();
    EnvError::InvalidOption { id: id.into(), message: format!("ALE failed to {what}: {msg}") }
}

impl Ale {
    /// A fresh emulator with `settings` applied (ALE reads them when a ROM is loaded), then `rom` loaded.
    pub fn new(rom: &Path, random_seed: i32, settings: &AleSettings) -> Result<Ale, EnvError> {
        let mut err = [0 as c_char; ERR_CAP];
        // SAFETY: plain FFI calls on a pointer the shim created; errors are reported, not thrown.
        unsafe {
            sys::xrl_ale_quiet();
            let ptr = sys::xrl_ale_new(err.as_mut_ptr(), ERR_CAP);
            if ptr.is_null() {
                return Err(ffi_error("ALE", "start", &err));
            }
            let mut ale = Ale { ptr, height: 0, width: 0 };
            ale.set_float("repeat_action_probability", settings.repeat_action_probability)?;
            ale.set_int("max_num_frames_per_episode", settings.max_num_frames_per_episode.unwrap_or(0) as i32)?;
            ale.load(rom, random_seed)?;
            Ok(ale)
        }
    }

    fn set_int(&mut self, key: &str, value: i32) -> Result<(), EnvError> {
        let mut err = [0 as c_char; ERR_CAP];
        let k = CString::new(key).expect("setting names have no NUL");
        // SAFETY: valid pointer and NUL-terminated key.
        if unsafe { sys::xrl_ale_set_int(self.ptr, k.as_ptr(), value, err.as_mut_ptr(), ERR_CAP) } != 0 {
            return Err(ffi_error("ALE", &format!("set {key}"), &err));
        }
        Ok(())
    }

    fn set_float(&mut self, key: &str, value: f32) -> Result<(), EnvError> {
        let mut err = [0 as c_char; ERR_CAP];
        let k = CString::new(key).expect("setting names have no NUL");
        // SAFETY: valid pointer and NUL-terminated key.
        if unsafe { sys::xrl_ale_set_float(self.ptr, k.as_ptr(), value, err.as_mut_ptr(), ERR_CAP) } != 0 {
            return Err(ffi_error("ALE", &format!("set {key}"), &err));
        }
        Ok(())
    }

    /// Sets ALE's `random_seed` and (re)loads the ROM, as ale-py's `seed_game` + `load_game` do: the console, its
    /// random stream and the sticky-action stream restart from the seed.
    pub fn load(&mut self, rom: &Path, random_seed: i32) -> Result<(), EnvError> {
        self.set_int("random_seed", random_seed)?;
        let mut err = [0 as c_char; ERR_CAP];
        let path = CString::new(rom.as_os_str().as_encoded_bytes()).map_err(|_| EnvError::InvalidOption {
            id: "ALE".into(),
            message: format!("ROM path {} contains a NUL byte", rom.display()),
        })?;
        // SAFETY: valid pointer and path; the caller checked the ROM's MD5 (ALE exits on unknown ROMs).
        unsafe {
            if sys::xrl_ale_load_rom(self.ptr, path.as_ptr(), err.as_mut_ptr(), ERR_CAP) != 0 {
                return Err(ffi_error("ALE", &format!("load {}", rom.display()), &err));
            }
            sys::xrl_ale_screen_dims(self.ptr, &mut self.height, &mut self.width);
        }
        Ok(())
    }

    pub fn reset_game(&mut self) {
        let mut err = [0 as c_char; ERR_CAP];
        // SAFETY: valid pointer. reset_game throws only on a missing ROM, which `new` rules out.
        let rc = unsafe { sys::xrl_ale_reset_game(self.ptr, err.as_mut_ptr(), ERR_CAP) };
        debug_assert_eq!(rc, 0);
    }

    /// One emulator frame with ALE action id `action` (0..18); returns the frame's reward.
    pub fn act(&mut self, action: i32) -> i32 {
        let mut err = [0 as c_char; ERR_CAP];
        let mut reward = 0;
        // SAFETY: valid pointer; `action` is one of the action set's ids (callers index into it).
        let rc = unsafe { sys::xrl_ale_act(self.ptr, action, 1.0, &mut reward, err.as_mut_ptr(), ERR_CAP) };
        debug_assert_eq!(rc, 0);
        reward
    }

    /// Terminal by the game's rules (ale-py's `game_over(with_truncation=False)`).
    pub fn game_over(&self) -> bool {
        // SAFETY: valid pointer.
        unsafe { sys::xrl_ale_game_over(self.ptr, 0) != 0 }
    }
    /// Cut by `max_num_frames_per_episode`.
    pub fn game_truncated(&self) -> bool {
        // SAFETY: valid pointer.
        unsafe { sys::xrl_ale_game_truncated(self.ptr) != 0 }
    }
    pub fn lives(&mut self) -> i32 {
        // SAFETY: valid pointer.
        unsafe { sys::xrl_ale_lives(self.ptr) }
    }
    pub fn frame_number(&self) -> i32 {
        // SAFETY: valid pointer.
        unsafe { sys::xrl_ale_frame_number(self.ptr) }
    }
    pub fn episode_frame_number(&self) -> i32 {
        // SAFETY: valid pointer.
        unsafe { sys::xrl_ale_episode_frame_number(self.ptr) }
    }
    pub fn minimal_action_set(&self) -> Vec<i32> {
        let mut out = [0i32; 18];
        // SAFETY: valid pointer; at most 18 actions exist and `out` holds 18.
        let n = unsafe { sys::xrl_ale_minimal_action_set(self.ptr, out.as_mut_ptr(), out.len()) };
        out[..n.min(18)].to_vec()
    }
    pub fn legal_action_set(&self) -> Vec<i32> {
        let mut out = [0i32; 18];
        // SAFETY: as above.
        let n = unsafe { sys::xrl_ale_legal_action_set(self.ptr, out.as_mut_ptr(), out.len()) };
        out[..n.min(18)].to_vec()
    }
    /// (height, width) of the screen: 210 × 160 for every supported game.
    pub fn dims(&self) -> (usize, usize) {
        (self.height, self.width)
    }
    /// The screen as height × width × 3 RGB bytes, row-major (ale-py's `getScreenRGB()`).
    pub fn screen_rgb(&self, out: &mut [u8]) {
        assert_eq!(out.len(), self.height * self.width * 3, "RGB buffer must hold height × width × 3 bytes");
        // SAFETY: valid pointer; `out` has the size the shim writes.
        unsafe { sys::xrl_ale_screen_rgb(self.ptr, out.as_mut_ptr()) }
    }
    /// The screen as three planes R, G, B (3 × height × width bytes, channels first).
    pub fn screen_rgb_planar(&self, out: &mut [u8]) {
        assert_eq!(out.len(), self.height * self.width * 3, "RGB buffer must hold 3 × height × width bytes");
        // SAFETY: valid pointer; `out` has the size the shim writes.
        unsafe { sys::xrl_ale_screen_rgb_planar(self.ptr, out.as_mut_ptr()) }
    }
    /// The RGB screen as three planes of floats 0–255 (the observation, written in one pass).
    pub fn screen_rgb_planar_f32(&self, out: &mut [f32]) {
        assert_eq!(out.len(), self.height * self.width * 3, "RGB buffer must hold 3 × height × width floats");
        // SAFETY: valid pointer; `out` has the size the shim writes.
        unsafe { sys::xrl_ale_screen_rgb_planar_f32(self.ptr, out.as_mut_ptr()) }
    }
    /// The screen in ALE's grey palette, height × width bytes (ale-py's `getScreenGrayscale()`).
    pub fn screen_grayscale(&self, out: &mut [u8]) {
        assert_eq!(out.len(), self.height * self.width, "grey buffer must hold height × width bytes");
        // SAFETY: valid pointer; `out` has the size the shim writes.
        unsafe { sys::xrl_ale_screen_grayscale(self.ptr, out.as_mut_ptr()) }
    }
    /// The console's 128 bytes of RAM.
    pub fn ram(&self) -> Vec<u8> {
        let mut out = [0u8; 128];
        // SAFETY: valid pointer; `out` holds the 128 bytes ALE has.
        let n = unsafe { sys::xrl_ale_ram(self.ptr, out.as_mut_ptr(), out.len()) };
        out[..n.min(128)].to_vec()
    }
}

impl Drop for Ale {
    fn drop(&mut self) {
        // SAFETY: created by xrl_ale_new, freed once.
        unsafe { sys::xrl_ale_free(self.ptr) }
    }
}

/// ALE settings read when a ROM loads.
#[derive(Clone, Debug, PartialEq)]
pub struct AleSettings {
    /// Probability that the previous action repeats on each emulator frame (sticky actions; v5: 0.25).
    pub repeat_action_probability: f32,
    /// Frames after which an episode is truncated (Gymnasium's registrations: 108,000 = 30 minutes).
    pub max_num_frames_per_episode: Option<u32>,
}
