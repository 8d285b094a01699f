//! Environments for xrl, with Gymnasium's semantics.
//!
//! * [`Env`] is the contract: `reset(seed)`, `step(action)` → observation, reward, `terminated`, `truncated`,
//!   `render()` to RGB, and object-level `state()` / `set_state()` so a caller can edit the game and watch.
//! * Classic control ([`classic`]) follows Gymnasium 1.4.0's constants and equations.
//! * MinAtar ([`minatar`]) is written from the published rules of its five games.
//! * [`wrappers`] and [`vector`] add time limits, frame stacks, statistics, reward clipping and N copies.
//!
//! [`make`] builds any registered id the way `gym.make` does (time limit included).
//!
//! ```
//! # fn main() -> Result<(), xrl_env::EnvError> {
//! let mut env = xrl_env::make("MinAtar/Breakout-v0")?;
//! let obs: &[f32] = env.reset(Some(42)); // C×10×10, channels first
//! assert_eq!(obs.len(), 4 * 10 * 10);
//! let step = env.step(&xrl_env::Action::Discrete(3))?; // obs, reward, terminated, truncated
//! let (_reward, _done) = (step.reward, step.done());
//! let picture = env.render(); // an RGB image for humans
//! assert_eq!(picture.dimensions(), (320, 320));
//! // Edit the game: move the ball, and the observation follows.
//! let mut doc = env.state();
//! doc["game"]["ball_x"] = 7.into();
//! doc["game"]["ball_y"] = 5.into();
//! env.set_state(&doc)?;
//! assert_eq!(env.obs()[100 + 5 * 10 + 7], 1.0); // channel 1 (ball), row 5, column 7
//! # Ok(())
//! # }
//! ```

#[cfg(feature = "atari")]
pub mod atari;
pub mod classic;
mod error;
pub mod minatar;
mod rng;
mod spec;
pub mod vector;
pub mod wrappers;

pub use error::EnvError;
pub use image::RgbImage;
pub use rng::{GameRng, RngKind};
pub use spec::{ActionSpace, EnvSpec, ObsSpace};

/// An action: an index for discrete spaces, a vector for continuous ones.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Discrete(usize),
    Continuous(Vec<f32>),
}

/// What one step returns. `obs` borrows the environment's buffer; copy it if you keep it.
#[derive(Debug, PartialEq)]
pub struct Step<'a> {
    pub obs: &'a [f32],
    pub reward: f64,
    /// The episode reached a terminal state of the task (Gymnasium's `terminated`).
    pub terminated: bool,
    /// The episode was cut by something outside the task, such as a time limit (Gymnasium's `truncated`).
    pub truncated: bool,
}

impl Step<'_> {
    pub fn done(&self) -> bool {
        self.terminated || self.truncated
    }
}

/// The environment contract.
///
/// After an episode ends (`terminated` or `truncated`), `step` returns [`EnvError::NeedsReset`] until `reset` is
/// called; it never silently continues a finished episode.
pub trait Env: Send {
    fn spec(&self) -> &EnvSpec;

    /// Starts a new episode and returns its first observation. `Some(seed)` first reseeds every random stream of
    /// the environment, so equal seeds give equal episodes; `None` continues the current streams.
    fn reset(&mut self, seed: Option<u64>) -> &[f32];

    fn step(&mut self, action: &Action) -> Result<Step<'_>, EnvError>;

    /// The current observation (the one the last `reset`/`step` returned).
    fn obs(&self) -> &[f32];

    /// The current frame as a human would see it.
    fn render(&self) -> RgbImage;

    /// The full object-level state as a JSON document (positions, velocities, timers, …).
    fn state(&self) -> serde_json::Value;

    /// Sets the state from a document like the one [`Env::state`] returns; errors name the offending field. The
    /// episode is then live (not ended) unless the document says otherwise.
    fn set_state(&mut self, doc: &serde_json::Value) -> Result<(), EnvError>;
}

/// Options accepted by [`make_with`]; the defaults are the published settings.
#[derive(Clone, Debug, PartialEq)]
pub struct MakeOptions {
    /// MinAtar: probability that the previous executed action repeats (default 0.1).
    pub sticky_action_prob: f64,
    /// MinAtar: speed the game up over time in Asterix, Seaquest and Space Invaders (default on).
    pub difficulty_ramping: bool,
    /// Which random generator to use (default [`RngKind::Fast`]).
    pub rng: RngKind,
    /// Wrap in a [`wrappers::TimeLimit`] of the registered length, as `gym.make` does (default on).
    pub time_limit: bool,
    /// Atari wrappers (ignored by other games; refused there by the CLI).
    pub atari: AtariOptions,
}

