//! The training driver: plays the environment, feeds the agent, writes metrics and checkpoints, resumes.
//!
//! A killed run resumes from its last checkpoint: weights (and for DQN the target network and replay buffer), the
//! optimiser's moments, counters and the agent's random stream are restored, `metrics.csv` is cut back to the
//! checkpoint's step, and a fresh episode starts (the environment is reseeded with `seed + resumes`, since
//! episodes in flight are not part of a checkpoint).

use crate::agents::a2c::{A2c, A2cConfig};
use crate::agents::a3c::{A3cConfig, Shared, Worker};
use crate::agents::actor_critic::Rollout;
use crate::agents::dqn::{Dqn, DqnConfig};
use crate::nn::Net;
use crate::run::{AgentCard, RunCard, RunDir, RunError, TrainerState, load_weights, weights_bytes};
use burn::tensor::Device;
use rand_xoshiro::Xoshiro256PlusPlus;
use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::time::Instant;
use thiserror::Error;
use xrl_env::vector::{Autoreset, VecEnv};
use xrl_env::{Action, ObsSpace};
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

/// Trains the run in `dir` from scratch (its `run.toml` must exist) or from its last checkpoint, up to the card's
/// `total_steps`, on `device` (with autodiff added; a resumed run loads its weights there).
pub fn train(
    dir: &RunDir,
    device: &Device,
    mut on_progress: impl FnMut(&Progress),
) -> Result<TrainerState, TrainError> {
    let device = device.clone().autodiff();
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
    match card.agent.clone() {
        AgentCard::Dqn(config) => train_dqn(dir, card, config, &device, &mut on_progress),
        AgentCard::A2c(config) => train_a2c(dir, card, config, &device, &mut on_progress),
        AgentCard::A3c(config) => train_a3c(dir, card, config, &device, &mut on_progress),
    }
}

/// What every agent's loop shares: the trainer state, metrics file, progress and checkpoint commits.
struct Session<'a> {
    dir: &'a RunDir,
    card: RunCard,
    state: TrainerState,
    resumed: bool,
    metrics: File,
    recent: VecDeque<f64>,
    progress: Progress,
    started: Instant,
    start_step: usize,
    on_progress: &'a mut dyn FnMut(&Progress),
    /// (step, return) of every finished episode, for the learning curve.
    curve: (Vec<f64>, Vec<f64>),
    tensorboard: EventWriter,
    /// The training device (with autodiff), where resumed weights are loaded.
    device: Device,
}

impl<'a> Session<'a> {
    fn open(
        dir: &'a RunDir,
        card: RunCard,
        device: &Device,
        on_progress: &'a mut dyn FnMut(&Progress),
    ) -> Result<Self, TrainError> {
        let (state, resumed) = match dir.latest()? {
            Some(mut s) => {
                s.resumes += 1;
                truncate_metrics(dir, s.step)?;
                (s, true)
            }
            None => {
                crate::run::write_bytes(&dir.metrics_path(), format!("{METRICS_HEADER}\n").as_bytes())?;
                let fresh = TrainerState::fresh(card.seed);
                (fresh, false)
            }
        };
        let metrics = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.metrics_path())
            .map_err(|e| RunError::File { path: dir.metrics_path(), message: e.to_string() })?;
        let progress = Progress { total_steps: card.total_steps, step: state.step, ..Progress::default() };
        let curve = read_curve(dir);
        let tensorboard = EventWriter::create(&dir.root.join("tensorboard"))
            .map_err(|e| RunError::File { path: dir.root.join("tensorboard"), message: e.to_string() })?;
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

    fn env_seed(&self) -> u64 {
        self.card.seed.wrapping_add(self.state.resumes)
    }

    fn steps_per_sec(&self) -> f64 {
        (self.state.step - self.start_step) as f64 / self.started.elapsed().as_secs_f64().max(1e-9)
    }

    fn io(&self, e: std::io::Error) -> TrainError {
        RunError::File { path: self.dir.metrics_path(), message: e.to_string() }.into()
    }

