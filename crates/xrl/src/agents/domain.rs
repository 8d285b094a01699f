//! Hyper-parameters against their domains: a run card edited by hand (γ 5, ε 7, n-step 0) is refused with the
//! field, its value, the domain and the published default, before any training or playing.

use super::a2c::A2cConfig;
use super::a3c::A3cConfig;
use super::dqn::{DqnConfig, Loss, OptimizerConfig};

/// What a replay-based learner (DQN, Rainbow) holds in common, with the hint for its n-step default.
struct ReplayLearner {
    gamma: f32,
    n_step: (usize, &'static str),
    replay_capacity: usize,
    batch_size: usize,
    train_every: usize,
    target_update_every: usize,
    epsilon: (f64, f64),
}

/// Collects every field outside its domain.
struct Checks(Vec<String>);

impl Checks {
    /// `lo ≤ v ≤ hi` (or `lo < v` when `open_low`).
    fn within(&mut self, name: &str, v: f64, lo: f64, hi: f64, open_low: bool, hint: &str) {
        let ok = v.is_finite() && (if open_low { v > lo } else { v >= lo }) && v <= hi;
        if !ok {
            let low = if open_low { "(" } else { "[" };
            self.0.push(format!("{name} = {v} is outside {low}{lo}, {hi}] ({hint})"));
        }
    }

    fn positive(&mut self, name: &str, v: f64, hint: &str) {
        self.within(name, v, 0.0, f64::MAX, true, hint);
    }

    fn at_least(&mut self, name: &str, v: usize, min: usize, hint: &str) {
        if v < min {
            self.0.push(format!("{name} = {v} must be at least {min} ({hint})"));
        }
    }

    /// `min ≤ v ≤ max`: counts whose memory or threads grow with them have a ceiling, so a typo of a few zeros is
    /// an error rather than a machine run out of memory.
    fn between(&mut self, name: &str, v: usize, min: usize, max: usize, hint: &str) {
        if v < min || v > max {
            self.0.push(format!("{name} = {v} must be between {min} and {max} ({hint})"));
        }
    }

    /// The fields DQN and Rainbow share: discount, n-step, replay, schedule and ε.
    fn replay_learner(&mut self, r: &ReplayLearner) {
        self.within("gamma", r.gamma.into(), 0.0, 1.0, false, "a discount; the papers' 0.99");
        self.between("n_step", r.n_step.0, 1, 1_000, r.n_step.1);
        self.between("replay_capacity", r.replay_capacity, r.batch_size.max(1), 100_000_000, "at least one batch");
        self.between("batch_size", r.batch_size, 1, 65_536, "32 in the papers");
        self.at_least("train_every", r.train_every, 1, "environment steps per update");
        self.at_least("target_update_every", r.target_update_every, 1, "updates between target copies");
        self.within("epsilon_start", r.epsilon.0, 0.0, 1.0, false, "a probability");
        self.within("epsilon_end", r.epsilon.1, 0.0, 1.0, false, "a probability");
    }

