//! Playing episodes: a [`Policy`] acting in an [`Env`], with per-episode returns and lengths.

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;
use xrl_env::{Action, ActionSpace, Env, EnvError, RgbImage};

/// Anything that picks an action from an observation.
pub trait Policy {
    fn act(&mut self, obs: &[f32]) -> Action;
    /// A new episode starts (recurrent policies forget their state).
    fn reset(&mut self) {}
}

/// Uniformly random actions (uniform over the box for continuous spaces), from its own seeded stream.
pub struct RandomPolicy {
    space: ActionSpace,
    rng: Xoshiro256PlusPlus,
}

impl RandomPolicy {
    pub fn new(space: &ActionSpace, seed: u64) -> Self {
        RandomPolicy { space: space.clone(), rng: Xoshiro256PlusPlus::seed_from_u64(seed) }
    }
}

impl Policy for RandomPolicy {
    fn act(&mut self, _obs: &[f32]) -> Action {
        match &self.space {
            ActionSpace::Discrete { n, .. } => Action::Discrete(self.rng.random_range(0..*n)),
            ActionSpace::Continuous { low, high, .. } => {
                Action::Continuous(low.iter().zip(high).map(|(l, h)| l + (h - l) * self.rng.random::<f32>()).collect())
            }
        }
    }
}

/// Acts greedily on a network's Q values (or logits), taking a uniformly random action with probability ε.
pub struct NetPolicy {
    net: crate::nn::Net,
    epsilon: f64,
    rng: Xoshiro256PlusPlus,
    device: burn::tensor::Device,
    pool: rayon::ThreadPool,
    /// The recurrent state carried between steps of an episode (networks with a core over time, not DRQN stacks).
    state: Option<crate::nn::RecurrentState>,
}

impl NetPolicy {
    /// Acts with `net` on the device its weights live on (without autodiff: acting keeps no graph).
    pub fn new(net: crate::nn::Net, epsilon: f64, seed: u64) -> Self {
        let device = net.device().inner();
        NetPolicy {
            net: burn::module::Module::valid(&net),
            epsilon,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            device,
            pool: crate::nn::acting_pool(),
            state: None,
        }
    }

    /// The recurrent state the next action will be taken from, h(t−1) (`None`: zeros, or not recurrent).
    pub fn state(&self) -> Option<crate::nn::RecurrentState> {
        self.state.clone()
    }
}

impl Policy for NetPolicy {
    fn act(&mut self, obs: &[f32]) -> Action {
        let n = self.net.spec().actions;
        let explore = self.epsilon > 0.0 && self.rng.random::<f64>() < self.epsilon;
        let carries = self.net.spec().carries_state();
        // A random action skips the network, unless its state must still see this observation.
        if explore && !carries {
            return Action::Discrete(self.rng.random_range(0..n));
        }
        let x = crate::nn::batch(obs, obs.len(), &self.device);
        let pass = crate::nn::Pass { state: self.state.take(), ..crate::nn::Pass::default() };
        let h = self.pool.install(|| self.net.forward(x, &pass));
        if carries {
            self.state = h.state;
        }
        if explore {
            return Action::Discrete(self.rng.random_range(0..n));
        }
        let scores = h.q.or(h.logits).expect("every head yields Q values or logits");
        Action::Discrete(crate::nn::argmax_rows(scores)[0])
    }

    fn reset(&mut self) {
        self.state = None;
    }
}

/// Per-episode results of a rollout (the JSON printed by `xrl rollout --json`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Rollout {
    pub env: String,
    pub seed: u64,
    pub returns: Vec<f64>,
    pub lengths: Vec<usize>,
}

impl Rollout {
    pub fn mean_return(&self) -> f64 {
        self.returns.iter().sum::<f64>() / self.returns.len().max(1) as f64
    }
    pub fn mean_length(&self) -> f64 {
        self.lengths.iter().sum::<usize>() as f64 / self.lengths.len().max(1) as f64
    }
}

/// The most episodes [`play`] plays in one call (their returns and lengths are kept in memory).
pub const MAX_EPISODES: usize = 1_000_000;
/// The most steps [`frames`] records (every frame is kept in memory: a 320×320 MinAtar frame is 300 KB).
pub const MAX_FRAMES: usize = 10_000;

