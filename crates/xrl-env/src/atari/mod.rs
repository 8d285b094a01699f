//! Atari 2600 games through the Arcade Learning Environment 0.12.1 (feature `atari`; a binary built with it is
//! GPL-2.0 because it links ALE). Setup: `python3 scripts/atari-setup.py` downloads ale-py 0.12.1's source and
//! ROMs from PyPI into a cache directory (see [`ale_dir`]); nothing of ALE is in this repository.
//!
//! * [`AtariEnv`] is ale-py's `AtariEnv` with Gymnasium's registrations: `ALE/<Game>-v5` (frameskip 4, sticky
//!   actions 0.25) and `<Game>NoFrameskip-v4` (frameskip 1, no sticky actions), minimal action set, 108,000-frame
//!   limit; observations are the RGB screen, channels first (3 × 210 × 160, values 0–255).
//! * [`AtariPreprocessing`] is Gymnasium 1.4's `AtariPreprocessing` (no-op reset, frame skip with the maximum of
//!   the last two frames, grey, 84 × 84 `INTER_AREA` resize, optional terminal on life loss), with the seeds' own
//!   preprocessing as named options ([`Resize`], [`Crop`]).
//! * [`FireReset`] presses FIRE after a reset for games that wait for it; reward clipping and frame stacks are the
//!   generic [`crate::wrappers`].
//! * [`AtariVecEnv`] steps N preprocessed copies on threads into one contiguous `u8` buffer.
//!
//! Seeding follows ale-py exactly: `reset(Some(seed))` derives ALE's `random_seed` and the no-op generator with
//! NumPy's `SeedSequence` and `PCG64` ([`numpy_seed`]), so the same seed gives the same episode as
//! `gym.make(id).reset(seed=seed)`. An environment never seeded behaves as if seeded with 0.

mod ale;
pub mod numpy_seed;
mod preprocess;
mod resize;
mod rom_md5;
mod vector;

pub use ale::{Ale, AleSettings, Roms, ale_dir};
pub use preprocess::{AtariPreprocessing, Crop, FireReset, PreprocessConfig, Resize};
pub use resize::{resize_area, resize_bilinear};
pub use vector::AtariVecEnv;

use crate::{Action, ActionSpace, Env, EnvError, EnvSpec, ObsSpace, RgbImage, Step};
use numpy_seed::{Pcg64, ale_py_seeds};
use serde_json::{Value, json};
use std::path::PathBuf;

/// The meanings of ALE's 18 actions, in ALE's order (Gymnasium's `get_action_meanings`).
pub const ACTION_MEANINGS: [&str; 18] = [
    "NOOP",
    "FIRE",
    "UP",
    "RIGHT",
    "LEFT",
    "DOWN",
    "UPRIGHT",
    "UPLEFT",
    "DOWNRIGHT",
    "DOWNLEFT",
    "UPFIRE",
    "RIGHTFIRE",
    "LEFTFIRE",
    "DOWNFIRE",
    "UPRIGHTFIRE",
    "UPLEFTFIRE",
    "DOWNRIGHTFIRE",
    "DOWNLEFTFIRE",
];

/// ROMs ale-py ships that have no single-player game (not registered as v5 by ale-py either).
const MULTIPLAYER_ONLY: [&str; 4] = ["combat", "joust", "maze_craze", "warlords"];

/// The games ale-py 0.12.1 registers `NoFrameskip-v4` ids for.
const LEGACY_GAMES: [&str; 62] = [
    "adventure",
    "air_raid",
    "alien",
    "amidar",
    "assault",
    "asterix",
    "asteroids",
    "atlantis",
    "bank_heist",
    "battle_zone",
    "beam_rider",
    "berzerk",
    "bowling",
    "boxing",
    "breakout",
    "carnival",
    "centipede",
    "chopper_command",
    "crazy_climber",
    "defender",
    "demon_attack",
    "double_dunk",
    "elevator_action",
    "enduro",
    "fishing_derby",
    "freeway",
    "frostbite",
    "gopher",
    "gravitar",
    "hero",
    "ice_hockey",
    "jamesbond",
    "journey_escape",
    "kangaroo",
    "krull",
    "kung_fu_master",
    "montezuma_revenge",
    "ms_pacman",
    "name_this_game",
    "phoenix",
    "pitfall",
    "pong",
    "pooyan",
    "private_eye",
    "qbert",
    "riverraid",
    "road_runner",
    "robotank",
    "seaquest",
    "skiing",
    "solaris",
    "space_invaders",
    "star_gunner",
    "tennis",
    "time_pilot",
    "tutankham",
    "up_n_down",
    "venture",
    "video_pinball",
    "wizard_of_wor",
    "yars_revenge",
    "zaxxon",
];

/// ale-py's `rom_id_to_name`: Python's `str.title()` without underscores (`tic_tac_toe_3d` → `TicTacToe3D`).
pub fn rom_id_to_name(rom: &str) -> String {
    let mut out = String::new();
    let mut after_letter = false;
    for c in rom.chars() {
        if c == '_' {
            after_letter = false;
            continue;
        }
        if c.is_alphabetic() {
            out.extend(if after_letter { c.to_lowercase().collect::<Vec<_>>() } else { c.to_uppercase().collect() });
            after_letter = true;
        } else {
            out.push(c);
            after_letter = false;
        }
    }
    out
}

