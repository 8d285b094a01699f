//! Evidence for or against saliency maps: tests that ask whether a map reflects what the network uses.
//!
//! Every test takes any [`Method`] of the registry, a [`Subject`] (a network, frames and one target per frame),
//! computes maps in batches through the method's own calling convention, and returns typed numbers:
//!
//! * [`randomisation`] — model-parameter randomisation (Adebayo et al. 2018; Huber et al. 2022's inversion rule):
//!   maps of the network with layers re-initialised, cascading from the output down and one layer at a time,
//!   compared with the original's by [`similarity`] measures;
//! * [`deletion`] — deletion and insertion curves (RISE) and their AUC, and action agreement (ROAD-style curves,
//!   XRL-Bench's AIM/AUM);
//! * [`faithfulness`] — faithfulness correlation (Bhatt et al. 2020), infidelity (Yeh et al. 2019) and max
//!   sensitivity.
//!
//! A recurrent agent (a core that carries a state: A2C/PPO with `--core lstm|gru`) is evaluated at the states it
//! held while playing ([`Subject::at_states`], [`HeldState`]): every pass of every test on frame t — its map, each
//! deleted, inserted, perturbed, imputed or intervened copy, and the maps and passes of each randomised network —
//! starts from the recorded h(t−1) (and cell), held fixed, so the tests explain the observation given that state.
//! A randomised network receives the same recorded state; it is not re-run through the randomised core. (A DRQN
//! restarts its core over its stack of frames each step and is a feed-forward network of the stack.)
//!
//! Definitions, defaults and published numbers: `../shared/research/EVALUATION.md`.

pub mod counterfactual;
pub mod deletion;
pub mod faithfulness;
pub mod randomisation;
pub mod similarity;
pub mod suite;

use crate::{Attribution, Budget, ExplainError, Inputs, Method, Model, Resolution, Rows, Target};
use serde::{Deserialize, Serialize};
use xrl_nn::Net;

/// The chunks of the tests' forward passes (no gradients: perturbed, deleted, inserted and intervened frames):
/// 1,024 rows, at most 2M input values (74 Atari frames). Without a backward no activation is kept for it, and
/// bigger chunks than the methods' 256 rows ([`Budget::default`]) are faster: 10,000 cell-removed MinAtar rows
/// took 25.2–25.7 ms in chunks of 256, 21.0–21.6 in 512, 19.8–20.1 in 1,024 and 19.4–19.7 in 2,048 (five
/// interleaved runs on the 2-core machine).
pub(crate) const PASSES: Budget = Budget { max_rows: 1024, max_values: 1 << 21 };

/// What a test explains: a plain network, the frames (`[N, C, H, W]` or `[N, features]`, flat), one target per
/// frame and, for a network whose core carries a state, the state entering each frame.
#[derive(Clone, Copy)]
pub struct Subject<'a> {
    pub net: &'a Net,
    pub inputs: Inputs<'a>,
    pub targets: &'a [Target],
    /// The recorded state entering each frame (recurrent networks; `None` for feed-forward ones). Every pass of
    /// every test — the maps, each perturbed, deleted, inserted or intervened copy of frame i, and the maps and
    /// passes of a randomised network — starts from frame i's row: the tests explain the observation given that
    /// state.
    pub state: Option<&'a HeldState>,
}

/// The recurrent state entering each frame, h(t−1) (and an LSTM's cell), as recorded while the agent played
/// (`Trajectory::hidden`, `cell`): `[frames, size]` each, flat.
#[derive(Clone, Debug, PartialEq)]
pub struct HeldState {
    pub hidden: Vec<f32>,
    pub cell: Option<Vec<f32>>,
    /// Units per row (the core's hidden size).
    pub size: usize,
}

impl HeldState {
    /// Rows `frames` of a trajectory's recorded states (`None`: the trajectory has none).
    pub fn of_trajectory(tr: &xrl::trajectory::Trajectory, frames: &[usize]) -> Option<Self> {
        let hidden = tr.hidden.as_ref()?;
        let size = hidden.len() / tr.len().max(1);
        let rows = |v: &Vec<f32>| frames.iter().flat_map(|&t| v[t * size..(t + 1) * size].to_vec()).collect();
        Some(HeldState { hidden: rows(hidden), cell: tr.cell.as_ref().map(rows), size })
    }

    /// Frames.
    pub fn count(&self) -> usize {
        self.hidden.len() / self.size.max(1)
    }

    /// Rows `frames` as burn's state, on `device`.
    fn rows(&self, frames: &[usize], device: &burn::tensor::Device) -> xrl_nn::RecurrentState {
        let pick = |v: &[f32]| {
            let rows: Vec<f32> =
                frames.iter().flat_map(|&i| v[i * self.size..(i + 1) * self.size].iter().copied()).collect();
            xrl_nn::batch(&rows, self.size, device)
        };
        xrl_nn::RecurrentState { hidden: pick(&self.hidden), cell: self.cell.as_deref().map(pick) }
    }
}

