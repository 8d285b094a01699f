//! A2C (Mnih et al. 2016, synchronous): N environment copies step together for `n_steps`, then one update of a
//! shared actor-critic network on all N·n_steps transitions: policy gradient with n-step advantages, value
//! regression, entropy bonus, global gradient-norm clipping. Read top to bottom: config, agent, update, and the
//! training loop (`train`: collect a rollout, update, log, checkpoint).
//!
//! Defaults are Stable-Baselines3's (the A2C paper's Atari setting): 16 copies × 5 steps, RMSProp lr 7e-4
//! (α 0.99, ε 1e-5), γ 0.99, entropy 0.01, value 0.5, max gradient norm 0.5. [`A2cConfig::cartpole`] is the RL
//! Zoo's CartPole setting (8 copies, no entropy bonus); [`A2cConfig::minatar`] raises the learning rate.

use crate::agents::actor_critic::{self, LossConfig, Reduction, Rollout, returns, sample_softmax};
use crate::nn::{self, Core, HeadKind, Net, NetSpec, Pass, RecurrentState, Torso};
use crate::optim::{Optimizer, Rule};
use crate::run::weights_bytes;
use crate::train::{Session, TrainError};
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};
use xrl_env::Action;
use xrl_env::vector::{Autoreset, VecEnv};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct A2cConfig {
    pub n_envs: usize,
    pub n_steps: usize,
    pub gamma: f32,
    pub entropy_coef: f32,
    pub value_coef: f32,
    pub max_grad_norm: f32,
    pub lr: f64,
    pub rmsprop_alpha: f32,
    pub rmsprop_epsilon: f32,
    pub torso: Torso,
    /// An LSTM or GRU after the torso; its state is carried across steps per environment copy, zeroed at episode
    /// ends, and the update backpropagates through each rollout from the state it started with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core: Option<Core>,
}

impl Default for A2cConfig {
    fn default() -> Self {
        A2cConfig {
            n_envs: 16,
            n_steps: 5,
            gamma: 0.99,
            entropy_coef: 0.01,
            value_coef: 0.5,
            max_grad_norm: 0.5,
            lr: 7e-4,
            rmsprop_alpha: 0.99,
            rmsprop_epsilon: 1e-5,
            torso: Torso::MinatarCnn,
            core: None,
        }
    }
}

impl A2cConfig {
    /// RL Zoo's CartPole-v1 setting: 8 copies, no entropy bonus, an MLP 64-64.
    pub fn cartpole() -> Self {
        A2cConfig { n_envs: 8, entropy_coef: 0.0, torso: Torso::Mlp { hidden: vec![64, 64] }, ..A2cConfig::default() }
    }

    /// MinAtar: the defaults with lr 1e-3. On Breakout (seed 0, 1M frames) lr 7e-4 ended at 4.5 (last 100
    /// training episodes) and 4.8 greedy; 1e-3 at 5.4 and 6.2; 7e-4 with 20-step rollouts at 5.3 and 5.7.
    pub fn minatar() -> Self {
        A2cConfig { lr: 1e-3, ..A2cConfig::default() }
    }

    /// The same with a recurrent core. A preset without an entropy bonus gets 0.01: on CartPole, recurrent A2C
    /// without one collapsed to a deterministic policy for one seed in three (LSTM and GRU, 1M steps).
    pub fn with_core(self, core: Core) -> Self {
        let entropy_coef = if self.entropy_coef == 0.0 { 0.01 } else { self.entropy_coef };
        A2cConfig { core: Some(core), entropy_coef, ..self }
    }

    pub fn for_env(obs_shape: &[usize]) -> Self {
        match obs_shape {
            [_] => A2cConfig::cartpole(),
            [_, 10, 10] => A2cConfig::minatar(),
            // Atari frames (84 × 84, or the seeds' 80 × 80): the Nature CNN.
            _ => A2cConfig { torso: Torso::NatureCnn, ..A2cConfig::minatar() },
        }
    }

