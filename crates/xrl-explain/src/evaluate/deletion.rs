//! Deletion and insertion (Petsiuk et al. 2018, RISE) and action agreement (ROAD-style curves, XRL-Bench's AIM
//! and AUM).
//!
//! *Deletion* removes a frame's cells in order of saliency, most salient first, and follows the target as they go:
//! a map that finds what the network uses makes it fall fast (a small area under the curve). *Insertion* starts
//! from a frame with every cell removed and puts cells back in the same order: the target should rise fast (a
//! large area). A cell is all channels at one position (a MinAtar cell; an Atari pixel of every stacked frame);
//! "removed" is the [`Replacement`] — zero on MinAtar, where an all-zero cell is exactly "no object there", a
//! blurred copy for insertion on Atari as RISE does. The same curves in a random order are the baseline a map must
//! beat (a random map ranks cells in a random order, so it is the same baseline).
//!
//! *Action agreement* asks about the action rather than the target: the fraction of frames whose greedy action is
//! unchanged after removing the top k % of cells by |saliency| (k = 1…99, the ROAD curve with removal by the
//! replacement instead of ROAD's noisy linear imputation), and after removing the top or bottom k cells
//! (XRL-Bench's AIM and AUM; k = 1, 2, 5, 10). A faithful map changes the action when its top cells go (low
//! agreement) and leaves it when its bottom cells go (high agreement).

use super::{Spread, Subject, cell_maps, ranked};
use crate::{Attribution, ExplainError, Rows, Target};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

/// What a removed cell becomes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Replacement {
    /// 0 in every channel: on MinAtar, the object is gone.
    Zero,
    /// The frame blurred (σ in cells; RISE's insertion start is a σ 5 blur of the image).
    Blur { sigma: f32 },
    /// ROAD's noisy linear imputation (Rong et al. 2022; Quantus' `noisy_linear_imputation`): each removed cell
    /// becomes the weighted mean of its eight neighbours (1/6 across, 1/12 diagonally; removed neighbours are
    /// unknowns too, so the removed region is filled by one linear system), plus Gaussian noise of this σ. Removal
    /// then leaves no "hole" for the network to notice, only missing information. Deletion and action agreement
    /// only (there is nothing to impute from when every cell is gone).
    Imputed { noise: f32 },
}

/// ROAD's noisy linear imputation of the cells `removed` (positions `y·W + x`) of one frame `[c, h, w]`: the
/// system s_i·v_i − Σ_removed w_ij·v_j = Σ_kept w_ik·x_k per channel (s_i the weight of i's in-frame neighbours),
/// symmetric and positive definite while one cell is kept, solved by conjugate gradients; then `noise`·N(0, 1)
/// from `rng` on each imputed value.
pub fn impute(
    x: &[f32],
    [c, h, w]: [usize; 3],
    removed: &[usize],
    noise: f32,
    rng: &mut Xoshiro256PlusPlus,
) -> Vec<f32> {
    use rand_distr::{Distribution, StandardNormal};
    const OFFSETS: [(isize, isize, f64); 8] = [
        (1, 1, 1.0 / 12.0),
        (0, 1, 1.0 / 6.0),
        (-1, 1, 1.0 / 12.0),
        (1, -1, 1.0 / 12.0),
        (0, -1, 1.0 / 6.0),
        (-1, -1, 1.0 / 12.0),
        (1, 0, 1.0 / 6.0),
        (-1, 0, 1.0 / 6.0),
    ];
    let cells = h * w;
    let mut var = vec![usize::MAX; cells];
    for (k, &j) in removed.iter().enumerate() {
        var[j] = k;
    }
    let n = removed.len();
    // Each unknown's in-frame neighbours: (cell, weight); s_i their total weight.
    let neighbours: Vec<Vec<(usize, f64)>> = removed
        .iter()
        .map(|&j| {
            let (y, x0) = ((j / w) as isize, (j % w) as isize);
            OFFSETS
                .iter()
                .filter_map(|&(dy, dx, wt)| {
                    let (yy, xx) = (y + dy, x0 + dx);
                    (yy >= 0 && xx >= 0 && yy < h as isize && xx < w as isize)
                        .then(|| (yy as usize * w + xx as usize, wt))
                })
                .collect()
        })
        .collect();
    let diag: Vec<f64> = neighbours.iter().map(|nb| nb.iter().map(|(_, wt)| wt).sum()).collect();
    let apply = |v: &[f64], out: &mut [f64]| {
        for i in 0..n {
            let mut acc = diag[i] * v[i];
            for &(cell, wt) in &neighbours[i] {
                if var[cell] != usize::MAX {
                    acc -= wt * v[var[cell]];
                }
            }
            out[i] = acc;
        }
    };
    let mut out = x.to_vec();
    for ch in 0..c {
        let plane = &x[ch * cells..(ch + 1) * cells];
        let b: Vec<f64> = neighbours
            .iter()
            .map(|nb| {
                nb.iter()
                    .filter(|(cell, _)| var[*cell] == usize::MAX)
                    .map(|&(cell, wt)| wt * f64::from(plane[cell]))
                    .sum()
            })
            .collect();
        // Conjugate gradients from zero, to a residual of 1e-12 of the right-hand side (or n + 50 steps).
        let (mut v, mut r) = (vec![0.0; n], b.clone());
        let mut p = r.clone();
        let mut ap = vec![0.0; n];
        let b2: f64 = b.iter().map(|x| x * x).sum();
        let mut rr: f64 = r.iter().map(|x| x * x).sum();
        for _ in 0..n + 50 {
            if rr <= 1e-24 * b2.max(1e-300) {
                break;
            }
            apply(&p, &mut ap);
            let pap: f64 = p.iter().zip(&ap).map(|(a, b)| a * b).sum();
            if pap <= 0.0 {
                break;
            }
            let alpha = rr / pap;
            for i in 0..n {
                v[i] += alpha * p[i];
                r[i] -= alpha * ap[i];
            }
            let next: f64 = r.iter().map(|x| x * x).sum();
            let beta = next / rr;
            rr = next;
            for i in 0..n {
                p[i] = r[i] + beta * p[i];
            }
        }
        for (k, &j) in removed.iter().enumerate() {
            let e: f64 = if noise > 0.0 { StandardNormal.sample(rng) } else { 0.0 };
            out[ch * cells + j] = (v[k] + f64::from(noise) * e) as f32;
        }
    }
    out
}