    /// Records a finished episode.
    fn episode(&mut self, ret: f64, len: usize, loss: f32, epsilon: f64) -> Result<(), TrainError> {
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
    fn check_loss(&self, loss: f32) -> Result<(), TrainError> {
        if loss.is_finite() {
            return Ok(());
        }
        let checkpoint = if self.state.stem.is_empty() { "none yet".into() } else { self.state.stem.clone() };
        Err(TrainError::NonFiniteLoss { loss, step: self.state.step, checkpoint })
    }

    /// Whether advancing from `before` to the current step crossed a checkpoint boundary (or ended the run).
    fn checkpoint_due(&self, before: usize) -> bool {
        let every = self.card.checkpoint_every.max(1);
        self.state.step / every > before / every || self.state.step >= self.card.total_steps
    }

    /// Commits a checkpoint of `files`, with the agent's counters and random stream.
    fn checkpoint(
        &mut self,
        updates: usize,
        rng: &rand_xoshiro::Xoshiro256PlusPlus,
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

    fn report(&mut self) {
        self.progress.step = self.state.step;
        self.progress.steps_per_sec = self.steps_per_sec();
        (self.on_progress)(&self.progress);
    }

    /// Reads and checks a file of the checkpoint being resumed.
    fn resume_file(&self, suffix: &str) -> Result<(std::path::PathBuf, Vec<u8>), TrainError> {
        let path = self.dir.checkpoint_file(&self.state.stem, suffix);
        let bytes = self.dir.read_checked(&self.state, &path)?;
        Ok((path, bytes))
    }

    fn resume_optimizer(&self) -> Result<crate::optim::Optimizer, TrainError> {
        let (path, bytes) = self.resume_file("optim.bin")?;
        Ok(crate::optim::Optimizer::from_bytes(&bytes).map_err(|message| RunError::File { path, message })?)
    }

    fn resume_net(&self, suffix: &str) -> Result<Net, TrainError> {
        let (path, bytes) = self.resume_file(suffix)?;
        Ok(load_weights(&self.card.net, &path, bytes, &self.device)?)
    }
}

fn train_dqn(
    dir: &RunDir,
    card: RunCard,
    config: DqnConfig,
    device: &Device,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<TrainerState, TrainError> {
    let mut env = card.env.make()?;
    let binary = matches!(env.spec().observation, ObsSpace::Binary { .. });
    let mut agent = Dqn::new(config, &card.net, binary, card.seed, device).map_err(TrainError::Agent)?;
    let mut s = Session::open(dir, card, device, on_progress)?;
    if s.resumed {
        agent.set_nets(s.resume_net("online.safetensors")?, s.resume_net("target.safetensors")?);
        let (path, bytes) = s.resume_file("replay.bin")?;
        agent.replay = crate::replay::Replay::read_from(&bytes).map_err(|message| RunError::File { path, message })?;
        agent.rng = s.state.agent_rng.clone();
        agent.updates = s.state.updates;
        agent.optim = s.resume_optimizer()?;
    }

    let mut obs = env.reset(Some(s.env_seed())).to_vec();
    let (mut ret, mut len, mut loss) = (0.0f64, 0usize, f32::NAN);
    while s.state.step < s.card.total_steps {
        let before = s.state.step;
        let action = agent.act(&obs, s.state.step);
        let step = env.step(&Action::Discrete(action))?;
        let (next, reward, terminated, truncated) = (step.obs.to_vec(), step.reward, step.terminated, step.truncated);
        agent.observe(&obs, action, reward, &next, terminated, truncated);
        s.state.step += 1;
        (ret, len, obs) = (ret + reward, len + 1, next);
        if agent.should_update(s.state.step) {
            loss = agent.update();
            s.check_loss(loss)?;
        }
        let ended = terminated || truncated;
        if ended {
            s.episode(ret, len, loss, agent.config.epsilon(s.state.step))?;
            (ret, len) = (0.0, 0);
            obs = env.reset(None).to_vec();
        }
        let due = s.checkpoint_due(before);
        if due {
            let (online, target) = agent.nets();
            let mut replay = vec![];
            agent.replay.write_to(&mut replay).expect("writing to memory cannot fail");
            let files = [
                ("online.safetensors", weights_bytes(online)?),
                ("target.safetensors", weights_bytes(target)?),
                ("replay.bin", replay),
                ("optim.bin", agent.optim.to_bytes()),
            ];
            s.checkpoint(agent.updates, &agent.rng, &files)?;
        }
        if ended || due {
            s.report();
        }
    }
    Ok(s.state)
}

fn train_a2c(
    dir: &RunDir,
    card: RunCard,
    config: A2cConfig,
    device: &Device,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<TrainerState, TrainError> {
    let n = config.n_envs;
    let env_card = card.env.clone();
    let mut venv = VecEnv::new(n, Autoreset::SameStep, |_| env_card.make())?;
    let mut agent = A2c::new(config, &card.net, card.seed, device).map_err(TrainError::Agent)?;
    let mut s = Session::open(dir, card, device, on_progress)?;
    if s.resumed {
        agent.set_net(s.resume_net("online.safetensors")?);
        agent.rng = s.state.agent_rng.clone();
        agent.updates = s.state.updates;
        agent.optim = s.resume_optimizer()?;
    }

    let mut obs = venv.reset(Some(s.env_seed())).to_vec();
    let (mut rets, mut lens) = (vec![0.0f64; n], vec![0usize; n]);
    while s.state.step < s.card.total_steps {
        let before = s.state.step;
        let mut r = Rollout { start_state: agent.state(), ..Rollout::default() };
        let mut finished = vec![];
        for _ in 0..agent.config.n_steps {
            let (actions, _) = agent.act(&obs);
            let acts: Vec<Action> = actions.iter().map(|&a| Action::Discrete(a)).collect();
            venv.step(&acts)?;
            r.obs.extend_from_slice(&obs);
            r.actions.extend_from_slice(&actions);
            for i in 0..n {
                let reward = venv.rewards()[i];
                r.rewards.push(reward as f32);
                r.terminated.push(venv.terminated()[i]);
                // A truncated episode bootstraps from its final observation's value.
                let trunc = venv.truncated()[i] && !venv.terminated()[i];
                let final_value = match (trunc, &venv.final_obs()[i]) {
                    (true, Some(f)) => Some(agent.value_of(i, f)),
                    _ => None,
                };
                r.truncated_value.push(final_value);
                rets[i] += reward;
                lens[i] += 1;
                r.done.push(venv.terminated()[i] || venv.truncated()[i]);
                if venv.terminated()[i] || venv.truncated()[i] {
                    finished.push((rets[i], lens[i]));
                    (rets[i], lens[i]) = (0.0, 0);
                }
            }
            agent.episodes_ended(&r.done[r.done.len() - n..]);
            obs = venv.obs().to_vec();
            s.state.step += n;
        }
        let last_values = agent.values(&obs);
        let loss = agent.update(&r, &last_values).0;
        s.check_loss(loss)?;
        for (ret, len) in finished {
            s.episode(ret, len, loss, 0.0)?;
        }
        let due = s.checkpoint_due(before);
        if due {
            let files = [("online.safetensors", weights_bytes(&agent.net)?), ("optim.bin", agent.optim.to_bytes())];
            s.checkpoint(agent.updates, &agent.rng, &files)?;
        }
        s.report();
    }
    Ok(s.state)
}

/// (step, return) of the episodes in `metrics.csv`.
fn read_curve(dir: &RunDir) -> (Vec<f64>, Vec<f64>) {
    let text = std::fs::read_to_string(dir.metrics_path()).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split(',');
            Some((f.next()?.parse::<f64>().ok()?, f.nth(1)?.parse::<f64>().ok()?))
        })
        .unzip()
}

/// What A3C's workers tell the main thread, which alone writes metrics and checkpoints.
enum WorkerEvent {
    Episode { ret: f64, len: usize, loss: f32 },
    NonFinite { loss: f32 },
    Failed(TrainError),
}

fn train_a3c(
    dir: &RunDir,
    card: RunCard,
    config: A3cConfig,
    device: &Device,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<TrainerState, TrainError> {
    use rand::SeedableRng;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Mutex, mpsc};

    device.seed(card.seed);
    let net = Net::new(&card.net, device).map_err(TrainError::Agent)?;
    let len: usize = card.net.obs_shape.iter().product();
    let _ = net.scores(burn::tensor::Tensor::zeros([1, len], device)); // materialise lazy parameters
    let mut s = Session::open(dir, card, device, on_progress)?;
    let mut shared = Shared { net, optim: config.optimizer(), updates: s.state.updates };
    if s.resumed {
        shared.net = s.resume_net("online.safetensors")?;
        shared.optim = s.resume_optimizer()?;
    }
    let shared = Mutex::new(shared);
    let steps = AtomicUsize::new(s.state.step);
    let stop = AtomicBool::new(false);
    let total = s.card.total_steps;
    let (tx, rx) = mpsc::channel::<WorkerEvent>();
    let workers = config.worker_count();
    let base_seed = s.env_seed();
    let env_card = s.card.env.clone();

    // The shared network's update count and checkpoint files, taken under its lock.
    type Files = [(&'static str, Vec<u8>); 2];
    let snapshot = |shared: &Mutex<Shared>| -> Result<(usize, Files), TrainError> {
        let sh = shared.lock().expect("shared network lock");
        Ok((sh.updates, [("online.safetensors", weights_bytes(&sh.net)?), ("optim.bin", sh.optim.to_bytes())]))
    };

    let result = std::thread::scope(|scope| -> Result<(), TrainError> {
        for w in 0..workers {
            let (tx, env_card, config, shared, steps, stop) = (tx.clone(), &env_card, &config, &shared, &steps, &stop);
            let seed = base_seed.wrapping_mul(1_000_003).wrapping_add(w as u64);
            scope.spawn(move || {
                let run = || -> Result<(), TrainError> {
                    let mut env = env_card.make()?;
                    let mut worker = Worker::new(config, shared, Xoshiro256PlusPlus::seed_from_u64(seed ^ 0xA3C));
                    let mut obs = env.reset(Some(seed)).to_vec();
                    let (mut ret, mut len) = (0.0f64, 0usize);
                    while !stop.load(Ordering::Relaxed) && steps.load(Ordering::Relaxed) < total {
                        worker.sync();
                        let mut r = Rollout::default();
                        let mut ended = None;
                        for _ in 0..config.t_max {
                            let action = worker.act(&obs);
                            let st = env.step(&Action::Discrete(action))?;
                            r.obs.extend_from_slice(&obs);
                            r.actions.push(action);
                            r.rewards.push(st.reward as f32);
                            r.terminated.push(st.terminated);
                            r.truncated_value.push(None);
                            (ret, len) = (ret + st.reward, len + 1);
                            obs = st.obs.to_vec();
                            if st.terminated || st.truncated {
                                ended = Some(st.terminated);
                                break;
                            }
                        }
                        // Bootstrap from the last observation unless the episode terminated there.
                        let last_value = if ended == Some(true) { 0.0 } else { worker.value(&obs) };
                        let loss = worker.update(&r, last_value);
                        steps.fetch_add(r.actions.len(), Ordering::Relaxed);
                        if !loss.is_finite() {
                            let _ = tx.send(WorkerEvent::NonFinite { loss });
                            return Ok(());
                        }
                        if ended.is_some() {
                            let _ = tx.send(WorkerEvent::Episode { ret, len, loss });
                            (ret, len) = (0.0, 0);
                            obs = env.reset(None).to_vec();
                        }
                    }
                    Ok(())
                };
                // A worker's failure, even a panic, reaches the user as an error from the main thread.
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        let _ = tx.send(WorkerEvent::Failed(e));
                    }
                    Err(panic) => {
                        let what = panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        let _ =
                            tx.send(WorkerEvent::Failed(TrainError::Agent(format!("an A3C worker failed: {what}"))));
                    }
                }
            });
        }
        drop(tx);

        // The main thread records episodes and commits checkpoints while the workers learn.
        let mut last = s.state.step;
        let outcome = loop {
            let event = rx.recv_timeout(std::time::Duration::from_millis(50));
            s.state.step = steps.load(Ordering::Relaxed).min(total);
            match event {
                Ok(WorkerEvent::Episode { ret, len, loss }) => s.episode(ret, len, loss, 0.0)?,
                Ok(WorkerEvent::NonFinite { loss }) => break s.check_loss(loss),
                Ok(WorkerEvent::Failed(e)) => break Err(e),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break Ok(()),
            }
            if s.checkpoint_due(last) {
                last = s.state.step;
                let (updates, files) = snapshot(&shared)?;
                let rng = s.state.agent_rng.clone();
                s.checkpoint(updates, &rng, &files)?;
                s.report();
                if s.state.step >= total {
                    break Ok(());
                }
            }
        };
        stop.store(true, Ordering::Relaxed);
        outcome
    });
    result?;
    // The workers stop at the step budget between two checkpoints: commit the final state.
    s.state.step = steps.load(Ordering::Relaxed).min(s.card.total_steps);
    if s.state.stem != format!("step-{:010}", s.state.step) {
        let (updates, files) = snapshot(&shared)?;
        let rng = s.state.agent_rng.clone();
        s.checkpoint(updates, &rng, &files)?;
        s.report();
    }
    Ok(s.state)
}

/// Keeps the rows of `metrics.csv` up to `step` (and drops a half-written last line), atomically.
fn truncate_metrics(dir: &RunDir, step: usize) -> Result<(), RunError> {
    let path = dir.metrics_path();
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let mut out = format!("{METRICS_HEADER}\n");
    for line in text.lines().skip(1).filter(|l| l.split(',').count() == 7) {
        if line.split(',').next().and_then(|s| s.parse::<usize>().ok()).is_some_and(|s| s <= step) {
            out.push_str(line);
            out.push('\n');
        }
    }
    crate::run::write_bytes(&path, out.as_bytes())
}

/// Removes the replay buffers and optimiser states of older checkpoints (large, and only the newest is resumed
/// from); their weights are kept, so an agent can be explained at any stage of its training.
fn prune_replays(dir: &RunDir, keep: &str) {
    if let Ok(entries) = std::fs::read_dir(dir.checkpoints()) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if (name.ends_with(".replay.bin") || name.ends_with(".optim.bin")) && !name.starts_with(keep) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