    pub fn net_spec(&self, obs_shape: &[usize], actions: usize) -> NetSpec {
        let spec = NetSpec::new(obs_shape.to_vec(), actions, self.torso.clone(), HeadKind::ActorCritic);
        match self.core {
            Some(core) => spec.with_core(core),
            None => spec,
        }
    }

    /// The loss averaged over the batch, as Stable-Baselines3 does.
    pub fn loss(&self) -> LossConfig {
        LossConfig { reduction: Reduction::Mean, value_coef: self.value_coef, entropy_coef: self.entropy_coef }
    }
}

pub struct A2c {
    pub config: A2cConfig,
    pub net: Net,
    acting: Net,
    pub optim: Optimizer,
    pub rng: Xoshiro256PlusPlus,
    pub updates: usize,
    device: Device,
    obs_len: usize,
    /// Recurrent networks: each copy's state, `[n_envs, hidden]` (`None` = zeros).
    state: Option<RecurrentState>,
}

impl A2c {
    /// A fresh agent whose network lives on `device` (with autodiff added: it trains).
    pub fn new(config: A2cConfig, spec: &NetSpec, seed: u64, device: &Device) -> Result<Self, String> {
        let device = device.clone().autodiff();
        device.seed(seed);
        let net = Net::new(spec, &device)?;
        let obs_len = spec.obs_shape.iter().product();
        let _ = net.scores(Tensor::zeros([1, obs_len], &device)); // materialise lazy parameters
        let rule = Rule::RmsProp { alpha: config.rmsprop_alpha, eps: config.rmsprop_epsilon, centered: false };
        let optim = Optimizer::new(rule, config.lr);
        Ok(A2c {
            acting: net.valid(),
            net,
            optim,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed ^ 0xA2C),
            updates: 0,
            device,
            obs_len,
            config,
            state: None,
        })
    }

    fn acting_pass(&self) -> Pass {
        Pass { state: self.state.clone(), ..Pass::default() }
    }

    /// The recurrent state the next rollout starts from (`None` for feed-forward networks or zeros).
    pub fn state(&self) -> Option<RecurrentState> {
        self.state.clone()
    }

    /// Zeroes the recurrent state of the copies whose episode just ended.
    pub fn episodes_ended(&mut self, done: &[bool]) {
        if let Some(s) = self.state.take() {
            let keep: Vec<f32> = done.iter().map(|&d| if d { 0.0 } else { 1.0 }).collect();
            let mask = Tensor::<2>::from_data(TensorData::new(keep, [done.len(), 1]), &self.device.clone().inner());
            self.state = Some(mask_state(s, mask));
        }
    }

    /// Samples one action per copy from the policy (advancing the recurrent state); also returns V(s).
    pub fn act(&mut self, obs: &[f32]) -> (Vec<usize>, Vec<f32>) {
        let h = self.acting.forward(nn::batch(obs, self.obs_len, &self.device.clone().inner()), &self.acting_pass());
        if self.config.core.is_some() {
            self.state = h.state.clone();
        }
        let logits = h.logits.expect("actor-critic head");
        let [_, a] = logits.dims();
        let values = nn::to_vec(h.value.expect("actor-critic head"));
        let logits = nn::to_vec(logits);
        let actions = logits.chunks(a).map(|row| sample_softmax(row, &mut self.rng)).collect();
        (actions, values)
    }

    /// State values V(s) of one observation per copy, given each copy's current recurrent state.
    pub fn values(&self, obs: &[f32]) -> Vec<f32> {
        let h = self.acting.forward(nn::batch(obs, self.obs_len, &self.device.clone().inner()), &self.acting_pass());
        nn::to_vec(h.value.expect("actor-critic head"))
    }

    /// V of copy `i`'s observation `obs` under copy `i`'s current recurrent state.
    pub fn value_of(&self, i: usize, obs: &[f32]) -> f32 {
        let state = self
            .state
            .clone()
            .map(|s| RecurrentState { hidden: s.hidden.narrow(0, i, 1), cell: s.cell.map(|c| c.narrow(0, i, 1)) });
        let h = self
            .acting
            .forward(nn::batch(obs, self.obs_len, &self.device.clone().inner()), &Pass { state, ..Pass::default() });
        nn::to_vec(h.value.expect("actor-critic head"))[0]
    }

    /// One update on a rollout; `last_values` are V of the observations after it. Returns (loss, entropy).
    pub fn update(&mut self, r: &Rollout, last_values: &[f32]) -> (f32, f32) {
        let c = &self.config;
        let targets = returns(r, last_values, c.gamma);
        let (logits, values) = if c.core.is_some() {
            self.unroll(r)
        } else {
            let h = self.net.forward(nn::batch(&r.obs, self.obs_len, &self.device), &Pass::default());
            (h.logits.expect("actor-critic head"), h.value.expect("actor-critic head"))
        };
        let (loss, entropy) = actor_critic::loss(logits, values, &r.actions, targets, &c.loss());
        let (loss_v, ent_v) = (nn::to_vec(loss.clone())[0], nn::to_vec(entropy)[0]);
        let mut grads = GradientsParams::from_grads(loss.backward(), &self.net);
        self.net.clip_grad_norm(&mut grads, c.max_grad_norm);
        let net = std::mem::replace(&mut self.net, self.acting.clone());
        self.net = self.optim.step(net, grads);
        self.acting = self.net.valid();
        self.updates += 1;
        (loss_v, ent_v)
    }

    /// Recurrent networks: re-runs the rollout step by step from its start state, zeroing the state of copies
    /// whose episode ended, so gradients flow back through time within the rollout. Returns time-major logits and
    /// values, like the rollout.
    fn unroll(&self, r: &Rollout) -> (Tensor<2>, Tensor<2>) {
        let n = r.done.len() / self.config.n_steps.max(1);
        let steps = r.done.len() / n;
        let mut state = r
            .start_state
            .clone()
            .map(|s| RecurrentState { hidden: s.hidden.autodiff(), cell: s.cell.map(|c| c.autodiff()) });
        let (mut logits, mut values) = (vec![], vec![]);
        for t in 0..steps {
            let obs = nn::batch(&r.obs[t * n * self.obs_len..(t + 1) * n * self.obs_len], self.obs_len, &self.device);
            let h = self.net.forward(obs, &Pass { state, ..Pass::default() });
            logits.push(h.logits.expect("actor-critic head"));
            values.push(h.value.expect("actor-critic head"));
            let keep: Vec<f32> = r.done[t * n..(t + 1) * n].iter().map(|&d| if d { 0.0 } else { 1.0 }).collect();
            let mask = Tensor::<2>::from_data(TensorData::new(keep, [n, 1]), &self.device);
            state = h.state.map(|s| mask_state(s, mask));
        }
        (Tensor::cat(logits, 0), Tensor::cat(values, 0))
    }

    /// Replaces the weights (resuming from a checkpoint).
    pub fn set_net(&mut self, net: Net) {
        self.net = net.train();
        self.acting = self.net.valid();
    }
}

