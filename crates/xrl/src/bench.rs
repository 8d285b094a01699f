//! Environment throughput: steps per second with observation generation, single and vectorised, median of runs.
//! `xrl bench envs` runs this beside `bench/envs.py` (the Python references) and prints the ratios.

use crate::rollout::{Policy, RandomPolicy};
use serde::Serialize;
use std::time::Instant;
use xrl_env::vector::{Autoreset, VecEnv};
use xrl_env::{Action, EnvError};

#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    pub env: String,
    /// `single` or `vector`.
    pub mode: String,
    /// Copies stepped together (1 for single).
    pub copies: usize,
    /// Environment steps per second of each run.
    pub runs: Vec<f64>,
}

impl Measurement {
    pub fn median(&self) -> f64 {
        median(&self.runs)
    }
}

pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Pre-drawn random actions, so the timing covers the environment only.
fn actions(id: &str, count: usize, seed: u64) -> Result<Vec<Action>, EnvError> {
    let env = xrl_env::make(id)?;
    let mut p = RandomPolicy::new(&env.spec().action, seed);
    Ok((0..count).map(|_| p.act(&[])).collect())
}

/// One environment, `steps` steps per run (resetting at episode ends), `runs` runs.
pub fn single(id: &str, steps: usize, runs: usize) -> Result<Measurement, EnvError> {
    let acts = actions(id, 4096, 1)?;
    let mut env = xrl_env::make(id)?;
    env.reset(Some(0));
    let mut times = vec![];
    for _ in 0..runs {
        let t = Instant::now();
        let mut checksum = 0.0f32;
        for i in 0..steps {
            let s = env.step(&acts[i % acts.len()])?;
            checksum += s.obs[0];
            if s.done() {
                env.reset(None);
            }
        }
        std::hint::black_box(checksum);
        times.push(steps as f64 / t.elapsed().as_secs_f64());
    }
    Ok(Measurement { env: id.to_string(), mode: "single".into(), copies: 1, runs: times })
}

/// `copies` environments in a [`VecEnv`] (same-step autoreset); counts environment steps.
pub fn vector(id: &str, copies: usize, steps: usize, runs: usize) -> Result<Measurement, EnvError> {
    let acts = actions(id, 4096 * copies, 2)?;
    let mut venv = VecEnv::new(copies, Autoreset::SameStep, |_| xrl_env::make(id))?;
    venv.reset(Some(0));
    let mut times = vec![];
    let batches = (steps / copies).max(1);
    for _ in 0..runs {
        let t = Instant::now();
        for b in 0..batches {
            let start = (b * copies) % (acts.len() - copies + 1);
            venv.step(&acts[start..start + copies])?;
            std::hint::black_box(venv.obs());
        }
        times.push((batches * copies) as f64 / t.elapsed().as_secs_f64());
    }
    Ok(Measurement { env: id.to_string(), mode: "vector".into(), copies, runs: times })
}

/// Network speed: one DQN-style training step (forward, Huber loss on the taken actions' Q values, backward, Adam
/// step) at `batch`, and acting latency at batch 1 (observation in, greedy action out). Times in milliseconds,
/// one entry per run (each run the median of `iters` repetitions).
pub mod nets {
    use super::median;
    use crate::nn::{self, HeadKind, Net, NetSpec, Torso};
    use crate::optim::{Optimizer, Rule};
    use burn::nn::loss::{HuberLossConfig, Reduction};
    use burn::optim::GradientsParams;
    use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
    use serde::Serialize;
    use std::time::Instant;

    #[derive(Clone, Debug, Serialize)]
    pub struct NetTiming {
        pub net: String,
        pub what: String,
        pub batch: usize,
        pub ms: Vec<f64>,
    }

    impl NetTiming {
        pub fn median(&self) -> f64 {
            median(&self.ms)
        }
    }

