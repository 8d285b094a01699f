//! Gymnasium 1.4's `AtariPreprocessing`, the seeds' preprocessing as named options, and SB3's fire reset.

use super::resize::Resizer;
use super::{AtariConfig, AtariEnv, not_editable};
use crate::{Action, ActionSpace, Env, EnvError, EnvSpec, ObsSpace, RgbImage, Step};
use serde_json::Value;

/// How a screen becomes one grey image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grey {
    /// ALE's grey palette (`getScreenGrayscale`), as Gymnasium.
    Palette,
    /// The mean of R, G and B (the finite-state and perturbation-saliency seeds' `mean_RGB`), rounded down after
    /// the byte scaling below, as their scipy pipeline did.
    MeanRgb,
}

/// The resize to `screen_size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resize {
    /// OpenCV's `INTER_AREA` (Gymnasium).
    Area,
    /// PIL's `BILINEAR`, as scipy's `imresize` (the seeds).
    Bilinear,
}

/// Rows and columns kept before resizing (half-open ranges, like NumPy's `img[r0:r1, c0:c1]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crop {
    pub rows: (usize, usize),
    pub cols: (usize, usize),
}

impl Crop {
    /// The per-game crop of the finite-state seed's `env_wrapper.py` (Koul et al. 2019; also Greydanus et al.'s
    /// rows 35–194 for Pong and Breakout).
    pub fn koul_et_al(game: &str) -> Crop {
        let (rows, cols) = match game {
            "pong" | "breakout" => ((35, 195), (0, 160)),
            "space_invaders" => ((0, 195), (0, 160)),
            "enduro" => ((0, 155), (10, 160)),
            "beam_rider" => ((30, 180), (10, 160)),
            "freeway" => ((25, 195), (10, 160)),
            "boxing" => ((15, 180), (30, 130)),
            "qbert" => ((30, 190), (10, 150)),
            "bowling" => ((105, 172), (0, 160)),
            _ => ((5, 195), (0, 160)),
        };
        Crop { rows, cols }
    }
}

/// `AtariPreprocessing`'s arguments, plus the seeds' variations.
#[derive(Clone, Debug, PartialEq)]
pub struct PreprocessConfig {
    /// At most this many NOOPs after a reset, drawn uniformly from 1..=noop_max (0: none).
    pub noop_max: u32,
    /// Emulator frames per step (the inner environment must have frameskip 1).
    pub frame_skip: u32,
    /// Output (height, width).
    pub screen_size: (usize, usize),
    /// A lost life ends the episode (`terminated`); the next reset restarts the game.
    pub terminal_on_life_loss: bool,
    /// Take the per-pixel maximum of the last two frames of a step (removes Atari sprite flicker).
    pub max_pool: bool,
    pub grey: Grey,
    pub crop: Option<Crop>,
    pub resize: Resize,
    /// Stretch each frame's grey range to 0–255 before resizing (scipy `imresize`'s byte scaling of float
    /// images, which the seeds relied on unknowingly: the contrast of a frame then depends on its content).
    pub byte_scale: bool,
}

impl Default for PreprocessConfig {
    /// Gymnasium's defaults.
    fn default() -> Self {
        PreprocessConfig {
            noop_max: 30,
            frame_skip: 4,
            screen_size: (84, 84),
            terminal_on_life_loss: false,
            max_pool: true,
            grey: Grey::Palette,
            crop: None,
            resize: Resize::Area,
            byte_scale: false,
        }
    }
}

