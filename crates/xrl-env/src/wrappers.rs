//! Wrappers with Gymnasium's semantics. Each is an [`Env`] around a boxed [`Env`].

use crate::{Action, Env, EnvError, EnvSpec, ObsSpace, RgbImage, Step};
use serde_json::Value;

/// The `Env` methods a wrapper passes straight to `self.inner`.
macro_rules! forward_to_inner {
    () => {
        fn obs(&self) -> &[f32] {
            self.inner.obs()
        }
        fn render(&self) -> RgbImage {
            self.inner.render()
        }
        fn state(&self) -> Value {
            self.inner.state()
        }
        fn set_state(&mut self, doc: &Value) -> Result<(), EnvError> {
            self.inner.set_state(doc)
        }
    };
}
#[cfg(feature = "atari")] // FireReset forwards the same methods
pub(crate) use forward_to_inner;

/// Truncates an episode after `limit` steps (Gymnasium's `TimeLimit`): the step that reaches the limit returns
/// `truncated = true` unless it also terminated.
pub struct TimeLimit {
    inner: Box<dyn Env>,
    limit: usize,
    elapsed: usize,
    spec: EnvSpec,
}

impl TimeLimit {
    pub fn new(inner: Box<dyn Env>, limit: usize) -> Self {
        let spec = EnvSpec { max_episode_steps: Some(limit), ..inner.spec().clone() };
        TimeLimit { inner, limit, elapsed: 0, spec }
    }
    /// Steps taken in the current episode.
    pub fn elapsed(&self) -> usize {
        self.elapsed
    }
}

impl Env for TimeLimit {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }
    fn reset(&mut self, seed: Option<u64>) -> &[f32] {
        self.elapsed = 0;
        self.inner.reset(seed)
    }
    fn step(&mut self, action: &Action) -> Result<Step<'_>, EnvError> {
        if self.elapsed >= self.limit {
            return Err(EnvError::NeedsReset { id: self.spec.id.clone() });
        }
        let mut s = self.inner.step(action)?;
        self.elapsed += 1;
        s.truncated |= self.elapsed >= self.limit && !s.terminated;
        Ok(s)
    }
    forward_to_inner!();
}

/// Stacks the last `k` observations along a new leading axis (oldest first). After a reset the stack is filled
/// with copies of the first observation, as Gymnasium's `FrameStackObservation(padding_type="reset")`.
pub struct FrameStack {
    inner: Box<dyn Env>,
    frame: usize,
    /// The `k` frames, oldest first.
    obs: Vec<f32>,
    spec: EnvSpec,
}

impl FrameStack {
    pub fn new(inner: Box<dyn Env>, k: usize) -> Result<Self, EnvError> {
        let base = inner.spec().clone();
        if k == 0 {
            return Err(EnvError::InvalidOption { id: base.id, message: "frame stack needs k ≥ 1".into() });
        }
        let mut shape = vec![k];
        shape.extend_from_slice(base.observation.shape());
        let observation = match &base.observation {
            ObsSpace::Binary { .. } => ObsSpace::Binary { shape },
            ObsSpace::Box { low, high, .. } => ObsSpace::Box { shape, low: low.repeat(k), high: high.repeat(k) },
        };
        let frame = base.observation.len();
        let spec = EnvSpec { observation, ..base };
        let mut fs = FrameStack { inner, frame, obs: vec![0.0; k * frame], spec };
        fs.fill_from_inner();
        Ok(fs)
    }

    fn fill_from_inner(&mut self) {
        let first = self.inner.obs();
        for chunk in self.obs.chunks_exact_mut(self.frame) {
            chunk.copy_from_slice(first);
        }
    }

    fn push(&mut self) {
        // Oldest first: shift the older frames down one slot and put the new one last (one move and one copy; a
        // ring of frames plus a rebuilt stack copied the whole stack twice per step).
        let f = self.frame;
        let n = self.obs.len();
        self.obs.copy_within(f.., 0);
        self.obs[n - f..].copy_from_slice(self.inner.obs());
    }
}

impl Env for FrameStack {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }
    fn reset(&mut self, seed: Option<u64>) -> &[f32] {
        self.inner.reset(seed);
        self.fill_from_inner();
        &self.obs
    }
    fn step(&mut self, action: &Action) -> Result<Step<'_>, EnvError> {
        let s = self.inner.step(action)?;
        let (reward, terminated, truncated) = (s.reward, s.terminated, s.truncated);
        self.push();
        Ok(Step { obs: &self.obs, reward, terminated, truncated })
    }
    fn obs(&self) -> &[f32] {
        &self.obs
    }
    fn render(&self) -> RgbImage {
        self.inner.render()
    }
    fn state(&self) -> Value {
        self.inner.state()
    }
    /// Sets the inner state and refills the stack with the new observation.
    fn set_state(&mut self, doc: &Value) -> Result<(), EnvError> {
        self.inner.set_state(doc)?;
        self.fill_from_inner();
        Ok(())
    }
}

/// Clips rewards into [low, high] (the DQN convention is [−1, 1]).
pub struct ClipReward {
    inner: Box<dyn Env>,
    low: f64,
    high: f64,
}

impl ClipReward {
    pub fn new(inner: Box<dyn Env>, low: f64, high: f64) -> Result<Self, EnvError> {
        if low.is_nan() || high.is_nan() || low > high {
            let id = inner.spec().id.clone();
            return Err(EnvError::InvalidOption {
                id,
                message: format!("reward clip needs low ≤ high, got [{low}, {high}]"),
            });
        }
        Ok(ClipReward { inner, low, high })
    }
}

impl Env for ClipReward {
    fn spec(&self) -> &EnvSpec {
        self.inner.spec()
    }
    fn reset(&mut self, seed: Option<u64>) -> &[f32] {
        self.inner.reset(seed)
    }
    fn step(&mut self, action: &Action) -> Result<Step<'_>, EnvError> {
        let (low, high) = (self.low, self.high);
        let mut s = self.inner.step(action)?;
        s.reward = s.reward.clamp(low, high);
        Ok(s)
    }
    forward_to_inner!();
}

/// The statistics of one finished episode.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Episode {
    /// Undiscounted sum of rewards (as seen by this wrapper: put it inside reward clipping to record raw scores).
    pub ret: f64,
    pub length: usize,
}

/// Records the return and length of every episode (Gymnasium's `RecordEpisodeStatistics`).
pub struct EpisodeStats {
    inner: Box<dyn Env>,
    ret: f64,
    length: usize,
    finished: Vec<Episode>,
}

impl EpisodeStats {
    pub fn new(inner: Box<dyn Env>) -> Self {
        EpisodeStats { inner, ret: 0.0, length: 0, finished: vec![] }
    }
    /// Takes the episodes finished since the last call.
    pub fn drain(&mut self) -> Vec<Episode> {
        std::mem::take(&mut self.finished)
    }
}

impl Env for EpisodeStats {
    fn spec(&self) -> &EnvSpec {
        self.inner.spec()
    }
    fn reset(&mut self, seed: Option<u64>) -> &[f32] {
        (self.ret, self.length) = (0.0, 0);
        self.inner.reset(seed)
    }
    fn step(&mut self, action: &Action) -> Result<Step<'_>, EnvError> {
        let s = self.inner.step(action)?;
        self.ret += s.reward;
        self.length += 1;
        if s.terminated || s.truncated {
            self.finished.push(Episode { ret: self.ret, length: self.length });
        }
        Ok(s)
    }
    forward_to_inner!();
}
