//! A3C (Mnih et al. 2016): worker threads, each with its own environment and a copy of the network, play `t_max`
//! steps, compute n-step actor-critic gradients on their copy, and apply them to the shared network under a lock
//! with shared RMSProp statistics. Read top to bottom: config, shared state, one worker's update, and the training
//! loop (`train`: each worker collects, updates and reports its episodes; the main thread logs and checkpoints).
//!
//! Defaults are seed 003's (ChainerRL `train_a3c_gym.py`): t-max 5, lr 7e-4, entropy 0.01, value 0.5, RMSProp
//! ε 0.1, α 0.99, γ 0.99, no gradient clipping. Asynchrony makes runs depend on thread timing: the seed fixes each
//! worker's environment and sampling, not the interleaving. Use A2C where bit-for-bit repeatability matters.

use crate::agents::actor_critic::{self, LossConfig, Reduction, Rollout, returns, sample_softmax};
use crate::nn::{self, HeadKind, Net, NetSpec, Pass, Torso};
use crate::optim::{Optimizer, Rule};
use crate::run::{EnvCard, weights_bytes};
use crate::train::{Session, TrainError};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::Duration;
use xrl_env::Action;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct A3cConfig {
    /// Worker threads; 0 = one per available core.
    pub workers: usize,
    pub t_max: usize,
    pub gamma: f32,
    pub entropy_coef: f32,
    pub value_coef: f32,
    pub lr: f64,
    pub rmsprop_alpha: f32,
    pub rmsprop_epsilon: f32,
    /// Global gradient-norm clipping; seed 003 had none.
    pub max_grad_norm: Option<f32>,
    pub torso: Torso,
}

impl Default for A3cConfig {
    fn default() -> Self {
        A3cConfig {
            workers: 0,
            t_max: 5,
            gamma: 0.99,
            entropy_coef: 0.01,
            value_coef: 0.5,
            lr: 7e-4,
            rmsprop_alpha: 0.99,
            rmsprop_epsilon: 0.1,
            max_grad_norm: None,
            torso: Torso::MinatarCnn,
        }
    }
}

impl A3cConfig {
    /// CartPole: an MLP 64-64 and no entropy bonus (as for A2C).
    pub fn cartpole() -> Self {
        A3cConfig { entropy_coef: 0.0, torso: Torso::Mlp { hidden: vec![64, 64] }, ..A3cConfig::default() }
    }

    pub fn for_env(obs_shape: &[usize]) -> Self {
        match obs_shape {
            [_] => A3cConfig::cartpole(),
            [_, 10, 10] => A3cConfig::default(),
            // Atari frames: the Nature CNN.
            _ => A3cConfig { torso: Torso::NatureCnn, ..A3cConfig::default() },
        }
    }

    pub fn net_spec(&self, obs_shape: &[usize], actions: usize) -> NetSpec {
        NetSpec::new(obs_shape.to_vec(), actions, self.torso.clone(), HeadKind::ActorCritic)
    }

    /// Worker threads to run.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 { self.workers } else { std::thread::available_parallelism().map_or(2, |n| n.get()) }
    }

    pub fn optimizer(&self) -> Optimizer {
        let rule = Rule::RmsProp { alpha: self.rmsprop_alpha, eps: self.rmsprop_epsilon, centered: false };
        Optimizer::new(rule, self.lr)
    }

    /// The loss summed over the rollout, as the A3C paper and seed 003 do.
    pub fn loss(&self) -> LossConfig {
        LossConfig { reduction: Reduction::Sum, value_coef: self.value_coef, entropy_coef: self.entropy_coef }
    }
}

/// The network and optimiser every worker updates.
pub struct Shared {
    pub net: Net,
    pub optim: Optimizer,
    pub updates: usize,
}

/// One worker's view: its copy of the network, refreshed from the shared one before each rollout.
pub struct Worker<'a> {
    pub config: &'a A3cConfig,
    shared: &'a Mutex<Shared>,
    local: Net,
    pub rng: Xoshiro256PlusPlus,
    device: Device,
    obs_len: usize,
}

