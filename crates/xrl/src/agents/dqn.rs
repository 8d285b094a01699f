//! DQN (Mnih et al. 2015) with the Double (van Hasselt et al. 2016) and Dueling (Wang et al. 2016) options,
//! n-step returns, Huber loss and a periodically copied target network. Read top to bottom: config, agent, update,
//! and the training loop (`train`: act and store, update, log, checkpoint).
//!
//! Defaults are the MinAtar paper's (Young & Tian 2019): replay 100k, batch 32, one update per frame, target copy
//! every 1,000 updates, RMSProp (lr 2.5e-4, α 0.95, centred, ε 0.01), γ 0.99, ε-greedy 1.0 → 0.1 over 100k frames
//! after 5k random frames. [`DqnConfig::cartpole`] is CleanRL's CartPole setting, [`DqnConfig::atari`] its
//! `dqn_atari.py` (with RL Zoo's 100k replay), whose stacked 84 × 84 frames go into the pixel replay.

use crate::nn::{self, Core, CoreKind, HeadKind, Net, NetSpec, Torso};
use crate::optim::{Optimizer, Rule};
use crate::pixel_replay::{PixelMemory, PixelReplay, uniform_indices};
use crate::replay::{Batch, NStep, Replay};
use crate::run::{RunError, weights_bytes};
use crate::train::{Session, TrainError};
use burn::module::Module;
use burn::nn::loss::{HuberLossConfig, MseLoss, Reduction};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};
use xrl_env::{Action, ObsSpace};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum OptimizerConfig {
    Adam { lr: f64 },
    RmsProp { lr: f64, alpha: f32, epsilon: f32, centered: bool },
}

/// The regression loss on the TD error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Loss {
    /// Huber (smooth L1 at δ = 1): bounded gradients, the DQN papers' choice.
    Huber { delta: f32 },
    /// Mean squared error: CleanRL's CartPole choice. With Huber there, the few terminal transitions that anchor
    /// the values get clipped gradients and the bootstrapped ones dominate; we measured Q values drifting past
    /// the 1/(1 − γ) = 100 bound within 1,500 updates, while MSE stays below it.
    Mse,
}

/// Every hyper-parameter of DQN, with the MinAtar paper's defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DqnConfig {
    pub gamma: f32,
    pub n_step: usize,
    pub double: bool,
    pub dueling: bool,
    pub replay_capacity: usize,
    pub batch_size: usize,
    /// Frames of uniformly random play before learning starts.
    pub learning_starts: usize,
    /// Environment steps per gradient update.
    pub train_every: usize,
    /// Gradient updates between target-network copies.
    pub target_update_every: usize,
    pub epsilon_start: f64,
    pub epsilon_end: f64,
    /// Frames (after `learning_starts`) over which ε falls linearly.
    pub epsilon_decay_steps: usize,
    pub optimizer: OptimizerConfig,
    pub loss: Loss,
    pub torso: Torso,
    /// DRQN (Hausknecht & Stone 2015, as in seed 002): an LSTM over the last `frames` frames, from a zero state at
    /// every step. `None` for the feed-forward DQN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrent: Option<Recurrent>,
    /// Learn from the rewards' signs (CleanRL's `ClipRewardEnv`, on in the Atari preset); the logged returns stay
    /// the game's scores.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clip_rewards: bool,
    /// Store stacked observations as frames once each ([`PixelReplay`], ~7 KB a transition for 4 × 84 × 84)
    /// instead of float copies. Observations must be stacks of grey levels 0–255 (Atari's preprocessed frames).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixel_stack: Option<usize>,
}

/// DRQN's core and the number of frames it runs over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recurrent {
    pub core: Core,
    pub frames: usize,
}

impl Default for DqnConfig {
    fn default() -> Self {
        DqnConfig {
            gamma: 0.99,
            n_step: 1,
            double: false,
            dueling: false,
            replay_capacity: 100_000,
            batch_size: 32,
            learning_starts: 5_000,
            train_every: 1,
            target_update_every: 1_000,
            epsilon_start: 1.0,
            epsilon_end: 0.1,
            epsilon_decay_steps: 100_000,
            optimizer: OptimizerConfig::RmsProp { lr: 2.5e-4, alpha: 0.95, epsilon: 0.01, centered: true },
            loss: Loss::Huber { delta: 1.0 },
            torso: Torso::MinatarCnn,
            recurrent: None,
            clip_rewards: false,
            pixel_stack: None,
        }
    }
}