    /// The two CNNs of the benchmark: (name, spec).
    pub fn specs() -> Vec<(&'static str, NetSpec)> {
        vec![
            ("minatar-cnn", NetSpec::new(vec![4, 10, 10], 6, Torso::MinatarCnn, HeadKind::Q)),
            ("nature-cnn", NetSpec::new(vec![4, 84, 84], 6, Torso::NatureCnn, HeadKind::Q)),
        ]
    }

    fn time_runs(runs: usize, iters: usize, mut f: impl FnMut()) -> Vec<f64> {
        for _ in 0..iters.min(10) {
            f(); // warm-up
        }
        (0..runs)
            .map(|_| {
                let mut t: Vec<f64> = (0..iters)
                    .map(|_| {
                        let s = Instant::now();
                        f();
                        s.elapsed().as_secs_f64() * 1e3
                    })
                    .collect();
                t.sort_by(f64::total_cmp);
                t[t.len() / 2]
            })
            .collect()
    }

    /// Median times of a DQN training step of `spec` on `device` (with autodiff added).
    pub fn train_step(
        name: &str,
        spec: &NetSpec,
        batch: usize,
        runs: usize,
        iters: usize,
        device: &Device,
    ) -> NetTiming {
        let device = device.clone().autodiff();
        device.seed(0);
        let len: usize = spec.obs_shape.iter().product();
        let mut net = Some(Net::new(spec, &device).expect("valid spec"));
        let mut optim = Optimizer::new(Rule::adam(), 2.5e-4);
        let obs = Tensor::<2>::random([batch, len], Distribution::Uniform(0.0, 1.0), &device);
        let actions: Vec<i64> = (0..batch).map(|i| (i % spec.actions) as i64).collect();
        let actions = Tensor::<2, Int>::from_data(TensorData::new(actions, [batch, 1]), &device);
        let targets = Tensor::<2>::random([batch, 1], Distribution::Uniform(0.0, 1.0), &device);
        let loss_fn = HuberLossConfig::new(1.0).init();
        let ms = time_runs(runs, iters, || {
            let n = net.take().expect("net present");
            let q = n.scores(obs.clone()).gather(1, actions.clone());
            let loss = loss_fn.forward(q, targets.clone(), Reduction::Mean);
            let grads = GradientsParams::from_grads(loss.backward(), &n);
            net = Some(optim.step(n, grads));
            // Flex executes eagerly, so there the step is complete already (as torch's is); a GPU backend queues
            // its kernels, and the time must include them.
            device.sync().expect("the device runs the queued training step");
        });
        NetTiming { net: name.into(), what: "train step".into(), batch, ms }
    }

    /// Median times of one greedy action of `spec` on `device` (without autodiff).
    pub fn act(name: &str, spec: &NetSpec, runs: usize, iters: usize, device: &Device) -> NetTiming {
        let device = device.clone().inner();
        device.seed(0);
        let len: usize = spec.obs_shape.iter().product();
        let net = Net::new(spec, &device).expect("valid spec");
        let obs: Vec<f32> = (0..len).map(|i| ((i * 7919) % 13) as f32 / 13.0).collect();
        let pool = crate::nn::acting_pool();
        let ms = pool.install(|| {
            time_runs(runs, iters, || {
                let a = nn::argmax_rows(net.scores(nn::batch(&obs, len, &device)))[0];
                std::hint::black_box(a);
            })
        });
        NetTiming { net: name.into(), what: "act".into(), batch: 1, ms }
    }
}

