//! Run directories: everything a training run leaves behind, written so that nothing is lost.
//!
//! ```text
//! runs/NAME/
//!   run.toml                 the run card: env, agent and its config, network, seed, length (rebuilds the agent)
//!   metrics.csv              one row per finished episode: step, episode, return, length, loss, epsilon, steps/s
//!   learning_curve.png       episode returns and their moving average, redrawn at every checkpoint
//!   tensorboard/             the same scalars as TensorBoard event files (`tensorboard --logdir runs`)
//!   checkpoints/
//!     step-0000050000.online.safetensors   the (online) network's weights
//!     step-0000050000.target.safetensors   DQN: the target network's weights
//!     step-0000050000.replay.bin           DQN: the replay buffer (so a resumed run learns from the same memory)
//!     step-0000050000.optim.bin            the optimiser's moments
//!     latest.json            the commit point: counters, random-stream states, and which files belong to it
//! ```
//!
//! Every file is written to a temporary name and renamed into place; `latest.json` is written last, so a run
//! killed mid-checkpoint resumes from the previous complete one.

use crate::agents::a2c::A2cConfig;
use crate::agents::a3c::A3cConfig;
use crate::agents::dqn::DqnConfig;
use crate::agents::ppo::PpoConfig;
use crate::nn::{Net, NetSpec};
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;
use xrl_render::write_atomic;

#[derive(Debug, Error)]
pub enum RunError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

fn file_err(path: &Path, message: impl ToString) -> RunError {
    RunError::File { path: path.to_path_buf(), message: message.to_string() }
}

/// Which environment, with its options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvCard {
    pub id: String,
    pub sticky_action_prob: f64,
    pub difficulty_ramping: bool,
    /// Observations are the last `frame_stack` frames (oldest first); 0 or 1 = the plain observation.
    #[serde(default, skip_serializing_if = "crate::nn::is_zero")]
    pub frame_stack: usize,
    /// Atari: the wrappers the game is played behind (Gymnasium's AtariPreprocessing, fire reset, …).
    #[serde(default, skip_serializing_if = "xrl_env::AtariOptions::is_default")]
    pub atari: xrl_env::AtariOptions,
}

impl Default for EnvCard {
    fn default() -> Self {
        EnvCard {
            id: String::new(),
            sticky_action_prob: 0.1,
            difficulty_ramping: true,
            frame_stack: 0,
            atari: xrl_env::AtariOptions::default(),
        }
    }
}

impl EnvCard {
    /// The environment a new run (or an import) of `id` plays: the defaults, and for Atari the wrappers agents are
    /// trained behind — Gymnasium's AtariPreprocessing, FIRE after resets, a stack of 4 (`frame_stack` 0) — or a
    /// stack of `frame_stack` frames elsewhere (DRQN).
    pub fn for_training(id: &str, frame_stack: usize) -> EnvCard {
        let atari = xrl_env::is_atari_id(id);
        EnvCard {
            id: id.to_string(),
            frame_stack: if atari && frame_stack == 0 { 4 } else { frame_stack },
            atari: if atari {
                xrl_env::AtariOptions { preprocess: true, fire_reset: true, ..xrl_env::AtariOptions::default() }
            } else {
                xrl_env::AtariOptions::default()
            },
            ..EnvCard::default()
        }
    }

    pub fn make(&self) -> Result<Box<dyn xrl_env::Env>, xrl_env::EnvError> {
        let options = xrl_env::MakeOptions {
            sticky_action_prob: self.sticky_action_prob,
            difficulty_ramping: self.difficulty_ramping,
            atari: self.atari.clone(),
            ..xrl_env::MakeOptions::default()
        };
        let env = xrl_env::make_with(&self.id, &options)?;
        // Preprocessed Atari frames are H × W: even one frame is stacked, for its channel axis.
        if self.frame_stack > 1 || (self.frame_stack == 1 && self.atari.preprocess) {
            return Ok(Box::new(xrl_env::wrappers::FrameStack::new(env, self.frame_stack)?));
        }
        Ok(env)
    }
}

/// The agent and its hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum AgentCard {
    Dqn(DqnConfig),
    A2c(A2cConfig),
    A3c(A3cConfig),
    Ppo(PpoConfig),
    Rainbow(Box<crate::agents::rainbow::RainbowConfig>),
}

