//! PPO (Schulman et al. 2017) with CleanRL's `ppo_atari.py` semantics: N environment copies step together for
//! `n_steps`; advantages by GAE(λ); then `update_epochs` passes over the rollout in `n_minibatches` shuffled
//! minibatches, each a step of Adam on the clipped surrogate, the clipped value loss and the entropy bonus, with
//! per-minibatch advantage normalisation and global gradient-norm clipping; the learning rate is annealed linearly
//! to 0 over the run. Read top to bottom: config and presets, GAE, the agent and its update, the training loop.
//!
//! One departure from CleanRL, which treats a time-limit truncation as a termination: a truncated episode
//! bootstraps from the value of its final observation (as xrl's A2C does), so that CartPole's 500-step limit is
//! not taught as a failure.

use crate::agents::actor_critic::sample_softmax;
use crate::nn::{self, HeadKind, Net, NetSpec, Pass, Torso};
use crate::optim::{Optimizer, Rule};
use crate::run::weights_bytes;
use crate::train::{Session, TrainError};
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};
use xrl_env::Action;
use xrl_env::vector::{Autoreset, VecEnv};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PpoConfig {
    pub n_envs: usize,
    pub n_steps: usize,
    pub gamma: f32,
    pub gae_lambda: f32,
    pub n_minibatches: usize,
    pub update_epochs: usize,
    /// ε of the clipped surrogate (and of the clipped value loss).
    pub clip_coef: f32,
    pub clip_value_loss: bool,
    pub normalize_advantages: bool,
    pub entropy_coef: f32,
    pub value_coef: f32,
    pub max_grad_norm: f32,
    pub lr: f64,
    /// Anneal the learning rate linearly from `lr` to 0 over the run's updates.
    pub anneal_lr: bool,
    pub adam_epsilon: f32,
    pub torso: Torso,
    /// The critic reads its own copy of the torso's fully connected layers (separate actor and critic towers, as
    /// gymnax-blines' MinAtar networks); the actor and critic share the torso otherwise (CleanRL's Atari network).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub separate_critic: bool,
    /// CleanRL's `layer_init` (every preset): orthogonal weights (gain √2 in the torso, 0.01 for the logits, 1 for
    /// the value), zero biases; PyTorch's default initialisation otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub orthogonal_init: bool,
    /// Learn from the sign of each reward (CleanRL's `ClipRewardEnv`, Atari preset); the logged returns stay the
    /// game's scores.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clip_rewards: bool,
}

impl Default for PpoConfig {
    /// CleanRL `ppo_atari.py`: 8 copies × 128 steps, 4 minibatches × 4 epochs, Adam 2.5e-4 (ε 1e-5) annealed,
    /// γ 0.99, λ 0.95, clip 0.1 (value loss clipped too), entropy 0.01, value 0.5, gradient norm 0.5, the Nature
    /// CNN initialised orthogonally.
    fn default() -> Self {
        PpoConfig {
            n_envs: 8,
            n_steps: 128,
            gamma: 0.99,
            gae_lambda: 0.95,
            n_minibatches: 4,
            update_epochs: 4,
            clip_coef: 0.1,
            clip_value_loss: true,
            normalize_advantages: true,
            entropy_coef: 0.01,
            value_coef: 0.5,
            max_grad_norm: 0.5,
            lr: 2.5e-4,
            anneal_lr: true,
            adam_epsilon: 1e-5,
            torso: Torso::NatureCnn,
            separate_critic: false,
            orthogonal_init: true,
            clip_rewards: true,
        }
    }
}

impl PpoConfig {
    /// CleanRL `ppo.py` (classic control): 4 copies, clip 0.2, an MLP 64-64.
    pub fn cartpole() -> Self {
        PpoConfig {
            n_envs: 4,
            clip_coef: 0.2,
            torso: Torso::Mlp { hidden: vec![64, 64] },
            clip_rewards: false,
            ..PpoConfig::default()
        }
    }

