//! The training driver: [`train`] opens a run's `Session` and hands it to its agent's loop (`agents::dqn::train`,
//! `agents::a2c::train`, `agents::a3c::train`), which plays, learns and calls the session to log and checkpoint.
//! The session writes `metrics.csv`, TensorBoard events, the learning curve and checkpoints, reports progress,
//! and stops training on a non-finite loss.
//!
//! A killed run resumes from its last checkpoint: weights (and for DQN the target network and replay buffer), the
//! optimiser's moments, counters and the agent's random stream are restored, `metrics.csv` is cut back to the
//! checkpoint's step, and a fresh episode starts (the environment is reseeded with `seed + resumes`, since
//! episodes in flight are not part of a checkpoint).

use crate::agents::{a2c, a3c, dqn, ppo};
use crate::nn::Net;
use crate::run::{AgentCard, RunCard, RunDir, RunError, TrainerState, load_weights};
use burn::tensor::Device;
use rand_xoshiro::Xoshiro256PlusPlus;
use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::time::Instant;
use thiserror::Error;
use xrl_render::tensorboard::EventWriter;

#[derive(Debug, Error)]
pub enum TrainError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Env(#[from] xrl_env::EnvError),
    #[error("{0}")]
    Agent(String),
    #[error(
        "the loss became {loss} at step {step}; training stopped. The last good checkpoint ({checkpoint}) is kept: \
         resume it with a lower learning rate (`xrl train --resume DIR --lr …`) or check the rewards"
    )]
    NonFiniteLoss { loss: f32, step: usize, checkpoint: String },
}

/// What the progress callback sees, after every finished episode and checkpoint.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    pub step: usize,
    pub total_steps: usize,
    pub episodes: usize,
    /// Mean return of the last 20 episodes.
    pub recent_return: f64,
    pub steps_per_sec: f64,
    pub last_checkpoint: Option<usize>,
    /// What the user should know about how training started (a rebuilt checkpoint index, a changed learning rate
    /// or length), in the first report only.
    pub notes: Vec<String>,
}

pub const METRICS_HEADER: &str = "step,episode,return,length,loss,epsilon,steps_per_sec";

/// Trains the run in `dir` from scratch (its `run.toml` must exist) or from its last checkpoint, up to the card's
/// `total_steps`, on `device` (with autodiff added; a resumed run loads its weights there).
pub fn train(dir: &RunDir, device: &Device, on_progress: impl FnMut(&Progress)) -> Result<TrainerState, TrainError> {
    resume(dir, device, None, None, on_progress)
}

/// [`train`], first changing the run's learning rate and total steps (`train --resume DIR --lr … --steps …`):
/// recorded in `run.toml` only once the run has passed every check (its card, checkpoint and episode log), so a
/// resume that is refused leaves the run exactly as it was.
pub fn resume(
    dir: &RunDir,
    device: &Device,
    lr: Option<f64>,
    total_steps: Option<usize>,
    mut on_progress: impl FnMut(&Progress),
) -> Result<TrainerState, TrainError> {
    let device = device.clone().autodiff();
    // Held until training ends: a second `train --resume` of this run is refused, naming this process.
    let _lock = dir.lock()?;
    let card = dir.read_card()?;
    if let Some(imp) = &card.imported {
        return Err(TrainError::Agent(format!(
            "{} holds weights imported from {}; it has no training state to resume. Train a new run with \
             `xrl train --env {} ...`",
            dir.root.display(),
            imp.file,
            card.env.id
        )));
    }
    if let Some(state) = dir.latest()? {
        dir.verify_checkpoint(&state, &card, &device)?;
        repaired_metrics(dir, &state)?;
    }
    let mut notes = vec![];
    let card = if lr.is_some() || total_steps.is_some() {
        let card = dir.amend_locked(lr, total_steps)?;
        notes.push(format!("run.toml now trains to step {} at learning rate {}", card.total_steps, card.agent.lr()));
        card
    } else {
        card
    };
    let agent = card.agent.clone();
    let mut session = Session::open(dir, card, &device, &mut on_progress, notes)?;
    match agent {
        AgentCard::Dqn(config) => dqn::train(&mut session, config)?,
        AgentCard::A2c(config) => a2c::train(&mut session, config)?,
        AgentCard::A3c(config) => a3c::train(&mut session, config)?,
        AgentCard::Ppo(config) => ppo::train(&mut session, config)?,
        AgentCard::Rainbow(config) => crate::agents::rainbow::train(&mut session, *config)?,
    }
    Ok(session.state)
}

