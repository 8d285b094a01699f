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

pub mod bench;
mod cam;
mod gradient;
mod integrated;
mod local;
mod occlusion;
mod perturbation;
mod smooth;

pub use cam::{CamMaps, GradCam, GuidedGradCam, upsample_nearest};
pub use gradient::{Gradient, GradientKind};
pub use integrated::{Baseline, IntegratedGradients, Rule};
pub use occlusion::{Fill, Occlusion};
pub use perturbation::{Perturbation, PerturbationMaps, Score, blur};
pub use smooth::{SmoothGrad, SmoothKind};

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use xrl_nn::{Heads, Net, Pass};

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
}

impl<F: Fn(Tensor<2>, &Pass) -> Heads> Model for F {
    fn heads(&self, x: Tensor<2>, pass: &Pass) -> Heads {
        self(x, pass)
    }
}

/// The scalar explained for each sample.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
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
    /// The Q value (or logit) of each sample's own action.
    Chosen(Vec<usize>),
    /// Q (or logit) of a minus that of b.
    Contrast(usize, usize),
}

/// How many rows one forward/backward pass may hold: at most `max_rows`, and at most `max_values` input values in
/// all (at least one row).
#[derive(Clone, Copy, Debug)]
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

/// Attribution maps, one per input sample, each with the input's layout; `delta` is integrated gradients'
/// convergence delta per sample (Σ attribution − (T(x) − T(baseline))).
#[derive(Clone, Debug, PartialEq)]
pub struct Attribution {
    pub maps: Vec<f32>,
    pub len: usize,
    pub delta: Option<Vec<f32>>,
}

impl Attribution {
    pub fn map(&self, i: usize) -> &[f32] {
        &self.maps[i * self.len..(i + 1) * self.len]
    }
}

fn scores(h: &Heads) -> Tensor<2> {
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
}

/// The target's value per sample, `[batch, 1]`. `rows` maps each row to its sample (for `Chosen`).
pub fn target_value(h: &Heads, target: &Target, rows: &[usize]) -> Tensor<2> {
    match target {
        Target::Q(a) => column(h.q.clone().expect("Q target needs a Q head"), *a),
        Target::MaxQ => h.q.clone().expect("MaxQ target needs a Q head").max_dim(1),
        Target::Value => h.value.clone().expect("Value target needs a value head"),
        Target::Advantage(a) => column(h.advantage.clone().expect("Advantage target needs a dueling head"), *a),
        Target::Logit(a) => column(h.logits.clone().expect("Logit target needs a policy head"), *a),
        Target::LogProb(a) => column(log_softmax(h.logits.clone().expect("LogProb target needs a policy head"), 1), *a),
        Target::Chosen(actions) => {
            let s = scores(h);
            let device = s.device();
            let idx: Vec<i64> = rows.iter().map(|&r| actions[r] as i64).collect();
            let idx = Tensor::<2, Int>::from_data(TensorData::new(idx, [rows.len(), 1]), &device);
            s.gather(1, idx)
        }
        Target::Contrast(a, b) => {
            let s = scores(h);
            column(s.clone(), *a) - column(s, *b)
        }
    }
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
    fn count(&self, len: usize) -> usize {
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
    target: &Target,
    pass: &Pass,
    budget: Budget,
    sink: &mut GradientSink,
) {
    let device = Device::flex().autodiff();
    let n = rows.count(len);
    let step = budget.chunk_rows(len);
    let mut buf = vec![];
    for start in (0..n).step_by(step) {
        let end = (start + step).min(n);
        let chunk = rows.chunk(start, end, len, &mut buf);
        let x = xrl_nn::batch(chunk, len, &device).require_grad();
        let h = model.heads_for(x.clone(), pass, &sample_of[start..end]);
        let t = target_value(&h, target, &sample_of[start..end]);
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
    let device = Device::flex();
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
    target: &Target,
    budget: Budget,
) -> Vec<f32> {
    outputs(model, rows, len, sample_of, budget, &|h, samples| target_value(&h, target, samples))
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
