//! Differential integrated gradients (the `modanesh/Differential_IG` seed): which parts of an input frame x, against
//! a baseline frame b, changed the bits of the observation code (or of the hidden-state code) the Moore machine
//! branches on.
//!
//! For each bit j, with z_j the encoder's value before quantisation,
//!
//! ```text
//! F_j(u) = (z_j(u) − z_j(x))²,   IG_j = (x − b) ⊙ ∫₀¹ ∂F_j/∂u (b + α(x − b)) dα
//! ```
//!
//! so Σ IG_j = F_j(x) − F_j(b) = −(z_j(b) − z_j(x))² (completeness, reported per bit). The **masked** map is the
//! mean of IG_j over the bits whose quantised value differs between x and b; the **unmasked** map the mean of
//! the averaged path gradients over the same bits, without the (x − b) factor (the seed's names). When no bit
//! differs both are absent and [`DiffIg::differing`] is empty (the seed divided by zero and drew NaN).
//!
//! The seed took one backward pass per bit per path point; here every (point, bit) pair is one row of a batch,
//! each row's output the one F_j its row stands for, so one backward pass per chunk of rows gives them all.
//! The seed's baseline bug (b = x, so every attribution was zero) is not reproduced: the baseline is used.

use crate::FsmError;
use crate::mmn::Mmn;
use burn::module::Module;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};
use xrl::nn::{batch, to_vec};

/// Which code is attributed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bits {
    /// The observation code (the seed's): the torso and the observation encoder only.
    Observation,
    /// The hidden-state code after one step from a given state: torso, observation bottleneck, GRU, hidden-state
    /// encoder. The observation bottleneck is passed through its smooth surrogate (the ternary staircase before
    /// rounding, which its straight-through gradient differentiates): through the rounded code the hidden value
    /// would be constant between code changes and jump at them, and every path gradient would be zero.
    Hidden,
}

/// How the path integral is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Quadrature {
    /// `steps` Gauss–Legendre points (exact for polynomials of degree 2·steps − 1).
    GaussLegendre,
    /// The seed's: `steps + 1` points k/steps, both ends included, equally weighted.
    SeedMean,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffIgConfig {
    pub bits: Bits,
    pub quadrature: Quadrature,
    /// Path points (the seed's m: 50 for Atari, 10 for control tasks).
    pub steps: usize,
    /// Rows (point × bit pairs) per backward pass; bounds memory.
    pub chunk: usize,
}

impl Default for DiffIgConfig {
    fn default() -> Self {
        DiffIgConfig { bits: Bits::Observation, quadrature: Quadrature::GaussLegendre, steps: 50, chunk: 2048 }
    }
}

impl DiffIgConfig {
    /// (α, weight) of the path points.
    pub fn points(&self) -> Vec<(f64, f64)> {
        match self.quadrature {
            Quadrature::GaussLegendre => xrl_explain::Rule::GaussLegendre.points(self.steps),
            Quadrature::SeedMean => {
                let m = self.steps.max(1);
                (0..=m).map(|k| (k as f64 / m as f64, 1.0 / (m + 1) as f64)).collect()
            }
        }
    }

    pub fn validate(&self) -> Result<(), FsmError> {
        if !(1..=10_000).contains(&self.steps) {
            return Err(FsmError::Invalid(format!("--steps must be between 1 and 10000, got {}", self.steps)));
        }
        if !(1..=1 << 20).contains(&self.chunk) {
            return Err(FsmError::Invalid(format!("--chunk must be between 1 and 1048576, got {}", self.chunk)));
        }
        Ok(())
    }
}

/// The attribution of one input against one baseline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiffIg {
    pub bits: Bits,
    /// The quantised codes of the input and the baseline.
    pub input_code: Vec<i8>,
    pub baseline_code: Vec<i8>,
    /// The bits whose quantised value differs.
    pub differing: Vec<usize>,
    /// IG_j per bit, each of the observation's length.
    pub per_bit: Vec<Vec<f32>>,
    /// The averaged path gradient ḡ_j per bit.
    pub mean_gradient: Vec<Vec<f32>>,
    /// Σ IG_j and what completeness says it should be, −(z_j(b) − z_j(x))², per bit.
    pub completeness: Vec<(f64, f64)>,
    /// Mean of IG_j over the differing bits (`None` when none differs).
    pub masked: Option<Vec<f32>>,
    /// Mean of ḡ_j over the differing bits (`None` when none differs).
    pub unmasked: Option<Vec<f32>>,
    /// Mean of IG_j over every bit (the seed's picture for control tasks).
    pub all_bits: Vec<f32>,
}