/// What every agent's loop shares: the run's card and trainer state, the metrics and TensorBoard files, progress
/// reports and checkpoint commits. A loop reads `card`, advances `state.step`, and restores its agent from the
/// checkpoint being resumed when `resumed` is set.
pub(crate) struct Session<'a> {
    dir: &'a RunDir,
    pub(crate) card: RunCard,
    pub(crate) state: TrainerState,
    /// The run continues from its latest checkpoint (`state` is that checkpoint's).
    pub(crate) resumed: bool,
    metrics: File,
    recent: VecDeque<f64>,
    progress: Progress,
    started: Instant,
    start_step: usize,
    on_progress: &'a mut dyn FnMut(&Progress),
    /// (step, return) of every finished episode, for the learning curve.
    curve: (Vec<f64>, Vec<f64>),
    tensorboard: EventWriter,
    /// The training device (with autodiff), where the agent's networks and resumed weights live.
    pub(crate) device: Device,
}

impl<'a> Session<'a> {
    fn open(
        dir: &'a RunDir,
        card: RunCard,
        device: &Device,
        on_progress: &'a mut dyn FnMut(&Progress),
        mut notes: Vec<String>,
    ) -> Result<Self, TrainError> {
        notes.extend(dir.restore_index()?);
        let (state, resumed) = match dir.latest()? {
            Some(mut s) => {
                s.resumes += 1;
                notes.extend(truncate_metrics(dir, &s)?);
                (s, true)
            }
            None => {
                // No commit point: a fresh run, unless the run already holds training (then its index was lost,
                // and starting over would overwrite the metrics and the optimiser and replay files).
                refuse_to_start_over(dir)?;
                crate::run::write_bytes(&dir.metrics_path(), format!("{METRICS_HEADER}\n").as_bytes())?;
                let fresh = TrainerState::fresh(card.seed);
                (fresh, false)
            }
        };
        let metrics = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.metrics_path())
            .map_err(|e| RunError::File { path: dir.metrics_path(), message: e.to_string() })?;
        let progress = Progress { total_steps: card.total_steps, step: state.step, notes, ..Progress::default() };
        let curve = read_curve(dir);
        let tensorboard = EventWriter::create(&dir.root.join("tensorboard")).map_err(|e| RunError::File {
            path: dir.root.join("tensorboard"),
            message: format!(
                "cannot open the run's TensorBoard directory ({e}); it is xrl's own: if something else is at that \
                     path, move it away"
            ),
        })?;
        Ok(Session {
            curve,
            tensorboard,
            dir,
            start_step: state.step,
            card,
            state,
            resumed,
            metrics,
            recent: VecDeque::new(),
            progress,
            started: Instant::now(),
            on_progress,
            device: device.clone(),
        })
    }

    pub(crate) fn env_seed(&self) -> u64 {
        self.card.seed.wrapping_add(self.state.resumes)
    }

    fn steps_per_sec(&self) -> f64 {
        (self.state.step - self.start_step) as f64 / self.started.elapsed().as_secs_f64().max(1e-9)
    }

    fn io(&self, e: std::io::Error) -> TrainError {
        RunError::File { path: self.dir.metrics_path(), message: e.to_string() }.into()
    }

    /// Records a finished episode.
    pub(crate) fn episode(&mut self, ret: f64, len: usize, loss: f32, epsilon: f64) -> Result<(), TrainError> {
        self.state.episodes += 1;
        let loss_text = if loss.is_finite() { format!("{loss:.6}") } else { String::new() };
        let row = format!(
            "{},{},{},{},{},{:.5},{:.1}\n",
            self.state.step,
            self.state.episodes,
            ret,
            len,
            loss_text,
            epsilon,
            self.steps_per_sec()
        );
        self.metrics.write_all(row.as_bytes()).map_err(|e| self.io(e))?;
        let step = self.state.step as i64;
        let mut scalars =
            vec![("episode/return", ret as f32), ("episode/length", len as f32), ("epsilon", epsilon as f32)];
        scalars.push(("steps_per_sec", self.steps_per_sec() as f32));
        if loss.is_finite() {
            scalars.push(("loss", loss));
        }
        for (tag, v) in scalars {
            self.tensorboard.scalar(tag, step, v).map_err(|e| self.io(e))?;
        }
        self.curve.0.push(self.state.step as f64);
        self.curve.1.push(ret);
        self.recent.push_back(ret);
        if self.recent.len() > 20 {
            self.recent.pop_front();
        }
        self.progress.episodes = self.state.episodes;
        self.progress.recent_return = self.recent.iter().sum::<f64>() / self.recent.len() as f64;
        Ok(())
    }

    /// A non-finite loss stops training; the last checkpoint stays the newest.
    pub(crate) fn check_loss(&self, loss: f32) -> Result<(), TrainError> {
        if loss.is_finite() {
            return Ok(());
        }
        let checkpoint = if self.state.stem.is_empty() { "none yet".into() } else { self.state.stem.clone() };
        Err(TrainError::NonFiniteLoss { loss, step: self.state.step, checkpoint })
    }

    /// Whether advancing from `before` to the current step crossed a checkpoint boundary (or ended the run).
    pub(crate) fn checkpoint_due(&self, before: usize) -> bool {
        let every = self.card.checkpoint_every.max(1);
        self.state.step / every > before / every || self.state.step >= self.card.total_steps
    }

    /// Commits a checkpoint of `files`, with the agent's counters and random stream.
    pub(crate) fn checkpoint(
        &mut self,
        updates: usize,
        rng: &Xoshiro256PlusPlus,
        files: &[(&str, Vec<u8>)],
    ) -> Result<(), TrainError> {
        self.metrics.flush().map_err(|e| self.io(e))?;
        let _ = self.metrics.sync_data();
        self.tensorboard.flush().map_err(|e| self.io(e))?;
        let title = format!("{} — {}", self.card.env.id, self.card.agent.name());
        xrl_render::plot::learning_curve(&self.dir.curve_path(), &title, &self.curve.0, &self.curve.1, 100)
            .map_err(|e| RunError::File { path: self.dir.curve_path(), message: e.to_string() })?;
        self.state.updates = updates;
        self.state.agent_rng = rng.clone();
        self.state.stem = format!("step-{:010}", self.state.step);
        self.dir.save_checkpoint(&mut self.state, files)?;
        prune_replays(self.dir, &self.state.stem);
        self.progress.last_checkpoint = Some(self.state.step);
        Ok(())
    }

    /// What follows an on-policy update (A2C, PPO): its loss checked, the episodes that ended during its rollout
    /// logged with it, a checkpoint when one is due (its files made only then), progress reported.
    pub(crate) fn after_update(
        &mut self,
        before: usize,
        loss: f32,
        finished: Vec<(f64, usize)>,
        updates: usize,
        rng: &Xoshiro256PlusPlus,
        files: impl FnOnce() -> Result<Vec<(&'static str, Vec<u8>)>, RunError>,
    ) -> Result<(), TrainError> {
        self.check_loss(loss)?;
        for (ret, len) in finished {
            self.episode(ret, len, loss, 0.0)?;
        }
        if self.checkpoint_due(before) {
            let files = files()?;
            self.checkpoint(updates, rng, &files)?;
        }
        self.report();
        Ok(())
    }

    pub(crate) fn report(&mut self) {
        self.progress.step = self.state.step;
        self.progress.steps_per_sec = self.steps_per_sec();
        (self.on_progress)(&self.progress);
        self.progress.notes.clear();
    }

    /// Reads and checks a file of the checkpoint being resumed.
    pub(crate) fn resume_file(&self, suffix: &str) -> Result<(std::path::PathBuf, Vec<u8>), TrainError> {
        let path = self.dir.checkpoint_file(&self.state.stem, suffix);
        let bytes = self.dir.read_checked(&self.state, &path)?;
        Ok((path, bytes))
    }

    pub(crate) fn resume_optimizer(&self) -> Result<crate::optim::Optimizer, TrainError> {
        let (path, bytes) = self.resume_file("optim.bin")?;
        let mut optim =
            crate::optim::Optimizer::from_bytes(&bytes).map_err(|message| RunError::File { path, message })?;
        // The card's learning rate, so that one edited (or set by `train --resume --lr`) takes effect; the moments
        // carry on.
        optim.lr = self.card.agent.lr();
        Ok(optim)
    }

    pub(crate) fn resume_net(&self, suffix: &str) -> Result<Net, TrainError> {
        let (path, bytes) = self.resume_file(suffix)?;
        Ok(load_weights(&self.card.net, &path, bytes, &self.device)?)
    }
}