impl AgentCard {
    /// The learning rate the optimiser uses (a resumed run takes it from here, not from the optimiser's state).
    pub fn lr(&self) -> f64 {
        match self {
            AgentCard::Dqn(c) => match c.optimizer {
                crate::agents::dqn::OptimizerConfig::Adam { lr }
                | crate::agents::dqn::OptimizerConfig::RmsProp { lr, .. } => lr,
            },
            AgentCard::A2c(c) => c.lr,
            AgentCard::A3c(c) => c.lr,
            AgentCard::Ppo(c) => c.lr,
            AgentCard::Rainbow(c) => c.lr,
        }
    }

    pub fn set_lr(&mut self, value: f64) {
        match self {
            AgentCard::Dqn(c) => match &mut c.optimizer {
                crate::agents::dqn::OptimizerConfig::Adam { lr }
                | crate::agents::dqn::OptimizerConfig::RmsProp { lr, .. } => *lr = value,
            },
            AgentCard::A2c(c) => c.lr = value,
            AgentCard::A3c(c) => c.lr = value,
            AgentCard::Ppo(c) => c.lr = value,
            AgentCard::Rainbow(c) => c.lr = value,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            AgentCard::Dqn(c) => match (c.recurrent.is_some(), c.double, c.dueling) {
                (true, _, _) => "DRQN",
                (false, false, false) => "DQN",
                (false, true, false) => "Double DQN",
                (false, false, true) => "Dueling DQN",
                (false, true, true) => "Double Dueling DQN",
            },
            AgentCard::A2c(_) => "A2C",
            AgentCard::A3c(_) => "A3C",
            AgentCard::Ppo(_) => "PPO",
            AgentCard::Rainbow(_) => "Rainbow",
        }
    }
}

/// `run.toml`: everything needed to rebuild the agent and repeat the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunCard {
    pub xrl_version: String,
    pub seed: u64,
    /// Environment steps to train for.
    pub total_steps: usize,
    pub checkpoint_every: usize,
    pub env: EnvCard,
    pub net: NetSpec,
    pub agent: AgentCard,
    /// Set for runs made by `xrl import`: where the weights came from (such runs can be played and explained,
    /// not resumed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported: Option<ImportCard>,
}

impl RunCard {
    /// What the user should know before training this card: schedules that do not fit in its steps (a DQN whose
    /// random warm-up is the whole run never updates).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = vec![];
        let version = |v: &str| v.split('.').map(|p| p.parse::<u64>().unwrap_or(0)).collect::<Vec<_>>();
        if version(&self.xrl_version) > version(env!("CARGO_PKG_VERSION")) {
            out.push(format!(
                "run.toml was written by xrl {}, newer than this xrl {}: settings it does not know would be refused; \
                 use that version or newer",
                self.xrl_version,
                env!("CARGO_PKG_VERSION")
            ));
        }
        if let AgentCard::Dqn(c) = &self.agent {
            let steps = self.total_steps;
            if c.learning_starts >= steps {
                out.push(format!(
                    "the run is {steps} steps but DQN plays {} random steps before its first update: it will never \
                     learn; train for more --steps",
                    c.learning_starts
                ));
            } else if c.learning_starts + c.epsilon_decay_steps > steps {
                out.push(format!(
                    "ε decays over {} steps after {} random ones, longer than the {steps}-step run: it ends at ε {:.2}, \
                     not {}; train for more --steps to finish the schedule",
                    c.epsilon_decay_steps,
                    c.learning_starts,
                    c.epsilon(steps),
                    c.epsilon_end
                ));
            }
        }
        out
    }

    /// Checks that the network the card describes fits the environment it names: the same observation shape and
    /// action count (an edited env id or network would otherwise load weights into a network that reads the game
    /// wrongly, or fail deep inside a reshape).
    pub fn check_env(&self) -> Result<(), String> {
        if self.checkpoint_every == 0 {
            return Err("checkpoint_every = 0: it must be at least 1 step (a twentieth of the run by default)".into());
        }
        if self.total_steps > crate::new_run::MAX_STEPS {
            return Err(format!("total_steps = {} is above {}", self.total_steps, crate::new_run::MAX_STEPS));
        }
        if !(0.0..=1.0).contains(&self.env.sticky_action_prob) {
            return Err(format!(
                "[env] sticky_action_prob = {} is outside [0, 1] (a probability; 0.1 by default)",
                self.env.sticky_action_prob
            ));
        }
        self.net.validate().map_err(|e| format!("the network in the card does not hold together: {e}"))?;
        let agent = match &self.agent {
            AgentCard::Dqn(c) => c.validate(),
            AgentCard::A2c(c) => c.validate(),
            AgentCard::A3c(c) => c.validate(),
            AgentCard::Ppo(c) => c.validate(),
            AgentCard::Rainbow(c) => c.validate(),
        };
        agent.map_err(|e| format!("[agent] {e}: put each value back in its domain"))?;
        let env = self.env.make().map_err(|e| format!("env `{}`: {e}", self.env.id))?;
        let spec = env.spec();
        let shape = spec.observation.shape().to_vec();
        let actions = spec.action.n();
        if shape != self.net.obs_shape || actions.is_some_and(|n| n != self.net.actions) {
            return Err(format!(
                "the card's network takes observations {:?} and {} actions, but {} gives {:?} and {}: the env id \
                 or the network was edited; put back the values the run was trained with",
                self.net.obs_shape,
                self.net.actions,
                self.env.id,
                shape,
                actions.map_or("continuous actions".to_string(), |n| format!("{n} actions"))
            ));
        }
        Ok(())
    }
}

