//! Attribution methods with one calling convention: `method.attribute(model, inputs, target) -> Attribution`.
//!
//! * A [`Model`] maps flat inputs `[batch, len]` to named [`Heads`] (every [`Net`] is one; so is any closure, which is
//!   how the analytic toy networks of the tests are written).
//! * A [`Target`] picks the scalar explained per sample. Never the sum of softmax probabilities: it is constant.
//! * Every path point, noise sample and perturbation goes through the model in batches of at most
//!   [`Budget::chunk_rows`] rows, never one at a time; results do not depend on the chunking.
//! * Pass a [`Net::frozen`] copy of a trained network: backward passes then skip the weight gradients (about half
//!   the work of a backward pass through the Nature CNN).
//! * Given a plain convolutional [`Net`] ([`Model::as_net`]), perturbation saliency and occlusion recompute only the
//!   positions each perturbation reaches, and integrated gradients and SmoothGrad (mean) take the first
//!   convolution's backward once per sample (`local`); behind any other model every row goes through it whole.

pub mod attention;
pub mod bench;
mod cam;
pub mod evaluate;
mod gradient;
mod integrated;
pub mod job;
mod local;
mod methods;
mod occlusion;
mod perturbation;
pub mod registry;
pub mod report;
mod smooth;

pub use cam::{CamMaps, GradCam, GuidedGradCam, upsample_nearest};
pub use gradient::{Gradient, GradientKind};
pub use integrated::{IntegratedGradients, Rule};
pub use occlusion::{Fill, Occlusion};
pub use perturbation::{Perturbation, PerturbationMaps, Score, blur};
pub use smooth::{SmoothGrad, SmoothKind};

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use xrl_nn::{HeadKind, Heads, Net, NetSpec, Pass};

/// Anything that turns flat inputs into named heads.
pub trait Model {
    fn heads(&self, x: Tensor<2>, pass: &Pass) -> Heads;

    /// The same, told which input sample each row derives from (path points, noise samples and perturbations of
    /// sample i all say i) — what a model with per-sample context, such as a recorded recurrent state, needs.
    fn heads_for(&self, x: Tensor<2>, pass: &Pass, _samples: &[usize]) -> Heads {
        self.heads(x, pass)
    }

    /// The network itself, when the model is one plain [`Net`]: methods may then take shortcuts through its
    /// layers (`local`: perturbation saliency and occlusion, integrated gradients, SmoothGrad's mean).
    fn as_net(&self) -> Option<&Net> {
        None
    }

    /// The network's spec, when there is one: targets and input shapes are then checked before any pass.
    fn spec(&self) -> Option<&NetSpec> {
        None
    }

    /// The layers a probe can name (Grad-CAM's), when known: a name not among them is refused before any pass.
    fn layers(&self) -> Option<Vec<String>> {
        None
    }

    /// Observations per input (an unrolled recurrent model takes the last k frames as one input).
    fn frames_per_input(&self) -> usize {
        1
    }

    /// Where the inputs go: the network's own device (burn's default device for a model without parameters).
    fn device(&self) -> Device {
        Device::default()
    }
}

/// A recurrent network explained at recorded states: every row of sample i runs from row i of `state` — the state
/// h(t−1) the agent held when it acted on frame t — held fixed across path points and perturbations.
pub struct AtState<'a> {
    pub net: &'a Net,
    /// `[samples, hidden]` (and the LSTM cell).
    pub state: xrl_nn::RecurrentState,
}

impl Model for AtState<'_> {
    fn heads(&self, x: Tensor<2>, pass: &Pass) -> Heads {
        let rows: Vec<usize> = (0..x.dims()[0]).collect();
        self.heads_for(x, pass, &rows)
    }

    fn heads_for(&self, x: Tensor<2>, pass: &Pass, samples: &[usize]) -> Heads {
        let state = self.pick_state(samples, &x.device());
        self.net.forward(x, &Pass { state: Some(state), ..pass.clone() })
    }

    fn spec(&self) -> Option<&NetSpec> {
        Some(self.net.spec())
    }

    fn layers(&self) -> Option<Vec<String>> {
        Some(self.net.layer_names())
    }

    fn device(&self) -> Device {
        self.net.device()
    }
}