/// (step, return) of the episodes in `metrics.csv`.
fn read_curve(dir: &RunDir) -> (Vec<f64>, Vec<f64>) {
    let text = xrl_render::read_regular_string(dir.metrics_path()).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split(',');
            Some((f.next()?.parse::<f64>().ok()?, f.nth(1)?.parse::<f64>().ok()?))
        })
        .unzip()
}

/// Refuses to start a run from step 0 when its directory already holds checkpoint files or metrics rows but no
/// `checkpoints/latest.json`: the commit point was deleted or lost, and a fresh start would write over them.
fn refuse_to_start_over(dir: &RunDir) -> Result<(), RunError> {
    let checkpoints = std::fs::read_dir(dir.checkpoints())
        .map(|entries| {
            entries.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().starts_with("step-")).count()
        })
        .unwrap_or(0);
    let rows = xrl_render::read_regular_string(dir.metrics_path())
        .map(|t| t.lines().skip(1).filter(|l| !l.is_empty()).count())
        .unwrap_or(0);
    if checkpoints == 0 && rows == 0 {
        return Ok(());
    }
    if checkpoints == 0 {
        return Err(RunError::File {
            path: dir.metrics_path(),
            message: format!(
                "the run has no checkpoint yet (it was stopped before its first), but {rows} episodes are logged here \
                 and a fresh start would write over them; nothing was changed. Move metrics.csv aside to start the \
                 run over, or train into a new --out"
            ),
        });
    }
    Err(RunError::File {
        path: dir.checkpoints().join("latest.json"),
        message: format!(
            "missing, but the run holds {checkpoints} checkpoint files and {rows} metrics rows; nothing was changed. \
             Put latest.json back (from a backup or another copy of the run) to resume, or train into a new --out"
        ),
    })
}

