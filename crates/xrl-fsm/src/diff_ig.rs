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
//! The seed took one backward pass per bit per path point, (m + 1)·B in all. Here the gradient's linearity does
//! most of the work: the masked and unmasked maps are the mean over the differing bits of IG_j and ḡ_j, which are
//! IG and ḡ of the one objective mean_{j∈D} F_j — one gradient per path point, not |D|. (The seed's control
//! picture, the mean over all bits, is another such objective.) Per-bit maps, where asked for ([`PerBit`]), add
//! one row per bit; every (point, objective) pair is one row of a batch, each row's output its own objective, so
//! one backward pass per chunk of rows gives them all.
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

/// Which bits get a map of their own (the masked, unmasked and all-bit maps are always made).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PerBit {
    None,
    /// The `n` differing bits whose value changed most, |z_j(b) − z_j(x)| (what the per-bit panels show).
    Largest(usize),
    /// The bits whose code differs between input and baseline.
    Differing,
    /// Every bit (what the seed computed before averaging).
    All,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffIgConfig {
    pub bits: Bits,
    pub per_bit: PerBit,
    pub quadrature: Quadrature,
    /// Path points (the seed's m: 50 for Atari, 10 for control tasks).
    pub steps: usize,
    /// Rows (point × bit pairs) per backward pass; bounds memory.
    pub chunk: usize,
}

impl Default for DiffIgConfig {
    fn default() -> Self {
        DiffIgConfig {
            bits: Bits::Observation,
            per_bit: PerBit::Largest(12),
            quadrature: Quadrature::GaussLegendre,
            steps: 50,
            chunk: 2048,
        }
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

/// One bit's attribution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BitMap {
    pub bit: usize,
    /// IG_j, of the observation's length.
    pub ig: Vec<f32>,
    /// The averaged path gradient ḡ_j.
    pub mean_gradient: Vec<f32>,
    /// Σ IG_j, and what completeness says it is: −(z_j(b) − z_j(x))².
    pub sum: f64,
    pub target: f64,
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
    /// Mean of IG_j over the differing bits (`None` when none differs).
    pub masked: Option<Vec<f32>>,
    /// Mean of ḡ_j over the differing bits (`None` when none differs).
    pub unmasked: Option<Vec<f32>>,
    /// Σ masked and its completeness target, mean_{j∈D} −(z_j(b) − z_j(x))².
    pub masked_completeness: Option<(f64, f64)>,
    /// Mean of IG_j over every bit (the seed's picture for control tasks), and its completeness.
    pub all_bits: Vec<f32>,
    pub all_bits_completeness: (f64, f64),
    /// Maps of single bits, as [`DiffIgConfig::per_bit`] asks.
    pub per_bit: Vec<BitMap>,
}

impl DiffIg {
    /// The relative completeness error of the masked map (of the all-bit map when no bit differs):
    /// |Σ map − target| / |target|.
    pub fn completeness_error(&self) -> f64 {
        let (s, t) = self.masked_completeness.unwrap_or(self.all_bits_completeness);
        if t.abs() > 1e-12 { ((s - t) / t).abs() } else { (s - t).abs() }
    }

    /// The per-bit maps' completeness error, Σ_j |Σ IG_j − target_j| / Σ_j |target_j| (a single bit whose value
    /// barely moves has a large relative error from rounding alone, so the errors are pooled).
    pub fn per_bit_completeness_error(&self) -> f64 {
        let err: f64 = self.per_bit.iter().map(|b| (b.sum - b.target).abs()).sum();
        let total: f64 = self.per_bit.iter().map(|b| b.target.abs()).sum();
        if total > 1e-12 { err / total } else { err }
    }