/// Where imported weights came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportCard {
    pub file: String,
    pub format: crate::import::Format,
    pub arch: crate::import::Arch,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub renames: Vec<crate::import::Rename>,
}

/// The commit point of a checkpoint (`checkpoints/latest.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainerState {
    pub step: usize,
    pub episodes: usize,
    pub updates: usize,
    /// File stem of this checkpoint's files in `checkpoints/`.
    pub stem: String,
    /// The agent's random stream (exploration and replay sampling).
    pub agent_rng: rand_xoshiro::Xoshiro256PlusPlus,
    /// How many times the run has been resumed (each resume reseeds the environment with seed + count).
    pub resumes: u64,
    /// CRC-32 of every file of the checkpoint, so a damaged file is caught before it is used.
    pub checksums: BTreeMap<String, u32>,
}

impl TrainerState {
    /// Whether the stem and the checksummed files are plain names of checkpoint files in `checkpoints/`
    /// (`step-` and ten digits): an edited index must not make a run read files outside its directory.
    pub fn names_its_own_files(&self) -> bool {
        let stem_ok =
            |s: &str| s.strip_prefix("step-").is_some_and(|d| d.len() == 10 && d.bytes().all(|b| b.is_ascii_digit()));
        stem_ok(&self.stem)
            && self.stem == format!("step-{:010}", self.step)
            && self
                .checksums
                .keys()
                .all(|f| f.strip_prefix(&self.stem).is_some_and(|rest| rest.starts_with('.') && !rest.contains('/')))
    }

    /// The state of a run that has not taken a step.
    pub fn fresh(seed: u64) -> Self {
        TrainerState {
            step: 0,
            episodes: 0,
            updates: 0,
            stem: String::new(),
            agent_rng: rand::SeedableRng::seed_from_u64(seed),
            resumes: 0,
            checksums: BTreeMap::new(),
        }
    }
}

pub struct RunDir {
    pub root: PathBuf,
}

/// The advisory lock a process holds on a run directory while it writes the run (see [`RunDir::lock`]); released
/// when dropped, or by the system when the process dies, so a killed run leaves no stale lock behind.
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
}

impl RunDir {
    /// Changes what a resumed run does — its learning rate, its total steps — in `run.toml` (checked, written
    /// atomically, under the run's lock), and returns the card. Steps below the last checkpoint's are refused.
    pub fn amend(&self, lr: Option<f64>, total_steps: Option<usize>) -> Result<RunCard, RunError> {
        let _lock = self.lock()?;
        self.amend_locked(lr, total_steps)
    }

    /// [`RunDir::amend`] by a process that holds the run's lock already.
    pub(crate) fn amend_locked(&self, lr: Option<f64>, total_steps: Option<usize>) -> Result<RunCard, RunError> {
        if lr.is_some_and(|lr| !(lr > 0.0 && lr.is_finite())) {
            return Err(RunError::Invalid("--lr must be a positive number, e.g. 2.5e-4".into()));
        }
        let mut card = self.read_card()?;
        if let Some(lr) = lr {
            card.agent.set_lr(lr);
        }
        if let Some(steps) = total_steps {
            let done = self.latest()?.map_or(0, |s| s.step);
            if steps < done {
                return Err(RunError::Invalid(format!(
                    "--steps {steps} is below the {done} steps the run has already trained; give {done} or more"
                )));
            }
            card.total_steps = steps;
        }
        card.check_env().map_err(|e| file_err(&self.card_path(), e))?;
        let text = toml::to_string(&card).map_err(|e| RunError::Invalid(format!("cannot write the run card: {e}")))?;
        write_bytes(&self.card_path(), text.as_bytes())?;
        Ok(card)
    }