impl AtState<'_> {
    /// The recorded state rows of `samples`, on `device`.
    fn pick_state(&self, samples: &[usize], device: &Device) -> xrl_nn::RecurrentState {
        let pick = |t: &Tensor<2>| {
            let idx: Vec<i64> = samples.iter().map(|&s| s as i64).collect();
            let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [samples.len()]), device);
            Tensor::<2>::from_data(t.to_data(), device).select(0, idx)
        };
        xrl_nn::RecurrentState { hidden: pick(&self.state.hidden), cell: self.state.cell.as_ref().map(pick) }
    }
}

impl Model for Net {
    fn heads(&self, x: Tensor<2>, pass: &Pass) -> Heads {
        self.forward(x, pass)
    }

    fn as_net(&self) -> Option<&Net> {
        Some(self)
    }

    fn spec(&self) -> Option<&NetSpec> {
        Some(self.spec())
    }

    fn layers(&self) -> Option<Vec<String>> {
        Some(self.layer_names())
    }

    fn device(&self) -> Device {
        Net::device(self)
    }
}

impl<F: Fn(Tensor<2>, &Pass) -> Heads> Model for F {
    fn heads(&self, x: Tensor<2>, pass: &Pass) -> Heads {
        self(x, pass)
    }
}

/// The scalar explained for one sample. Never the sum of softmax probabilities: it is constant.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "action")]
pub enum Target {
    /// The score the agent acts greedily on for action a: its Q value, or its policy logit (actor-critic).
    Action(usize),
    /// Q value of action a.
    Q(usize),
    /// The largest Q value.
    MaxQ,
    /// The state value V (dueling and actor-critic heads).
    Value,
    /// The advantage A(a) of a dueling head.
    Advantage(usize),
    /// The policy logit of action a.
    Logit(usize),
    /// log π(a).
    LogProb(usize),
    /// The score (Q or logit) of a minus that of b.
    Contrast(usize, usize),
}

/// The accepted target spellings, for `--help` and errors.
pub const TARGET_HELP: &str = "chosen, action:A, q:A, max-q, value, advantage:A, logit:A, log-prob:A, contrast:A:B";

/// A target as a user writes it: one for every sample, or `chosen` — each sample's greedy action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetSpec {
    /// Each sample's own greedy action ([`Target::Action`] of the argmax of its scores).
    Chosen,
    /// The same target for every sample.
    Fixed(Target),
}

impl std::str::FromStr for TargetSpec {
    type Err = ExplainError;

    /// `chosen`, `action:A`, `q:A`, `max-q`, `value`, `advantage:A`, `logit:A`, `log-prob:A`, `contrast:A:B`.
    fn from_str(s: &str) -> Result<Self, ExplainError> {
        let parts: Vec<&str> = s.split(':').collect();
        let bad = || ExplainError::Invalid(format!("unknown target `{s}`; use {TARGET_HELP}"));
        let num = |i: usize| -> Result<usize, ExplainError> {
            let a = parts.get(i).ok_or_else(bad)?;
            a.parse()
                .map_err(|_| ExplainError::Invalid(format!("target `{s}`: `{a}` is not an action index (0, 1, …)")))
        };
        let arity = match parts[0] {
            "chosen" | "max-q" | "value" => 1,
            "contrast" => 3,
            _ => 2,
        };
        if parts.len() != arity {
            return Err(bad());
        }
        let target = match parts[0] {
            "chosen" => return Ok(TargetSpec::Chosen),
            "action" => Target::Action(num(1)?),
            "q" => Target::Q(num(1)?),
            "max-q" => Target::MaxQ,
            "value" => Target::Value,
            "advantage" => Target::Advantage(num(1)?),
            "logit" => Target::Logit(num(1)?),
            "log-prob" => Target::LogProb(num(1)?),
            "contrast" => Target::Contrast(num(1)?, num(2)?),
            _ => return Err(bad()),
        };
        Ok(TargetSpec::Fixed(target))
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Action(a) => write!(f, "action:{a}"),
            Target::Q(a) => write!(f, "q:{a}"),
            Target::MaxQ => write!(f, "max-q"),
            Target::Value => write!(f, "value"),
            Target::Advantage(a) => write!(f, "advantage:{a}"),
            Target::Logit(a) => write!(f, "logit:{a}"),
            Target::LogProb(a) => write!(f, "log-prob:{a}"),
            Target::Contrast(a, b) => write!(f, "contrast:{a}:{b}"),
        }
    }
}