    /// gymnax-blines' MinAtar PPO: 64 copies × 128 steps, 8 minibatches × 4 epochs, Adam 5e-4 annealed, γ 0.999,
    /// λ 0.95, clip 0.2, entropy 0.01, separate actor and critic MLPs 256-256 on the flattened frame. (On Breakout,
    /// seed 0, 10M steps, greedy: 22.4 so; 19.9 with PyTorch's default initialisation; 18.4 with a shared torso too.)
    pub fn minatar() -> Self {
        PpoConfig {
            n_envs: 64,
            n_steps: 128,
            gamma: 0.999,
            n_minibatches: 8,
            clip_coef: 0.2,
            lr: 5e-4,
            torso: Torso::Mlp { hidden: vec![256, 256] },
            separate_critic: true,
            clip_rewards: false,
            ..PpoConfig::default()
        }
    }

    /// The preset for an observation shape: vectors CartPole's, C×10×10 frames MinAtar's, else Atari's.
    pub fn for_env(obs_shape: &[usize]) -> Self {
        match obs_shape {
            [_] => PpoConfig::cartpole(),
            [_, 10, 10] => PpoConfig::minatar(),
            _ => PpoConfig::default(),
        }
    }

    pub fn net_spec(&self, obs_shape: &[usize], actions: usize) -> NetSpec {
        let spec = NetSpec::new(obs_shape.to_vec(), actions, self.torso.clone(), HeadKind::ActorCritic);
        if self.separate_critic { spec.with_streams() } else { spec }
    }

    /// Steps per rollout (all copies).
    pub fn batch(&self) -> usize {
        self.n_envs * self.n_steps
    }
}

/// Generalised advantage estimates and the returns the value head regresses on (advantage + value), for a
/// time-major rollout of N copies (row t·N + i). `values` are V(s_t); `last_values` V of the observation after the
/// rollout; a terminated step bootstraps from nothing, a truncated one from its final observation's value
/// (`truncated_value`), and the estimate does not run across the end of an episode (`done`).
#[allow(clippy::too_many_arguments)]
pub fn gae(
    rewards: &[f32],
    values: &[f32],
    terminated: &[bool],
    truncated_value: &[Option<f32>],
    done: &[bool],
    last_values: &[f32],
    gamma: f32,
    lambda: f32,
) -> (Vec<f32>, Vec<f32>) {
    let n = last_values.len();
    let steps = rewards.len() / n.max(1);
    let mut adv = vec![0.0f32; rewards.len()];
    for (i, &last) in last_values.iter().enumerate() {
        let mut next_adv = 0.0f32;
        for t in (0..steps).rev() {
            let k = t * n + i;
            let next_value = if t + 1 < steps { values[k + n] } else { last };
            let bootstrap = if terminated[k] { 0.0 } else { truncated_value[k].unwrap_or(next_value) };
            let delta = rewards[k] + gamma * bootstrap - values[k];
            // An episode's end cuts the λ-chain: the next row belongs to a new episode.
            let carry = if done[k] { 0.0 } else { gamma * lambda * next_adv };
            adv[k] = delta + carry;
            next_adv = adv[k];
        }
    }
    let returns = adv.iter().zip(values).map(|(a, v)| a + v).collect();
    (adv, returns)
}

/// A rollout with what PPO keeps from acting: the log-probability of each action taken and V(s).
#[derive(Default)]
pub struct PpoRollout {
    pub obs: Vec<f32>,
    pub actions: Vec<usize>,
    pub logp: Vec<f32>,
    pub values: Vec<f32>,
    pub rewards: Vec<f32>,
    pub terminated: Vec<bool>,
    pub truncated_value: Vec<Option<f32>>,
    pub done: Vec<bool>,
}

/// One update's statistics, averaged over its minibatches (CleanRL's logged values).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct UpdateStats {
    pub loss: f32,
    pub policy_loss: f32,
    pub value_loss: f32,
    pub entropy: f32,
    /// The mean of (ratio − 1) − log ratio (CleanRL's `approx_kl`).
    pub approx_kl: f32,
    /// The share of samples whose ratio was clipped.
    pub clip_fraction: f32,
    pub lr: f64,
}

pub struct Ppo {
    pub config: PpoConfig,
    pub net: Net,
    acting: Net,
    pub optim: Optimizer,
    pub rng: Xoshiro256PlusPlus,
    pub updates: usize,
    device: Device,
    obs_len: usize,
}

