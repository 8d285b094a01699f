//! Rainbow (Hessel et al. 2018): DQN with prioritised replay, n-step returns, double Q-learning, dueling heads,
//! noisy layers and a distributional (C51) output, each switchable for ablations as in Obando-Ceron & Castro
//! (2021), "Revisiting Rainbow". Read top to bottom: config, agent (act, observe, update), the training loop.
//!
//! Pieces: [`crate::per`] (sum tree, stratified draws, importance weights), [`crate::distributional`] (the C51
//! projection of the n-step target), the network's noisy layers and distributional head (`xrl_nn`), and the
//! replay of DQN ([`Memory`]: float copies, or pixel frames stored once). Defaults: [`RainbowConfig::minatar`],
//! the Revisiting Rainbow MinAtar configuration.

use crate::agents::dqn::Memory;
use crate::distributional::{Support, project};
use crate::nn::{self, Atoms, HeadKind, Net, NetSpec, Pass, Torso};
use crate::optim::{Optimizer, Rule};
use crate::per::{PerConfig, Prioritized};
use crate::run::{RunError, weights_bytes};
use crate::train::{Session, TrainError};
use burn::module::Module;
use burn::nn::loss::HuberLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};
use xrl_env::{Action, ObsSpace};

/// Every hyper-parameter of Rainbow; `None` switches a part off.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RainbowConfig {
    pub gamma: f32,
    pub n_step: usize,
    pub double: bool,
    pub dueling: bool,
    /// σ0 of the noisy layers on the head (Fortunato et al.'s 0.5); `None`: plain layers.
    pub noisy: Option<f32>,
    /// The C51 support; `None`: scalar Q values and the Huber loss.
    pub atoms: Option<Atoms>,
    /// Prioritised replay; `None`: uniform sampling.
    pub per: Option<PerConfig>,
    pub replay_capacity: usize,
    pub batch_size: usize,
    /// Environment steps of uniformly random play before learning starts.
    pub learning_starts: usize,
    /// Environment steps per gradient update.
    pub train_every: usize,
    /// Gradient updates between target-network copies.
    pub target_update_every: usize,
    pub epsilon_start: f64,
    pub epsilon_end: f64,
    /// Steps (after `learning_starts`) over which ε falls linearly; ε-greedy runs beside the noisy layers, as in
    /// the Revisiting Rainbow configuration.
    pub epsilon_decay_steps: usize,
    pub lr: f64,
    pub adam_epsilon: f32,
    /// Global gradient-norm clip (`None`: none).
    pub max_grad_norm: Option<f32>,
    /// δ of the Huber loss of scalar Q values.
    pub huber_delta: f32,
    pub torso: Torso,
    /// Learn from the rewards' signs; logged returns stay the game's scores.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clip_rewards: bool,
    /// Stacked grey frames stored once each (Atari), as DQN's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixel_stack: Option<usize>,
}

impl Default for RainbowConfig {
    fn default() -> Self {
        RainbowConfig::minatar()
    }
}

impl RainbowConfig {
    /// Revisiting Rainbow's MinAtar configuration (Dopamine's `minatar` gin files): Dopamine's MinAtar network
    /// (conv 16 3×3 → the head), 51 atoms on [−100, 100], n 3, prioritised replay (α 0.5, β 0.4 → 1 over the run),
    /// noisy dueling double heads, Adam 1e-4 with ε 3.125e-4, replay 100k, batch 32, 1,000 random steps, an update
    /// every 4 steps, the target every 1,000 steps (250 updates), ε 1 → 0.01 over 250k steps.
    pub fn minatar() -> Self {
        RainbowConfig {
            gamma: 0.99,
            n_step: 3,
            double: true,
            dueling: true,
            noisy: Some(0.5),
            atoms: Some(Atoms { n: 51, v_min: -100.0, v_max: 100.0 }),
            per: Some(PerConfig::default()),
            replay_capacity: 100_000,
            batch_size: 32,
            learning_starts: 1_000,
            train_every: 4,
            target_update_every: 250,
            epsilon_start: 1.0,
            epsilon_end: 0.01,
            epsilon_decay_steps: 250_000,
            lr: 1e-4,
            adam_epsilon: 3.125e-4,
            max_grad_norm: None,
            huber_delta: 1.0,
            torso: Torso::MinatarConv,
            clip_rewards: false,
            pixel_stack: None,
        }
    }