impl Target {
    /// Checks the target against a network's heads and action count, with an error naming what the network has.
    pub fn check(&self, spec: &NetSpec) -> Result<(), ExplainError> {
        let n = spec.actions;
        let heads = match spec.head {
            HeadKind::Q => "Q values only (targets chosen, action:A, q:A, max-q, contrast:A:B)",
            HeadKind::Dueling => {
                "Q values, V and advantages (targets chosen, action:A, q:A, max-q, value, advantage:A, contrast:A:B)"
            }
            HeadKind::ActorCritic => {
                "policy logits and V (targets chosen, action:A, logit:A, log-prob:A, value, contrast:A:B)"
            }
        };
        let fits = match self {
            Target::Action(_) | Target::Contrast(..) => true,
            Target::Q(_) | Target::MaxQ => spec.head != HeadKind::ActorCritic,
            Target::Value => spec.head != HeadKind::Q,
            Target::Advantage(_) => spec.head == HeadKind::Dueling,
            Target::Logit(_) | Target::LogProb(_) => spec.head == HeadKind::ActorCritic,
        };
        if !fits {
            return Err(ExplainError::Invalid(format!("target `{self}` does not fit this network: it has {heads}")));
        }
        let actions: Vec<usize> = match self {
            Target::Action(a) | Target::Q(a) | Target::Advantage(a) | Target::Logit(a) | Target::LogProb(a) => vec![*a],
            Target::Contrast(a, b) if a == b => {
                return Err(ExplainError::Invalid(format!(
                    "target `{self}` compares action {a} with itself, which is zero everywhere: name two different actions"
                )));
            }
            Target::Contrast(a, b) => vec![*a, *b],
            Target::MaxQ | Target::Value => vec![],
        };
        if let Some(a) = actions.iter().find(|&&a| a >= n) {
            return Err(ExplainError::Invalid(format!(
                "target `{self}`: action {a} is out of range; the network has {n} actions (0–{})",
                n - 1
            )));
        }
        Ok(())
    }
}

impl TargetSpec {
    /// One target per sample: `greedy[i]` is sample i's greedy action (read by `chosen`).
    pub fn resolve(&self, greedy: &[usize]) -> Vec<Target> {
        match self {
            TargetSpec::Chosen => greedy.iter().map(|&a| Target::Action(a)).collect(),
            TargetSpec::Fixed(t) => vec![t.clone(); greedy.len()],
        }
    }
}

/// Why an explanation could not be made: every message says what was wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Run(#[from] xrl::run::RunError),
    #[error(transparent)]
    Env(#[from] xrl_env::EnvError),
    #[error(transparent)]
    Render(#[from] xrl_render::RenderError),
}

/// A batch of inputs to explain: `values` holds `count()` samples of `shape` each (flat, row-major).
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    pub values: &'a [f32],
    pub shape: &'a [usize],
}

impl<'a> Inputs<'a> {
    /// Checks that `values` are whole samples of `shape`, all finite.
    pub fn new(values: &'a [f32], shape: &'a [usize]) -> Result<Self, ExplainError> {
        let len: usize = shape.iter().product();
        if shape.is_empty() || len == 0 || values.is_empty() || !values.len().is_multiple_of(len) {
            return Err(ExplainError::Invalid(format!(
                "{} input values do not make whole samples of shape {shape:?}",
                values.len()
            )));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(ExplainError::Invalid(format!(
                "input value {} (sample {}, offset {}) is {}: inputs must be finite numbers",
                i,
                i / len,
                i % len,
                values[i]
            )));
        }
        Ok(Inputs { values, shape })
    }

    /// Values per sample.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Samples.
    pub fn count(&self) -> usize {
        self.values.len() / self.len().max(1)
    }

    /// `[C, H, W]` for image inputs (rank ≥ 3; leading axes — stacked or unrolled frames — folded into channels).
    pub fn image(&self) -> Option<[usize; 3]> {
        let d = self.shape.len();
        (d >= 3).then(|| [self.shape[..d - 2].iter().product(), self.shape[d - 2], self.shape[d - 1]])
    }
}