/// The wrappers an Atari agent is usually trained behind (all off by default: the plain Gymnasium id).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtariOptions {
    /// Gymnasium's `AtariPreprocessing` (1–30 no-ops at reset, frame skip 4 with the maximum of the last two
    /// frames, grey, 84 × 84 `INTER_AREA`) over the game with frameskip 1.
    #[serde(default)]
    pub preprocess: bool,
    /// With `preprocess`: a lost life ends the episode.
    #[serde(default)]
    pub terminal_on_life_loss: bool,
    /// Press FIRE after each reset where the game has FIRE (SB3's `FireResetEnv`, as CleanRL).
    #[serde(default)]
    pub fire_reset: bool,
    /// Clip rewards to their sign's range [−1, 1] (the DQN convention).
    #[serde(default)]
    pub clip_rewards: bool,
    /// With `preprocess`: which frames (Gymnasium's, or a seed's).
    #[serde(default, skip_serializing_if = "AtariFrame::is_gymnasium")]
    pub frame: AtariFrame,
}

/// The preprocessed frame of an Atari game.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AtariFrame {
    /// Gymnasium's AtariPreprocessing: ALE's grey, max of the last two frames, 84 × 84 `INTER_AREA`.
    #[default]
    Gymnasium,
    /// The finite-state and perturbation-saliency seeds' 80 × 80: per-game crop, mean RGB, byte scaling, bilinear.
    Koul80,
    /// Seed 002's 84 × 84 bilinear resize.
    Bilinear84,
}

impl AtariFrame {
    pub fn is_gymnasium(&self) -> bool {
        *self == AtariFrame::Gymnasium
    }
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "gymnasium" => Ok(AtariFrame::Gymnasium),
            "koul80" => Ok(AtariFrame::Koul80),
            "bilinear84" => Ok(AtariFrame::Bilinear84),
            _ => Err(format!("unknown Atari frame `{s}`; use gymnasium, koul80 or bilinear84")),
        }
    }
}

impl AtariOptions {
    pub fn is_default(&self) -> bool {
        *self == AtariOptions::default()
    }
}

impl Default for MakeOptions {
    fn default() -> Self {
        MakeOptions {
            sticky_action_prob: 0.1,
            difficulty_ramping: true,
            rng: RngKind::Fast,
            time_limit: true,
            atari: AtariOptions::default(),
        }
    }
}

/// Every registered environment id.
pub fn ids() -> Vec<String> {
    let mut ids: Vec<String> = classic::IDS.iter().map(|s| s.to_string()).collect();
    ids.extend(minatar::ids());
    #[cfg(feature = "atari")]
    ids.extend(atari::ids());
    ids
}

/// The spec of every registered id, or why it cannot be made (a damaged Atari ROM, say), in the order of [`ids`].
/// Atari games are made once for their two ids, in parallel.
pub fn specs() -> Vec<(String, Result<EnvSpec, EnvError>)> {
    use rayon::prelude::*;
    use std::collections::BTreeMap;
    let ids = ids();
    // One representative id per Atari game: the v5 and NoFrameskip-v4 specs differ only by their id.
    let key = |id: &str| -> String {
        match id.strip_prefix("ALE/").and_then(|s| s.strip_suffix("-v5")) {
            Some(name) => name.to_string(),
            None => id.strip_suffix("NoFrameskip-v4").map_or(id.to_string(), str::to_string),
        }
    };
    let mut first: BTreeMap<String, String> = BTreeMap::new();
    for id in &ids {
        first.entry(key(id)).or_insert_with(|| id.clone());
    }
    let made: BTreeMap<String, Result<EnvSpec, String>> = first
        .into_par_iter()
        .map(|(k, id)| (k, make(&id).map(|e| e.spec().clone()).map_err(|e| e.to_string())))
        .collect();
    ids.into_iter()
        .map(|id| {
            let spec = match &made[&key(&id)] {
                Ok(s) => Ok(EnvSpec { id: id.clone(), ..s.clone() }),
                Err(message) => Err(EnvError::InvalidOption { id: id.clone(), message: message.clone() }),
            };
            (id, spec)
        })
        .collect()
}