/// A network as the tests run it: a feed-forward network as it is (every shortcut of [`Net`] kept), a recurrent one
/// from the held state — row r of a pass, derived from input sample s, starts from the state of frame
/// `frame_of[s]` (s itself without `frame_of`).
pub(crate) struct OnFrames<'n> {
    net: &'n Net,
    state: Option<&'n HeldState>,
    frame_of: Option<&'n [usize]>,
}

impl Model for OnFrames<'_> {
    fn heads(&self, x: burn::tensor::Tensor<2>, pass: &xrl_nn::Pass) -> xrl_nn::Heads {
        let rows: Vec<usize> = (0..x.dims()[0]).collect();
        self.heads_for(x, pass, &rows)
    }

    fn heads_for(&self, x: burn::tensor::Tensor<2>, pass: &xrl_nn::Pass, samples: &[usize]) -> xrl_nn::Heads {
        let Some(state) = self.state else { return self.net.forward(x, pass) };
        let frames: Vec<usize> = match self.frame_of {
            Some(f) => samples.iter().map(|&s| f[s]).collect(),
            None => samples.to_vec(),
        };
        let state = state.rows(&frames, &x.device());
        self.net.forward(x, &xrl_nn::Pass { state: Some(state), ..pass.clone() })
    }

    fn as_net(&self) -> Option<&Net> {
        // The shortcuts through a plain network's layers start its core from zeros: a held state goes the whole
        // way through `forward`.
        self.state.is_none().then_some(self.net)
    }

    fn spec(&self) -> Option<&xrl_nn::NetSpec> {
        Some(self.net.spec())
    }

    fn layers(&self) -> Option<Vec<String>> {
        Some(self.net.layer_names())
    }

    fn device(&self) -> burn::tensor::Device {
        self.net.device()
    }
}

impl<'a> Subject<'a> {
    /// Checks that there is one target per frame and that the targets fit the network. A network whose core
    /// carries a state is refused: give the state entering each frame ([`Subject::at_states`]).
    pub fn new(net: &'a Net, inputs: Inputs<'a>, targets: &'a [Target]) -> Result<Self, ExplainError> {
        if net.spec().carries_state() {
            return Err(ExplainError::Invalid(
                "this network's recurrent core carries a state from step to step: give the state entering each frame \
                 (Subject::at_states, e.g. a trajectory's recorded states; zeros at an episode's start)"
                    .into(),
            ));
        }
        crate::check_call(net, &inputs, targets, None)?;
        Ok(Subject { net, inputs, targets, state: None })
    }

    /// A recurrent network's frames, each with the state it was entered with (`state`: one row per frame, of the
    /// core's size, an LSTM's cell too), held fixed through every test.
    pub fn at_states(
        net: &'a Net,
        inputs: Inputs<'a>,
        targets: &'a [Target],
        state: &'a HeldState,
    ) -> Result<Self, ExplainError> {
        let Some(core) = net.spec().core.filter(|_| net.spec().carries_state()) else {
            return Err(ExplainError::Invalid(
                "a held state was given for a network whose core carries none (feed-forward, or a DRQN that restarts \
                 over its stack): use Subject::new"
                    .into(),
            ));
        };
        let n = inputs.count();
        let lstm = core.kind == xrl_nn::CoreKind::Lstm;
        if state.size != core.hidden
            || state.hidden.len() != n * core.hidden
            || state.cell.as_ref().is_some_and(|c| c.len() != state.hidden.len())
            || state.cell.is_some() != lstm
        {
            return Err(ExplainError::Invalid(format!(
                "the held state has {} rows of {} units{}; the network's {:?} core needs one row of {} per frame ({n} \
                 frames){}",
                state.count(),
                state.size,
                if state.cell.is_some() { " with a cell" } else { "" },
                core.kind,
                core.hidden,
                if lstm { " and a cell of the same shape" } else { " and no cell" },
            )));
        }
        let values = state.hidden.iter().chain(state.cell.iter().flatten());
        if let Some(v) = values.copied().find(|v| !v.is_finite()) {
            return Err(ExplainError::Invalid(format!("the held state holds {v}: states must be finite numbers")));
        }
        crate::check_call(net, &inputs, targets, None)?;
        Ok(Subject { net, inputs, targets, state: Some(state) })
    }

    /// Frames.
    pub fn count(&self) -> usize {
        self.inputs.count()
    }

    /// `[C, H, W]` of a frame; a feature vector of length F is `[1, 1, F]` (each feature one cell).
    pub fn frame(&self) -> [usize; 3] {
        self.inputs.image().unwrap_or([1, 1, self.inputs.len()])
    }