impl<'a> Worker<'a> {
    pub fn new(config: &'a A3cConfig, shared: &'a Mutex<Shared>, rng: Xoshiro256PlusPlus) -> Self {
        let local = shared.lock().expect("shared network lock").net.with_own_leaves();
        let obs_len = local.spec().obs_shape.iter().product();
        // The shared network's device: the worker's tensors must live where its weights do.
        let device = local.device().autodiff();
        Worker { config, shared, local, rng, device, obs_len }
    }

    /// Copies the shared weights into the local network (as leaves of its own: workers run backward concurrently).
    pub fn sync(&mut self) {
        self.local = self.shared.lock().expect("shared network lock").net.with_own_leaves();
    }

    /// Samples an action for one observation.
    pub fn act(&mut self, obs: &[f32]) -> usize {
        // Observations on the plain device: the forward runs the inner-backend weights, no graph is kept.
        let logits = self.local.scores(nn::batch(obs, self.obs_len, &self.device.clone().inner()));
        sample_softmax(&nn::to_vec(logits), &mut self.rng)
    }

    /// V(s) of one observation under the local network.
    pub fn value(&self, obs: &[f32]) -> f32 {
        let h = self.local.forward(nn::batch(obs, self.obs_len, &self.device.clone().inner()), &Pass::default());
        nn::to_vec(h.value.expect("actor-critic head"))[0]
    }

    /// Computes the rollout's gradients on the local copy and applies them to the shared network. Returns the loss.
    pub fn update(&mut self, r: &Rollout, last_value: f32) -> f32 {
        let c = self.config;
        let targets = returns(r, &[last_value], c.gamma);
        let h = self.local.forward(nn::batch(&r.obs, self.obs_len, &self.device), &Pass::default());
        let (logits, values) = (h.logits.expect("actor-critic head"), h.value.expect("actor-critic head"));
        let (loss, _) = actor_critic::loss(logits, values, &r.actions, targets, &c.loss());
        let loss_value = nn::to_vec(loss.clone())[0];
        let mut grads = GradientsParams::from_grads(loss.backward(), &self.local);
        if let Some(max) = c.max_grad_norm {
            self.local.clip_grad_norm(&mut grads, max);
        }
        let mut shared = self.shared.lock().expect("shared network lock");
        // The local copy shares parameter ids with the shared network, so its gradients apply there directly.
        let net = std::mem::replace(&mut shared.net, self.local.clone());
        shared.net = shared.optim.step(net, grads);
        shared.updates += 1;
        loss_value
    }
}

