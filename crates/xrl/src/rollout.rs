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

/// One step of [`replay`], as `xrl rollout --record` writes it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepRecord {
    pub t: usize,
    pub action: usize,
    pub reward: f64,
    pub terminated: bool,
    pub truncated: bool,
    /// Atari: lives after the step (from the state document); other games: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lives: Option<i64>,
    /// SHA-256 of the observation: of its values as bytes when every value is an integer in 0–255 (Atari frames,
    /// MinAtar's 0/1 planes; in xrl's channels-first layout), otherwise of its little-endian f32 bytes.
    pub obs_sha256: String,
    /// Atari: SHA-256 of the raw RGB screen, height × width × 3 bytes row-major, as ale-py's `getScreenRGB()`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub screen_sha256: Option<String>,
    /// The episode ended here and the environment was reset (unseeded) before the next action.
    pub reset_after: bool,
}

/// What `xrl rollout --record` writes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Replay {
    pub env: String,
    pub seed: u64,
    /// The first observation's hash (see [`StepRecord::obs_sha256`]) and, for Atari, the first screen's.
    pub first_obs_sha256: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_screen_sha256: Option<String>,
    pub steps: Vec<StepRecord>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// [`StepRecord::obs_sha256`]'s rule.
pub fn obs_sha256(obs: &[f32]) -> String {
    if obs.iter().all(|&v| v.fract() == 0.0 && (0.0..=255.0).contains(&v)) {
        sha256_hex(&obs.iter().map(|&v| v as u8).collect::<Vec<_>>())
    } else {
        sha256_hex(&obs.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>())
    }
}

/// Plays a given action sequence from `reset(Some(seed))`, resetting (unseeded) whenever an episode ends, and
/// records every step — for checking parity with another implementation step by step. An action out of range is
/// an error naming its position.
pub fn replay(env: &mut dyn Env, seed: u64, actions: &[usize]) -> Result<Replay, EnvError> {
    let atari = xrl_env::is_atari_id(&env.spec().id);
    let screen = |env: &dyn Env| atari.then(|| sha256_hex(env.render().as_raw()));
    let first_obs_sha256 = obs_sha256(env.reset(Some(seed)));
    let mut out = Replay {
        env: env.spec().id.clone(),
        seed,
        first_obs_sha256,
        first_screen_sha256: screen(env),
        steps: Vec::with_capacity(actions.len()),
    };
    for (t, &action) in actions.iter().enumerate() {
        let s = env.step(&Action::Discrete(action)).map_err(|e| match e {
            EnvError::ActionOutOfRange { id, n, .. } => EnvError::InvalidOption {
                id,
                message: format!("action {action} at position {} (line {}) is out of range 0..{n}", t, t + 1),
            },
            other => other,
        })?;
        let (reward, terminated, truncated, obs) = (s.reward, s.terminated, s.truncated, obs_sha256(s.obs));
        let lives = if atari { env.state()["lives"].as_i64() } else { None };
        let record = StepRecord {
            t,
            action,
            reward,
            terminated,
            truncated,
            lives,
            obs_sha256: obs,
            screen_sha256: screen(env),
            reset_after: terminated || truncated,
        };
        if record.reset_after {
            env.reset(None);
        }
        out.steps.push(record);
    }
    Ok(out)
}

/// Reads an action file: one action index per line; blank lines and `#` comments are skipped.
pub fn read_actions(text: &str) -> Result<Vec<usize>, String> {
    let mut out = vec![];
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        out.push(line.parse().map_err(|_| format!("line {}: `{line}` is not an action index (0, 1, 2, …)", i + 1))?);
    }
    if out.is_empty() {
        return Err("the action file has no actions (one action index per line)".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recurrent policy's state follows every observation, also those it answered with a random action.
    #[test]
    fn replay_records_every_step_and_resets_after_episode_ends() {
        let mut env = xrl_env::make("CartPole-v1").unwrap();
        let actions = vec![1usize; 40]; // always right: CartPole falls within 40 steps
        let r = replay(env.as_mut(), 3, &actions).unwrap();
        assert_eq!(r.steps.len(), 40);
        let end = r.steps.iter().position(|s| s.terminated).expect("pushing right ends an episode");
        assert!(r.steps[end].reset_after && !r.steps[end - 1].reset_after);
        // The same seed and actions give the same hashes; another seed other ones.
        assert_eq!(replay(env.as_mut(), 3, &actions).unwrap(), r);
        assert_ne!(replay(env.as_mut(), 4, &actions).unwrap().first_obs_sha256, r.first_obs_sha256);
        assert!(r.steps.iter().all(|s| s.lives.is_none() && s.screen_sha256.is_none()));
        let err = replay(env.as_mut(), 3, &[0, 1, 7]).unwrap_err().to_string();
        assert!(err.contains("position 2 (line 3)"), "{err}");
    }

    #[test]
    fn obs_hash_uses_bytes_for_byte_valued_frames() {
        use sha2::Digest;
        let expect: String = sha2::Sha256::digest([0u8, 1, 255]).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(obs_sha256(&[0.0, 1.0, 255.0]), expect);
        assert_ne!(obs_sha256(&[0.0, 1.0, 0.5]), obs_sha256(&[0.0, 1.0, 0.0]));
        assert_eq!(read_actions("1\n# c\n\n2 # x\n").unwrap(), vec![1, 2]);
        assert!(read_actions("1\nleft\n").unwrap_err().contains("line 2"));
    }

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