/// How an [`AtariEnv`] runs: ale-py's `AtariEnv` keyword arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct AtariConfig {
    /// Snake-case ROM id, e.g. `pong`, `space_invaders`.
    pub game: String,
    /// Emulator frames per step, summing rewards (v5: 4; NoFrameskip: 1).
    pub frameskip: u32,
    pub repeat_action_probability: f32,
    /// All 18 actions instead of the game's minimal set.
    pub full_action_space: bool,
    pub max_num_frames_per_episode: Option<u32>,
}

impl AtariConfig {
    /// `ALE/<Game>-v5`.
    pub fn v5(game: &str) -> Self {
        AtariConfig {
            game: game.into(),
            frameskip: 4,
            repeat_action_probability: 0.25,
            full_action_space: false,
            max_num_frames_per_episode: Some(108_000),
        }
    }
    /// `<Game>NoFrameskip-v4`.
    pub fn no_frameskip_v4(game: &str) -> Self {
        AtariConfig { frameskip: 1, repeat_action_probability: 0.0, ..AtariConfig::v5(game) }
    }
}

/// Whether the ROM setup is there, with the reason when it is not (for `xrl envs`' note).
pub fn setup_status() -> Result<usize, EnvError> {
    Roms::find().map(|r| r.md5.len())
}

/// Every Atari id the installed ROM set supports (empty when the setup has not run).
pub fn ids() -> Vec<String> {
    let Ok(roms) = Roms::find() else { return vec![] };
    let mut ids = vec![];
    for rom in roms.md5.keys() {
        if MULTIPLAYER_ONLY.contains(&rom.as_str()) {
            continue;
        }
        let name = rom_id_to_name(rom);
        ids.push(format!("ALE/{name}-v5"));
        if LEGACY_GAMES.contains(&rom.as_str()) {
            ids.push(format!("{name}NoFrameskip-v4"));
        }
    }
    ids
}

/// The configuration an Atari id stands for, or `None` when `id` is not an Atari id.
pub fn config_for(id: &str) -> Option<AtariConfig> {
    // Every ROM ale-py ships but the multiplayer-only ones (ALE cannot run those as one player).
    let game = |name: &str| -> Option<String> {
        rom_md5::ROM_MD5
            .iter()
            .map(|(rom, _)| rom.to_string())
            .filter(|rom| !MULTIPLAYER_ONLY.contains(&rom.as_str()))
            .find(|rom| rom_id_to_name(rom) == name)
    };
    if let Some(name) = id.strip_prefix("ALE/").and_then(|s| s.strip_suffix("-v5")) {
        return game(name).map(|g| AtariConfig::v5(&g));
    }
    if let Some(name) = id.strip_suffix("NoFrameskip-v4") {
        return game(name).filter(|g| LEGACY_GAMES.contains(&g.as_str())).map(|g| AtariConfig::no_frameskip_v4(&g));
    }
    None
}

/// ale-py's `AtariEnv` (RGB observations).
pub struct AtariEnv {
    ale: Ale,
    rom: PathBuf,
    config: AtariConfig,
    spec: EnvSpec,
    /// Index → ALE action id.
    actions: Vec<i32>,
    /// `env.np_random` of ale-py (used by Gymnasium's no-op reset).
    np_random: Pcg64,
    obs: Vec<f32>,
    needs_reset: bool,
    /// Lives after the last reset or step (ALE's `lives()` needs mutable access, `state()` has none).
    lives: i32,
}

impl AtariEnv {
    pub fn new(id: &str, config: AtariConfig) -> Result<AtariEnv, EnvError> {
        if config.frameskip == 0 {
            return Err(EnvError::InvalidOption { id: id.into(), message: "frameskip must be at least 1".into() });
        }
        if !(0.0..=1.0).contains(&config.repeat_action_probability) {
            return Err(EnvError::InvalidOption {
                id: id.into(),
                message: format!(
                    "repeat_action_probability must be within [0, 1], got {}",
                    config.repeat_action_probability
                ),
            });
        }
        let rom = Roms::find()?.checked_path(&config.game)?;
        let (np_random, ale_seed) = ale_py_seeds(0);
        let settings = AleSettings {
            repeat_action_probability: config.repeat_action_probability,
            max_num_frames_per_episode: config.max_num_frames_per_episode,
        };
        let mut ale = Ale::new(&rom, ale_seed, &settings)?;
        let actions = if config.full_action_space { ale.legal_action_set() } else { ale.minimal_action_set() };
        let meanings: Vec<&str> = actions.iter().map(|&a| ACTION_MEANINGS[a as usize]).collect();
        let (h, w) = ale.dims();
        let spec = EnvSpec {
            id: id.into(),
            observation: ObsSpace::Box {
                shape: vec![3, h, w],
                low: vec![0.0; 3 * h * w],
                high: vec![255.0; 3 * h * w],
            },
            action: ActionSpace::discrete(&meanings),
            max_episode_steps: None,
            reward_threshold: None,
        };
        ale.reset_game();
        let mut env = AtariEnv {
            ale,
            rom,
            config,
            spec,
            actions,
            np_random,
            obs: vec![0.0; 3 * h * w],
            needs_reset: false,
            lives: 0,
        };
        env.lives = env.ale.lives();
        env.fill_obs();
        Ok(env)
    }