    /// Removes the temporary files of writes a killed process left half done (`.NAME.tmp-PID`, see
    /// `xrl_render::write_atomic`). Called with the lock held, so no other process is writing them.
    fn remove_stale_temporaries(&self) {
        for dir in [self.root.clone(), self.checkpoints()] {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for e in entries.filter_map(Result::ok) {
                let name = e.file_name().to_string_lossy().into_owned();
                let ours = name.starts_with('.')
                    && name
                        .rsplit_once(".tmp-")
                        .is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
                if ours && e.path().is_file() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }

    /// Takes the run's write lock (`run.lock`, an exclusive `flock`), or refuses with the PID of the process that
    /// holds it: two processes training one run would write the same checkpoints and metrics.
    pub fn lock(&self) -> Result<RunLock, RunError> {
        use std::io::{Read, Seek, Write};
        let path = self.root.join("run.lock");
        let mut file =
            std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(
                |e| {
                    file_err(
                        &path,
                        format!(
                            "cannot open the run's lock file ({e}); it is xrl's own file: remove whatever is there"
                        ),
                    )
                },
            )?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                // The holder writes its PID just after taking the lock: a read in between finds the file empty (or
                // a previous holder's PID), so read again until the PID has been there for one more read.
                let mut read_pid = || {
                    let mut pid = String::new();
                    let _ = file.rewind();
                    let _ = file.read_to_string(&mut pid);
                    pid.trim().to_string()
                };
                let mut pid = read_pid();
                for _ in 0..50 {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    let again = read_pid();
                    if !again.is_empty() && again == pid {
                        break;
                    }
                    pid = again;
                }
                let holder = if pid.is_empty() { "another process".to_string() } else { format!("process {pid}") };
                return Err(file_err(
                    &path,
                    format!(
                        "{holder} is writing this run; wait for it to finish (or stop it) before resuming, or train \
                         into another --out"
                    ),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(file_err(&path, format!("cannot lock the run ({e})")));
            }
        }
        // The PID is only for the message above; the lock itself is the flock.
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "{}", std::process::id());
        let _ = file.flush();
        self.remove_stale_temporaries();
        Ok(RunLock { _file: file })
    }

    pub fn new(root: impl Into<PathBuf>) -> Self {
        RunDir { root: root.into() }
    }
    pub fn card_path(&self) -> PathBuf {
        self.root.join("run.toml")
    }
    pub fn metrics_path(&self) -> PathBuf {
        self.root.join("metrics.csv")
    }
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }
    /// `learning_curve.png`, redrawn at every checkpoint.
    pub fn curve_path(&self) -> PathBuf {
        self.root.join("learning_curve.png")
    }

    /// Starts a new run directory; refuses to overwrite an existing run.
    pub fn create(&self, card: &RunCard) -> Result<(), RunError> {
        if self.root.exists() && !self.root.is_dir() {
            return Err(RunError::Invalid(format!(
                "--out {} is not a directory (it is a file or a device); choose a new directory for the run",
                self.root.display()
            )));
        }
        if self.card_path().exists() {
            return Err(RunError::Invalid(format!(
                "{} already holds a run; continue it with `xrl train --resume {}` or choose another --out",
                self.root.display(),
                self.root.display()
            )));
        }
        // A run's files would replace the user's own (metrics.csv, learning_curve.png, …): a new run goes into a
        // new or empty directory only.
        xrl_render::check_dir_free(&self.root).map_err(|e| RunError::Invalid(e.to_string()))?;
        let text =
            toml::to_string_pretty(card).map_err(|e| RunError::Invalid(format!("cannot write the run card: {e}")))?;
        write_bytes(&self.card_path(), text.as_bytes())
    }