impl DqnConfig {
    /// CleanRL's `dqn.py` CartPole setting: MLP 120-84, Adam 2.5e-4, MSE loss, replay 10k, batch 128, an update
    /// every 10 steps, target copy every 50 updates (500 steps), ε 1 → 0.05 over 250k steps after 10k random ones.
    pub fn cartpole() -> Self {
        DqnConfig {
            replay_capacity: 10_000,
            batch_size: 128,
            learning_starts: 10_000,
            train_every: 10,
            target_update_every: 50,
            epsilon_end: 0.05,
            epsilon_decay_steps: 250_000,
            optimizer: OptimizerConfig::Adam { lr: 2.5e-4 },
            torso: Torso::Mlp { hidden: vec![120, 84] },
            loss: Loss::Mse,
            ..DqnConfig::default()
        }
    }

    /// CleanRL's `dqn_atari.py` on the Nature CNN: Adam 1e-4, MSE loss, batch 32, an update every 4 steps, the
    /// target copied every 1,000 steps (250 updates), ε 1 → 0.01 over 1M steps after 80k random ones, rewards
    /// clipped to their sign. The replay holds 100k transitions (RL Zoo's Atari DQN setting) instead of CleanRL's
    /// 1M: 0.7 GB rather than 7 GB of memory, and of every checkpoint, on a laptop-sized machine.
    pub fn atari(stack: usize) -> Self {
        DqnConfig {
            replay_capacity: 100_000,
            batch_size: 32,
            learning_starts: 80_000,
            train_every: 4,
            target_update_every: 250,
            epsilon_end: 0.01,
            epsilon_decay_steps: 1_000_000,
            optimizer: OptimizerConfig::Adam { lr: 1e-4 },
            loss: Loss::Mse,
            torso: Torso::NatureCnn,
            clip_rewards: true,
            pixel_stack: Some(stack),
            ..DqnConfig::default()
        }
    }

    /// The defaults for an environment: MinAtar's paper setting for MinAtar (10 × 10 planes), CleanRL's for vector
    /// observations and for stacked Atari frames.
    pub fn for_env(obs_shape: &[usize]) -> Self {
        match obs_shape {
            [_] => DqnConfig::cartpole(),
            [_, 10, 10] => DqnConfig::default(),
            [k, _, _] => DqnConfig::atari(*k),
            _ => DqnConfig::default(),
        }
    }

    /// The network for observations of `obs_shape` (for DRQN: the frame-stacked shape).
    pub fn net_spec(&self, obs_shape: &[usize], actions: usize) -> NetSpec {
        let head = if self.dueling { HeadKind::Dueling } else { HeadKind::Q };
        let spec = NetSpec::new(obs_shape.to_vec(), actions, self.torso.clone(), head);
        match self.recurrent {
            Some(r) => NetSpec { frames: r.frames, ..spec.with_core(r.core) },
            None => spec,
        }
    }

    /// DRQN over `frames` frames with an LSTM of `hidden` units after the torso.
    pub fn drqn(self, frames: usize, hidden: usize) -> Self {
        DqnConfig { recurrent: Some(Recurrent { core: Core { kind: CoreKind::Lstm, hidden }, frames }), ..self }
    }

    /// ε at environment step `step`.
    pub fn epsilon(&self, step: usize) -> f64 {
        linear_epsilon(step, self.learning_starts, self.epsilon_start, self.epsilon_end, self.epsilon_decay_steps)
    }
}

/// ε-greedy's schedule: 1 during the `learning_starts` random steps, then linear from `start` to `end` over
/// `decay_steps`, then `end`.
pub fn linear_epsilon(step: usize, learning_starts: usize, start: f64, end: f64, decay_steps: usize) -> f64 {
    if step < learning_starts {
        return 1.0;
    }
    let frac = ((step - learning_starts) as f64 / decay_steps.max(1) as f64).min(1.0);
    start + frac * (end - start)
}

