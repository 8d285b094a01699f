//! N preprocessed Atari copies stepped in parallel on a thread pool, observations in one contiguous `u8` buffer.

use super::{AtariPreprocessing, FireReset, PreprocessConfig};
use crate::{Action, Env, EnvError, EnvSpec};
use rayon::prelude::*;

/// One copy: the preprocessed game and its stack of the last `k` frames.
struct Copy {
    env: AtariPreprocessing,
    fire_reset: bool,
    /// k frames, oldest first.
    stack: Vec<u8>,
    ret: f64,
    len: usize,
}

impl Copy {
    fn frame_len(&self) -> usize {
        self.env.frame_u8().len()
    }
    fn restart(&mut self, seed: Option<u64>) -> Result<(), EnvError> {
        self.env.reset(seed);
        if self.fire_reset {
            for action in [1, 2] {
                if self.env.step(&Action::Discrete(action))?.done() {
                    self.env.reset(seed);
                }
            }
        }
        let f = self.frame_len();
        for chunk in self.stack.chunks_exact_mut(f) {
            chunk.copy_from_slice(self.env.frame_u8());
        }
        (self.ret, self.len) = (0.0, 0);
        Ok(())
    }
    fn push(&mut self) {
        let f = self.frame_len();
        self.stack.copy_within(f.., 0);
        let n = self.stack.len();
        self.stack[n - f..].copy_from_slice(self.env.frame_u8());
    }
}

/// What one copy's step gave.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CopyStep {
    pub reward: f64,
    pub terminated: bool,
    pub truncated: bool,
    /// The finished episode's (return, length) when this step ended one (the copy has already been reset).
    pub episode: Option<(f64, usize)>,
}

/// N copies of `AtariPreprocessing` + frame stack (+ fire reset), with automatic reset on the step that ends an
/// episode (the returned observation is then the next episode's first; the last one is in
/// [`AtariVecEnv::final_obs`]).
pub struct AtariVecEnv {
    copies: Vec<Copy>,
    pool: rayon::ThreadPool,
    k: usize,
    obs: Vec<u8>,
    final_obs: Vec<Option<Vec<u8>>>,
    steps: Vec<CopyStep>,
}

impl AtariVecEnv {
    /// `n` copies of `id` with `config`, stacks of `k` frames, FIRE after resets where the game has FIRE, stepped
    /// on `threads` threads (0 = one per core). Copy i is seeded with `seed + i`.
    pub fn new(
        id: &str,
        n: usize,
        config: &PreprocessConfig,
        k: usize,
        fire_reset: bool,
        threads: usize,
        seed: u64,
    ) -> Result<Self, EnvError> {
        let bad = |message: &str| EnvError::InvalidOption { id: id.into(), message: message.into() };
        if n == 0 || k == 0 {
            return Err(bad("an Atari vector environment needs at least one copy and a stack of at least 1"));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("xrl-atari-{i}"))
            .build()
            .map_err(|e| bad(&format!("cannot start the environment threads: {e}")))?;
        let copies = (0..n)
            .map(|_| {
                let env = AtariPreprocessing::make(id, config.clone())?;
                let fire = fire_reset && FireReset::applies(&env);
                let f = env.frame_u8().len();
                Ok(Copy { env, fire_reset: fire, stack: vec![0; k * f], ret: 0.0, len: 0 })
            })
            .collect::<Result<Vec<_>, EnvError>>()?;
        let frame = copies[0].frame_len();
        let mut v = AtariVecEnv {
            copies,
            pool,
            k,
            obs: vec![0; n * k * frame],
            final_obs: vec![None; n],
            steps: vec![CopyStep::default(); n],
        };
        v.reset(seed)?;
        Ok(v)
    }

    pub fn len(&self) -> usize {
        self.copies.len()
    }
    pub fn is_empty(&self) -> bool {
        self.copies.is_empty()
    }
    pub fn spec(&self) -> &EnvSpec {
        self.copies[0].env.spec()
    }
    /// Bytes of one stacked observation (k × height × width).
    pub fn obs_len(&self) -> usize {
        self.k * self.copies[0].frame_len()
    }

    pub fn reset(&mut self, seed: u64) -> Result<&[u8], EnvError> {
        let stride = self.obs_len();
        let copies = &mut self.copies;
        let obs = &mut self.obs;
        self.pool.install(|| {
            copies.par_iter_mut().zip(obs.par_chunks_mut(stride)).enumerate().try_for_each(|(i, (c, out))| {
                c.restart(Some(seed.wrapping_add(i as u64)))?;
                out.copy_from_slice(&c.stack);
                Ok::<(), EnvError>(())
            })
        })?;
        self.final_obs.fill(None);
        Ok(&self.obs)
    }

    /// Steps copy i with `actions[i]`, all copies in parallel.
    pub fn step(&mut self, actions: &[usize]) -> Result<&[CopyStep], EnvError> {
        if actions.len() != self.copies.len() {
            return Err(EnvError::InvalidOption {
                id: self.spec().id.clone(),
                message: format!("{} actions given for {} environment copies", actions.len(), self.copies.len()),
            });
        }
        let stride = self.obs_len();
        let (copies, obs, finals, steps) = (&mut self.copies, &mut self.obs, &mut self.final_obs, &mut self.steps);
        self.pool.install(|| {
            copies
                .par_iter_mut()
                .zip(obs.par_chunks_mut(stride))
                .zip(finals.par_iter_mut())
                .zip(steps.par_iter_mut())
                .zip(actions.par_iter())
                .try_for_each(|((((c, out), fin), st), &a)| {
                    let s = c.env.step(&Action::Discrete(a))?;
                    let (reward, terminated, truncated) = (s.reward, s.terminated, s.truncated);
                    c.ret += reward;
                    c.len += 1;
                    c.push();
                    *st = CopyStep { reward, terminated, truncated, episode: None };
                    *fin = None;
                    if terminated || truncated {
                        st.episode = Some((c.ret, c.len));
                        *fin = Some(c.stack.clone());
                        c.restart(None)?;
                    }
                    out.copy_from_slice(&c.stack);
                    Ok::<(), EnvError>(())
                })
        })?;
        Ok(&self.steps)
    }

    /// `N × k × height × width` bytes, copy-major, oldest frame first.
    pub fn obs(&self) -> &[u8] {
        &self.obs
    }
    pub fn final_obs(&self) -> &[Option<Vec<u8>>] {
        &self.final_obs
    }
}