impl Replacement {
    /// The replacement of one frame `[c, h, w]`, flat.
    fn of(&self, frame_values: &[f32], [c, h, w]: [usize; 3]) -> Vec<f32> {
        match self {
            Replacement::Zero => vec![0.0; frame_values.len()],
            Replacement::Blur { sigma } => crate::blur(frame_values, c, h, w, *sigma),
            // Imputation depends on which cells are gone; its callers impute each row themselves.
            Replacement::Imputed { .. } => frame_values.to_vec(),
        }
    }
}

/// The noise stream of row `r` (imputation noise does not depend on the order rows are made in).
fn row_stream(seed: u64, r: usize) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed ^ (r as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// What a curve follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CurveScore {
    /// The subject's target (Q(a*), a logit, the advantage, …).
    Target,
    /// The probability the policy (softmax of the scores) gives the target's action, as RISE's class probability;
    /// needs `Target::Action`, `Q` or `Logit` targets.
    Probability,
}

/// Deletion and insertion, with their defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeletionConfig {
    /// Cells removed or inserted per step; `None`: 1 on frames of up to 16×16 cells (a MinAtar frame: 100 steps),
    /// else a hundredth of the cells, rounded up (84×84: 71 pixels a step, 100 steps).
    pub cells_per_step: Option<usize>,
    /// What deletion puts in place of a cell.
    pub deletion: Replacement,
    /// The frame insertion starts from (cells are put back onto it).
    pub insertion: Replacement,
    pub score: CurveScore,
    /// Seed of the random-order baseline.
    pub seed: u64,
}

impl DeletionConfig {
    /// Zero for both on frames up to 16×16 cells (MinAtar); deletion to zero and insertion from a σ 5 blur on
    /// larger ones (Atari, as RISE).
    pub fn for_frame([_, h, w]: [usize; 3]) -> Self {
        let big = h * w > 16 * 16;
        DeletionConfig {
            cells_per_step: None,
            deletion: Replacement::Zero,
            insertion: if big { Replacement::Blur { sigma: 5.0 } } else { Replacement::Zero },
            score: CurveScore::Target,
            seed: 0,
        }
    }

    fn step(&self, cells: usize, h: usize, w: usize) -> usize {
        self.cells_per_step.unwrap_or(if h * w <= 16 * 16 { 1 } else { cells.div_ceil(100) }).max(1)
    }
}