    pub fn read_card(&self) -> Result<RunCard, RunError> {
        let path = self.card_path();
        if path.exists() {
            xrl_render::check_input(&path).map_err(|e| RunError::Invalid(e.to_string()))?;
        }
        let text = xrl_render::read_regular_string(&path).map_err(|e| {
            file_err(&path, format!("cannot read the run card ({e}); is this a run directory made by `xrl train`?"))
        })?;
        let card: RunCard = toml::from_str(&text).map_err(|e| file_err(&path, format!("invalid run card: {e}")))?;
        card.check_env().map_err(|e| file_err(&path, e))?;
        Ok(card)
    }

    /// The last complete checkpoint, if any: `checkpoints/latest.json`, or — when that index is missing or damaged
    /// — the newest checkpoint whose own record (`step-N.state.json`) and files all check against their
    /// checksums. Refuses (naming the recovery) when checkpoint files exist but none is complete.
    pub fn latest(&self) -> Result<Option<TrainerState>, RunError> {
        Ok(self.latest_with_recovery()?.map(|(state, _)| state))
    }

    /// What a reader should be told when `latest.json` is missing or damaged and the newest complete checkpoint is
    /// used in its place (`None` when the index is fine or the run has no checkpoint).
    pub fn index_note(&self) -> Option<String> {
        let (state, problem) = self.latest_with_recovery().ok()??;
        Some(format!(
            "{} is {}; using the newest complete checkpoint, {} (step {}); `xrl train --resume` writes the index back",
            self.checkpoints().join("latest.json").display(),
            problem?,
            state.stem,
            state.step
        ))
    }