    fn finish(self) -> Result<(), String> {
        if self.0.is_empty() { Ok(()) } else { Err(self.0.join("; ")) }
    }
}

impl DqnConfig {
    pub fn validate(&self) -> Result<(), String> {
        let mut c = Checks(vec![]);
        c.replay_learner(&ReplayLearner {
            gamma: self.gamma,
            n_step: (self.n_step, "1 is one-step Q-learning"),
            replay_capacity: self.replay_capacity,
            batch_size: self.batch_size,
            train_every: self.train_every,
            target_update_every: self.target_update_every,
            epsilon: (self.epsilon_start, self.epsilon_end),
        });
        match &self.optimizer {
            OptimizerConfig::Adam { lr } => c.positive("optimizer.lr", *lr, "e.g. 2.5e-4"),
            OptimizerConfig::RmsProp { lr, alpha, epsilon, .. } => {
                c.positive("optimizer.lr", *lr, "e.g. 2.5e-4");
                c.within("optimizer.alpha", (*alpha).into(), 0.0, 1.0, false, "RMSProp's decay; 0.95");
                c.positive("optimizer.epsilon", (*epsilon).into(), "RMSProp's ε; 0.01");
            }
        }
        if let Loss::Huber { delta } = self.loss {
            c.positive("loss.delta", delta.into(), "Huber's δ; 1");
        }
        if let Some(r) = &self.recurrent {
            c.between("recurrent.frames", r.frames, 2, 1_024, "DRQN needs at least two frames; seed 002's 4");
            c.between("recurrent.core.hidden", r.core.hidden, 1, 65_536, "units of the LSTM; 128 by default");
        }
        c.finish()
    }
}

impl crate::agents::rainbow::RainbowConfig {
    pub fn validate(&self) -> Result<(), String> {
        let mut c = Checks(vec![]);
        c.replay_learner(&ReplayLearner {
            gamma: self.gamma,
            n_step: (self.n_step, "Rainbow's 3"),
            replay_capacity: self.replay_capacity,
            batch_size: self.batch_size,
            train_every: self.train_every,
            target_update_every: self.target_update_every,
            epsilon: (self.epsilon_start, self.epsilon_end),
        });
        c.positive("lr", self.lr, "1e-4 in Revisiting Rainbow");
        c.positive("adam_epsilon", self.adam_epsilon.into(), "3.125e-4 in Revisiting Rainbow");
        c.positive("huber_delta", self.huber_delta.into(), "Huber's δ; 1");
        if let Some(m) = self.max_grad_norm {
            c.positive("max_grad_norm", m.into(), "10 in the IFE seed");
        }
        if let Some(s) = self.noisy {
            c.within("noisy", s.into(), 0.0, 100.0, false, "σ0 of the noisy layers; 0.5");
        }
        let mut out = c.finish().err().into_iter().collect::<Vec<_>>();
        if let Some(a) = self.atoms
            && let Err(e) = crate::distributional::Support::new(a.v_min, a.v_max, a.n)
        {
            out.push(format!("atoms: {e}"));
        }
        if let Some(p) = &self.per
            && let Err(e) = p.validate()
        {
            out.push(format!("per: {e}"));
        }
        if out.is_empty() { Ok(()) } else { Err(out.join("; ")) }
    }
}

impl A2cConfig {
    pub fn validate(&self) -> Result<(), String> {
        let mut c = Checks(vec![]);
        c.between("n_envs", self.n_envs, 1, 4_096, "environment copies");
        c.between("n_steps", self.n_steps, 1, 100_000, "steps per rollout");
        c.within("gamma", self.gamma.into(), 0.0, 1.0, false, "a discount; 0.99");
        c.within("entropy_coef", self.entropy_coef.into(), 0.0, f64::MAX, false, "≥ 0; 0.01");
        c.within("value_coef", self.value_coef.into(), 0.0, f64::MAX, false, "≥ 0; 0.5");
        c.positive("max_grad_norm", self.max_grad_norm.into(), "0.5");
        c.positive("lr", self.lr, "7e-4");
        c.within("rmsprop_alpha", self.rmsprop_alpha.into(), 0.0, 1.0, false, "0.99");
        c.positive("rmsprop_epsilon", self.rmsprop_epsilon.into(), "1e-5");
        if let Some(core) = &self.core {
            c.between("core.hidden", core.hidden, 1, 65_536, "units of the core; 128 by default");
        }
        c.finish()
    }
}

impl crate::agents::ppo::PpoConfig {
    pub fn validate(&self) -> Result<(), String> {
        let mut c = Checks(vec![]);
        c.between("n_envs", self.n_envs, 1, 4_096, "environment copies; 8 for Atari");
        c.between("n_steps", self.n_steps, 1, 100_000, "steps per rollout; 128");
        c.between("n_minibatches", self.n_minibatches, 1, self.n_envs * self.n_steps, "at most one per sample; 4");
        c.between("update_epochs", self.update_epochs, 1, 1_000, "passes over each rollout; 4");
        c.within("gamma", self.gamma.into(), 0.0, 1.0, false, "a discount; 0.99");
        c.within("gae_lambda", self.gae_lambda.into(), 0.0, 1.0, false, "GAE's λ; 0.95");
        c.positive("clip_coef", self.clip_coef.into(), "0.1 (Atari), 0.2");
        c.within("entropy_coef", self.entropy_coef.into(), 0.0, f64::MAX, false, "≥ 0; 0.01");
        c.within("value_coef", self.value_coef.into(), 0.0, f64::MAX, false, "≥ 0; 0.5");
        c.positive("max_grad_norm", self.max_grad_norm.into(), "0.5");
        c.positive("lr", self.lr, "2.5e-4");
        c.positive("adam_epsilon", self.adam_epsilon.into(), "1e-5");
        c.finish()
    }
}

impl A3cConfig {
    pub fn validate(&self) -> Result<(), String> {
        let mut c = Checks(vec![]);
        c.between("t_max", self.t_max, 1, 100_000, "steps per update");
        c.between("workers", self.workers, 0, 1_024, "threads; 0 is one per core");
        c.within("gamma", self.gamma.into(), 0.0, 1.0, false, "a discount; 0.99");
        c.within("entropy_coef", self.entropy_coef.into(), 0.0, f64::MAX, false, "≥ 0; 0.01");
        c.within("value_coef", self.value_coef.into(), 0.0, f64::MAX, false, "≥ 0; 0.5");
        c.positive("lr", self.lr, "7e-4");
        c.within("rmsprop_alpha", self.rmsprop_alpha.into(), 0.0, 1.0, false, "0.99");
        c.positive("rmsprop_epsilon", self.rmsprop_epsilon.into(), "0.1 in seed 003");
        if let Some(n) = self.max_grad_norm {
            c.positive("max_grad_norm", n.into(), "40, or leave it out");
        }
        c.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_in_their_domains_and_edits_outside_are_named() {
        assert!(DqnConfig::default().validate().is_ok() && DqnConfig::cartpole().validate().is_ok());
        assert!(A2cConfig::default().validate().is_ok() && A3cConfig::default().validate().is_ok());
        let bad = DqnConfig { gamma: 5.0, n_step: 0, epsilon_start: 7.0, ..DqnConfig::default() };
        let e = bad.validate().unwrap_err();
        assert!(
            e.contains("gamma = 5 is outside [0, 1]") && e.contains("n_step = 0") && e.contains("epsilon_start = 7"),
            "{e}"
        );
        let e = A2cConfig { lr: f64::NAN, ..A2cConfig::default() }.validate().unwrap_err();
        assert!(e.contains("lr = NaN"), "{e}");
        let e = A3cConfig { rmsprop_alpha: 1.5, ..A3cConfig::default() }.validate().unwrap_err();
        assert!(e.contains("rmsprop_alpha = 1.5"), "{e}");
    }
}