/// A deletion or insertion curve: its mean over frames at each step, and the area under each frame's curve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    /// The fraction of cells removed (or inserted) at each point, 0 to 1.
    pub fraction: Vec<f64>,
    /// The score at each point, mean over frames.
    pub mean: Vec<f64>,
    /// RISE's area under the curve, (Σ s − s₀/2 − sₙ/2)/n with the fraction from 0 to 1, per frame.
    pub auc: Spread,
}

/// Deletion and insertion in saliency order, and both in a random order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeletionResult {
    pub config: DeletionConfig,
    pub deletion: Curve,
    pub insertion: Curve,
    pub random_deletion: Curve,
    pub random_insertion: Curve,
}

/// RISE's area under a curve of n + 1 equally spaced points on [0, 1] (the trapezoid rule).
pub fn auc(scores: &[f64]) -> f64 {
    let n = scores.len().saturating_sub(1);
    if n == 0 {
        return scores.first().copied().unwrap_or(0.0);
    }
    (scores.iter().sum::<f64>() - scores[0] / 2.0 - scores[n] / 2.0) / n as f64
}

impl DeletionConfig {
    /// The four curves for `attr`, the maps of `subject`'s frames.
    pub fn run(&self, subject: &Subject, attr: &Attribution) -> Result<DeletionResult, ExplainError> {
        check_maps(subject, attr)?;
        let frame = subject.frame();
        let cells = frame[1] * frame[2];
        let maps = cell_maps(attr, frame);
        let orders: Vec<Vec<usize>> = maps.chunks(cells).map(ranked).collect();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.seed);
        let random: Vec<Vec<usize>> = (0..subject.count())
            .map(|_| {
                let mut o: Vec<usize> = (0..cells).collect();
                o.shuffle(&mut rng);
                o
            })
            .collect();
        Ok(DeletionResult {
            config: self.clone(),
            deletion: self.curve(subject, &orders, false)?,
            insertion: self.curve(subject, &orders, true)?,
            random_deletion: self.curve(subject, &random, false)?,
            random_insertion: self.curve(subject, &random, true)?,
        })
    }

    /// The deletion (or, with `insert`, insertion) curve alone, cells in order of `attr`'s saliency: what Quantus'
    /// `PixelFlipping` computes.
    pub fn saliency_curve(&self, subject: &Subject, attr: &Attribution, insert: bool) -> Result<Curve, ExplainError> {
        check_maps(subject, attr)?;
        let frame = subject.frame();
        let cells = frame[1] * frame[2];
        let orders: Vec<Vec<usize>> = cell_maps(attr, frame).chunks(cells).map(ranked).collect();
        self.curve(subject, &orders, insert)
    }

    /// One curve per frame, cells taken in `orders[frame]`; every point of every frame goes through the network
    /// in chunks (rows made as they are needed).
    fn curve(&self, subject: &Subject, orders: &[Vec<usize>], insert: bool) -> Result<Curve, ExplainError> {
        let frame = subject.frame();
        let (len, cells) = (subject.inputs.len(), frame[1] * frame[2]);
        let step = self.step(cells, frame[1], frame[2]);
        let points = cells.div_ceil(step) + 1;
        let n = subject.count();
        let x = subject.inputs.values;
        let replacement = if insert { self.insertion } else { self.deletion };
        if insert && matches!(replacement, Replacement::Imputed { .. }) {
            return Err(ExplainError::Invalid(
                "insertion cannot start from an imputed frame (there is nothing left to impute from); use zero or \
                 blur"
                    .into(),
            ));
        }
        let fills: Vec<Vec<f32>> = (0..n).map(|i| replacement.of(&x[i * len..(i + 1) * len], frame)).collect();
        let fill = |r: usize, out: &mut [f32]| {
            let (i, p) = (r / points, r % points);
            if let Replacement::Imputed { noise } = replacement {
                let gone = &orders[i][..(p * step).min(cells)];
                let mut rng = row_stream(self.seed, r);
                out.copy_from_slice(&impute(&x[i * len..(i + 1) * len], frame, gone, noise, &mut rng));
                return;
            }
            let (original, replaced) = (&x[i * len..(i + 1) * len], fills[i].as_slice());
            // Deletion: the frame with the first p·step cells replaced; insertion: the replacement with them back.
            let (base, source) = if insert { (replaced, original) } else { (original, replaced) };
            out.copy_from_slice(base);
            for &j in &orders[i][..(p * step).min(cells)] {
                super::set_cell(out, frame, j, source);
            }
        };
        let sample_of: Vec<usize> = (0..n * points).map(|r| r / points).collect();
        let rows = Rows::Made { count: n * points, fill: &fill };
        let scores = match self.score {
            CurveScore::Target => {
                crate::values(&subject.model(), rows, len, &sample_of, subject.targets, super::PASSES)
            }
            CurveScore::Probability => {
                let actions = target_actions(subject.targets)?;
                let scores = crate::outputs(&subject.model(), rows, len, &sample_of, super::PASSES, &|h, _| {
                    burn::tensor::activation::softmax(crate::scores(&h), 1)
                });
                let a = scores.len() / (n * points);
                scores.chunks(a).zip(&sample_of).map(|(p, &i)| p[actions[i]]).collect()
            }
        };
        let per_frame: Vec<Vec<f64>> =
            scores.chunks(points).map(|c| c.iter().map(|&v| f64::from(v)).collect()).collect();
        let mean = (0..points).map(|p| per_frame.iter().map(|c| c[p]).sum::<f64>() / n as f64).collect();
        let fraction = (0..points).map(|p| ((p * step).min(cells)) as f64 / cells as f64).collect();
        Ok(Curve { fraction, mean, auc: Spread::of(per_frame.iter().map(|c| auc(c)).collect()) })
    }
}