    /// The map of bit `j`, where it was made.
    pub fn bit(&self, j: usize) -> Option<&BitMap> {
        self.per_bit.iter().find(|b| b.bit == j)
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
    // Input gradients only: the weights' would be computed and thrown away.
    let frozen = xrl::nn::frozen(mmn);
    let mmn = &frozen;
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
    let differing: Vec<usize> = (0..bits).filter(|&j| codes[0][j] != codes[1][j]).collect();
    let singles: Vec<usize> = match config.per_bit {
        PerBit::None => vec![],
        PerBit::Differing => differing.clone(),
        PerBit::Largest(most) => {
            let mut by_change = differing.clone();
            by_change.sort_by(|&a, &b| (zb[b] - zx[b]).abs().total_cmp(&(zb[a] - zx[a]).abs()).then(a.cmp(&b)));
            by_change.truncate(most);
            by_change.sort();
            by_change
        }
        PerBit::All => (0..bits).collect(),
    };
    // The objectives, as weights over the bits: the mean over the differing bits (when any), the mean over all
    // bits, then one per single bit.
    let mut objectives: Vec<Vec<f32>> = vec![];
    if !differing.is_empty() {
        let mut w = vec![0.0; bits];
        differing.iter().for_each(|&j| w[j] = 1.0 / differing.len() as f32);
        objectives.push(w);
    }
    objectives.push(vec![1.0 / bits as f32; bits]);
    for &j in &singles {
        let mut w = vec![0.0; bits];
        w[j] = 1.0;
        objectives.push(w);
    }
    let kinds = objectives.len();
    // Rows: every (point k, objective o) pair; row r = k·kinds + o.
    let total = points.len() * kinds;
    let diff: Vec<f32> = input.iter().zip(baseline).map(|(x, b)| x - b).collect();
    let mut mean_gradient = vec![vec![0.0f64; n]; kinds];
    let chunk = config.chunk.max(1);
    let mut r0 = 0;
    while r0 < total {
        let r1 = (r0 + chunk).min(total);
        let rows = r1 - r0;
        let mut u = Vec::with_capacity(rows * n);
        let mut weights = Vec::with_capacity(rows * bits);
        let mut target = Vec::with_capacity(rows * bits);
        for r in r0..r1 {
            let (k, o) = (r / kinds, r % kinds);
            let a = points[k].0 as f32;
            u.extend(baseline.iter().zip(&diff).map(|(b, d)| b + a * d));
            weights.extend_from_slice(&objectives[o]);
            target.extend_from_slice(zx);
        }
        let u = Tensor::<2>::from_data(TensorData::new(u, [rows, n]), &device).require_grad();
        let h = h_row.as_ref().map(|h| batch(&h.repeat(rows), h_len, &device));
        let zu = pre_code(mmn, config.bits, u.clone(), h)?;
        let w = Tensor::<2>::from_data(TensorData::new(weights, [rows, bits]), &device);
        let f = ((zu - batch(&target, bits, &device)).powi_scalar(2) * w).sum();
        let grads = f.backward();
        let g = to_vec(u.grad(&grads).ok_or_else(|| FsmError::Invalid("no input gradient".into()))?);
        for (i, r) in (r0..r1).enumerate() {
            let (k, o) = (r / kinds, r % kinds);
            let w = points[k].1;
            for (acc, gi) in mean_gradient[o].iter_mut().zip(&g[i * n..(i + 1) * n]) {
                *acc += w * *gi as f64;
            }
        }
        r0 = r1;
    }
    // The completeness target of an objective: Σ_j w_j (F_j(x) − F_j(b)) = −Σ_j w_j (z_j(b) − z_j(x))².
    let target = |w: &[f32]| -> f64 { -(0..bits).map(|j| w[j] as f64 * ((zb[j] - zx[j]) as f64).powi(2)).sum::<f64>() };
    let made = |o: usize| -> (Vec<f32>, Vec<f32>, f64, f64) {
        let g: Vec<f32> = mean_gradient[o].iter().map(|&v| v as f32).collect();
        let ig: Vec<f32> = mean_gradient[o].iter().zip(&diff).map(|(g, d)| (g * *d as f64) as f32).collect();
        let sum = mean_gradient[o].iter().zip(&diff).map(|(g, d)| g * *d as f64).sum();
        (ig, g, sum, target(&objectives[o]))
    };
    let first_single = kinds - singles.len();
    let (masked, unmasked, masked_completeness) = if differing.is_empty() {
        (None, None, None)
    } else {
        let (ig, g, sum, t) = made(0);
        (Some(ig), Some(g), Some((sum, t)))
    };
    let (all_bits, _, all_sum, all_target) = made(first_single - 1);
    let per_bit = singles
        .iter()
        .enumerate()
        .map(|(i, &bit)| {
            let (ig, mean_gradient, sum, target) = made(first_single + i);
            BitMap { bit, ig, mean_gradient, sum, target }
        })
        .collect();
    Ok(DiffIg {
        bits: config.bits,
        input_code: codes[0].clone(),
        baseline_code: codes[1].clone(),
        differing,
        masked,
        unmasked,
        masked_completeness,
        all_bits,
        all_bits_completeness: (all_sum, all_target),
        per_bit,
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
