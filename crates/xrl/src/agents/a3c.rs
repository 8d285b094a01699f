//! A3C (Mnih et al. 2016): worker threads, each with its own environment and a copy of the network, play `t_max`
//! steps, compute n-step actor-critic gradients on their copy, and apply them to the shared network under a lock
//! with shared RMSProp statistics. Read top to bottom: config, shared state, one worker's update.
//!
//! Defaults are seed 003's (ChainerRL `train_a3c_gym.py`): t-max 5, lr 7e-4, entropy 0.01, value 0.5, RMSProp
//! ε 0.1, α 0.99, γ 0.99, no gradient clipping. Asynchrony makes runs depend on thread timing: the seed fixes each
//! worker's environment and sampling, not the interleaving. Use A2C where bit-for-bit repeatability matters.

use crate::agents::actor_critic::{self, LossConfig, Reduction, Rollout, returns, sample_softmax};
use crate::nn::{self, HeadKind, Net, NetSpec, Pass, Torso};
use crate::optim::{Optimizer, Rule};
use burn::optim::GradientsParams;
use burn::tensor::Device;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

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
        if obs_shape.len() == 1 { A3cConfig::cartpole() } else { A3cConfig::default() }
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