/// The action each target names (for probabilities).
fn target_actions(targets: &[Target]) -> Result<Vec<usize>, ExplainError> {
    targets
        .iter()
        .map(|t| match t {
            Target::Action(a) | Target::Q(a) | Target::Logit(a) => Ok(*a),
            other => Err(ExplainError::Invalid(format!(
                "the probability curve follows an action's probability; target {other} names none (use a target \
                 score, or targets chosen / action:A)"
            ))),
        })
        .collect()
}

pub(crate) fn check_maps(subject: &Subject, attr: &Attribution) -> Result<(), ExplainError> {
    if attr.count() != subject.count() {
        return Err(ExplainError::Invalid(format!(
            "{} maps for {} frames: give the maps of these frames",
            attr.count(),
            subject.count()
        )));
    }
    if let Some(i) = attr.maps.iter().position(|v| !v.is_finite()) {
        return Err(ExplainError::Invalid(format!(
            "map value {i} of {} is {}: a test needs finite maps",
            attr.method, attr.maps[i]
        )));
    }
    Ok(())
}

/// Action agreement, with its defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgreementConfig {
    /// Percentages of cells removed for the ROAD-style curve.
    pub percents: Vec<usize>,
    /// Cell counts for the top-k (AIM) and bottom-k (AUM) tests.
    pub ks: Vec<usize>,
    pub replacement: Replacement,
}

impl Default for AgreementConfig {
    /// 1 to 99 %, and k = 1, 2, 5, 10 cells (sized for MinAtar's 100 cells; on 84×84 frames the percentages carry
    /// over and k counts pixels), removed to zero.
    fn default() -> Self {
        AgreementConfig { percents: (1..=99).collect(), ks: vec![1, 2, 5, 10], replacement: Replacement::Zero }
    }
}

/// The fraction of frames whose greedy action survives each removal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    pub config: AgreementConfig,
    /// After removing the top `percents[i]` % of cells by |saliency|.
    pub top_percent: Vec<f64>,
    /// After removing the top k cells (AIM: lower is better).
    pub top_k: Vec<f64>,
    /// After removing the bottom k cells (AUM: higher is better).
    pub bottom_k: Vec<f64>,
    /// The same top-percent curve in a random order, the baseline.
    pub random_percent: Vec<f64>,
}