/// Multiplies each copy's state row by its 0/1 mask `[n, 1]`.
fn mask_state(s: RecurrentState, mask: Tensor<2>) -> RecurrentState {
    RecurrentState { hidden: s.hidden * mask.clone(), cell: s.cell.map(|c| c * mask) }
}

/// Trains A2C in `s` up to the run's step budget: N copies step together for `n_steps`, then one update on the
/// rollout; finished episodes are logged with that update's loss, and a checkpoint follows when one is due.
pub(crate) fn train(s: &mut Session, config: A2cConfig) -> Result<(), TrainError> {
    let n = config.n_envs;
    let env_card = s.card.env.clone();
    let mut venv = VecEnv::new(n, Autoreset::SameStep, |_| env_card.make())?;
    // An Atari step (4 emulated frames and the preprocessing) is worth a thread; a MinAtar step is not.
    venv.set_parallel(xrl_env::is_atari_id(&env_card.id));
    let mut agent = A2c::new(config, &s.card.net, s.card.seed, &s.device).map_err(TrainError::Agent)?;
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

        // Collect: n_steps of every copy; the vector environment resets a copy as soon as its episode ends.
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

        // Update: bootstrap from the values of the observations after the rollout.
        let last_values = agent.values(&obs);
        let loss = agent.update(&r, &last_values).0;

        // Log the episodes that ended during the rollout; checkpoint when one is due.
        s.after_update(before, loss, finished, agent.updates, &agent.rng, || {
            Ok(vec![("online.safetensors", weights_bytes(&agent.net)?), ("optim.bin", agent.optim.to_bytes())])
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The update's unroll from the rollout's start state reproduces, step for step, the logits the policy
    /// acted on — across episode ends, where both zero the state.
    #[test]
    fn recurrent_unroll_replays_the_acting_pass() {
        use xrl_env::vector::{Autoreset, VecEnv};
        let config = A2cConfig {
            n_envs: 3,
            n_steps: 6,
            core: Some(Core { kind: crate::nn::CoreKind::Lstm, hidden: 8 }),
            ..A2cConfig::cartpole()
        };
        let spec = config.net_spec(&[4], 2);
        let mut a2c = A2c::new(config, &spec, 4, &crate::nn::device::for_tests()).unwrap();
        let mut venv = VecEnv::new(3, Autoreset::SameStep, |_| xrl_env::make("CartPole-v1")).unwrap();
        let mut obs = venv.reset(Some(1)).to_vec();
        let mut ended = 0;
        for round in 0..5 {
            let mut r = Rollout { start_state: a2c.state(), ..Rollout::default() };
            let mut acted = vec![];
            for _ in 0..6 {
                let h = a2c.acting.forward(nn::batch(&obs, 4, &a2c.device.clone().inner()), &a2c.acting_pass());
                acted.extend(nn::to_vec(h.logits.unwrap()));
                let (actions, _) = a2c.act(&obs);
                // Push one copy over the edge quickly so episodes end inside rollouts.
                let acts: Vec<xrl_env::Action> = actions.iter().map(|_| xrl_env::Action::Discrete(1)).collect();
                venv.step(&acts).unwrap();
                r.obs.extend_from_slice(&obs);
                for i in 0..3 {
                    r.done.push(venv.terminated()[i] || venv.truncated()[i]);
                }
                a2c.episodes_ended(&r.done[r.done.len() - 3..]);
                obs = venv.obs().to_vec();
            }
            ended += r.done.iter().filter(|&&d| d).count();
            let (logits, _) = a2c.unroll(&r);
            for (k, (x, y)) in nn::to_vec(logits).iter().zip(&acted).enumerate() {
                assert!((x - y).abs() < 1e-5, "round {round} row {k}: unroll {x} vs acted {y}");
            }
        }
        assert!(ended >= 3, "episodes ended within the rollouts: {ended}");
    }

    #[test]
    fn global_gradient_clipping_bounds_the_norm() {
        let config = A2cConfig::cartpole();
        let spec = config.net_spec(&[4], 2);
        let a2c = A2c::new(config, &spec, 0, &crate::nn::device::for_tests()).unwrap();
        let x = nn::batch(&[100.0, -50.0, 30.0, 80.0], 4, &a2c.device);
        let loss = a2c.net.forward(x, &Pass::default()).value.unwrap().sum().mul_scalar(1000.0);
        let mut grads = GradientsParams::from_grads(loss.backward(), &a2c.net);
        let before = a2c.net.clip_grad_norm(&mut grads, 0.5);
        assert!(before > 0.5);
        let after = a2c.net.clip_grad_norm(&mut grads, 1e9);
        assert!((after - 0.5).abs() < 1e-3, "{before} → {after}");
    }
}