impl Ppo {
    /// A fresh agent whose network lives on `device` (with autodiff added: it trains).
    pub fn new(config: PpoConfig, spec: &NetSpec, seed: u64, device: &Device) -> Result<Self, String> {
        if spec.core.is_some() {
            return Err("xrl's PPO is feed-forward; for a recurrent policy use --agent a2c --core".into());
        }
        let device = device.clone().autodiff();
        device.seed(seed);
        let net = Net::new(spec, &device)?;
        let net = if config.orthogonal_init { net.orthogonal_init(0.01) } else { net };
        let obs_len = spec.obs_shape.iter().product();
        let _ = net.scores(Tensor::zeros([1, obs_len], &device)); // materialise lazy parameters
        let rule = Rule::Adam { beta1: 0.9, beta2: 0.999, eps: config.adam_epsilon };
        let optim = Optimizer::new(rule, config.lr);
        Ok(Ppo {
            acting: net.valid(),
            net,
            optim,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x0990),
            updates: 0,
            device,
            obs_len,
            config,
        })
    }

    /// Samples one action per copy; returns the actions, their log-probabilities and V(s).
    pub fn act(&mut self, obs: &[f32]) -> (Vec<usize>, Vec<f32>, Vec<f32>) {
        let h = self.acting.forward(nn::batch(obs, self.obs_len, &self.device.clone().inner()), &Pass::default());
        let logits = h.logits.expect("actor-critic head");
        let [_, a] = logits.dims();
        let values = nn::to_vec(h.value.expect("actor-critic head"));
        let logp = nn::to_vec(log_softmax(logits, 1));
        let mut actions = Vec::with_capacity(values.len());
        let mut taken = Vec::with_capacity(values.len());
        for row in logp.chunks(a) {
            let action = sample_softmax(row, &mut self.rng);
            actions.push(action);
            taken.push(row[action]);
        }
        (actions, taken, values)
    }

    /// V(s) of one observation per row.
    pub fn values(&self, obs: &[f32]) -> Vec<f32> {
        let h = self.acting.forward(nn::batch(obs, self.obs_len, &self.device.clone().inner()), &Pass::default());
        nn::to_vec(h.value.expect("actor-critic head"))
    }

    /// The learning rate of the next update: annealed linearly to 0 over `total_updates`.
    pub fn lr_now(&self, total_updates: usize) -> f64 {
        if !self.config.anneal_lr {
            return self.config.lr;
        }
        let frac = 1.0 - self.updates as f64 / total_updates.max(1) as f64;
        self.config.lr * frac.max(0.0)
    }

    /// The loss of one minibatch (rows `idx` of the rollout) and its statistics.
    fn minibatch_loss(
        &self,
        r: &PpoRollout,
        advantages: &[f32],
        returns: &[f32],
        idx: &[usize],
    ) -> (Tensor<1>, [f32; 6]) {
        let c = &self.config;
        let b = idx.len();
        let d = &self.device;
        let obs: Vec<f32> =
            idx.iter().flat_map(|&k| r.obs[k * self.obs_len..(k + 1) * self.obs_len].iter().copied()).collect();
        let pick = |v: &[f32]| -> Vec<f32> { idx.iter().map(|&k| v[k]).collect() };
        let mut adv = pick(advantages);
        if c.normalize_advantages && b > 1 {
            let mean = adv.iter().sum::<f32>() / b as f32;
            // torch.std: the unbiased estimate.
            let std = (adv.iter().map(|a| (a - mean).powi(2)).sum::<f32>() / (b - 1) as f32).sqrt();
            adv.iter_mut().for_each(|a| *a = (*a - mean) / (std + 1e-8));
        }
        let col = |v: Vec<f32>| Tensor::<2>::from_data(TensorData::new(v, [b, 1]), d);
        let (adv, old_logp, old_values, ret) = (col(adv), col(pick(&r.logp)), col(pick(&r.values)), col(pick(returns)));
        let actions: Vec<i64> = idx.iter().map(|&k| r.actions[k] as i64).collect();
        let actions = Tensor::<2, Int>::from_data(TensorData::new(actions, [b, 1]), d);

        let h = self.net.forward(nn::batch(&obs, self.obs_len, d), &Pass::default());
        let logp_all = log_softmax(h.logits.expect("actor-critic head"), 1);
        let new_values = h.value.expect("actor-critic head");
        let logp = logp_all.clone().gather(1, actions);
        let log_ratio = logp - old_logp;
        let ratio = log_ratio.clone().exp();

        // Clipped surrogate: the larger of the two losses, so the update gains nothing by moving the ratio past
        // 1 ± ε.
        let pg1 = -(adv.clone() * ratio.clone());
        let pg2 = -(adv * ratio.clone().clamp(1.0 - c.clip_coef, 1.0 + c.clip_coef));
        let policy_loss = pg1.max_pair(pg2).mean();
        let value_loss = if c.clip_value_loss {
            let unclipped = (new_values.clone() - ret.clone()).powf_scalar(2.0);
            let clipped_v = old_values.clone() + (new_values - old_values).clamp(-c.clip_coef, c.clip_coef);
            let clipped = (clipped_v - ret).powf_scalar(2.0);
            unclipped.max_pair(clipped).mean().mul_scalar(0.5)
        } else {
            (new_values - ret).powf_scalar(2.0).mean().mul_scalar(0.5)
        };
        let entropy = -(logp_all.clone().exp() * logp_all).sum_dim(1).mean();
        let loss = policy_loss.clone() - entropy.clone().mul_scalar(c.entropy_coef)
            + value_loss.clone().mul_scalar(c.value_coef);

        let (lr_v, ratio_v) = (nn::to_vec(log_ratio), nn::to_vec(ratio));
        let kl = lr_v.iter().zip(&ratio_v).map(|(l, r)| (r - 1.0) - l).sum::<f32>() / b as f32;
        let clipped = ratio_v.iter().filter(|r| (*r - 1.0).abs() > c.clip_coef).count() as f32 / b as f32;
        let stats = [
            nn::to_vec(loss.clone())[0],
            nn::to_vec(policy_loss)[0],
            nn::to_vec(value_loss)[0],
            nn::to_vec(entropy)[0],
            kl,
            clipped,
        ];
        (loss, stats)
    }

    /// One PPO update on a rollout: GAE from `last_values`, then the epochs of minibatch steps.
    pub fn update(&mut self, r: &PpoRollout, last_values: &[f32], total_updates: usize) -> UpdateStats {
        let c = self.config.clone();
        let (advantages, returns) =
            gae(&r.rewards, &r.values, &r.terminated, &r.truncated_value, &r.done, last_values, c.gamma, c.gae_lambda);
        let lr = self.lr_now(total_updates);
        self.optim.lr = lr;
        let rows = r.rewards.len();
        let size = rows.div_ceil(c.n_minibatches.max(1));
        let mut order: Vec<usize> = (0..rows).collect();
        let (mut sums, mut count) = ([0.0f32; 6], 0);
        for _ in 0..c.update_epochs {
            order.shuffle(&mut self.rng);
            for idx in order.chunks(size) {
                let (loss, stats) = self.minibatch_loss(r, &advantages, &returns, idx);
                let mut grads = GradientsParams::from_grads(loss.backward(), &self.net);
                self.net.clip_grad_norm(&mut grads, c.max_grad_norm);
                let net = std::mem::replace(&mut self.net, self.acting.clone());
                self.net = self.optim.step(net, grads);
                sums.iter_mut().zip(stats).for_each(|(s, v)| *s += v);
                count += 1;
            }
        }
        self.acting = self.net.valid();
        self.updates += 1;
        let m = |i: usize| sums[i] / count.max(1) as f32;
        UpdateStats {
            loss: m(0),
            policy_loss: m(1),
            value_loss: m(2),
            entropy: m(3),
            approx_kl: m(4),
            clip_fraction: m(5),
            lr,
        }
    }

    /// Replaces the weights (resuming from a checkpoint).
    pub fn set_net(&mut self, net: Net) {
        self.net = net.train();
        self.acting = self.net.valid();
    }
}