fn count_in(env: &dyn Env, what: &str, n: usize, max: usize) -> Result<(), EnvError> {
    if n == 0 || n > max {
        return Err(EnvError::InvalidOption {
            id: env.spec().id.clone(),
            message: format!("--{what} must be between 1 and {max}, got {n}"),
        });
    }
    Ok(())
}

/// Plays `episodes` whole episodes (1 to [`MAX_EPISODES`]). The first reset uses `seed`; later ones continue the environment's streams,
/// so the whole rollout is fixed by the seed. `on_step` sees the environment after every reset and step.
pub fn play(
    env: &mut dyn Env,
    policy: &mut dyn Policy,
    episodes: usize,
    seed: u64,
    mut on_step: impl FnMut(&dyn Env),
) -> Result<Rollout, EnvError> {
    count_in(env, "episodes", episodes, MAX_EPISODES)?;
    let mut out = Rollout { env: env.spec().id.clone(), seed, ..Rollout::default() };
    for ep in 0..episodes {
        env.reset(if ep == 0 { Some(seed) } else { None });
        policy.reset();
        on_step(env);
        let (mut ret, mut len) = (0.0, 0);
        loop {
            let action = policy.act(env.obs());
            let s = env.step(&action)?;
            ret += s.reward;
            len += 1;
            let done = s.done();
            on_step(env);
            if done {
                break;
            }
        }
        out.returns.push(ret);
        out.lengths.push(len);
    }
    Ok(out)
}

/// Renders `steps` steps of play (plus the first frame), resetting whenever an episode ends.
pub fn frames(env: &mut dyn Env, policy: &mut dyn Policy, steps: usize, seed: u64) -> Result<Vec<RgbImage>, EnvError> {
    count_in(env, "steps", steps, MAX_FRAMES)?;
    env.reset(Some(seed));
    policy.reset();
    let mut frames = vec![env.render()];
    for _ in 0..steps {
        let action = policy.act(env.obs());
        if env.step(&action)?.done() {
            env.reset(None);
            policy.reset();
        }
        frames.push(env.render());
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recurrent policy's state follows every observation, also those it answered with a random action.
    #[test]
    fn random_actions_still_advance_a_recurrent_state() {
        use crate::nn::{Core, CoreKind, HeadKind, Net, NetSpec, Torso};
        let spec = NetSpec::new(vec![4], 2, Torso::Mlp { hidden: vec![8] }, HeadKind::ActorCritic)
            .with_core(Core { kind: CoreKind::Gru, hidden: 5 });
        let net = Net::new(&spec, &crate::nn::device::for_tests()).unwrap();
        let mut always_random = NetPolicy::new(net.clone(), 1.0, 3);
        let mut greedy = NetPolicy::new(net, 0.0, 3);
        for obs in [[0.1, -0.2, 0.3, 0.0], [0.5, 0.1, -0.4, 0.2]] {
            always_random.act(&obs);
            greedy.act(&obs);
        }
        let (a, b) = (always_random.state().unwrap().hidden, greedy.state().unwrap().hidden);
        assert_eq!(crate::nn::to_vec(a), crate::nn::to_vec(b));
    }

    #[test]
    fn same_seed_same_rollout_and_different_seed_differs() {
        let run = |seed| {
            let mut env = xrl_env::make("MinAtar/Breakout-v0").unwrap();
            let mut policy = RandomPolicy::new(&env.spec().action.clone(), seed);
            play(env.as_mut(), &mut policy, 20, seed, |_| {}).unwrap()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3).lengths, run(4).lengths);
        let r = run(3);
        assert_eq!(r.returns.len(), 20);
        assert!(r.lengths.iter().all(|&l| l >= 1));
    }

    #[test]
    fn cartpole_random_play_is_short_and_scores_its_length() {
        let mut env = xrl_env::make("CartPole-v1").unwrap();
        let mut policy = RandomPolicy::new(&env.spec().action.clone(), 0);
        let r = play(env.as_mut(), &mut policy, 50, 0, |_| {}).unwrap();
        // CartPole pays +1 per step, so each return equals its length; random play averages about 22 steps.
        for (ret, len) in r.returns.iter().zip(&r.lengths) {
            assert_eq!(*ret, *len as f64);
        }
        assert!((10.0..40.0).contains(&r.mean_length()), "{}", r.mean_length());
    }
}