/// Where a map's values sit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Resolution {
    /// One value per input value: the map has the input's shape.
    Input,
    /// One value per position of a layer's `[h, w]` output (Grad-CAM).
    Layer { layer: String },
    /// Perturbation saliency: scores on a grid every `stride` pixels, interpolated to the input's `[H, W]`.
    Grid { stride: usize },
}

/// What every method returns: one map per sample, each of `shape`.
#[derive(Clone, Debug, PartialEq)]
pub struct Attribution {
    /// The method's registry name, e.g. `gradcam:conv3`.
    pub method: String,
    /// `[n, shape…]`, flat.
    pub maps: Vec<f32>,
    /// One sample's map: the input's shape ([`Resolution::Input`]) or `[h, w]`.
    pub shape: Vec<usize>,
    pub resolution: Resolution,
    /// Integrated gradients' convergence delta per sample, Σ attribution − (T(x) − T(baseline)).
    pub delta: Option<Vec<f32>>,
    /// Wall-clock seconds the call took.
    pub seconds: f64,
}

impl Attribution {
    /// Values per map.
    pub fn map_len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn count(&self) -> usize {
        self.maps.len() / self.map_len().max(1)
    }

    pub fn map(&self, i: usize) -> &[f32] {
        let l = self.map_len();
        &self.maps[i * l..(i + 1) * l]
    }
}

/// One call of a method, checked ([`check_call`]) before the method sees it: the model, the inputs, one target per
/// sample and optional baselines (one per sample, or one for all; only methods that use a baseline read them).
#[derive(Clone, Copy)]
pub struct Call<'a> {
    pub model: &'a dyn Model,
    pub inputs: &'a Inputs<'a>,
    pub targets: &'a [Target],
    pub baselines: Option<&'a [f32]>,
}

/// What a method computes: maps of `shape` each, where `resolution` says, and IG's convergence delta.
pub struct Computed {
    pub maps: Vec<f32>,
    pub shape: Vec<usize>,
    pub resolution: Resolution,
    pub delta: Option<Vec<f32>>,
}

impl Computed {
    /// Maps with the inputs' own shape.
    pub fn at_input(maps: Vec<f32>, call: &Call) -> Self {
        Computed { maps, shape: call.inputs.shape.to_vec(), resolution: Resolution::Input, delta: None }
    }
}

/// Every explanation method, called the same way ([`Method::attribute`]): a model, a batch of inputs, one target
/// per sample and optional baselines. A method implements [`Method::compute`]; the checks, the timing and the
/// wrapping into an [`Attribution`] are shared.
pub trait Method: Send + Sync {
    /// The registry name, e.g. `ig` or `gradcam:conv3`.
    fn name(&self) -> String;

    /// The method's own work, on a call that passed the common checks.
    fn compute(&self, call: &Call) -> Result<Computed, ExplainError>;

    fn attribute(
        &self,
        model: &dyn Model,
        inputs: &Inputs,
        targets: &[Target],
        baselines: Option<&[f32]>,
    ) -> Result<Attribution, ExplainError> {
        check_call(model, inputs, targets, baselines)?;
        let started = std::time::Instant::now();
        let c = self.compute(&Call { model, inputs, targets, baselines })?;
        let seconds = started.elapsed().as_secs_f64();
        Ok(Attribution {
            method: self.name(),
            maps: c.maps,
            shape: c.shape,
            resolution: c.resolution,
            delta: c.delta,
            seconds,
        })
    }
}