impl DiffIg {
    /// The largest relative completeness error over the bits whose target is not negligible.
    pub fn completeness_error(&self) -> f64 {
        self.completeness.iter().filter(|(_, t)| t.abs() > 1e-6).map(|(s, t)| ((s - t) / t).abs()).fold(0.0, f64::max)
    }
}

/// The pre-quantisation values z(u) of the chosen code for rows `u` (`hidden`: the state each row steps from).
fn pre_code(mmn: &Mmn, bits: Bits, u: Tensor<2>, hidden: Option<Tensor<2>>) -> Result<Tensor<2>, FsmError> {
    let ox = mmn.ox.as_ref().ok_or_else(|| FsmError::Invalid("the MMN has no observation bottleneck".into()))?;
    let c = mmn.net.features(u);
    match bits {
        Bits::Observation => Ok(ox.pre_code(c)),
        Bits::Hidden => {
            let hx =
                mmn.hx.as_ref().ok_or_else(|| FsmError::Invalid("the MMN has no hidden-state bottleneck".into()))?;
            let rows = c.dims()[0];
            let h = hidden.unwrap_or_else(|| Tensor::zeros([rows, hx.input()], &c.device()));
            let raw = mmn.net.core_step(ox.smooth_forward(c), h).expect("an MMN has a core");
            Ok(hx.pre_code(raw))
        }
    }
}

/// Differential IG of `input` against `baseline` (flat observations). `hidden`: with [`Bits::Hidden`], the decoded
/// state the step starts from (`None`: the start state's). `mmn` must live on an autodiff device.
pub fn diff_ig(
    mmn: &Mmn,
    input: &[f32],
    baseline: &[f32],
    hidden: Option<&[f32]>,
    config: &DiffIgConfig,
) -> Result<DiffIg, FsmError> {
    config.validate()?;
    let n = input.len();
    if baseline.len() != n || n == 0 {
        return Err(FsmError::Invalid(format!(
            "the input has {n} values and the baseline {}; give two observations of the same environment",
            baseline.len()
        )));
    }
    let device = mmn.device();
    if !device.is_autodiff() {
        return Err(FsmError::Invalid("differential IG needs the MMN on an autodiff device".into()));
    }
    let plain = mmn.valid();
    let pd = plain.device();
    let start_hidden = || -> Vec<f32> {
        match hidden {
            Some(h) => h.to_vec(),
            None => to_vec(plain.initial(1).0),
        }
    };
    let h_row = (config.bits == Bits::Hidden).then(start_hidden);
    let h_len = h_row.as_ref().map_or(0, |h| h.len());
    if let (Some(h), Some(hx)) = (&h_row, &mmn.hx)
        && h.len() != hx.input()
    {
        return Err(FsmError::Invalid(format!("the state has {} values; the GRU has {}", h.len(), hx.input())));
    }
    let h_plain = |rows: usize| h_row.as_ref().map(|h| batch(&h.repeat(rows), h_len, &pd));
    // z(x), z(b) and their codes, off autodiff.
    let both: Vec<f32> = input.iter().chain(baseline).copied().collect();
    let z_plain = pre_code(&plain, config.bits, batch(&both, n, &pd), h_plain(2))?;
    let quantiser = match config.bits {
        Bits::Observation => plain.ox.as_ref(),
        Bits::Hidden => plain.hx.as_ref(),
    }
    .expect("checked by pre_code");
    let codes = match config.bits {
        Bits::Observation => crate::mmn::codes(quantiser.quantise(z_plain.clone())),
        // The codes the MMN itself reaches (through the rounded observation code), not the surrogate's.
        Bits::Hidden => {
            let step = plain.step(batch(&both, n, &pd), h_plain(2).expect("a state for hidden bits"));
            crate::mmn::codes(step.state_code.expect("checked by pre_code"))
        }
    };
    let z = to_vec(z_plain);
    let bits = z.len() / 2;
    let (zx, zb) = (&z[..bits], &z[bits..]);
    let points = config.points();
    // Rows: every (point k, bit j) pair; row r = k·bits + j.
    let total = points.len() * bits;
    let diff: Vec<f32> = input.iter().zip(baseline).map(|(x, b)| x - b).collect();
    let mut mean_gradient = vec![vec![0.0f64; n]; bits];
    let chunk = config.chunk.max(1);
    let mut r0 = 0;
    while r0 < total {
        let r1 = (r0 + chunk).min(total);
        let rows = r1 - r0;
        let mut u = Vec::with_capacity(rows * n);
        let mut onehot = vec![0.0f32; rows * bits];
        let mut target = Vec::with_capacity(rows);
        for (i, r) in (r0..r1).enumerate() {
            let (k, j) = (r / bits, r % bits);
            let a = points[k].0 as f32;
            u.extend(baseline.iter().zip(&diff).map(|(b, d)| b + a * d));
            onehot[i * bits + j] = 1.0;
            target.push(zx[j]);
        }
        let u = Tensor::<2>::from_data(TensorData::new(u, [rows, n]), &device).require_grad();
        let h = h_row.as_ref().map(|h| batch(&h.repeat(rows), h_len, &device));
        let zu = pre_code(mmn, config.bits, u.clone(), h)?;
        let pick = Tensor::<2>::from_data(TensorData::new(onehot, [rows, bits]), &device);
        let zj = (zu * pick).sum_dim(1);
        let f = (zj - batch(&target, 1, &device)).powi_scalar(2).sum();
        let grads = f.backward();
        let g = to_vec(u.grad(&grads).ok_or_else(|| FsmError::Invalid("no input gradient".into()))?);
        for (i, r) in (r0..r1).enumerate() {
            let (k, j) = (r / bits, r % bits);
            let w = points[k].1;
            for (acc, gi) in mean_gradient[j].iter_mut().zip(&g[i * n..(i + 1) * n]) {
                *acc += w * *gi as f64;
            }
        }
        r0 = r1;
    }
    let per_bit: Vec<Vec<f32>> =
        mean_gradient.iter().map(|g| g.iter().zip(&diff).map(|(g, d)| (g * *d as f64) as f32).collect()).collect();
    let completeness = (0..bits)
        .map(|j| {
            let sum: f64 = per_bit[j].iter().map(|&v| v as f64).sum();
            (sum, -((zb[j] - zx[j]) as f64).powi(2))
        })
        .collect();
    let differing: Vec<usize> = (0..bits).filter(|&j| codes[0][j] != codes[1][j]).collect();
    let mean_of = |maps: &[Vec<f32>], which: &[usize]| -> Option<Vec<f32>> {
        (!which.is_empty())
            .then(|| (0..n).map(|p| which.iter().map(|&j| maps[j][p]).sum::<f32>() / which.len() as f32).collect())
    };
    let mean_gradient: Vec<Vec<f32>> = mean_gradient.iter().map(|g| g.iter().map(|&v| v as f32).collect()).collect();
    let all: Vec<usize> = (0..bits).collect();
    Ok(DiffIg {
        bits: config.bits,
        input_code: codes[0].clone(),
        baseline_code: codes[1].clone(),
        masked: mean_of(&per_bit, &differing),
        unmasked: mean_of(&mean_gradient, &differing),
        all_bits: mean_of(&per_bit, &all).unwrap_or_default(),
        differing,
        per_bit,
        mean_gradient,
        completeness,
    })
}