/// Seconds per PPO update (GAE, then every epoch's minibatch steps) on a random rollout of `config`'s size for
/// observations of `obs_shape` and `actions` actions: what `xrl bench ppo` times beside `bench/ppo.py`. The first
/// update warms up and is not counted.
pub fn ppo_update_seconds(
    config: &crate::agents::ppo::PpoConfig,
    obs_shape: &[usize],
    actions: usize,
    updates: usize,
    device: &burn::tensor::Device,
) -> Result<Vec<f64>, String> {
    use crate::agents::ppo::{Ppo, PpoRollout};
    use rand::{Rng, SeedableRng};
    let spec = config.net_spec(obs_shape, actions);
    let mut ppo = Ppo::new(config.clone(), &spec, 0, device)?;
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(7);
    let (rows, len) = (config.batch(), obs_shape.iter().product::<usize>());
    let obs: Vec<f32> = (0..rows * len).map(|_| f32::from(rng.random::<bool>())).collect();
    let (acts, logp, values) = ppo.act(&obs);
    let r = PpoRollout {
        obs,
        actions: acts,
        logp,
        values,
        rewards: (0..rows).map(|_| rng.random_range(0.0..1.0)).collect(),
        terminated: (0..rows).map(|_| rng.random::<f64>() < 0.01).collect(),
        truncated_value: vec![None; rows],
        done: vec![false; rows],
    };
    let last = vec![0.0; config.n_envs];
    let mut times = vec![];
    for u in 0..=updates {
        let t = Instant::now();
        ppo.update(&r, &last, updates + 1);
        if u > 0 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    Ok(times)
}

/// Random transitions [`rainbow_update_seconds`] (and `bench/rainbow.py`) fill the replay with before timing.
pub const RAINBOW_FILL: usize = 5_000;
/// Untimed updates before the timed ones, on both sides.
pub const RAINBOW_WARMUP: usize = 10;

/// Seconds per Rainbow update of `config` (for `config.net_spec(obs_shape, actions)`): a fresh agent's replay is
/// filled by [`crate::agents::rainbow::Rainbow::observe`] with [`RAINBOW_FILL`] random steps of one long random
/// trajectory (binary frames, each next observation the following step's observation, rewards uniform in [0, 1),
/// episodes ending with probability 0.01), then [`RAINBOW_WARMUP`] untimed updates, then `updates` timed ones.
/// Each update is what training does: the prioritised draw, the batch, fresh noise on both networks, the double-Q
/// bootstrap, the C51 projection, the weighted cross-entropy, the Adam step and the priorities' update. What
/// `xrl bench rainbow` times beside `bench/rainbow.py`.
pub fn rainbow_update_seconds(
    config: &crate::agents::rainbow::RainbowConfig,
    obs_shape: &[usize],
    actions: usize,
    updates: usize,
    device: &burn::tensor::Device,
) -> Result<Vec<f64>, String> {
    use crate::agents::rainbow::Rainbow;
    use rand::{Rng, SeedableRng};
    let spec = config.net_spec(obs_shape, actions);
    let mut agent = Rainbow::new(config.clone(), &spec, true, 0, device)?;
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(7);
    let len = obs_shape.iter().product::<usize>();
    let frame = |rng: &mut rand_xoshiro::Xoshiro256PlusPlus| -> Vec<f32> {
        (0..len).map(|_| f32::from(rng.random::<bool>())).collect()
    };
    let mut obs = frame(&mut rng);
    for _ in 0..RAINBOW_FILL {
        let next = frame(&mut rng);
        let action = rng.random_range(0..actions);
        let reward = rng.random_range(0.0..1.0);
        let terminated = rng.random::<f64>() < 0.01;
        agent.observe(&obs, action, reward, &next, terminated, false)?;
        obs = next;
    }
    if agent.memory.len() < config.batch_size {
        return Err(format!("{} transitions stored, fewer than a batch of {}", agent.memory.len(), config.batch_size));
    }
    let mut times = Vec::with_capacity(updates);
    for u in 0..RAINBOW_WARMUP + updates {
        let t = Instant::now();
        let loss = agent.update(RAINBOW_FILL + u)?;
        std::hint::black_box(loss);
        if u >= RAINBOW_WARMUP {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    Ok(times)
}

/// Atari throughput beside ale-py and Gymnasium (`xrl bench atari`; `bench/atari.py` is the Python side).
#[cfg(feature = "atari")]
pub mod atari {
    use rand::{Rng, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;
    use serde::Serialize;
    use std::time::Instant;
    use xrl_env::atari::{AtariEnv, AtariPreprocessing, AtariVecEnv, PreprocessConfig, config_for};
    use xrl_env::wrappers::FrameStack;
    use xrl_env::{Action, Env, EnvError};

    /// One round of every measurement.
    #[derive(Clone, Debug, Default, Serialize)]
    pub struct Round {
        /// Emulator frames per second of `Ale::act`, one frame per call (ale-py's own act loop).
        pub act: f64,
        /// Frames per second of `ALE/<Game>-v5` steps, the RGB observation included.
        pub v5_step: f64,
        /// Steps per second of AtariPreprocessing + a stack of 4 over `<Game>NoFrameskip-v4`.
        pub preprocessed_stack: f64,
        /// Steps per second of the u8 vector environment: one copy on one thread, and `copies` on `threads`.
        pub vector_one: f64,
        pub vector_many: f64,
        pub copies: usize,
        pub threads: usize,
    }

    fn draws(n: usize, count: usize) -> Vec<usize> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        (0..count).map(|_| rng.random_range(0..n)).collect()
    }

    /// One round on `game` (e.g. `Pong`): `frames` emulator frames for the raw measurements, `steps` agent steps for
    /// the preprocessed ones.
    pub fn round(game: &str, frames: usize, steps: usize, copies: usize, threads: usize) -> Result<Round, EnvError> {
        let v5 = format!("ALE/{game}-v5");
        let v4 = format!("{game}NoFrameskip-v4");
        let mut out = Round { copies, threads, ..Round::default() };

        let mut env = AtariEnv::new(
            &v5,
            config_for(&v5).ok_or_else(|| EnvError::UnknownId { id: v5.clone(), known: xrl_env::atari::ids() })?,
        )?;
        env.reset(Some(0));
        let set = env.action_set().to_vec();
        let idx = draws(set.len(), 4096);
        let t = Instant::now();
        for i in 0..frames {
            env.ale_mut().act(set[idx[i % 4096]]);
            if env.ale().game_over() {
                env.ale_mut().reset_game();
            }
        }
        out.act = frames as f64 / t.elapsed().as_secs_f64();

        env.reset(Some(0));
        let t = Instant::now();
        let mut sink = 0.0f32;
        for i in 0..frames / 4 {
            let s = env.step(&Action::Discrete(idx[i % 4096]))?;
            sink += s.obs[0];
            if s.done() {
                env.reset(None);
            }
        }
        std::hint::black_box(sink);
        out.v5_step = (frames / 4 * 4) as f64 / t.elapsed().as_secs_f64();

        let pre = AtariPreprocessing::make(&v4, PreprocessConfig::default())?;
        let mut stacked = FrameStack::new(Box::new(pre), 4)?;
        stacked.reset(Some(0));
        let t = Instant::now();
        for i in 0..steps {
            let s = stacked.step(&Action::Discrete(idx[i % 4096]))?;
            sink += s.obs[0];
            if s.done() {
                stacked.reset(None);
            }
        }
        std::hint::black_box(sink);
        out.preprocessed_stack = steps as f64 / t.elapsed().as_secs_f64();

        for (n, th) in [(1, 1), (copies, threads)] {
            let mut venv = AtariVecEnv::new(&v4, n, &PreprocessConfig::default(), 4, false, th, 0)?;
            let batches = (steps / n).max(1);
            let t = Instant::now();
            for b in 0..batches {
                let acts: Vec<usize> = (0..n).map(|c| idx[(b * n + c) % 4096]).collect();
                venv.step(&acts)?;
                std::hint::black_box(venv.obs());
            }
            let rate = (batches * n) as f64 / t.elapsed().as_secs_f64();
            if n == 1 && th == 1 {
                out.vector_one = rate;
            } else {
                out.vector_many = rate;
            }
        }
        Ok(out)
    }
}