/// The checks every method makes before any pass: one target per sample, each fitting the model, and baselines
/// that are whole samples.
pub(crate) fn check_call(
    model: &dyn Model,
    inputs: &Inputs,
    targets: &[Target],
    baselines: Option<&[f32]>,
) -> Result<(), ExplainError> {
    let n = inputs.count();
    if targets.len() != n {
        return Err(ExplainError::Invalid(format!(
            "{} targets for {n} inputs: give one target per input",
            targets.len()
        )));
    }
    if let Some(spec) = model.spec() {
        if spec.obs_shape.iter().product::<usize>() * model.frames_per_input() != inputs.len() {
            return Err(ExplainError::Invalid(format!(
                "inputs of shape {:?} do not fit the network, which takes observations of shape {:?}",
                inputs.shape, spec.obs_shape
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for t in targets.iter().filter(|t| seen.insert(*t)) {
            t.check(spec)?;
        }
    }
    if let Some(b) = baselines {
        if b.len() != inputs.len() && b.len() != inputs.values.len() {
            return Err(ExplainError::Invalid(format!(
                "the baseline has {} values: give one input of shape {:?} ({} values) or one per input ({})",
                b.len(),
                inputs.shape,
                inputs.len(),
                inputs.values.len()
            )));
        }
        if let Some(i) = b.iter().position(|v| !v.is_finite()) {
            return Err(ExplainError::Invalid(format!("baseline value {i} is {}: baselines must be finite", b[i])));
        }
    }
    Ok(())
}

/// How many rows one forward/backward pass may hold: at most `max_rows`, and at most `max_values` input values in
/// all (at least one row).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub max_rows: usize,
    pub max_values: usize,
}

impl Default for Budget {
    /// 256 rows and 2 MiB of f32 inputs: 18 frames of the Nature CNN, 256 of the MinAtar CNN. The value cap bounds
    /// a chunk's memory by its input size (every layer's activations are held until the backward). It was set when
    /// convolutions built one im2col matrix for the whole chunk (3.6× the input for the Nature CNN), which made
    /// saliency 0.7–0.8 ms per frame in chunks of 64 against 0.6 in chunks of 16. With [`xrl_nn::fast::conv`] building it
    /// per sample, IG on 8 Nature frames (before its first-convolution shortcut; a throwaway timing loop, three
    /// runs) took 21.9–23.3 ms per frame in chunks of 8 rows, 19.3–21.3 in chunks of 18 (this cap), 17.7–18.5 in
    /// chunks of 32 and 64, 18.4–19.6 in chunks of 128: the cap was kept, within about 15% of the best.
    fn default() -> Self {
        Budget { max_rows: 256, max_values: 1 << 19 }
    }
}

impl Budget {
    /// Exactly `n` rows a pass, whatever their size.
    pub fn rows(n: usize) -> Self {
        Budget { max_rows: n, max_values: usize::MAX }
    }

    /// The rows of one chunk for inputs of `len` values.
    pub fn chunk_rows(&self, len: usize) -> usize {
        self.max_rows.min(self.max_values / len.max(1)).max(1)
    }
}

/// Maps with the input's layout, one per input sample (what the methods compute before [`Attribution`] wraps
/// them); `delta` is integrated gradients' convergence delta per sample.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Maps {
    pub maps: Vec<f32>,
    pub delta: Option<Vec<f32>>,
}

pub(crate) fn scores(h: &Heads) -> Tensor<2> {
    h.q.clone().or_else(|| h.logits.clone()).expect("a model yields Q values or logits")
}

fn column(t: Tensor<2>, a: usize) -> Tensor<2> {
    let [b, n] = t.dims();
    assert!(a < n, "action {a} out of range for {n} outputs");
    t.slice([0..b, a..a + 1])
}

/// A recurrent network explained through its last `k` frames: each input is `k` consecutive observations
/// (oldest first, flat), unrolled from the recorded state before the first of them (`None`: zeros); the heads are
/// those of the last step. Attributions then spread over the k frames.
pub struct Unrolled<'a> {
    pub net: &'a Net,
    pub k: usize,
    pub state: Option<xrl_nn::RecurrentState>,
}

impl Model for Unrolled<'_> {
    fn heads(&self, x: Tensor<2>, pass: &Pass) -> Heads {
        let rows: Vec<usize> = (0..x.dims()[0]).collect();
        self.heads_for(x, pass, &rows)
    }

    fn heads_for(&self, x: Tensor<2>, pass: &Pass, samples: &[usize]) -> Heads {
        let [b, kl] = x.dims();
        let k = self.k.max(1);
        let device = x.device();
        let state =
            self.state.as_ref().map(|s| AtState { net: self.net, state: s.clone() }.pick_state(samples, &device));
        let h = self.net.forward(x.reshape([b * k, kl / k]), &Pass { state, seq_len: k, ..pass.clone() });
        // Keep row b·k + k − 1 of every head: the last step of each sequence.
        let last: Vec<i64> = (0..b).map(|i| (i * k + k - 1) as i64).collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(last, [b]), &device);
        let pick = |t: Option<Tensor<2>>| t.map(|t| t.select(0, idx.clone()));
        Heads {
            q: pick(h.q),
            advantage: pick(h.advantage),
            value: pick(h.value),
            logits: pick(h.logits),
            probe: h.probe,
            state: h.state,
        }
    }

    fn spec(&self) -> Option<&NetSpec> {
        Some(self.net.spec())
    }

    fn layers(&self) -> Option<Vec<String>> {
        Some(self.net.layer_names())
    }

    fn frames_per_input(&self) -> usize {
        self.k.max(1)
    }

    fn device(&self) -> Device {
        self.net.device()
    }
}

