use serde::Serialize;

/// What the observation holds. MinAtar frames are 0/1 indicator planes; classic control is a float vector.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ObsSpace {
    /// 0/1 values stored as f32, channels first (C×H×W).
    Binary { shape: Vec<usize> },
    /// Real values; `low`/`high` are per-element bounds (±inf where unbounded). In JSON, bounds equal for every
    /// element are one number (an Atari screen would otherwise list 100,800 of each).
    Box {
        shape: Vec<usize>,
        #[serde(serialize_with = "one_if_uniform")]
        low: Vec<f32>,
        #[serde(serialize_with = "one_if_uniform")]
        high: Vec<f32>,
    },
}

fn one_if_uniform<S: serde::Serializer>(v: &[f32], s: S) -> Result<S::Ok, S::Error> {
    use serde::Serialize;
    match v.first() {
        Some(&first) if v.len() > 1 && v.iter().all(|&x| x == first) => first.serialize(s),
        _ => v.serialize(s),
    }
}

impl ObsSpace {
    pub fn shape(&self) -> &[usize] {
        match self {
            ObsSpace::Binary { shape } | ObsSpace::Box { shape, .. } => shape,
        }
    }
    /// Number of f32 values in one observation.
    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ActionSpace {
    /// `n` actions, with a human meaning for each (e.g. "left", "fire").
    Discrete { n: usize, meanings: Vec<String> },
    /// A box of `dim` real values, each within [low, high] (values outside are clipped by the env).
    Continuous { dim: usize, low: Vec<f32>, high: Vec<f32> },
}

impl ActionSpace {
    pub fn discrete(meanings: &[&str]) -> Self {
        ActionSpace::Discrete { n: meanings.len(), meanings: meanings.iter().map(|s| s.to_string()).collect() }
    }
    /// Number of discrete actions, `None` for a continuous space.
    pub fn n(&self) -> Option<usize> {
        match self {
            ActionSpace::Discrete { n, .. } => Some(*n),
            ActionSpace::Continuous { .. } => None,
        }
    }
}

/// Everything a caller needs to know about an environment before stepping it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EnvSpec {
    /// Gymnasium-style id, e.g. `CartPole-v1`, `MinAtar/Breakout-v0`.
    pub id: String,
    pub observation: ObsSpace,
    pub action: ActionSpace,
    /// Steps after which the episode is truncated (Gymnasium's `max_episode_steps`); `None` for no limit.
    pub max_episode_steps: Option<usize>,
    /// Mean return at which the task counts as solved, where Gymnasium registers one.
    pub reward_threshold: Option<f64>,
}