    /// The IFE seed's Atari Rainbow, scaled to one environment: its double dueling heads without noise or C51,
    /// n 3, prioritised replay (α 0.5, β 0.45 → 1), Adam 2.5e-4 with ε 0.005/batch, Huber, gradient norm 10, ε
    /// 1 → 0.01 over 1M frames, rewards clipped. Changed for two cores: one environment instead of 64 with batch
    /// 32 every 4 steps (the seed's 8 samples per new transition kept; it drew 512 per vector step of 64), the
    /// target every 8,000 steps (its 32,000 frames), replay 100k (its 2^20) after 20k random steps (its 100k).
    pub fn atari(stack: usize) -> Self {
        RainbowConfig {
            noisy: None,
            atoms: None,
            per: Some(PerConfig { beta_start: 0.45, ..PerConfig::default() }),
            learning_starts: 20_000,
            target_update_every: 2_000,
            lr: 2.5e-4,
            adam_epsilon: 0.005 / 32.0,
            max_grad_norm: Some(10.0),
            torso: Torso::NatureCnn,
            clip_rewards: true,
            pixel_stack: Some(stack),
            ..RainbowConfig::minatar()
        }
    }

    /// The preset for an observation shape: Atari's for stacked frames, MinAtar's otherwise.
    pub fn for_env(obs_shape: &[usize]) -> Self {
        match obs_shape {
            [_, 10, 10] => RainbowConfig::minatar(),
            [k, h, _] if *h > 10 => RainbowConfig::atari(*k),
            _ => RainbowConfig { torso: Torso::Mlp { hidden: vec![128, 128] }, ..RainbowConfig::minatar() },
        }
    }

    pub fn net_spec(&self, obs_shape: &[usize], actions: usize) -> NetSpec {
        let head = if self.dueling { HeadKind::Dueling } else { HeadKind::Q };
        let spec = NetSpec {
            atoms: self.atoms,
            noisy: self.noisy,
            ..NetSpec::new(obs_shape.to_vec(), actions, self.torso.clone(), head)
        };
        // The IFE seed's dueling streams each read the extractor through their own FC 256.
        if self.dueling && matches!(self.torso, Torso::Ife { .. }) { spec.with_streams() } else { spec }
    }

    /// ε at environment step `step`.
    pub fn epsilon(&self, step: usize) -> f64 {
        crate::agents::dqn::linear_epsilon(
            step,
            self.learning_starts,
            self.epsilon_start,
            self.epsilon_end,
            self.epsilon_decay_steps,
        )
    }

    /// The run's name for its parts switched off, e.g. "Rainbow (no PER, no C51)".
    pub fn name(&self) -> String {
        let off: Vec<&str> = [
            (self.per.is_none(), "no PER"),
            (self.noisy.is_none(), "no noisy"),
            (self.atoms.is_none(), "no C51"),
            (!self.double, "no double"),
            (!self.dueling, "no dueling"),
        ]
        .into_iter()
        .filter_map(|(off, name)| off.then_some(name))
        .collect();
        if off.is_empty() { "Rainbow".into() } else { format!("Rainbow ({})", off.join(", ")) }
    }
}

/// The learner: online, acting and target networks, optimiser, replay, its sampler and one random stream.
pub struct Rainbow {
    pub config: RainbowConfig,
    pub online: Net,
    /// A plain copy (no autodiff) refreshed after each update, for acting.
    acting: Net,
    target: Net,
    pub optim: Optimizer,
    pub memory: Memory,
    pub per: Option<Prioritized>,
    pub rng: Xoshiro256PlusPlus,
    pub updates: usize,
    device: Device,
    obs_len: usize,
    pool: rayon::ThreadPool,
}