/// Why no Atari game is listed, when none is: the feature is off, or the ROM setup is missing.
pub fn atari_note() -> Option<String> {
    #[cfg(feature = "atari")]
    {
        atari::setup_status().err().map(|e| format!("no Atari games: {e}"))
    }
    #[cfg(not(feature = "atari"))]
    {
        None
    }
}

/// Builds an environment by id with the published defaults.
pub fn make(id: &str) -> Result<Box<dyn Env>, EnvError> {
    make_with(id, &MakeOptions::default())
}

/// Builds an environment by id.
pub fn make_with(id: &str, options: &MakeOptions) -> Result<Box<dyn Env>, EnvError> {
    let env: Box<dyn Env> = if let Some(env) = classic::make(id) {
        env
    } else if let Some(env) = minatar::make(id, options)? {
        env
    } else if let Some(env) = make_atari(id, &options.atari)? {
        env
    } else {
        return Err(EnvError::UnknownId { id: id.to_string(), known: ids() });
    };
    match env.spec().max_episode_steps {
        Some(limit) if options.time_limit => Ok(Box::new(wrappers::TimeLimit::new(env, limit))),
        _ => Ok(env),
    }
}

/// Whether `id` names an Atari game (`ALE/<Game>-v5`, `<Game>NoFrameskip-v4`), built or not.
pub fn is_atari_id(id: &str) -> bool {
    id.starts_with("ALE/") || id.ends_with("NoFrameskip-v4")
}

#[cfg(feature = "atari")]
fn make_atari(id: &str, options: &AtariOptions) -> Result<Option<Box<dyn Env>>, EnvError> {
    let Some(config) = atari::config_for(id) else { return Ok(None) };
    if (options.terminal_on_life_loss || !options.frame.is_gymnasium()) && !options.preprocess {
        return Err(EnvError::InvalidOption {
            id: id.into(),
            message: "terminal on life loss and the frame variants are options of the preprocessing; turn the \
                      preprocessing on too"
                .into(),
        });
    }
    let mut env: Box<dyn Env> = if options.preprocess {
        let base = match options.frame {
            AtariFrame::Gymnasium => atari::PreprocessConfig::default(),
            AtariFrame::Koul80 => atari::PreprocessConfig::koul_et_al_80(&config.game),
            AtariFrame::Bilinear84 => atari::PreprocessConfig::bilinear_84(),
        };
        let pre = atari::PreprocessConfig { terminal_on_life_loss: options.terminal_on_life_loss, ..base };
        Box::new(atari::AtariPreprocessing::make(id, pre)?)
    } else {
        Box::new(atari::AtariEnv::new(id, config)?)
    };
    if options.fire_reset && atari::FireReset::applies(env.as_ref()) {
        env = Box::new(atari::FireReset::new(env)?);
    }
    if options.clip_rewards {
        env = Box::new(wrappers::ClipReward::new(env, -1.0, 1.0)?);
    }
    Ok(Some(env))
}

#[cfg(not(feature = "atari"))]
fn make_atari(id: &str, _options: &AtariOptions) -> Result<Option<Box<dyn Env>>, EnvError> {
    if is_atari_id(id) {
        return Err(EnvError::InvalidOption {
            id: id.into(),
            message: "Atari games need a build with the `atari` feature: run `python3 scripts/atari-setup.py`, \
                      then `cargo build --release --features atari` (the binary is then GPL-2.0, as ALE)"
                .into(),
        });
    }
    Ok(None)
}

/// Checks a discrete action against the spec, with the error a user needs.
pub(crate) fn discrete_action(spec: &EnvSpec, action: &Action) -> Result<usize, EnvError> {
    let n = spec.action.n().expect("discrete_action called on a continuous env");
    match action {
        Action::Discrete(a) if *a < n => Ok(*a),
        Action::Discrete(a) => Err(EnvError::ActionOutOfRange { id: spec.id.clone(), action: *a, n }),
        Action::Continuous(_) => {
            Err(EnvError::ActionKind { id: spec.id.clone(), expected: "discrete", got: "continuous" })
        }
    }
}