    /// [`RunDir::latest`], and whether the index had to be rebuilt (with what was wrong with it).
    fn latest_with_recovery(&self) -> Result<Option<(TrainerState, Option<String>)>, RunError> {
        let path = self.checkpoints().join("latest.json");
        let problem = match xrl_render::read_regular_string(&path) {
            Ok(text) => match serde_json::from_str::<TrainerState>(&text) {
                Ok(state) if state.names_its_own_files() => return Ok(Some((state, None))),
                Ok(state) => format!(
                    "damaged (its step {} and the files it names, `{}`, do not belong together as an xrl checkpoint \
                     step-NNNNNNNNNN.*)",
                    state.step, state.stem
                ),
                Err(e) => format!("damaged ({e})"),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "missing".to_string(),
            Err(e) => return Err(file_err(&path, format!("cannot read the checkpoint index ({e})"))),
        };
        if let Some(state) = self.newest_complete_checkpoint() {
            return Ok(Some((state, Some(problem))));
        }
        let files = self.checkpoint_files().len();
        if files == 0 && problem == "missing" {
            return Ok(None);
        }
        Err(file_err(
            &path,
            format!(
                "{problem}, and none of the {files} checkpoint files makes a complete checkpoint with its record \
                 (step-N.state.json) to rebuild it from; nothing was changed. Put latest.json back (from a backup or \
                 another copy of the run), or train into a new --out"
            ),
        ))
    }

    /// The names of the files in `checkpoints/` that belong to checkpoints (`step-…`), sorted.
    fn checkpoint_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.checkpoints())
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("step-"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// The newest checkpoint whose record parses and whose every file is present with its recorded checksum.
    fn newest_complete_checkpoint(&self) -> Option<TrainerState> {
        let records = self.checkpoint_files().into_iter().filter(|n| n.ends_with(".state.json"));
        records.rev().find_map(|name| {
            let text = xrl_render::read_regular_string(self.checkpoints().join(&name)).ok()?;
            let state: TrainerState = serde_json::from_str(&text).ok()?;
            let complete = !state.checksums.is_empty()
                && state.names_its_own_files()
                && name == format!("{}.state.json", state.stem)
                && state.checksums.iter().all(|(file, &crc)| {
                    xrl_render::read_regular(self.checkpoints().join(file)).is_ok_and(|b| crc32fast::hash(&b) == crc)
                });
            complete.then_some(state)
        })
    }

    /// Rebuilds a missing or damaged `checkpoints/latest.json` from the newest complete checkpoint (see
    /// [`RunDir::latest`]); a damaged index is kept beside it as `latest.json.damaged[-N]`, never overwritten.
    /// Returns what was done, for the user, or `None` when the index was fine (or the run has no checkpoint).
    /// Call it holding the run's lock.
    pub fn restore_index(&self) -> Result<Option<String>, RunError> {
        let Some((state, Some(problem))) = self.latest_with_recovery()? else { return Ok(None) };
        let index = self.checkpoints().join("latest.json");
        let mut kept = String::new();
        if index.exists() {
            let aside = (0..)
                .map(|i| {
                    let suffix = if i == 0 { String::new() } else { format!("-{i}") };
                    self.checkpoints().join(format!("latest.json.damaged{suffix}"))
                })
                .find(|p| !p.exists())
                .expect("a free name");
            std::fs::rename(&index, &aside)
                .map_err(|e| file_err(&index, format!("cannot move the damaged index aside ({e})")))?;
            kept = format!(" (the damaged one is kept as {})", aside.display());
        }
        write_bytes(&index, state_text(&state).as_bytes())?;
        Ok(Some(format!(
            "{} was {problem}; rebuilt it from the newest complete checkpoint, {} (step {}){kept}",
            index.display(),
            state.stem,
            state.step
        )))
    }

    /// The checkpoint file `{stem}.{suffix}` (suffixes: `online.safetensors`, `target.safetensors`, `replay.bin`).
    pub fn checkpoint_file(&self, stem: &str, suffix: &str) -> PathBuf {
        self.checkpoints().join(format!("{stem}.{suffix}"))
    }

    /// Writes a complete checkpoint: each `(suffix, bytes)` file, then the commit point (`state.checksums` is
    /// filled in).
    pub fn save_checkpoint(&self, state: &mut TrainerState, files: &[(&str, Vec<u8>)]) -> Result<(), RunError> {
        state.checksums.clear();
        for (suffix, bytes) in files {
            let path = self.checkpoint_file(&state.stem, suffix);
            write_bytes(&path, bytes)?;
            state.checksums.insert(file_name(&path), crc32fast::hash(bytes));
        }
        let text = state_text(state);
        // The checkpoint's own record first (what a lost index is rebuilt from), then the commit point.
        write_bytes(&self.checkpoint_file(&state.stem, "state.json"), text.as_bytes())?;
        write_bytes(&self.checkpoints().join("latest.json"), text.as_bytes())
    }

    /// Reads a checkpoint file and checks it against the checksum recorded at the commit point.
    pub fn read_checked(&self, state: &TrainerState, path: &Path) -> Result<Vec<u8>, RunError> {
        if path.exists() {
            xrl_render::check_input(path).map_err(|e| RunError::Invalid(e.to_string()))?;
        }
        let bytes = xrl_render::read_regular(path).map_err(|e| {
            file_err(
                path,
                format!(
                    "cannot read checkpoint file ({e}); nothing was changed. Put it back from a backup or another copy \
                     of the run"
                ),
            )
        })?;
        match state.checksums.get(&file_name(path)) {
            Some(&crc) if crc == crc32fast::hash(&bytes) => Ok(bytes),
            Some(_) => Err(file_err(
                path,
                "checksum mismatch: the file was damaged after it was written; restore it from a backup or another \
                 copy of the run (nothing was changed)",
            )),
            None => Err(file_err(path, "not listed in checkpoints/latest.json")),
        }
    }

    /// Checks every file of the checkpoint `state` against its checksum, and that its networks load into `card`'s
    /// architecture — before a resume writes anything, so a damaged checkpoint leaves the run as it was.
    pub fn verify_checkpoint(&self, state: &TrainerState, card: &RunCard, device: &Device) -> Result<(), RunError> {
        // A checkpoint of weights alone (an import, the demo's embedded agent) has no training state to go on from.
        if !state.checksums.keys().any(|f| f.ends_with(".optim.bin")) {
            return Err(RunError::Invalid(format!(
                "{} holds weights only (no optimiser state: an import, or the agent `xrl demo` unpacks), so its \
                 training cannot be resumed; train a new run (`xrl train …`, or `xrl demo --train`)",
                self.root.display()
            )));
        }
        for file in state.checksums.keys() {
            let path = self.checkpoints().join(file);
            let bytes = self.read_checked(state, &path)?;
            if file.ends_with(".safetensors") {
                load_weights(&card.net, &path, bytes, device)?;
            }
        }
        Ok(())
    }

    /// The online network of the last checkpoint, checked and loaded for `card`'s architecture.
    pub fn load_latest_online(&self, card: &RunCard, device: &Device) -> Result<(TrainerState, Net), RunError> {
        let state = self.latest()?.ok_or_else(|| {
            RunError::Invalid(format!("{} has no checkpoint yet; train longer or resume it", self.root.display()))
        })?;
        let path = self.checkpoint_file(&state.stem, "online.safetensors");
        let bytes = self.read_checked(&state, &path)?;
        let net = load_weights(&card.net, &path, bytes, device)?;
        Ok((state, net))
    }
}

fn state_text(state: &TrainerState) -> String {
    serde_json::to_string_pretty(state).expect("trainer state serialises")
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Writes `bytes` to `path` atomically.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    use std::io::Write;
    write_atomic(path, |w| {
        w.write_all(bytes).map_err(|source| xrl_render::RenderError::Io { path: path.to_path_buf(), err: source })
    })
    .map_err(|e| file_err(path, e))
}

/// A network's weights as safetensors bytes.
pub fn weights_bytes(net: &Net) -> Result<Vec<u8>, RunError> {
    let mut store = SafetensorsStore::from_bytes(None);
    net.save_into(&mut store).map_err(|e| RunError::Invalid(format!("cannot serialise weights: {e}")))?;
    store.get_bytes().map_err(|e| RunError::Invalid(format!("cannot serialise weights: {e}")))
}

/// Tensor names of checkpoints written before the networks were composed of pieces, and their names now.
const LEGACY_NAMES: [(&str, &str); 7] = [
    (r"^convs\.", "torso.convs."),
    (r"^hidden\.", "torso.fc."),
    (r"^value_hidden\.", "head.value_fc."),
    (r"^out\.", "head.out."),
    (r"^value\.", "head.value."),
    (r"^lstm\.", "core.Lstm."),
    (r"^gru\.", "core.Gru."),
];

/// Loads safetensors `bytes` (read from `path`) into a fresh network of `spec`. Bytes that are damaged, hold no
/// tensors, or do not fit the architecture are an error naming what is wrong.
pub fn load_weights(spec: &NetSpec, path: &Path, bytes: Vec<u8>, device: &Device) -> Result<Net, RunError> {
    let mut net = Net::new(spec, device).map_err(RunError::Invalid)?;
    let mut store = SafetensorsStore::from_bytes(Some(bytes)).allow_partial(true);
    // Checkpoints written before the network was composed of a torso, a core and a head name their tensors
    // without those prefixes.
    for (old, new) in LEGACY_NAMES {
        store = store.with_key_remapping(old, new);
    }
    let result = net.load_from(&mut store).map_err(|e| {
        file_err(
            path,
            format!(
                "does not load into the network run.toml describes ({e}): the file is damaged, or run.toml's [net] \
                 was edited — put back the values the run was trained with"
            ),
        )
    })?;
    check_applied(&result, path, "the network in run.toml", &[])?;
    crate::import::refuse_nonfinite(&net, path)?;
    Ok(net)
}

/// Turns an incomplete load into an error naming the missing, unexpected and mis-shaped tensors. Unexpected
/// tensors whose names start with one of `ignore` are allowed.
pub fn check_applied(
    result: &burn::store::ApplyResult,
    path: &Path,
    what: &str,
    ignore: &[&str],
) -> Result<(), RunError> {
    if result.applied.is_empty() {
        let names: Vec<&str> = result.unused.iter().map(String::as_str).take(6).collect();
        let nested = names.iter().any(|n| n.contains('.') && !n.starts_with("network") && !n.starts_with("q_net"));
        let hint = if nested {
            format!(
                "; its tensors are named {} …: if they are nested under a key (e.g. `state_dict.` or `model.`), \
                 pass --key with that key, or choose the --arch whose names these are",
                names.join(", ")
            )
        } else {
            " (is it a state dict of this --arch?)".to_string()
        };
        return Err(file_err(path, format!("the file holds no tensors of {what}{hint}")));
    }
    let unused: Vec<&str> =
        result.unused.iter().map(String::as_str).filter(|u| !ignore.iter().any(|i| u.starts_with(i))).collect();
    if !result.missing.is_empty() || !result.errors.is_empty() || !unused.is_empty() {
        let missing: Vec<_> = result.missing.iter().map(|(k, _)| k.as_str()).collect();
        let errors: Vec<_> = result.errors.iter().map(|e| e.to_string()).collect();
        return Err(file_err(
            path,
            format!(
                "does not fit {what}: missing tensors [{}], unexpected tensors [{}], mis-shaped [{}]",
                missing.join(", "),
                unused.join(", "),
                errors.join("; ")
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod legacy_names {
    use crate::nn::{Core, CoreKind, HeadKind, Net, NetSpec, Pass, Torso};

    /// A checkpoint written before the networks were composed of pieces (tensors named `convs.0.weight`,
    /// `hidden.0.bias`, `lstm.…`) loads into today's network with the same outputs.
    #[test]
    fn checkpoints_with_the_old_tensor_names_load() {
        let d = burn::tensor::Device::default();
        let specs = [
            NetSpec::new(vec![4, 10, 10], 3, Torso::MinatarCnn, HeadKind::Dueling).with_streams(),
            NetSpec::new(vec![3], 2, Torso::Mlp { hidden: vec![4] }, HeadKind::ActorCritic)
                .with_core(Core { kind: CoreKind::Lstm, hidden: 5 }),
        ];
        for spec in specs {
            let net = Net::new(&spec, &d).unwrap();
            let bytes = super::weights_bytes(&net).unwrap();
            let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
            let old = |name: &str| {
                for (new, old) in [
                    ("torso.convs.", "convs."),
                    ("torso.fc.", "hidden."),
                    ("head.value_fc.", "value_hidden."),
                    ("head.out.", "out."),
                    ("head.value.", "value."),
                    ("core.Lstm.", "lstm."),
                ] {
                    if let Some(rest) = name.strip_prefix(new) {
                        return format!("{old}{rest}");
                    }
                }
                panic!("unexpected tensor {name}")
            };
            let tensors: Vec<(String, safetensors::tensor::TensorView)> =
                st.tensors().into_iter().map(|(n, t)| (old(&n), t)).collect();
            let legacy = safetensors::serialize(tensors, None).unwrap();
            let loaded = super::load_weights(&spec, std::path::Path::new("legacy"), legacy, &d).unwrap();
            let len: usize = spec.obs_shape.iter().product();
            let x = crate::nn::batch(&vec![0.3; 2 * len], len, &d);
            let (a, b) = (net.forward(x.clone(), &Pass::default()), loaded.forward(x, &Pass::default()));
            assert_eq!(crate::nn::to_vec(a.value.unwrap()), crate::nn::to_vec(b.value.unwrap()));
        }
    }

    /// The optimiser keeps its state per parameter in visiting order: the pieces visit their parameters in the
    /// order the single network struct did (convolutions, fully connected, value stream, outputs, value, core).
    #[test]
    fn parameters_are_visited_in_the_saved_order() {
        use burn::module::{Module, ModuleVisitor, Param};
        struct Shapes(Vec<Vec<usize>>);
        impl ModuleVisitor for Shapes {
            fn visit_float<const D: usize>(&mut self, p: &Param<burn::tensor::Tensor<D>>) {
                self.0.push(p.val().dims().to_vec());
            }
        }
        let d = burn::tensor::Device::default();
        let spec = NetSpec::new(vec![4, 10, 10], 3, Torso::MinatarCnn, HeadKind::Dueling).with_streams();
        let mut shapes = Shapes(vec![]);
        Net::new(&spec, &d).unwrap().visit(&mut shapes);
        let want: Vec<Vec<usize>> = vec![
            vec![16, 4, 3, 3],
            vec![16],
            vec![1024, 128],
            vec![128],
            vec![1024, 128],
            vec![128],
            vec![128, 3],
            vec![3],
            vec![128, 1],
            vec![1],
        ];
        assert_eq!(shapes.0, want);
    }

    /// Weights holding a NaN are refused with the tensor and value named, not loaded into a network whose every
    /// output would be NaN.
    #[test]
    fn nonfinite_weights_are_refused() {
        let d = burn::tensor::Device::default();
        let spec = NetSpec::new(vec![3], 2, Torso::Mlp { hidden: vec![4] }, HeadKind::Q);
        let bytes = super::weights_bytes(&Net::new(&spec, &d).unwrap()).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> =
            st.tensors().into_iter().map(|(n, t)| (n, t.shape().to_vec(), t.data().to_vec())).collect();
        let w = owned.iter_mut().find(|(n, _, _)| n == "torso.fc.0.weight").unwrap();
        w.2[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
        let views: Vec<(String, safetensors::tensor::TensorView)> = owned
            .iter()
            .map(|(n, s, b)| {
                (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap())
            })
            .collect();
        let bad = safetensors::serialize(views, None).unwrap();
        let e = super::load_weights(&spec, std::path::Path::new("w.safetensors"), bad, &d).unwrap_err().to_string();
        assert!(e.contains("NaN at value 2") && e.contains("not finite"), "{e}");
    }
}