impl Rainbow {
    pub fn new(
        config: RainbowConfig,
        spec: &NetSpec,
        binary_obs: bool,
        seed: u64,
        device: &Device,
    ) -> Result<Self, String> {
        if spec.atoms != config.atoms || spec.noisy != config.noisy {
            return Err("the network's atoms and noise differ from the agent's: make it with net_spec".into());
        }
        let device = device.clone().autodiff();
        device.seed(seed);
        let online = Net::new(spec, &device)?;
        let obs_len = spec.obs_shape.iter().product();
        let _ = online.scores(Tensor::zeros([1, obs_len], &device));
        let memory =
            Memory::new(config.replay_capacity, obs_len, binary_obs, config.pixel_stack, config.n_step, config.gamma)?;
        let per = config.per.clone().map(|p| Prioritized::new(config.replay_capacity, p)).transpose()?;
        let rule = Rule::Adam { beta1: 0.9, beta2: 0.999, eps: config.adam_epsilon };
        Ok(Rainbow {
            optim: Optimizer::new(rule, config.lr),
            memory,
            per,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x5A1B_0000),
            acting: online.valid(),
            target: online.valid(),
            online,
            updates: 0,
            device,
            obs_len,
            pool: nn::acting_pool(),
            config,
        })
    }

    fn pass(&self) -> Pass {
        Pass { noise: self.config.noisy.is_some(), ..Pass::default() }
    }

    /// ε-greedy over the noisy network (fresh noise every step, as Dopamine draws it per forward pass).
    pub fn act(&mut self, obs: &[f32], step: usize) -> usize {
        let n = self.online.spec().actions;
        if self.rng.random::<f64>() < self.config.epsilon(step) {
            return self.rng.random_range(0..n);
        }
        self.acting.reset_noise(&mut self.rng);
        let x = nn::batch(obs, self.obs_len, &self.device.clone().inner());
        let pass = self.pass();
        let q = self.pool.install(|| self.acting.forward(x, &pass).q.expect("Rainbow nets have Q values"));
        nn::argmax_rows(q)[0]
    }

    /// Records one environment step; new transitions enter the sampler at the largest priority so far.
    pub fn observe(
        &mut self,
        obs: &[f32],
        action: usize,
        reward: f64,
        next_obs: &[f32],
        terminated: bool,
        truncated: bool,
    ) -> Result<(), String> {
        let reward = if self.config.clip_rewards { crate::agents::ppo::sign(reward) } else { reward as f32 };
        let (written, dropped) = self.memory.push_step(obs, action, reward, next_obs, terminated, truncated);
        if let Some(per) = &mut self.per {
            dropped.into_iter().try_for_each(|s| per.remove(s))?;
            written.into_iter().try_for_each(|s| per.insert(s))?;
        }
        Ok(())
    }

    pub fn should_update(&self, step: usize) -> bool {
        step > self.config.learning_starts
            && step.is_multiple_of(self.config.train_every)
            && self.memory.len() >= self.config.batch_size
    }

    /// One gradient update at environment step `step` (β's schedule); returns the mean loss.
    pub fn update(&mut self, step: usize) -> Result<f32, String> {
        let c = self.config.clone();
        let bs = c.batch_size;
        let (slots, weights) = match &self.per {
            Some(per) => per.sample(bs, step, &mut self.rng)?,
            None => (self.memory.uniform_slots(bs, &mut self.rng), vec![1.0; bs]),
        };
        let b = self.memory.batch_slots(&slots);
        self.online.reset_noise(&mut self.rng);
        self.target.reset_noise(&mut self.rng);
        let pass = self.pass();
        let plain = self.device.clone().inner();
        let n_actions = self.online.spec().actions;
        let next = nn::batch(&b.next_obs, self.obs_len, &plain);
        let discounts: Vec<f32> = (0..bs).map(|i| c.gamma.powi(b.steps[i] as i32) * b.not_terminal[i]).collect();
        // The bootstrap action a* = argmax Q(s'): the online network's for double Q-learning, else the target's.
        let online_next = c.double.then(|| nn::argmax_rows(self.online.forward(next.clone(), &pass).q.expect("Q")));
        let obs = nn::batch(&b.obs, self.obs_len, &self.device);
        let actions: Vec<i64> = b.actions.iter().map(|&a| a as i64).collect();

        let (per_sample, priorities) = if let Some(atoms) = c.atoms {
            // C51: project r + γⁿ z onto the support under p_target(s', a*), then cross-entropy.
            let n = atoms.n;
            let target_logp = nn::to_vec(self.target.log_distribution(next, &pass).expect("atoms"));
            let support = Support::new(atoms.v_min, atoms.v_max, n)?;
            let z = atoms.values();
            let chosen: Vec<usize> = online_next.unwrap_or_else(|| {
                (0..bs)
                    .map(|i| {
                        let q = |a: usize| -> f32 {
                            let row = &target_logp[(i * n_actions + a) * n..(i * n_actions + a + 1) * n];
                            row.iter().zip(&z).map(|(l, z)| l.exp() * z).sum()
                        };
                        (0..n_actions).max_by(|&x, &y| q(x).total_cmp(&q(y))).unwrap_or(0)
                    })
                    .collect()
            });
            let next_probs: Vec<f32> = (0..bs)
                .flat_map(|i| {
                    let at = (i * n_actions + chosen[i]) * n;
                    target_logp[at..at + n].iter().map(|l| l.exp()).collect::<Vec<_>>()
                })
                .collect();
            let m = project(&support, &next_probs, &b.rewards, &discounts)?;
            let logp = self.online.log_distribution(obs, &pass).expect("atoms");
            let idx: Vec<i64> = actions.iter().flat_map(|&a| std::iter::repeat_n(a, n)).collect();
            let idx = Tensor::<3, Int>::from_data(TensorData::new(idx, [bs, 1, n]), &self.device);
            let logp_a: Tensor<2> = logp.gather(1, idx).reshape([bs, n]);
            let m = Tensor::<2>::from_data(TensorData::new(m, [bs, n]), &self.device);
            let ce = (m * logp_a).sum_dim(1).neg();
            let values = nn::to_vec(ce.clone());
            (ce, values)
        } else {
            let q_next = self.target.forward(next, &pass).q.expect("Q");
            let qt = nn::to_vec(q_next);
            let bootstrap: Vec<f32> = (0..bs)
                .map(|i| {
                    let row = &qt[i * n_actions..(i + 1) * n_actions];
                    match &online_next {
                        Some(a) => row[a[i]],
                        None => row.iter().copied().fold(f32::NEG_INFINITY, f32::max),
                    }
                })
                .collect();
            let y: Vec<f32> = (0..bs).map(|i| b.rewards[i] + discounts[i] * bootstrap[i]).collect();
            let actions = Tensor::<2, Int>::from_data(TensorData::new(actions, [bs, 1]), &self.device);
            let q = self.online.forward(obs, &pass).q.expect("Q").gather(1, actions);
            let q_values = nn::to_vec(q.clone());
            let td: Vec<f32> = q_values.iter().zip(&y).map(|(q, y)| (q - y).abs()).collect();
            let y = Tensor::<2>::from_data(TensorData::new(y, [bs, 1]), &self.device);
            (HuberLossConfig::new(c.huber_delta).init().forward_no_reduction(q, y), td)
        };
        // Importance weights correct prioritised sampling's bias (all 1 without it).
        let w = Tensor::<2>::from_data(TensorData::new(weights, [bs, 1]), &self.device);
        let loss = (per_sample * w).mean();
        let loss_value = nn::to_vec(loss.clone())[0];
        if !loss_value.is_finite() {
            return Ok(loss_value);
        }
        let mut grads = GradientsParams::from_grads(loss.backward(), &self.online);
        if let Some(max) = c.max_grad_norm {
            self.online.clip_grad_norm(&mut grads, max);
        }
        let online = std::mem::replace(&mut self.online, self.acting.clone());
        self.online = self.optim.step(online, grads);
        self.acting = self.online.valid();
        self.updates += 1;
        if self.updates.is_multiple_of(c.target_update_every) {
            self.target = self.online.valid();
        }
        if let Some(per) = &mut self.per {
            per.update(&slots, &priorities)?;
        }
        Ok(loss_value)
    }

    /// Replaces the weights (resuming from a checkpoint).
    pub fn set_nets(&mut self, online: Net, target: Net) {
        self.online = online.train();
        self.acting = self.online.valid();
        self.target = target.valid();
    }
}