/// Trains A3C in `s` up to the run's step budget. Each worker thread plays and learns on its own (`play`); the
/// main thread alone writes metrics and checkpoints, from the episodes the workers report.
pub(crate) fn train(s: &mut Session, config: A3cConfig) -> Result<(), TrainError> {
    s.device.seed(s.card.seed);
    let net = Net::new(&s.card.net, &s.device).map_err(TrainError::Agent)?;
    let len: usize = s.card.net.obs_shape.iter().product();
    let _ = net.scores(Tensor::zeros([1, len], &s.device)); // materialise lazy parameters
    let mut shared = Shared { net, optim: config.optimizer(), updates: s.state.updates };
    if s.resumed {
        shared.net = s.resume_net("online.safetensors")?;
        shared.optim = s.resume_optimizer()?;
    }
    let shared = Mutex::new(shared);
    let total = s.card.total_steps;
    let budget = Budget { taken: AtomicUsize::new(s.state.step), total, stop: AtomicBool::new(false) };
    let (events, rx) = mpsc::channel::<WorkerEvent>();
    let base_seed = s.env_seed();
    let env_card = s.card.env.clone();

    std::thread::scope(|scope| -> Result<(), TrainError> {
        for w in 0..config.worker_count() {
            let (events, env_card, config, shared, budget) = (events.clone(), &env_card, &config, &shared, &budget);
            let seed = base_seed.wrapping_mul(1_000_003).wrapping_add(w as u64);
            scope.spawn(move || run_worker(&events, || play(config, env_card, seed, shared, budget, &events)));
        }
        drop(events);

        // Log the episodes the workers report, and checkpoint the shared network when one is due.
        let mut last = s.state.step;
        let outcome = loop {
            let event = rx.recv_timeout(Duration::from_millis(50));
            s.state.step = budget.taken();
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
        budget.stop.store(true, Ordering::Relaxed);
        outcome
    })?;

    // The workers stop at the step budget between two checkpoints: commit the final state.
    s.state.step = budget.taken();
    if s.state.stem != format!("step-{:010}", s.state.step) {
        let (updates, files) = snapshot(&shared)?;
        let rng = s.state.agent_rng.clone();
        s.checkpoint(updates, &rng, &files)?;
        s.report();
    }
    Ok(())
}

/// One worker's loop: sync with the shared network, collect up to `t_max` steps, update, report a finished
/// episode; until the budget is spent or the main thread stops it.
fn play(
    config: &A3cConfig,
    env_card: &EnvCard,
    seed: u64,
    shared: &Mutex<Shared>,
    budget: &Budget,
    events: &mpsc::Sender<WorkerEvent>,
) -> Result<(), TrainError> {
    let mut env = env_card.make()?;
    let mut worker = Worker::new(config, shared, Xoshiro256PlusPlus::seed_from_u64(seed ^ 0xA3C));
    let mut obs = env.reset(Some(seed)).to_vec();
    let (mut ret, mut len) = (0.0f64, 0usize);
    while budget.open() {
        worker.sync();

        // Collect: up to t_max steps, fewer where the episode ends.
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

        // Update: bootstrap from the last observation unless the episode terminated there.
        let last_value = if ended == Some(true) { 0.0 } else { worker.value(&obs) };
        let loss = worker.update(&r, last_value);
        budget.taken.fetch_add(r.actions.len(), Ordering::Relaxed);
        if !loss.is_finite() {
            let _ = events.send(WorkerEvent::NonFinite { loss });
            return Ok(());
        }

        // Report a finished episode to the main thread, which logs it.
        if ended.is_some() {
            let _ = events.send(WorkerEvent::Episode { ret, len, loss });
            (ret, len) = (0.0, 0);
            obs = env.reset(None).to_vec();
        }
    }
    Ok(())
}

/// What the workers tell the main thread.
enum WorkerEvent {
    Episode { ret: f64, len: usize, loss: f32 },
    NonFinite { loss: f32 },
    Failed(TrainError),
}

/// The environment steps all workers have taken, against the run's budget; `stop` ends them early.
struct Budget {
    taken: AtomicUsize,
    total: usize,
    stop: AtomicBool,
}

impl Budget {
    fn open(&self) -> bool {
        !self.stop.load(Ordering::Relaxed) && self.taken.load(Ordering::Relaxed) < self.total
    }

    fn taken(&self) -> usize {
        self.taken.load(Ordering::Relaxed).min(self.total)
    }
}

/// Runs a worker's loop; its failure, even a panic, reaches the user as an error from the main thread.
fn run_worker(events: &mpsc::Sender<WorkerEvent>, play: impl FnOnce() -> Result<(), TrainError>) {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(play)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let _ = events.send(WorkerEvent::Failed(e));
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let _ = events.send(WorkerEvent::Failed(TrainError::Agent(format!("an A3C worker failed: {what}"))));
        }
    }
}

/// A checkpoint's files: (suffix, bytes).
type Files = [(&'static str, Vec<u8>); 2];

/// The shared network's update count and checkpoint files, taken under its lock.
fn snapshot(shared: &Mutex<Shared>) -> Result<(usize, Files), TrainError> {
    let sh = shared.lock().expect("shared network lock");
    Ok((sh.updates, [("online.safetensors", weights_bytes(&sh.net)?), ("optim.bin", sh.optim.to_bytes())]))
}