    /// Builds a registered id (`ALE/Pong-v5`, `PongNoFrameskip-v4`, …).
    pub fn make(id: &str) -> Result<AtariEnv, EnvError> {
        let config = config_for(id).ok_or_else(|| EnvError::UnknownId { id: id.into(), known: ids() })?;
        AtariEnv::new(id, config)
    }

    pub fn config(&self) -> &AtariConfig {
        &self.config
    }
    pub fn ale(&self) -> &Ale {
        &self.ale
    }
    pub fn ale_mut(&mut self) -> &mut Ale {
        &mut self.ale
    }
    /// Index → ALE action id.
    pub fn action_set(&self) -> &[i32] {
        &self.actions
    }
    pub fn np_random(&mut self) -> &mut Pcg64 {
        &mut self.np_random
    }
    pub fn lives(&self) -> i32 {
        self.lives
    }

    /// ale-py's `reset`: a seed first reseeds (ALE's stream and `np_random`) and reloads the ROM.
    pub fn reset_raw(&mut self, seed: Option<u64>) -> Result<(), EnvError> {
        if let Some(seed) = seed {
            let (np_random, ale_seed) = ale_py_seeds(seed);
            self.np_random = np_random;
            self.ale.load(&self.rom, ale_seed)?;
        }
        self.ale.reset_game();
        self.needs_reset = false;
        self.lives = self.ale.lives();
        Ok(())
    }

    /// ale-py's `step` without building the observation: `frameskip` emulator frames; (reward, terminated,
    /// truncated).
    pub fn step_raw(&mut self, action: usize) -> Result<(f64, bool, bool), EnvError> {
        if self.needs_reset {
            return Err(EnvError::NeedsReset { id: self.spec.id.clone() });
        }
        let n = self.actions.len();
        let Some(&ale_action) = self.actions.get(action) else {
            return Err(EnvError::ActionOutOfRange { id: self.spec.id.clone(), action, n });
        };
        let mut reward = 0.0;
        for _ in 0..self.config.frameskip {
            reward += self.ale.act(ale_action) as f64;
        }
        let (terminated, truncated) = (self.ale.game_over(), self.ale.game_truncated());
        self.lives = self.ale.lives();
        self.needs_reset = terminated || truncated;
        Ok((reward, terminated, truncated))
    }

    /// Ends the episode early (a wrapper's terminal on life loss): stepping needs a reset again.
    pub(crate) fn end_episode(&mut self) {
        self.needs_reset = true;
    }

    fn fill_obs(&mut self) {
        // Planar floats straight from the palette in the shim: one pass (bytes then a conversion was two; a
        // transposing loop here was 3× slower).
        self.ale.screen_rgb_planar_f32(&mut self.obs);
    }

    /// The raw screen, height × width × 3 bytes row-major (as ale-py's `getScreenRGB()`).
    pub fn screen_rgb(&self) -> Vec<u8> {
        let (h, w) = self.ale.dims();
        let mut out = vec![0; h * w * 3];
        self.ale.screen_rgb(&mut out);
        out
    }
}

impl Env for AtariEnv {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }
    fn reset(&mut self, seed: Option<u64>) -> &[f32] {
        // A reseed reloads a ROM whose MD5 was checked when the environment was made; it cannot fail then.
        self.reset_raw(seed).expect("reloading a checked ROM");
        self.fill_obs();
        &self.obs
    }
    fn step(&mut self, action: &Action) -> Result<Step<'_>, EnvError> {
        let a = crate::discrete_action(&self.spec, action)?;
        let (reward, terminated, truncated) = self.step_raw(a)?;
        self.fill_obs();
        Ok(Step { obs: &self.obs, reward, terminated, truncated })
    }
    fn obs(&self) -> &[f32] {
        &self.obs
    }
    fn render(&self) -> RgbImage {
        let (h, w) = self.ale.dims();
        RgbImage::from_raw(w as u32, h as u32, self.screen_rgb()).expect("screen buffer matches its dimensions")
    }
    fn state(&self) -> Value {
        atari_state(&self.config.game, &self.ale, self.lives)
    }
    fn set_state(&mut self, _doc: &Value) -> Result<(), EnvError> {
        Err(not_editable(&self.spec.id))
    }
}

fn atari_state(game: &str, ale: &Ale, lives: i32) -> Value {
    json!({
        "game": game,
        "lives": lives,
        "frame_number": ale.frame_number(),
        "episode_frame_number": ale.episode_frame_number(),
        "ram": ale.ram(),
    })
}

fn not_editable(id: &str) -> EnvError {
    EnvError::InvalidState {
        id: id.into(),
        message: "Atari games cannot be edited through a state document (their state is the console's RAM and \
                  CPU, not objects); use a MinAtar game for object interventions"
            .into(),
    }
}