impl AgreementConfig {
    pub fn run(&self, subject: &Subject, attr: &Attribution, seed: u64) -> Result<Agreement, ExplainError> {
        check_maps(subject, attr)?;
        if self.percents.iter().any(|&p| p == 0 || p >= 100) {
            return Err(ExplainError::Invalid("action agreement: percentages must be between 1 and 99".into()));
        }
        let frame = subject.frame();
        let cells = frame[1] * frame[2];
        if self.ks.iter().any(|&k| k == 0 || k > cells) {
            return Err(ExplainError::Invalid(format!("action agreement: k must be between 1 and {cells} cells")));
        }
        let maps = cell_maps(attr, frame);
        let orders: Vec<Vec<usize>> =
            maps.chunks(cells).map(|m| ranked(&m.iter().map(|v| v.abs()).collect::<Vec<_>>())).collect();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let random: Vec<Vec<usize>> = (0..subject.count())
            .map(|_| {
                let mut o: Vec<usize> = (0..cells).collect();
                o.shuffle(&mut rng);
                o
            })
            .collect();
        let counts: Vec<usize> = self.percents.iter().map(|p| (p * cells).div_ceil(100)).collect();
        let base = subject.greedy(subject.inputs.values);
        let survive = |sets: &dyn Fn(usize) -> Vec<Vec<usize>>| -> Result<Vec<f64>, ExplainError> {
            let mut out = vec![];
            // sets(i): the cell sets removed from frame i, one per point.
            let per: Vec<Vec<Vec<usize>>> = (0..subject.count()).map(sets).collect();
            let points = per[0].len();
            let changed = self.greedy_after(subject, &per, seed)?;
            for p in 0..points {
                let same = (0..subject.count()).filter(|&i| changed[i * points + p] == base[i]).count();
                out.push(same as f64 / subject.count() as f64);
            }
            Ok(out)
        };
        let top_percent = survive(&|i| counts.iter().map(|&k| orders[i][..k].to_vec()).collect())?;
        let random_percent = survive(&|i| counts.iter().map(|&k| random[i][..k].to_vec()).collect())?;
        let top_k = survive(&|i| self.ks.iter().map(|&k| orders[i][..k].to_vec()).collect())?;
        let bottom_k = survive(&|i| self.ks.iter().map(|&k| orders[i][cells - k..].to_vec()).collect())?;
        Ok(Agreement { config: self.clone(), top_percent, top_k, bottom_k, random_percent })
    }

    /// The ROAD curve alone (Quantus' `ROAD`, most relevant first): the fraction of frames whose greedy action
    /// survives removing the top `percents` % of cells by |saliency|, removed by the config's replacement — the
    /// `top_percent` of [`AgreementConfig::run`], without its other curves.
    pub fn road_curve(&self, subject: &Subject, attr: &Attribution, seed: u64) -> Result<Vec<f64>, ExplainError> {
        check_maps(subject, attr)?;
        if self.percents.iter().any(|&p| p == 0 || p >= 100) {
            return Err(ExplainError::Invalid("action agreement: percentages must be between 1 and 99".into()));
        }
        let frame = subject.frame();
        let cells = frame[1] * frame[2];
        let n = subject.count();
        let maps = cell_maps(attr, frame);
        let counts: Vec<usize> = self.percents.iter().map(|p| (p * cells).div_ceil(100)).collect();
        let sets: Vec<Vec<Vec<usize>>> = maps
            .chunks(cells)
            .map(|m| {
                let order = ranked(&m.iter().map(|v| v.abs()).collect::<Vec<_>>());
                counts.iter().map(|&k| order[..k].to_vec()).collect()
            })
            .collect();
        let base = subject.greedy(subject.inputs.values);
        let after = self.greedy_after(subject, &sets, seed)?;
        let points = counts.len();
        Ok((0..points)
            .map(|p| (0..n).filter(|&i| after[i * points + p] == base[i]).count() as f64 / n as f64)
            .collect())
    }

    /// The greedy action of every frame with each of its cell sets removed, frame-major.
    fn greedy_after(&self, subject: &Subject, sets: &[Vec<Vec<usize>>], seed: u64) -> Result<Vec<usize>, ExplainError> {
        let frame = subject.frame();
        let len = subject.inputs.len();
        let x = subject.inputs.values;
        let points = sets[0].len();
        let n = subject.count();
        let fills: Vec<Vec<f32>> = (0..n).map(|i| self.replacement.of(&x[i * len..(i + 1) * len], frame)).collect();
        let fill = |r: usize, out: &mut [f32]| {
            let (i, p) = (r / points, r % points);
            if let Replacement::Imputed { noise } = self.replacement {
                let mut rng = row_stream(seed, r);
                out.copy_from_slice(&impute(&x[i * len..(i + 1) * len], frame, &sets[i][p], noise, &mut rng));
                return;
            }
            out.copy_from_slice(&x[i * len..(i + 1) * len]);
            for &j in &sets[i][p] {
                super::set_cell(out, frame, j, &fills[i]);
            }
        };
        let frame_of: Vec<usize> = (0..n * points).map(|r| r / points).collect();
        Ok(subject.greedy_of(Rows::Made { count: n * points, fill: &fill }, &frame_of))
    }
}