/// CleanRL's `ClipRewardEnv` (`np.sign`): −1, 0 or 1. Not `f64::signum`, which makes 0 into 1 (a reward on every
/// step of an Atari game).
pub fn sign(reward: f64) -> f32 {
    if reward > 0.0 {
        1.0
    } else if reward < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Trains PPO in `s` up to the run's step budget: collect a rollout of every copy, update, log the episodes that
/// ended, checkpoint when one is due.
pub(crate) fn train(s: &mut Session, config: PpoConfig) -> Result<(), TrainError> {
    let n = config.n_envs;
    let env_card = s.card.env.clone();
    let mut venv = VecEnv::new(n, Autoreset::SameStep, |_| env_card.make())?;
    // An Atari step (4 emulated frames and the preprocessing) is worth a thread; a MinAtar step is not.
    venv.set_parallel(xrl_env::is_atari_id(&env_card.id));
    let mut agent = Ppo::new(config, &s.card.net, s.card.seed, &s.device).map_err(TrainError::Agent)?;
    if s.resumed {
        agent.set_net(s.resume_net("online.safetensors")?);
        agent.rng = s.state.agent_rng.clone();
        agent.updates = s.state.updates;
        agent.optim = s.resume_optimizer()?;
    }
    // The annealing schedule's length: the run's updates (a resume to a new --steps lengthens it).
    let total_updates = s.card.total_steps.div_ceil(agent.config.batch());

    let mut obs = venv.reset(Some(s.env_seed())).to_vec();
    let (mut rets, mut lens) = (vec![0.0f64; n], vec![0usize; n]);
    while s.state.step < s.card.total_steps {
        let before = s.state.step;
        let mut r = PpoRollout::default();
        let mut finished = vec![];
        for _ in 0..agent.config.n_steps {
            let (actions, logp, values) = agent.act(&obs);
            let acts: Vec<Action> = actions.iter().map(|&a| Action::Discrete(a)).collect();
            venv.step(&acts)?;
            r.obs.extend_from_slice(&obs);
            r.actions.extend_from_slice(&actions);
            r.logp.extend_from_slice(&logp);
            r.values.extend_from_slice(&values);
            for i in 0..n {
                let reward = venv.rewards()[i];
                let (term, trunc) = (venv.terminated()[i], venv.truncated()[i]);
                r.rewards.push(if agent.config.clip_rewards { sign(reward) } else { reward as f32 });
                r.terminated.push(term);
                let final_value = match (trunc && !term, &venv.final_obs()[i]) {
                    (true, Some(f)) => Some(agent.values(f)[0]),
                    _ => None,
                };
                r.truncated_value.push(final_value);
                r.done.push(term || trunc);
                rets[i] += reward;
                lens[i] += 1;
                if term || trunc {
                    finished.push((rets[i], lens[i]));
                    (rets[i], lens[i]) = (0.0, 0);
                }
            }
            obs = venv.obs().to_vec();
            s.state.step += n;
        }
        let last_values = agent.values(&obs);
        let stats = agent.update(&r, &last_values, total_updates);
        s.after_update(before, stats.loss, finished, agent.updates, &agent.rng, || {
            Ok(vec![("online.safetensors", weights_bytes(&agent.net)?), ("optim.bin", agent.optim.to_bytes())])
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reward_clipping_keeps_zero_at_zero() {
        assert_eq!([sign(0.0), sign(-0.0), sign(3.0), sign(-0.5), sign(1e-9)], [0.0, 0.0, 1.0, -1.0, 1.0]);
    }

    /// GAE by hand: two copies, three steps, γ 0.5, λ 0.5. Copy 0 terminates at t = 1; copy 1 is truncated at
    /// t = 0 (final value 8).
    #[test]
    fn gae_by_hand_across_terminations_and_truncations() {
        let rewards = [1.0, 1.0, 2.0, 2.0, 4.0, 4.0];
        let values = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0];
        let terminated = [false, false, true, false, false, false];
        let truncated_value = [None, Some(8.0), None, None, None, None];
        let done = [false, true, true, false, false, false];
        let (adv, ret) = gae(&rewards, &values, &terminated, &truncated_value, &done, &[10.0, 20.0], 0.5, 0.5);
        // Copy 0: t2 δ = 4 + 0.5·10 − 2.5 = 6.5, A = 6.5; t1 terminal δ = 2 − 1.5 = 0.5, A = 0.5 (chain cut);
        //         t0 δ = 1 + 0.5·1.5 − 0.5 = 1.25, A = 1.25 + 0.25·0.5 = 1.375.
        // Copy 1: t2 δ = 4 + 0.5·20 − 3 = 11, A = 11; t1 δ = 2 + 0.5·3 − 2 = 1.5, A = 1.5 + 0.25·11 = 4.25;
        //         t0 truncated: δ = 1 + 0.5·8 − 1 = 4, A = 4 (chain cut).
        let want = [1.375, 4.0, 0.5, 4.25, 6.5, 11.0];
        for (k, (a, w)) in adv.iter().zip(want).enumerate() {
            assert!((a - w).abs() < 1e-6, "row {k}: {a} vs {w}");
        }
        for k in 0..6 {
            assert!((ret[k] - (want[k] + values[k])).abs() < 1e-6);
        }
        // λ = 1 and no episode ends: the returns are the discounted returns bootstrapped from the last value.
        let (_, ret) = gae(&[1.0, 1.0], &[0.0, 0.0], &[false; 2], &[None; 2], &[false; 2], &[4.0], 0.5, 1.0);
        assert!((ret[1] - 3.0).abs() < 1e-6 && (ret[0] - 2.5).abs() < 1e-6, "{ret:?}");
    }

    /// The clipped losses by hand on a minibatch where the new policy is the one that acted (ratio 1): the
    /// surrogate is −mean(normalised advantage) = 0, the value loss ½·mean((V − R)²); then, after moving the
    /// old log-probabilities, the ratio is clipped at 1 ± ε.
    #[test]
    fn the_clipped_losses_by_hand() {
        let config = PpoConfig { clip_coef: 0.2, ..PpoConfig::cartpole() };
        let spec = config.net_spec(&[4], 2);
        let mut ppo = Ppo::new(config, &spec, 3, &crate::nn::device::for_tests()).unwrap();
        let obs = vec![0.1, -0.2, 0.3, 0.0, 0.5, 0.1, -0.4, 0.2, -0.3, 0.3, 0.1, -0.1];
        let (actions, logp, values) = ppo.act(&obs);
        let r = PpoRollout {
            obs: obs.clone(),
            actions,
            logp: logp.clone(),
            values: values.clone(),
            ..PpoRollout::default()
        };
        let (adv, ret) = ([1.0f32, -0.5, 2.0], [values[0] + 0.5, values[1] - 0.25, values[2] + 0.1]);
        let (_, stats) = ppo.minibatch_loss(&r, &adv, &ret, &[0, 1, 2]);
        assert!(stats[1].abs() < 1e-6, "normalised advantages have mean 0: {}", stats[1]);
        let want_v = 0.5 * (0.25 + 0.0625 + 0.01) / 3.0;
        assert!((stats[2] - want_v).abs() < 1e-5, "value loss {} vs {want_v}", stats[2]);
        assert!(stats[4].abs() < 1e-6 && stats[5] == 0.0, "ratio 1: no KL, nothing clipped");
        // The acting policy made action k less likely by a factor 2 than the new one: ratio 2, clipped to 1.2 for
        // positive advantages (loss −1.2·A) and left at 2 for negative ones (loss −2·A, the larger).
        let r2 = PpoRollout { logp: logp.iter().map(|l| l - 2f32.ln()).collect(), ..r };
        let (_, stats) = ppo.minibatch_loss(&r2, &adv, &ret, &[0, 1, 2]);
        let m = (1.0 - 0.5 + 2.0) / 3.0;
        let s = ((1.0f32 - m).powi(2) + (-0.5f32 - m).powi(2) + (2.0f32 - m).powi(2)) / 2.0;
        let norm: Vec<f32> = adv.iter().map(|a| (a - m) / (s.sqrt() + 1e-8)).collect();
        let want: f32 = norm.iter().map(|&a| if a > 0.0 { -1.2 * a } else { -2.0 * a }).sum::<f32>() / 3.0;
        assert!((stats[1] - want).abs() < 1e-5, "surrogate {} vs {want}", stats[1]);
        assert_eq!(stats[5], 1.0, "every ratio is outside 1 ± 0.2");
        assert!((stats[4] - (1.0 - 2f32.ln())).abs() < 1e-5, "approx KL (r − 1) − log r at r = 2");
    }

    #[test]
    fn the_learning_rate_anneals_to_zero_over_the_run() {
        let config = PpoConfig::cartpole();
        let spec = config.net_spec(&[4], 2);
        let mut ppo = Ppo::new(config, &spec, 0, &crate::nn::device::for_tests()).unwrap();
        assert_eq!(ppo.lr_now(10), 2.5e-4);
        ppo.updates = 5;
        assert!((ppo.lr_now(10) - 1.25e-4).abs() < 1e-12);
        ppo.updates = 10;
        assert_eq!(ppo.lr_now(10), 0.0);
        let recurrent = spec.with_core(crate::nn::Core { kind: crate::nn::CoreKind::Gru, hidden: 4 });
        assert!(Ppo::new(PpoConfig::cartpole(), &recurrent, 0, &crate::nn::device::for_tests()).is_err());
    }
}