/// Trains Rainbow in `s` up to the run's step budget: one ε-greedy (noisy) step at a time into the replay, an
/// update every `train_every` steps once learning has started, episodes logged, checkpoints when due.
pub(crate) fn train(s: &mut Session, config: RainbowConfig) -> Result<(), TrainError> {
    let mut env = s.card.env.make()?;
    let binary = matches!(env.spec().observation, ObsSpace::Binary { .. });
    let mut agent = Rainbow::new(config, &s.card.net, binary, s.card.seed, &s.device).map_err(TrainError::Agent)?;
    if s.resumed {
        agent.set_nets(s.resume_net("online.safetensors")?, s.resume_net("target.safetensors")?);
        let (path, bytes) = s.resume_file("replay.bin")?;
        agent.memory.restore(&bytes).map_err(|message| RunError::File { path, message })?;
        if let Some(per) = &mut agent.per {
            let (path, bytes) = s.resume_file("priorities.bin")?;
            per.restore(&bytes).map_err(|message| RunError::File { path, message })?;
        }
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
        agent.observe(&obs, action, reward, &next, terminated, truncated).map_err(TrainError::Agent)?;
        s.state.step += 1;
        (ret, len, obs) = (ret + reward, len + 1, next);

        if agent.should_update(s.state.step) {
            loss = agent.update(s.state.step).map_err(TrainError::Agent)?;
            s.check_loss(loss)?;
        }

        let ended = terminated || truncated;
        if ended {
            s.episode(ret, len, loss, agent.config.epsilon(s.state.step))?;
            (ret, len) = (0.0, 0);
            obs = env.reset(None).to_vec();
        }

        // Checkpoint: both networks, the replay, its priorities and the optimiser.
        let due = s.checkpoint_due(before);
        if due {
            let mut files = vec![
                ("online.safetensors", weights_bytes(&agent.online)?),
                ("target.safetensors", weights_bytes(&agent.target)?),
                ("replay.bin", agent.memory.to_bytes()),
                ("optim.bin", agent.optim.to_bytes()),
            ];
            if let Some(per) = &agent.per {
                files.push(("priorities.bin", per.to_bytes()));
            }
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

    /// Terminal transitions of reward 1: the regression target (C51: a Dirac at 1, split between the atoms 0.8 and
    /// 1.2) is exact, so each ablation's Q(s, a) must reach 1; prioritised sampling's priorities move off their
    /// initial maximum.
    #[test]
    fn every_variant_learns_a_constant_terminal_target() {
        let device = crate::nn::device::for_tests();
        for (c51, per, noisy) in [(true, true, true), (false, true, false), (true, false, false)] {
            let config = RainbowConfig {
                atoms: c51.then_some(Atoms { n: 51, v_min: -10.0, v_max: 10.0 }),
                per: per.then(PerConfig::default),
                noisy: noisy.then_some(0.5),
                learning_starts: 0,
                lr: 1e-2,
                torso: Torso::Mlp { hidden: vec![32] },
                replay_capacity: 256,
                ..RainbowConfig::minatar()
            };
            let spec = config.net_spec(&[4], 2);
            let mut agent = Rainbow::new(config, &spec, false, 0, &device).unwrap();
            for i in 0..64 {
                let s = [i as f32 / 64.0, 0.5, -0.5, 0.1];
                agent.observe(&s, i % 2, 1.0, &s, true, false).unwrap();
            }
            assert_eq!(agent.memory.len(), 64);
            let first = agent.update(1).unwrap();
            let mut last = first;
            for step in 0..400 {
                last = agent.update(step + 2).unwrap();
            }
            let q = nn::to_vec(agent.online.scores(nn::batch(&[0.5, 0.5, -0.5, 0.1], 4, &device)));
            assert!(q.iter().all(|v| (v - 1.0).abs() < 0.1), "c51 {c51} per {per} noisy {noisy}: {q:?}");
            assert!(last < first, "loss {first} -> {last}");
            if let Some(p) = &agent.per {
                assert!((0..64).any(|s| (p.tree().get(s) - p.max_priority()).abs() > 1e-3));
            }
        }
    }

    #[test]
    fn ablations_are_named_and_presets_are_valid() {
        assert_eq!(RainbowConfig::minatar().name(), "Rainbow");
        let c = RainbowConfig { per: None, atoms: None, ..RainbowConfig::minatar() };
        assert_eq!(c.name(), "Rainbow (no PER, no C51)");
        RainbowConfig::minatar().validate().unwrap();
        RainbowConfig::atari(4).validate().unwrap();
        let bad = RainbowConfig { atoms: Some(Atoms { n: 1, v_min: 0.0, v_max: 1.0 }), ..RainbowConfig::minatar() };
        assert!(bad.validate().unwrap_err().contains("atoms"));
    }
}
