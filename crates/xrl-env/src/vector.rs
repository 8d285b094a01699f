//! N copies of an environment stepped together, with automatic reset.
//!
//! Observations are one contiguous `N × obs_len` buffer (row i is copy i), ready to become a batch tensor.
//! Copy i is seeded with `seed + i` on a seeded reset, as Gymnasium's vector environments do.

use crate::{Action, Env, EnvError, EnvSpec};

/// When a finished copy is reset (Gymnasium's `AutoresetMode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Autoreset {
    /// The step that ends an episode already returns the next episode's first observation; the last observation
    /// of the finished episode is kept in [`VecEnv::final_obs`] (for bootstrapping a truncated episode).
    #[default]
    SameStep,
    /// The step that ends an episode returns its last observation; the copy's next step ignores the action,
    /// resets, and returns the first observation with reward 0 and no flags (Gymnasium 1.x's default).
    NextStep,
}

type StepSlot<'a> = (
    ((((&'a mut Box<dyn Env>, &'a Action), &'a mut [f32]), &'a mut Option<Vec<f32>>), &'a mut bool),
    &'a mut (f64, bool, bool),
);

pub struct VecEnv {
    envs: Vec<Box<dyn Env>>,
    mode: Autoreset,
    obs_len: usize,
    obs: Vec<f32>,
    rewards: Vec<f64>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    /// Per copy: the final observation of the episode that ended on the last step (SameStep mode).
    final_obs: Vec<Option<Vec<f32>>>,
    /// NextStep mode: copies whose episode ended on the last step and reset on the next.
    pending_reset: Vec<bool>,
    /// Step the copies on rayon's threads (worth it for heavy games such as Atari; MinAtar steps in a microsecond).
    parallel: bool,
}

impl VecEnv {
    /// Builds `n` copies with `make` (called with the copy index).
    pub fn new(
        n: usize,
        mode: Autoreset,
        mut make: impl FnMut(usize) -> Result<Box<dyn Env>, EnvError>,
    ) -> Result<Self, EnvError> {
        let envs = (0..n).map(&mut make).collect::<Result<Vec<_>, _>>()?;
        let Some(first) = envs.first() else {
            return Err(EnvError::InvalidOption { id: "VecEnv".into(), message: "needs at least one copy".into() });
        };
        let obs_len = first.spec().observation.len();
        let mut v = VecEnv {
            obs: vec![0.0; n * obs_len],
            rewards: vec![0.0; n],
            terminated: vec![false; n],
            truncated: vec![false; n],
            final_obs: vec![None; n],
            pending_reset: vec![false; n],
            envs,
            mode,
            obs_len,
            parallel: false,
        };
        for i in 0..n {
            v.obs[i * obs_len..(i + 1) * obs_len].copy_from_slice(v.envs[i].obs());
        }
        Ok(v)
    }

    pub fn len(&self) -> usize {
        self.envs.len()
    }
    /// Steps the copies in parallel on rayon's global thread pool from now on (same results, in the same order).
    pub fn set_parallel(&mut self, on: bool) {
        self.parallel = on;
    }
    pub fn is_empty(&self) -> bool {
        self.envs.is_empty()
    }
    pub fn spec(&self) -> &EnvSpec {
        self.envs[0].spec()
    }
    pub fn envs(&self) -> &[Box<dyn Env>] {
        &self.envs
    }

    /// Resets every copy; copy i gets `seed + i` when a seed is given.
    pub fn reset(&mut self, seed: Option<u64>) -> &[f32] {
        let len = self.obs_len;
        for (i, env) in self.envs.iter_mut().enumerate() {
            let o = env.reset(seed.map(|s| s.wrapping_add(i as u64)));
            self.obs[i * len..(i + 1) * len].copy_from_slice(o);
        }
        self.rewards.fill(0.0);
        self.terminated.fill(false);
        self.truncated.fill(false);
        self.final_obs.fill(None);
        self.pending_reset.fill(false);
        &self.obs
    }

    /// Steps every copy with its action. A wrong number of actions, or an invalid action, is an error and leaves
    /// the copies as they were up to the failing one.
    pub fn step(&mut self, actions: &[Action]) -> Result<(), EnvError> {
        if actions.len() != self.envs.len() {
            return Err(EnvError::InvalidOption {
                id: self.spec().id.clone(),
                message: format!("{} actions given for {} environment copies", actions.len(), self.envs.len()),
            });
        }
        let (len, mode) = (self.obs_len, self.mode);
        let step_one = |(((((env, action), row), fin), pending), out): StepSlot<'_>| -> Result<(), EnvError> {
            *fin = None;
            if *pending {
                *pending = false;
                row.copy_from_slice(env.reset(None));
                *out = (0.0, false, false);
                return Ok(());
            }
            let s = env.step(action)?;
            *out = (s.reward, s.terminated, s.truncated);
            if !s.done() {
                row.copy_from_slice(s.obs);
                return Ok(());
            }
            match mode {
                Autoreset::SameStep => {
                    *fin = Some(s.obs.to_vec());
                    row.copy_from_slice(env.reset(None));
                }
                Autoreset::NextStep => {
                    row.copy_from_slice(s.obs);
                    *pending = true;
                }
            }
            Ok(())
        };
        let mut flags = vec![(0.0, false, false); self.envs.len()];
        let slots = self.envs.iter_mut().zip(actions).zip(self.obs.chunks_mut(len));
        let slots = slots.zip(self.final_obs.iter_mut()).zip(self.pending_reset.iter_mut()).zip(flags.iter_mut());
        let result = if self.parallel {
            use rayon::prelude::*;
            slots.collect::<Vec<_>>().into_par_iter().try_for_each(step_one)
        } else {
            slots.into_iter().try_for_each(step_one)
        };
        for (i, (r, te, tr)) in flags.into_iter().enumerate() {
            (self.rewards[i], self.terminated[i], self.truncated[i]) = (r, te, tr);
        }
        result
    }

    /// `N × obs_len` observations, copy-major.
    pub fn obs(&self) -> &[f32] {
        &self.obs
    }
    pub fn rewards(&self) -> &[f64] {
        &self.rewards
    }
    pub fn terminated(&self) -> &[bool] {
        &self.terminated
    }
    pub fn truncated(&self) -> &[bool] {
        &self.truncated
    }
    /// SameStep mode: the last observation of each episode that ended on the last step.
    pub fn final_obs(&self) -> &[Option<Vec<f32>>] {
        &self.final_obs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parallel stepping gives the same observations, rewards and flags as stepping one copy after another.
    #[test]
    fn parallel_stepping_equals_sequential() {
        let make = |_| crate::make("MinAtar/Breakout-v0");
        let (mut a, mut b) =
            (VecEnv::new(5, Autoreset::SameStep, make).unwrap(), VecEnv::new(5, Autoreset::SameStep, make).unwrap());
        b.set_parallel(true);
        a.reset(Some(7));
        b.reset(Some(7));
        let mut ends = 0;
        for t in 0..400usize {
            let acts: Vec<Action> = (0..5).map(|i| Action::Discrete((t * 7 + i * 3) % 6)).collect();
            a.step(&acts).unwrap();
            b.step(&acts).unwrap();
            assert_eq!(a.obs(), b.obs(), "step {t}");
            assert_eq!((a.rewards(), a.terminated(), a.truncated()), (b.rewards(), b.terminated(), b.truncated()));
            assert_eq!(a.final_obs(), b.final_obs());
            ends += a.terminated().iter().filter(|&&x| x).count();
        }
        assert!(ends > 0, "the episodes should end within 400 steps");
    }
}