/// One target's value for every row, `[rows, 1]`.
fn one_target(h: &Heads, target: &Target) -> Tensor<2> {
    // Targets are checked against the network's heads before any pass (`Target::check`); a model without a spec
    // (a closure in the tests) must have the heads it is asked for.
    let need = |t: &Option<Tensor<2>>, what: &str| t.clone().unwrap_or_else(|| panic!("target {target} needs {what}"));
    match target {
        Target::Action(a) => column(scores(h), *a),
        Target::Q(a) => column(need(&h.q, "Q values"), *a),
        Target::MaxQ => need(&h.q, "Q values").max_dim(1),
        Target::Value => need(&h.value, "a value head"),
        Target::Advantage(a) => column(need(&h.advantage, "a dueling head"), *a),
        Target::Logit(a) => column(need(&h.logits, "a policy head"), *a),
        Target::LogProb(a) => column(log_softmax(need(&h.logits, "a policy head"), 1), *a),
        Target::Contrast(a, b) => {
            let s = scores(h);
            column(s.clone(), *a) - column(s, *b)
        }
    }
}

/// The targets' values, `[rows, 1]`: row r explains `targets[rows[r]]` (rows are path points, noise samples or
/// perturbations of input sample `rows[r]`). One target for all rows is one column; per-action targets of one kind
/// (`chosen`) are one gather; any other mix sums each distinct target's column under a 0/1 mask of its rows.
pub fn target_value(h: &Heads, targets: &[Target], rows: &[usize]) -> Tensor<2> {
    let first = &targets[rows[0]];
    if rows.iter().all(|&r| targets[r] == *first) {
        return one_target(h, first);
    }
    let action = |t: &Target| match t {
        Target::Action(a) => Some((0, *a)),
        Target::Q(a) => Some((1, *a)),
        Target::Logit(a) => Some((2, *a)),
        Target::Advantage(a) => Some((3, *a)),
        _ => None,
    };
    let picked: Option<Vec<(u8, usize)>> = rows.iter().map(|&r| action(&targets[r])).collect();
    if let Some(picked) = picked.filter(|p| p.iter().all(|(k, _)| *k == p[0].0)) {
        let scores = match picked[0].0 {
            0 => scores(h),
            1 => h.q.clone().expect("Q targets need Q values"),
            2 => h.logits.clone().expect("logit targets need a policy head"),
            _ => h.advantage.clone().expect("advantage targets need a dueling head"),
        };
        let device = scores.device();
        let idx: Vec<i64> = picked.iter().map(|&(_, a)| a as i64).collect();
        let idx = Tensor::<2, Int>::from_data(TensorData::new(idx, [rows.len(), 1]), &device);
        return scores.gather(1, idx);
    }
    let mut distinct: Vec<&Target> = vec![];
    for &r in rows {
        if !distinct.contains(&&targets[r]) {
            distinct.push(&targets[r]);
        }
    }
    let mut sum: Option<Tensor<2>> = None;
    for t in distinct {
        let v = one_target(h, t);
        let mask: Vec<f32> = rows.iter().map(|&r| f32::from(u8::from(targets[r] == *t))).collect();
        let v = v.clone() * Tensor::<2>::from_data(TensorData::new(mask, [rows.len(), 1]), &v.device());
        sum = Some(match sum {
            None => v,
            Some(s) => s + v,
        });
    }
    sum.expect("at least one row")
}

/// The inputs a method sends through the network: given, or made row by row on demand — IG's path points,
/// SmoothGrad's noisy copies, occluded and perturbed frames — so that only one chunk of them (the budget's rows)
/// exists at a time, never all of them.
#[derive(Clone, Copy)]
pub(crate) enum Rows<'a> {
    Given(&'a [f32]),
    /// `fill(r, out)` writes row r (`len` values) into `out`; rows are made in parallel.
    Made {
        count: usize,
        fill: &'a (dyn Fn(usize, &mut [f32]) + Sync),
    },
}