/// Where transitions are kept: float copies, or frames stored once (stacked pixel observations).
pub enum Memory {
    Flat { replay: Replay, nstep: NStep },
    Pixels(PixelMemory),
}

impl Memory {
    /// Room for `capacity` n-step transitions of observations of `obs_len` values: stacks of `pixel_stack` grey
    /// frames stored once each, or float copies (bytes when the observations are 0/1 planes).
    pub fn new(
        capacity: usize,
        obs_len: usize,
        binary_obs: bool,
        pixel_stack: Option<usize>,
        n_step: usize,
        gamma: f32,
    ) -> Result<Self, String> {
        Ok(match pixel_stack {
            Some(k) => Memory::Pixels(PixelMemory::new(capacity, obs_len, k, n_step, gamma)?),
            None => {
                Memory::Flat { replay: Replay::new(capacity, obs_len, binary_obs), nstep: NStep::new(n_step, gamma) }
            }
        })
    }

    pub fn len(&self) -> usize {
        match self {
            Memory::Flat { replay, .. } => replay.len(),
            Memory::Pixels(m) => m.replay.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Transition slots (a prioritised sampler's size).
    pub fn capacity(&self) -> usize {
        match self {
            Memory::Flat { replay, .. } => replay.capacity(),
            Memory::Pixels(m) => m.replay.capacity(),
        }
    }

    /// Records one environment step; returns the slots of the transitions it completed, and the slots whose
    /// transitions left the memory (pixel replay: with their frames) since the last call.
    pub fn push_step(
        &mut self,
        obs: &[f32],
        action: usize,
        reward: f32,
        next_obs: &[f32],
        terminated: bool,
        truncated: bool,
    ) -> (Vec<usize>, Vec<usize>) {
        match self {
            Memory::Flat { replay, nstep } => {
                let done = nstep.push(&obs.to_vec(), action, reward, &next_obs.to_vec(), terminated, truncated);
                (done.iter().map(|t| replay.push(t)).collect(), vec![])
            }
            Memory::Pixels(m) => {
                let written = m.observe(obs, action, reward, next_obs, terminated, truncated);
                (written, m.replay.take_dropped())
            }
        }
    }

    /// The transitions in `slots` (as [`Memory::push_step`] returned them).
    pub fn batch_slots(&self, slots: &[usize]) -> Batch {
        match self {
            Memory::Flat { replay, .. } => replay.batch(slots),
            Memory::Pixels(m) => m.replay.batch_slots(slots),
        }
    }

    /// `size` slots of stored transitions drawn uniformly with replacement.
    pub fn uniform_slots(&self, size: usize, rng: &mut impl Rng) -> Vec<usize> {
        match self {
            Memory::Flat { replay, .. } => (0..size).map(|_| rng.random_range(0..replay.len())).collect(),
            Memory::Pixels(m) => {
                uniform_indices(m.replay.len(), size, rng).into_iter().map(|pos| m.replay.slot(pos)).collect()
            }
        }
    }

    /// `size` transitions drawn uniformly with replacement.
    pub fn sample(&self, size: usize, rng: &mut impl Rng) -> Batch {
        match self {
            Memory::Flat { replay, .. } => replay.sample(size, rng),
            Memory::Pixels(m) => m.replay.batch(&uniform_indices(m.replay.len(), size, rng)),
        }
    }

    /// The replay's bytes, for a checkpoint's `replay.bin` (each form has its own magic number).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = vec![];
        match self {
            Memory::Flat { replay, .. } => replay.write_to(&mut bytes),
            Memory::Pixels(m) => m.replay.write_to(&mut bytes),
        }
        .expect("writing to memory cannot fail");
        bytes
    }

    /// Replaces the stored transitions with a checkpoint's (pending n-step steps are dropped: a resumed run
    /// starts a fresh episode).
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), String> {
        match self {
            Memory::Flat { replay, nstep } => {
                *replay = Replay::read_from(bytes)?;
                nstep.clear();
            }
            Memory::Pixels(m) => {
                let replay = PixelReplay::read_from(bytes, m.replay.n_step())?;
                if (replay.stack(), replay.frame_len()) != (m.replay.stack(), m.replay.frame_len()) {
                    return Err(format!(
                        "the pixel replay holds stacks of {} frames of {} bytes, the run {} of {}",
                        replay.stack(),
                        replay.frame_len(),
                        m.replay.stack(),
                        m.replay.frame_len()
                    ));
                }
                m.restore(replay);
            }
        }
        Ok(())
    }
}

/// The learner: online and target networks, optimiser, replay and its random stream.
pub struct Dqn {
    pub config: DqnConfig,
    pub online: Net,
    /// A plain (no autodiff) copy refreshed after each update, for acting.
    acting: Net,
    target: Net,
    pub optim: Optimizer,
    pub memory: Memory,
    pub rng: Xoshiro256PlusPlus,
    pub updates: usize,
    device: Device,
    obs_len: usize,
    /// Acting at batch 1 runs on one thread (see [`nn::acting_pool`]).
    pool: rayon::ThreadPool,
}

impl Dqn {
    /// A fresh agent whose networks live on `device` (with autodiff added: the online network trains).
    pub fn new(
        config: DqnConfig,
        spec: &NetSpec,
        binary_obs: bool,
        seed: u64,
        device: &Device,
    ) -> Result<Self, String> {
        let device = device.clone().autodiff();
        device.seed(seed);
        let online = Net::new(spec, &device)?;
        let obs_len = spec.obs_shape.iter().product();
        // burn creates parameters lazily: run once so copies share materialised weights.
        let _ = online.scores(Tensor::zeros([1, obs_len], &device));
        let optim = match config.optimizer {
            OptimizerConfig::Adam { lr } => Optimizer::new(Rule::adam(), lr),
            OptimizerConfig::RmsProp { lr, alpha, epsilon, centered } => {
                Optimizer::new(Rule::RmsProp { alpha, eps: epsilon, centered }, lr)
            }
        };
        let memory =
            Memory::new(config.replay_capacity, obs_len, binary_obs, config.pixel_stack, config.n_step, config.gamma)?;
        Ok(Dqn {
            memory,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed ^ 0xD0_D0),
            acting: online.valid(),
            target: online.valid(),
            online,
            optim,
            updates: 0,
            device,
            obs_len,
            pool: nn::acting_pool(),
            config,
        })
    }

