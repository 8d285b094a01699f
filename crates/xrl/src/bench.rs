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