impl PreprocessConfig {
    /// The finite-state (Koul et al.) and perturbation-saliency (Greydanus et al.) seeds' 80 × 80 frames: the
    /// per-game crop, mean RGB, byte scaling and bilinear resize, frame skip 4 without max pooling.
    pub fn koul_et_al_80(game: &str) -> Self {
        PreprocessConfig {
            screen_size: (80, 80),
            max_pool: false,
            grey: Grey::MeanRgb,
            crop: Some(Crop::koul_et_al(game)),
            resize: Resize::Bilinear,
            byte_scale: true,
            ..PreprocessConfig::default()
        }
    }
    /// Seed 002's 84 × 84 frames: bilinear resize of the whole screen (here of ALE's grey palette, so grey levels
    /// may differ from its RGB resize + `rgb2gray` by rounding).
    pub fn bilinear_84() -> Self {
        PreprocessConfig { resize: Resize::Bilinear, ..PreprocessConfig::default() }
    }
}

/// Gymnasium's `AtariPreprocessing` around an [`AtariEnv`] whose frameskip is 1.
pub struct AtariPreprocessing {
    env: AtariEnv,
    config: PreprocessConfig,
    spec: EnvSpec,
    /// The two most recent grey screens (Gymnasium's `obs_buffer`: [0] the last frame, [1] the one before).
    buffers: [Vec<u8>; 2],
    rgb: Vec<u8>,
    crop: Crop,
    cropped: Vec<u8>,
    resizer: Resizer,
    lives: i32,
    seed: Option<u64>,
    frame: Vec<u8>,
    obs: Vec<f32>,
}

impl AtariPreprocessing {
    /// Wraps `env` (which must have frameskip 1 when `frame_skip` > 1, as Gymnasium requires).
    pub fn new(env: AtariEnv, config: PreprocessConfig) -> Result<Self, EnvError> {
        let id = env.spec().id.clone();
        let bad = |message: String| EnvError::InvalidOption { id: id.clone(), message };
        if config.frame_skip == 0 {
            return Err(bad("frame_skip must be at least 1".into()));
        }
        if config.frame_skip > 1 && env.config().frameskip != 1 {
            return Err(bad(format!(
                "the environment already skips {} frames; preprocessing with frame_skip {} needs an environment \
                 with frameskip 1 (use <Game>NoFrameskip-v4, or ALE/<Game>-v5 with frameskip 1)",
                env.config().frameskip,
                config.frame_skip
            )));
        }
        let (oh, ow) = config.screen_size;
        if oh == 0 || ow == 0 {
            return Err(bad("screen_size must be positive".into()));
        }
        if config.noop_max > 0 && env.action_set().first() != Some(&0) {
            return Err(bad("no-op resets need NOOP as the first action".into()));
        }
        let (h, w) = env.ale().dims();
        let crop = config.crop.unwrap_or(Crop { rows: (0, h), cols: (0, w) });
        if crop.rows.0 >= crop.rows.1 || crop.rows.1 > h || crop.cols.0 >= crop.cols.1 || crop.cols.1 > w {
            return Err(bad(format!("crop {crop:?} does not fit the {h} × {w} screen")));
        }
        let (ch, cw) = (crop.rows.1 - crop.rows.0, crop.cols.1 - crop.cols.0);
        let resizer = match config.resize {
            Resize::Area => Resizer::area(ch, cw, oh, ow),
            Resize::Bilinear => Resizer::bilinear(ch, cw, oh, ow),
        };
        let meanings = match &env.spec().action {
            ActionSpace::Discrete { meanings, .. } => meanings.iter().map(String::as_str).collect::<Vec<_>>(),
            ActionSpace::Continuous { .. } => unreachable!("Atari actions are discrete"),
        };
        let spec = EnvSpec {
            id: env.spec().id.clone(),
            observation: ObsSpace::Box { shape: vec![oh, ow], low: vec![0.0; oh * ow], high: vec![255.0; oh * ow] },
            action: ActionSpace::discrete(&meanings),
            max_episode_steps: None,
            reward_threshold: None,
        };
        let mut p = AtariPreprocessing {
            env,
            config,
            spec,
            buffers: [vec![0; h * w], vec![0; h * w]],
            rgb: vec![0; h * w * 3],
            crop,
            cropped: vec![0; ch * cw],
            resizer,
            lives: 0,
            seed: None,
            frame: vec![0; oh * ow],
            obs: vec![0.0; oh * ow],
        };
        p.reset(None);
        Ok(p)
    }