    /// ε-greedy action at environment step `step`.
    pub fn act(&mut self, obs: &[f32], step: usize) -> usize {
        let n = self.online.spec().actions;
        if self.rng.random::<f64>() < self.config.epsilon(step) {
            return self.rng.random_range(0..n);
        }
        self.greedy(obs)
    }

    /// The action with the largest Q value.
    pub fn greedy(&self, obs: &[f32]) -> usize {
        let x = nn::batch(obs, self.obs_len, &self.device.clone().inner());
        self.pool.install(|| nn::argmax_rows(self.acting.scores(x))[0])
    }

    /// Records one environment step; learning uses the n-step transitions it completes.
    pub fn observe(
        &mut self,
        obs: &[f32],
        action: usize,
        reward: f64,
        next_obs: &[f32],
        terminated: bool,
        truncated: bool,
    ) {
        let reward = if self.config.clip_rewards { crate::agents::ppo::sign(reward) } else { reward as f32 };
        self.memory.push_step(obs, action, reward, next_obs, terminated, truncated);
    }

    /// Whether environment step `step` (1-based count of steps taken) is due an update.
    pub fn should_update(&self, step: usize) -> bool {
        step > self.config.learning_starts
            && step.is_multiple_of(self.config.train_every)
            && self.memory.len() >= self.config.batch_size
    }