impl Rows<'_> {
    pub(crate) fn count(&self, len: usize) -> usize {
        match self {
            Rows::Given(x) => x.len() / len,
            Rows::Made { count, .. } => *count,
        }
    }

    /// Rows `start..end`, flat; made rows go into `buf`, reused from chunk to chunk.
    fn chunk<'b>(&'b self, start: usize, end: usize, len: usize, buf: &'b mut Vec<f32>) -> &'b [f32] {
        match self {
            Rows::Given(x) => &x[start * len..end * len],
            Rows::Made { fill, .. } => {
                use rayon::prelude::*;
                buf.resize((end - start) * len, 0.0);
                buf.par_chunks_mut(len).enumerate().for_each(|(k, out)| fill(start + k, out));
                &buf[..]
            }
        }
    }
}

/// Receives one chunk of rows: (first row, the rows' inputs, their gradients).
pub(crate) type GradientSink<'a> = dyn FnMut(usize, &[f32], &[f32]) + 'a;

/// The gradient of the target with respect to each row, in chunks of the budget's rows, each handed to `sink`.
/// `sample_of[r]` is the input sample row r derives from.
#[allow(clippy::too_many_arguments)] // the one internal driver every gradient method shares
pub(crate) fn gradients(
    model: &dyn Model,
    rows: Rows,
    len: usize,
    sample_of: &[usize],
    targets: &[Target],
    pass: &Pass,
    budget: Budget,
    sink: &mut GradientSink,
) {
    let device = model.device().autodiff();
    let n = rows.count(len);
    let step = budget.chunk_rows(len);
    let mut buf = vec![];
    for start in (0..n).step_by(step) {
        let end = (start + step).min(n);
        let chunk = rows.chunk(start, end, len, &mut buf);
        let x = xrl_nn::batch(chunk, len, &device).require_grad();
        let h = model.heads_for(x.clone(), pass, &sample_of[start..end]);
        let t = target_value(&h, targets, &sample_of[start..end]);
        let g = xrl_nn::to_vec(x.grad(&t.sum().backward()).expect("the input takes part in the target"));
        sink(start, chunk, &g);
    }
}

/// Forward passes (no gradients) over `rows`, in chunks on the plain device: `pick(heads, samples)` chooses each
/// row's outputs (`samples`: the chunk's rows' input samples), which come back flat.
pub(crate) fn outputs(
    model: &dyn Model,
    rows: Rows,
    len: usize,
    sample_of: &[usize],
    budget: Budget,
    pick: &dyn Fn(Heads, &[usize]) -> Tensor<2>,
) -> Vec<f32> {
    let device = model.device().without_autodiff();
    let n = rows.count(len);
    let step = budget.chunk_rows(len);
    let (mut out, mut buf) = (vec![], vec![]);
    for start in (0..n).step_by(step) {
        let end = (start + step).min(n);
        let x = xrl_nn::batch(rows.chunk(start, end, len, &mut buf), len, &device);
        let samples = &sample_of[start..end];
        out.extend(xrl_nn::to_vec(pick(model.heads_for(x, &Pass::default(), samples), samples)));
    }
    out
}

/// The target's value for each row (no gradients).
pub(crate) fn values(
    model: &dyn Model,
    rows: Rows,
    len: usize,
    sample_of: &[usize],
    targets: &[Target],
    budget: Budget,
) -> Vec<f32> {
    outputs(model, rows, len, sample_of, budget, &|h, samples| target_value(&h, targets, samples))
}

#[cfg(test)]
mod tests {
    use super::Budget;

    #[test]
    fn chunk_rows_follow_the_row_and_value_caps() {
        let default = Budget::default();
        assert_eq!(default.chunk_rows(4 * 84 * 84), 18); // Nature CNN frames
        assert_eq!(default.chunk_rows(4 * 10 * 10), 256); // MinAtar frames: the row cap
        assert_eq!(default.chunk_rows(1 << 20), 1); // bigger than the whole budget: still one row
        assert_eq!(Budget::rows(7).chunk_rows(4 * 84 * 84), 7);
        assert_eq!(Budget::rows(0).chunk_rows(10), 1);
    }
}