    /// `make(id)` with frameskip 1, then the preprocessing (Gymnasium's documented use of the wrapper).
    pub fn make(id: &str, config: PreprocessConfig) -> Result<Self, EnvError> {
        let base = super::config_for(id).ok_or_else(|| EnvError::UnknownId { id: id.into(), known: super::ids() })?;
        AtariPreprocessing::new(AtariEnv::new(id, AtariConfig { frameskip: 1, ..base })?, config)
    }

    pub fn inner(&self) -> &AtariEnv {
        &self.env
    }
    pub fn inner_mut(&mut self) -> &mut AtariEnv {
        &mut self.env
    }
    pub fn config(&self) -> &PreprocessConfig {
        &self.config
    }
    /// The current preprocessed frame as bytes (what a pixel replay stores).
    pub fn frame_u8(&self) -> &[u8] {
        &self.frame
    }

    /// Reads the current screen into buffer `slot`, in the configured grey.
    fn capture(&mut self, slot: usize) {
        match self.config.grey {
            Grey::Palette => self.env.ale().screen_grayscale(&mut self.buffers[slot]),
            Grey::MeanRgb => {
                self.env.ale().screen_rgb(&mut self.rgb);
                for (g, px) in self.buffers[slot].iter_mut().zip(self.rgb.chunks_exact(3)) {
                    // Kept exact: the byte scaling below works on the mean × 3 (an integer) before rounding.
                    *g = ((px[0] as u16 + px[1] as u16 + px[2] as u16) / 3) as u8;
                }
            }
        }
    }

    /// Gymnasium's `_get_obs`: the maximum of the two buffers (written into buffer 0), resized.
    fn make_obs(&mut self) {
        if self.config.frame_skip > 1 && self.config.max_pool {
            let [a, b] = &mut self.buffers;
            for (x, y) in a.iter_mut().zip(b.iter()) {
                *x = (*x).max(*y);
            }
        }
        let (h, w) = self.env.ale().dims();
        let Crop { rows, cols } = self.crop;
        let whole = rows == (0, h) && cols == (0, w) && !self.config.byte_scale;
        if whole {
            self.resizer.run(&self.buffers[0], &mut self.obs);
            for (b, &v) in self.frame.iter_mut().zip(&self.obs) {
                *b = v as u8;
            }
            return;
        }
        let cw = cols.1 - cols.0;
        for (r, out) in (rows.0..rows.1).zip(self.cropped.chunks_exact_mut(cw)) {
            out.copy_from_slice(&self.buffers[0][r * w + cols.0..r * w + cols.1]);
        }
        if self.config.byte_scale {
            let (lo, hi) = self.cropped.iter().fold((255u8, 0u8), |(l, h), &v| (l.min(v), h.max(v)));
            // scipy's bytescale: (v − lo) × 255 / (hi − lo), rounded down after adding 0.5; a flat frame → 0.
            let range = (hi - lo) as f32;
            for v in &mut self.cropped {
                *v = if range == 0.0 { 0 } else { (((*v - lo) as f32) * 255.0 / range + 0.5).floor() as u8 };
            }
        }
        self.resizer.run(&self.cropped, &mut self.obs);
        for (b, &v) in self.frame.iter_mut().zip(&self.obs) {
            *b = v as u8;
        }
    }

    fn reset_inner(&mut self, seed: Option<u64>) {
        // A reseed reloads a ROM whose MD5 was checked when the environment was made; it cannot fail then.
        self.env.reset_raw(seed).expect("reloading a checked ROM");
    }
}

