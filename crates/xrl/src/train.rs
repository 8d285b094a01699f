//! The training driver: plays the environment, feeds the agent, writes metrics and checkpoints, resumes.
//!
//! A killed run resumes from its last checkpoint: weights, replay buffer, counters and the agent's random stream
//! are restored, `metrics.csv` is cut back to the checkpoint's step, and a fresh episode starts (the environment is
//! reseeded with `seed + resumes`, since an episode in flight is not part of a checkpoint). Learning-rate
//! optimiser moments are not checkpointed: they restart from zero on resume.

use crate::agents::dqn::Dqn;
use crate::run::{AgentCard, RunCard, RunDir, RunError, TrainerState, load_weights};
use std::io::Write;
use std::time::Instant;
use thiserror::Error;
use xrl_env::{Action, ObsSpace};

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
         lower the learning rate or check the rewards, then resume or start again"
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
}

pub const METRICS_HEADER: &str = "step,episode,return,length,loss,epsilon,steps_per_sec";

/// Trains the run in `dir` from scratch (its `run.toml` must exist and hold no checkpoint) or from its last
/// checkpoint, up to the card's `total_steps`.
pub fn train(dir: &RunDir, mut on_progress: impl FnMut(&Progress)) -> Result<TrainerState, TrainError> {
    let card = dir.read_card()?;
    let AgentCard::Dqn(config) = &card.agent;
    let mut env = card.env.make()?;
    let spec = env.spec().clone();
    let binary = matches!(spec.observation, ObsSpace::Binary { .. });
    let mut agent = Dqn::new(config.clone(), &card.net, binary, card.seed).map_err(TrainError::Agent)?;

    let mut state = match dir.latest()? {
        Some(mut s) => {
            restore(dir, &card, &s, &mut agent)?;
            s.resumes += 1;
            truncate_metrics(dir, s.step)?;
            s
        }
        None => {
            write_metrics_header(dir)?;
            TrainerState {
                step: 0,
                episodes: 0,
                updates: 0,
                stem: String::new(),
                agent_rng: agent.rng.clone(),
                resumes: 0,
                checksums: Default::default(),
            }
        }
    };
    let env_seed = card.seed.wrapping_add(state.resumes);
    let mut obs = env.reset(Some(env_seed)).to_vec();
    let mut metrics = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.metrics_path())
        .map_err(|e| RunError::File { path: dir.metrics_path(), message: e.to_string() })?;

    let (mut ret, mut len, mut last_loss) = (0.0f64, 0usize, f32::NAN);
    let mut recent: std::collections::VecDeque<f64> = Default::default();
    let started = Instant::now();
    let start_step = state.step;
    let mut progress = Progress { total_steps: card.total_steps, ..Progress::default() };

    while state.step < card.total_steps {
        let action = agent.act(&obs, state.step);
        let s = env.step(&Action::Discrete(action))?;
        let (next, reward, terminated, truncated) = (s.obs.to_vec(), s.reward, s.terminated, s.truncated);
        agent.observe(&obs, action, reward, &next, terminated, truncated);
        state.step += 1;
        ret += reward;
        len += 1;
        obs = next;

        if agent.should_update(state.step) {
            last_loss = agent.update();
            if !last_loss.is_finite() {
                return Err(TrainError::NonFiniteLoss {
                    loss: last_loss,
                    step: state.step,
                    checkpoint: if state.stem.is_empty() { "none yet".into() } else { state.stem.clone() },
                });
            }
        }

        let sps = (state.step - start_step) as f64 / started.elapsed().as_secs_f64().max(1e-9);
        if terminated || truncated {
            state.episodes += 1;
            let row = format!(
                "{},{},{},{},{},{:.5},{:.1}\n",
                state.step,
                state.episodes,
                ret,
                len,
                if last_loss.is_finite() { format!("{last_loss:.6}") } else { String::new() },
                agent.config.epsilon(state.step),
                sps
            );
            metrics
                .write_all(row.as_bytes())
                .map_err(|e| RunError::File { path: dir.metrics_path(), message: e.to_string() })?;
            recent.push_back(ret);
            if recent.len() > 20 {
                recent.pop_front();
            }
            (ret, len) = (0.0, 0);
            obs = env.reset(None).to_vec();
            progress.episodes = state.episodes;
            progress.recent_return = recent.iter().sum::<f64>() / recent.len() as f64;
        }
        let checkpoint_due = state.step.is_multiple_of(card.checkpoint_every) || state.step == card.total_steps;
        if checkpoint_due {
            metrics.flush().map_err(|e| RunError::File { path: dir.metrics_path(), message: e.to_string() })?;
            metrics.sync_data().ok();
            state.updates = agent.updates;
            state.agent_rng = agent.rng.clone();
            state.stem = format!("step-{:010}", state.step);
            let (online, target) = agent.nets();
            dir.save_checkpoint(&mut state, online, target, &agent.replay)?;
            prune_checkpoints(dir, &state.stem);
            progress.last_checkpoint = Some(state.step);
        }
        if terminated || truncated || checkpoint_due {
            progress.step = state.step;
            progress.steps_per_sec = sps;
            on_progress(&progress);
        }
    }
    Ok(state)
}

fn restore(dir: &RunDir, card: &RunCard, s: &TrainerState, agent: &mut Dqn) -> Result<(), TrainError> {
    let device = burn::tensor::Device::flex().autodiff();
    let mut nets = vec![];
    for which in ["online", "target"] {
        let path = dir.weights_path(&s.stem, which);
        let bytes = dir.read_checked(s, &path)?;
        nets.push(load_weights(&card.net, &path, bytes, &device)?);
    }
    let target = nets.pop().expect("two nets");
    let online = nets.pop().expect("two nets");
    agent.set_nets(online, target);
    let path = dir.replay_path(&s.stem);
    let bytes = dir.read_checked(s, &path)?;
    agent.replay =
        crate::replay::Replay::read_from(&bytes).map_err(|m| RunError::File { path: path.clone(), message: m })?;
    agent.rng = s.agent_rng.clone();
    agent.updates = s.updates;
    agent.clear_pending();
    Ok(())
}

fn write_metrics_header(dir: &RunDir) -> Result<(), RunError> {
    crate::run::write_bytes(&dir.metrics_path(), format!("{METRICS_HEADER}\n").as_bytes())
}

/// Keeps the rows of `metrics.csv` up to `step` (and drops a half-written last line), atomically.
fn truncate_metrics(dir: &RunDir, step: usize) -> Result<(), RunError> {
    let path = dir.metrics_path();
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let mut out = format!("{METRICS_HEADER}\n");
    for line in text.lines().skip(1).filter(|l| l.split(',').count() == 7) {
        match line.split(',').next().and_then(|s| s.parse::<usize>().ok()) {
            Some(s) if s <= step => {
                out.push_str(line);
                out.push('\n');
            }
            _ => {}
        }
    }
    crate::run::write_bytes(&path, out.as_bytes())
}

/// Removes the replay buffers of older checkpoints (large, and only the newest is resumed from); their weights are
/// kept, so an agent can be explained at any stage of its training.
fn prune_checkpoints(dir: &RunDir, keep: &str) {
    if let Ok(entries) = std::fs::read_dir(dir.checkpoints()) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".replay.bin") && !name.starts_with(keep) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