/// Cuts `metrics.csv` back to the checkpoint being resumed (`state`): the rows of episodes finished after it are
/// dropped (they are played again), and so is a half-written last line (a killed write). Any other damage — a
/// row that does not parse, episode numbers that skip or repeat, fewer rows than the checkpoint's episodes — is
/// refused with the line to fix, and the file is left as it was.
fn truncate_metrics(dir: &RunDir, state: &TrainerState) -> Result<Option<String>, RunError> {
    let Some(text) = repaired_metrics(dir, state)? else { return Ok(None) };
    let before = xrl_render::read_regular_string(dir.metrics_path()).map(|t| t.lines().count()).unwrap_or(0);
    crate::run::write_bytes(&dir.metrics_path(), text.as_bytes())?;
    let dropped = before.saturating_sub(text.lines().count());
    Ok((dropped > 0).then(|| {
        format!(
            "metrics.csv: {dropped} line(s) after the checkpoint at step {} removed (episodes after it are played \
             again; a half-written line is a killed write)",
            state.step
        )
    }))
}

/// What `metrics.csv` becomes when cut back to `state` (`None`: it is right as it is), or why it cannot be.
fn repaired_metrics(dir: &RunDir, state: &TrainerState) -> Result<Option<String>, RunError> {
    let path = dir.metrics_path();
    let text = match xrl_render::read_regular_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && state.episodes == 0 => String::new(),
        Err(e) => {
            return Err(RunError::File {
                path,
                message: format!(
                    "cannot read the run's episode log ({e}); it holds the {} episodes up to the checkpoint. Put it \
                     back (from a backup or another copy of the run) to resume",
                    state.episodes
                ),
            });
        }
    };
    let refuse = |line: usize, what: String| RunError::File {
        path: path.clone(),
        message: format!(
            "line {line}: {what}; nothing was changed. Fix or restore that line (each row is `{METRICS_HEADER}`, \
             episodes numbered 1, 2, …) and resume again"
        ),
    };
    // Rows past the checkpoint's episode count came after it (they are played again), whatever their state: a
    // killed process may have left the last one half written. The rows before were flushed before the checkpoint
    // was committed, so they must all be whole.
    let mut lines = text.lines();
    match lines.next() {
        Some(METRICS_HEADER) => {}
        None if state.episodes == 0 => {}
        other => return Err(refuse(1, format!("the header is `{}`, not `{METRICS_HEADER}`", other.unwrap_or("")))),
    }
    let mut out = format!("{METRICS_HEADER}\n");
    for (i, line) in lines.take(state.episodes).enumerate() {
        let fields: Vec<&str> = line.split(',').collect();
        let parsed = (fields.len() == 7)
            .then(|| Some((fields[0].parse::<usize>().ok()?, fields[1].parse::<usize>().ok()?)))
            .flatten();
        let Some((step, episode)) = parsed else {
            return Err(refuse(i + 2, format!("`{line}` is not a row of 7 fields starting with step and episode")));
        };
        if episode != i + 1 {
            return Err(refuse(i + 2, format!("episode {episode} where episode {} belongs", i + 1)));
        }
        if step > state.step {
            return Err(refuse(
                i + 2,
                format!("episode {episode} ends at step {step}, after the checkpoint's step {}", state.step),
            ));
        }
        out.push_str(line);
        out.push('\n');
    }
    let kept = out.lines().count() - 1;
    if kept != state.episodes {
        return Err(refuse(
            kept + 2,
            format!("the log ends after {kept} episodes, but the checkpoint counts {}", state.episodes),
        ));
    }
    Ok((out != text).then_some(out))
}

/// Removes the replay buffers and optimiser states of older checkpoints (large, and only the newest is resumed
/// from); their weights are kept, so an agent can be explained at any stage of its training.
fn prune_replays(dir: &RunDir, keep: &str) {
    if let Ok(entries) = std::fs::read_dir(dir.checkpoints()) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let state = [".replay.bin", ".optim.bin", ".priorities.bin"].iter().any(|s| name.ends_with(s));
            if state && !name.starts_with(keep) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