    /// One gradient update on a sampled batch; returns the loss.
    pub fn update(&mut self) -> f32 {
        let c = &self.config;
        let b = self.memory.sample(c.batch_size, &mut self.rng);
        let bs = c.batch_size;
        let plain = self.device.clone().inner();
        let next = nn::batch(&b.next_obs, self.obs_len, &plain);
        // Bootstrap value: max_a Q_target(s', a), or Q_target(s', argmax_a Q_online(s', a)) for Double DQN.
        let q_next_target = self.target.scores(next.clone());
        let bootstrap: Vec<f32> = if c.double {
            let chosen = nn::argmax_rows(self.acting.scores(next));
            let qt = nn::to_vec(q_next_target);
            let n = self.online.spec().actions;
            chosen.iter().enumerate().map(|(i, &a)| qt[i * n + a]).collect()
        } else {
            nn::to_vec(q_next_target.max_dim(1))
        };
        let targets: Vec<f32> = (0..bs)
            .map(|i| b.rewards[i] + c.gamma.powi(b.steps[i] as i32) * b.not_terminal[i] * bootstrap[i])
            .collect();

        let obs = nn::batch(&b.obs, self.obs_len, &self.device);
        let actions: Vec<i64> = b.actions.iter().map(|&a| a as i64).collect();
        let actions = Tensor::<2, Int>::from_data(TensorData::new(actions, [bs, 1]), &self.device);
        let q = self.online.scores(obs).gather(1, actions);
        let y = Tensor::<2>::from_data(TensorData::new(targets, [bs, 1]), &self.device);
        let loss = match c.loss {
            Loss::Huber { delta } => HuberLossConfig::new(delta).init().forward(q, y, Reduction::Mean),
            Loss::Mse => MseLoss::new().forward(q, y, Reduction::Mean),
        };
        let loss_value = nn::to_vec(loss.clone())[0];

        let grads = GradientsParams::from_grads(loss.backward(), &self.online);
        let online = std::mem::replace(&mut self.online, self.acting.clone());
        self.online = self.optim.step(online, grads);
        self.acting = self.online.valid();
        self.updates += 1;
        if self.updates.is_multiple_of(c.target_update_every) {
            self.target = self.online.valid();
        }
        loss_value
    }

    /// Copies of the weights for checkpoints: (online, target).
    pub fn nets(&self) -> (&Net, &Net) {
        (&self.online, &self.target)
    }

    /// Replaces the weights (resuming from a checkpoint).
    pub fn set_nets(&mut self, online: Net, target: Net) {
        self.online = online.train();
        self.acting = self.online.valid();
        self.target = target.valid();
    }
}