impl Env for AtariPreprocessing {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    /// Gymnasium's reset: the inner reset, then 1..=noop_max NOOPs drawn from the inner `np_random` (a game that
    /// ends during them is reset again, with the same seed), then the first frame.
    fn reset(&mut self, seed: Option<u64>) -> &[f32] {
        self.seed = seed;
        self.reset_inner(seed);
        let noops = if self.config.noop_max > 0 {
            self.env.np_random().integers(1, self.config.noop_max as i64 + 1)
        } else {
            0
        };
        for _ in 0..noops {
            let (_, terminated, truncated) = self.env.step_raw(0).expect("NOOP is action 0 of a live episode");
            if terminated || truncated {
                self.reset_inner(seed);
            }
        }
        self.lives = self.env.lives();
        self.capture(0);
        self.buffers[1].fill(0);
        self.make_obs();
        &self.obs
    }

    fn step(&mut self, action: &Action) -> Result<Step<'_>, EnvError> {
        let a = crate::discrete_action(&self.spec, action)?;
        let (mut total, mut terminated, mut truncated) = (0.0, false, false);
        let fs = self.config.frame_skip;
        for t in 0..fs {
            let (r, term, trunc) = self.env.step_raw(a)?;
            total += r;
            (terminated, truncated) = (term, trunc);
            if self.config.terminal_on_life_loss {
                let lives = self.env.lives();
                terminated |= lives < self.lives;
                self.lives = lives;
            }
            if terminated || truncated {
                break; // as Gymnasium: the observation keeps the buffers of earlier frames
            }
            if t + 2 == fs {
                self.capture(1);
            } else if t + 1 == fs {
                self.capture(0);
            }
        }
        if terminated && !self.env.ale().game_over() {
            // A life lost under terminal_on_life_loss ends the episode here; the inner game goes on until reset.
            self.env.end_episode();
        }
        self.make_obs();
        Ok(Step { obs: &self.obs, reward: total, terminated, truncated })
    }

    fn obs(&self) -> &[f32] {
        &self.obs
    }
    fn render(&self) -> RgbImage {
        self.env.render()
    }
    fn state(&self) -> Value {
        self.env.state()
    }
    fn set_state(&mut self, _doc: &Value) -> Result<(), EnvError> {
        Err(not_editable(&self.spec.id))
    }
}

/// Presses FIRE (then action 2) after each reset, for games that wait for FIRE to start (SB3's `FireResetEnv`,
/// used by CleanRL's Atari agents). Needs FIRE as action 1 and at least three actions.
pub struct FireReset {
    inner: Box<dyn Env>,
}

impl FireReset {
    pub fn new(inner: Box<dyn Env>) -> Result<Self, EnvError> {
        let ok = match &inner.spec().action {
            ActionSpace::Discrete { meanings, n } => *n >= 3 && meanings[1] == "FIRE",
            ActionSpace::Continuous { .. } => false,
        };
        if !ok {
            return Err(EnvError::InvalidOption {
                id: inner.spec().id.clone(),
                message: "fire reset needs FIRE as action 1 and at least three actions; this game has neither, \
                          so leave fire reset off"
                    .into(),
            });
        }
        Ok(FireReset { inner })
    }

    /// Whether a game's action set has FIRE as action 1 (CleanRL applies the wrapper exactly then).
    pub fn applies(env: &dyn Env) -> bool {
        matches!(&env.spec().action, ActionSpace::Discrete { meanings, n } if *n >= 3 && meanings[1] == "FIRE")
    }
}

impl Env for FireReset {
    fn spec(&self) -> &EnvSpec {
        self.inner.spec()
    }
    fn reset(&mut self, seed: Option<u64>) -> &[f32] {
        self.inner.reset(seed);
        for action in [1, 2] {
            let done = self.inner.step(&Action::Discrete(action)).map(|s| s.done()).unwrap_or(true);
            if done {
                self.inner.reset(seed);
            }
        }
        self.inner.obs()
    }
    fn step(&mut self, action: &Action) -> Result<Step<'_>, EnvError> {
        self.inner.step(action)
    }
    crate::wrappers::forward_to_inner!();
}