/// The seed's procedure, for timing and checking: one backward pass per bit per path point, at batch 1, with its
/// m + 1 equally weighted points. Returns ḡ_j per bit.
pub fn diff_ig_per_bit_and_point(
    mmn: &Mmn,
    input: &[f32],
    baseline: &[f32],
    steps: usize,
) -> Result<Vec<Vec<f32>>, FsmError> {
    let device = mmn.device();
    let n = input.len();
    let plain = mmn.valid();
    let zx = to_vec(pre_code(&plain, Bits::Observation, batch(input, n, &plain.device()), None)?);
    let bits = zx.len();
    let mut out = vec![vec![0.0f32; n]; bits];
    for k in 0..=steps {
        let a = k as f32 / steps.max(1) as f32;
        let u: Vec<f32> = baseline.iter().zip(input).map(|(b, x)| b + a * (x - b)).collect();
        for (j, acc) in out.iter_mut().enumerate() {
            let ut = batch(&u, n, &device).require_grad();
            let z = pre_code(mmn, Bits::Observation, ut.clone(), None)?;
            let [_, w] = z.dims();
            let zj = z.slice([0..1, j..j + 1]);
            debug_assert_eq!(w, bits);
            let f = (zj.sub_scalar(zx[j])).powi_scalar(2).sum();
            let g = to_vec(ut.grad(&f.backward()).expect("an input gradient"));
            for (a, v) in acc.iter_mut().zip(g) {
                *a += v / (steps + 1) as f32;
            }
        }
    }
    Ok(out)
}