/// Trains DQN in `s` up to the run's step budget: one environment step at a time, an update every `train_every`
/// steps once learning has started, the episode logged when it ends, and a checkpoint when one is due.
pub(crate) fn train(s: &mut Session, config: DqnConfig) -> Result<(), TrainError> {
    let mut env = s.card.env.make()?;
    let binary = matches!(env.spec().observation, ObsSpace::Binary { .. });
    let mut agent = Dqn::new(config, &s.card.net, binary, s.card.seed, &s.device).map_err(TrainError::Agent)?;
    if s.resumed {
        agent.set_nets(s.resume_net("online.safetensors")?, s.resume_net("target.safetensors")?);
        let (path, bytes) = s.resume_file("replay.bin")?;
        agent.memory.restore(&bytes).map_err(|message| RunError::File { path, message })?;
        agent.rng = s.state.agent_rng.clone();
        agent.updates = s.state.updates;
        agent.optim = s.resume_optimizer()?;
    }

    let mut obs = env.reset(Some(s.env_seed())).to_vec();
    let (mut ret, mut len, mut loss) = (0.0f64, 0usize, f32::NAN);
    while s.state.step < s.card.total_steps {
        let before = s.state.step;

        // Collect: one ε-greedy step into the replay buffer.
        let action = agent.act(&obs, s.state.step);
        let step = env.step(&Action::Discrete(action))?;
        let (next, reward, terminated, truncated) = (step.obs.to_vec(), step.reward, step.terminated, step.truncated);
        agent.observe(&obs, action, reward, &next, terminated, truncated);
        s.state.step += 1;
        (ret, len, obs) = (ret + reward, len + 1, next);

        // Update.
        if agent.should_update(s.state.step) {
            loss = agent.update();
            s.check_loss(loss)?;
        }

        // Log the episode when it ends, with the latest update's loss.
        let ended = terminated || truncated;
        if ended {
            s.episode(ret, len, loss, agent.config.epsilon(s.state.step))?;
            (ret, len) = (0.0, 0);
            obs = env.reset(None).to_vec();
        }

        // Checkpoint: both networks, the replay buffer and the optimiser (a resumed run starts a fresh episode).
        let due = s.checkpoint_due(before);
        if due {
            let (online, target) = agent.nets();
            let files = [
                ("online.safetensors", weights_bytes(online)?),
                ("target.safetensors", weights_bytes(target)?),
                ("replay.bin", agent.memory.to_bytes()),
                ("optim.bin", agent.optim.to_bytes()),
            ];
            s.checkpoint(agent.updates, &agent.rng, &files)?;
        }
        if ended || due {
            s.report();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::Transition;

    fn transition(obs: &[f32], action: usize, reward: f32, next_obs: &[f32], terminal: bool) -> Transition {
        Transition { obs: obs.to_vec(), action, reward, next_obs: next_obs.to_vec(), terminal, steps: 1 }
    }

    /// The pixel replay is storage only: fed the same stacked frames, a DQN keeping frames once and one keeping
    /// float copies sample the same batches and make bit-identical updates.
    #[test]
    fn pixel_replay_learns_exactly_as_float_copies() {
        let k = 4;
        let base = DqnConfig {
            learning_starts: 0,
            batch_size: 8,
            replay_capacity: 500,
            n_step: 3,
            optimizer: OptimizerConfig::Adam { lr: 1e-3 },
            torso: Torso::Mlp { hidden: vec![16] },
            ..DqnConfig::default()
        };
        let spec = base.net_spec(&[k, 3, 2], 3);
        let device = crate::nn::device::for_tests();
        let mut flat = Dqn::new(base.clone(), &spec, false, 5, &device).unwrap();
        let pixel_config = DqnConfig { pixel_stack: Some(k), ..base };
        let mut pixel = Dqn::new(pixel_config, &spec, false, 5, &device).unwrap();
        assert!(matches!(pixel.memory, Memory::Pixels(_)) && matches!(flat.memory, Memory::Flat { .. }));
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let mut frame = || (0..6).map(|_| rng.random_range(0..=255u8) as f32).collect::<Vec<f32>>();
        let f0 = frame();
        let mut obs: Vec<f32> = (0..k).flat_map(|_| f0.clone()).collect();
        let mut losses = (vec![], vec![]);
        for t in 0..200 {
            let mut next = obs[6..].to_vec();
            next.extend(frame());
            let end = t % 23 == 22;
            for agent in [&mut flat, &mut pixel] {
                agent.observe(&obs, t % 3, (t % 5) as f64 - 2.0, &next, end, false);
            }
            obs = if end {
                let f = frame();
                (0..k).flat_map(|_| f.clone()).collect()
            } else {
                next
            };
            if flat.should_update(t + 1) {
                assert!(pixel.should_update(t + 1));
                losses.0.push(flat.update());
                losses.1.push(pixel.update());
            }
        }
        assert!(losses.0.len() > 150);
        assert_eq!(losses.0, losses.1);
    }

    /// With terminal transitions of reward 1, the regression target is exactly 1: Q(s, a) must converge to it.
    #[test]
    fn learns_a_constant_terminal_target() {
        let config = DqnConfig {
            batch_size: 32,
            learning_starts: 0,
            optimizer: OptimizerConfig::Adam { lr: 1e-2 },
            ..DqnConfig::cartpole()
        };
        let spec = config.net_spec(&[4], 2);
        let mut dqn = Dqn::new(config, &spec, false, 0, &crate::nn::device::for_tests()).unwrap();
        for i in 0..64 {
            let s = [i as f32 / 64.0, 0.5, -0.5, 0.1];
            let Memory::Flat { replay, .. } = &mut dqn.memory else { unreachable!("CartPole keeps float copies") };
            replay.push(&transition(&s, i % 2, 1.0, &s, true));
        }
        let first = dqn.update();
        let mut last = first;
        for _ in 0..300 {
            last = dqn.update();
        }
        eprintln!("loss {first} -> {last}");
        assert!(last < 1e-3, "loss {first} -> {last}");
        let q = nn::to_vec(dqn.online.scores(nn::batch(&[0.5, 0.5, -0.5, 0.1], 4, &crate::nn::device::for_tests())));
        assert!(q.iter().all(|v| (v - 1.0).abs() < 0.05), "{q:?}");
    }
}