    /// The subject's network as the tests run it: input sample i is frame i (at its held state).
    pub(crate) fn model(&self) -> OnFrames<'_> {
        self.model_of(self.net, None)
    }

    /// `net` (the subject's or a randomised copy) as the tests run it: input sample s derives from frame
    /// `frame_of[s]` (s without `frame_of`) and, for a recurrent network, starts from that frame's held state.
    pub(crate) fn model_of<'n>(&'n self, net: &'n Net, frame_of: Option<&'n [usize]>) -> OnFrames<'n> {
        OnFrames { net, state: self.state, frame_of }
    }

    /// The maps of `method` for every frame.
    pub fn maps(&self, method: &dyn Method) -> Result<Attribution, ExplainError> {
        method.attribute(&self.model(), &self.inputs, self.targets, None)
    }

    /// The targets' values for `rows` (flat inputs, each derived from frame `sample_of[r]`), without gradients, in
    /// chunks of the default budget.
    pub fn target_values(&self, model: &dyn Model, rows: &[f32], sample_of: &[usize]) -> Vec<f32> {
        crate::values(model, Rows::Given(rows), self.inputs.len(), sample_of, self.targets, PASSES)
    }

    /// Each row's greedy action (argmax of Q values or logits) under the subject's network, without gradients;
    /// row i is (a copy of) frame i.
    pub fn greedy(&self, rows: &[f32]) -> Vec<usize> {
        let n = rows.len() / self.inputs.len().max(1);
        self.greedy_of(Rows::Given(rows), &(0..n).collect::<Vec<_>>())
    }

    /// Each row's greedy action; row r derives from frame `frame_of[r]`.
    pub(crate) fn greedy_of(&self, rows: Rows, frame_of: &[usize]) -> Vec<usize> {
        let len = self.inputs.len();
        let n = rows.count(len);
        let model = self.model();
        let scores = crate::outputs(&model, rows, len, frame_of, PASSES, &|h, _| crate::scores(&h));
        let a = scores.len() / n.max(1);
        scores
            .chunks(a.max(1))
            .map(|s| s.iter().enumerate().fold(0, |best, (i, v)| if *v > s[best] { i } else { best }))
            .collect()
    }
}

/// The control every test reports beside the methods: maps of independent uniform noise in [0, 1) at the input's
/// resolution, from a seed (a map that knows nothing).
pub struct RandomMap {
    pub seed: u64,
}

impl Method for RandomMap {
    fn name(&self) -> String {
        "random-map".into()
    }

    fn compute(&self, call: &crate::Call) -> Result<crate::Computed, ExplainError> {
        use rand::{Rng, SeedableRng};
        // One stream per input's contents, so a perturbed copy of a frame gets other noise than the frame.
        let len = call.inputs.len();
        let maps = call
            .inputs
            .values
            .chunks(len)
            .flat_map(|x| {
                let h = x.iter().fold(self.seed, |h, v| h.rotate_left(5) ^ u64::from(v.to_bits()));
                let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(h);
                (0..len).map(move |_| rng.random::<f32>())
            })
            .collect();
        Ok(crate::Computed::at_input(maps, call))
    }
}

/// A statistic over frames: each frame's value, their mean and (population) standard deviation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub mean: f64,
    pub std: f64,
    pub values: Vec<f64>,
}

impl Spread {
    pub fn of(values: Vec<f64>) -> Self {
        let n = values.len().max(1) as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt();
        Spread { mean, std, values }
    }
}

/// One map per frame at cell resolution, `[N, H·W]`: an input-resolution map summed over channels (a MinAtar
/// cell is all its channels), a layer map (Grad-CAM) upsampled to the frame by nearest neighbour, a grid map as
/// it is. Signs are kept; tests that rank by magnitude take `abs` themselves.
pub fn cell_maps(attr: &Attribution, frame: [usize; 3]) -> Vec<f32> {
    let [c, h, w] = frame;
    let cells = h * w;
    let mut out = Vec::with_capacity(attr.count() * cells);
    for i in 0..attr.count() {
        let m = attr.map(i);
        match &attr.resolution {
            Resolution::Input => {
                for j in 0..cells {
                    out.push((0..c).map(|k| m[k * cells + j]).sum());
                }
            }
            Resolution::Layer { .. } => {
                let (lh, lw) = (attr.shape[0], attr.shape[1]);
                out.extend(crate::upsample_nearest(m, lh, lw, h, w));
            }
            Resolution::Grid { .. } => out.extend_from_slice(m),
        }
    }
    out
}

/// Writes `fill` into every channel of cell `j` (row-major `y·W + x`) of one frame.
pub(crate) fn set_cell(frame_values: &mut [f32], frame: [usize; 3], j: usize, fill: &[f32]) {
    let [c, h, w] = frame;
    for k in 0..c {
        frame_values[k * h * w + j] = fill[k * h * w + j];
    }
}

/// Cells in descending order of `scores` (ties by position, so the order is repeatable).
pub fn ranked(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order
}
