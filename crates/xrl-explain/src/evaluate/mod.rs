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

/// What a test explains: a plain network, the frames (`[N, C, H, W]` or `[N, features]`, flat) and one target per
/// frame.
#[derive(Clone, Copy)]
pub struct Subject<'a> {
    pub net: &'a Net,
    pub inputs: Inputs<'a>,
    pub targets: &'a [Target],
}

impl<'a> Subject<'a> {
    /// Checks that there is one target per frame and that the targets fit the network.
    pub fn new(net: &'a Net, inputs: Inputs<'a>, targets: &'a [Target]) -> Result<Self, ExplainError> {
        crate::check_call(net, &inputs, targets, None)?;
        Ok(Subject { net, inputs, targets })
    }

    /// Frames.
    pub fn count(&self) -> usize {
        self.inputs.count()
    }

    /// `[C, H, W]` of a frame; a feature vector of length F is `[1, 1, F]` (each feature one cell).
    pub fn frame(&self) -> [usize; 3] {
        self.inputs.image().unwrap_or([1, 1, self.inputs.len()])
    }

    /// The maps of `method` for every frame.
    pub fn maps(&self, method: &dyn Method) -> Result<Attribution, ExplainError> {
        method.attribute(self.net, &self.inputs, self.targets, None)
    }

    /// The targets' values for `rows` (flat inputs, each derived from frame `sample_of[r]`), without gradients, in
    /// chunks of the default budget.
    pub fn target_values(&self, model: &dyn Model, rows: &[f32], sample_of: &[usize]) -> Vec<f32> {
        crate::values(model, Rows::Given(rows), self.inputs.len(), sample_of, self.targets, Budget::default())
    }

    /// Each row's greedy action (argmax of Q values or logits) under the subject's network, without gradients.
    pub fn greedy(&self, rows: &[f32]) -> Vec<usize> {
        self.greedy_of(Rows::Given(rows))
    }

    pub(crate) fn greedy_of(&self, rows: Rows) -> Vec<usize> {
        let len = self.inputs.len();
        let n = rows.count(len);
        let sample_of: Vec<usize> = (0..n).collect();
        let scores = crate::outputs(self.net, rows, len, &sample_of, Budget::default(), &|h, _| crate::scores(&h));
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
