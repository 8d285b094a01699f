//! Faithfulness correlation (Bhatt et al. 2020), infidelity (Yeh et al. 2019) and max sensitivity (Yeh et al.
//! 2019) — the single-frame measures of Quantus and Captum, on cells.
//!
//! * **Faithfulness correlation**: remove a random subset of cells (replacement: zero), and correlate (Pearson,
//!   over many subsets) the map's sum over the subset with the fall of the target, f(x) − f(x with the subset
//!   removed). Quantus' `FaithfulnessCorrelation` with `perturb_baseline="black"` on inputs whose minimum is 0,
//!   `abs=False`; it draws features, we draw cells (all channels of a position), which is the same on one-channel
//!   frames. Higher is better; a random map is near 0.
//! * **Infidelity**: for perturbations I that remove a random subset of cells (I = x − x', x' the frame with the
//!   subset zeroed), E[(β·Iᵀφ − (f(x) − f(x')))²] with β = E[Iᵀφ·Δf] / E[(Iᵀφ)²] (Captum's `infidelity` with
//!   `normalize=True`, which makes it independent of the map's scale; without it maps of different methods are not
//!   comparable). Lower is better. Maps at cell resolution (Grad-CAM, perturbation saliency) count once per channel.
//! * **Max sensitivity**: the largest ‖φ(x + δ) − φ(x)‖ / ‖φ(x)‖ (Frobenius norms; 1 in place of a zero norm) over
//!   δ drawn uniformly from the L∞ ball of radius r — Captum's `sensitivity_max` with its default perturbation.
//!   Lower is more stable.

use super::{Spread, Subject, cell_maps};
use crate::{Attribution, ExplainError, Inputs, Method, Resolution, Rows};
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

/// The three measures' settings, with Quantus' and Captum's defaults where they fit 10×10 frames.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaithfulnessConfig {
    /// Random subsets per frame for faithfulness correlation (Quantus: 100).
    pub runs: usize,
    /// The share of a frame's cells each subset removes (Quantus' 224 features of a 224×224 image are far less; a
    /// tenth of MinAtar's 100 cells moves the target measurably).
    pub subset_fraction: f64,
    /// Perturbations per frame for infidelity (Captum's default is 10; at least 100 for a stable mean).
    pub infidelity_samples: usize,
    /// Perturbed copies per frame for max sensitivity (Captum: 10), and the L∞ radius (Captum: 0.02).
    pub sensitivity_samples: usize,
    pub sensitivity_radius: f32,
    pub seed: u64,
}

impl Default for FaithfulnessConfig {
    fn default() -> Self {
        FaithfulnessConfig {
            runs: 100,
            subset_fraction: 0.1,
            infidelity_samples: 100,
            sensitivity_samples: 10,
            sensitivity_radius: 0.02,
            seed: 0,
        }
    }
}

fn check_subsets(subsets: &[Vec<usize>], n: usize, cells: usize) -> Result<(), ExplainError> {
    if subsets.is_empty() || !subsets.len().is_multiple_of(n) || subsets.iter().flatten().any(|&j| j >= cells) {
        return Err(ExplainError::Invalid(format!(
            "faithfulness: {} subsets for {n} frames: give the same number per frame, of cells below {cells}",
            subsets.len()
        )));
    }
    Ok(())
}

impl FaithfulnessConfig {
    fn check(&self, cells: usize) -> Result<usize, ExplainError> {
        // At least one cell a subset (CartPole's 4 features: one), and never all of them.
        let k = ((self.subset_fraction * cells as f64).round() as usize).max(1);
        if !(self.subset_fraction > 0.0 && self.subset_fraction < 1.0) || k >= cells {
            return Err(ExplainError::Invalid(format!(
                "faithfulness: subset_fraction {} must be in (0, 1) and leave some of the {cells} cells outside a \
                 subset",
                self.subset_fraction
            )));
        }
        if self.runs < 2 || self.infidelity_samples < 1 || self.sensitivity_samples < 1 {
            return Err(ExplainError::Invalid(
                "faithfulness: runs must be at least 2 (a correlation), samples at least 1".into(),
            ));
        }
        Ok(k)
    }

    /// Random subsets of `k` of `cells` cells: `count` per frame, frame-major, from a stream of `seed` and `salt`.
    fn subsets(&self, frames: usize, count: usize, cells: usize, k: usize, salt: u64) -> Vec<Vec<usize>> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.seed ^ salt);
        (0..frames * count).map(|_| sample(&mut rng, cells, k).into_vec()).collect()
    }

    /// The fall of the target, f(x) − f(x with subset s removed), for `subsets[i·count + s]` of frame i.
    fn falls(subject: &Subject, subsets: &[Vec<usize>], count: usize) -> Vec<f64> {
        let (frame, len, x) = (subject.frame(), subject.inputs.len(), subject.inputs.values);
        let n = subject.count();
        let zero = vec![0.0; len];
        let fill = |r: usize, out: &mut [f32]| {
            let i = r / count;
            out.copy_from_slice(&x[i * len..(i + 1) * len]);
            for &j in &subsets[r] {
                super::set_cell(out, frame, j, &zero);
            }
        };
        let sample_of: Vec<usize> = (0..n * count).map(|r| r / count).collect();
        let perturbed = crate::values(
            &subject.model(),
            Rows::Made { count: n * count, fill: &fill },
            len,
            &sample_of,
            subject.targets,
            super::PASSES,
        );
        let own: Vec<usize> = (0..n).collect();
        let base = crate::values(&subject.model(), Rows::Given(x), len, &own, subject.targets, super::PASSES);
        perturbed.iter().zip(&sample_of).map(|(&p, &i)| f64::from(base[i]) - f64::from(p)).collect()
    }

    /// Faithfulness correlation per frame, over random subsets.
    pub fn correlation(&self, subject: &Subject, attr: &Attribution) -> Result<Spread, ExplainError> {
        let subsets = self.random_subsets(subject, self.runs, 0xFA17)?;
        self.correlation_on(subject, attr, &subsets)
    }

    /// `count` random subsets of a `subset_fraction` of the cells per frame, from the stream of `salt`.
    fn random_subsets(&self, subject: &Subject, count: usize, salt: u64) -> Result<Vec<Vec<usize>>, ExplainError> {
        let cells = subject.frame()[1] * subject.frame()[2];
        let k = self.check(cells)?;
        Ok(self.subsets(subject.count(), count, cells, k, salt))
    }

    /// The checks every measure on given subsets makes, then the target's fall for each: (subsets per frame,
    /// falls, frame-major).
    fn checked_falls(
        subject: &Subject,
        attr: &Attribution,
        subsets: &[Vec<usize>],
    ) -> Result<(usize, Vec<f64>), ExplainError> {
        super::deletion::check_maps(subject, attr)?;
        let (n, frame) = (subject.count(), subject.frame());
        check_subsets(subsets, n, frame[1] * frame[2])?;
        let count = subsets.len() / n;
        Ok((count, Self::falls(subject, subsets, count)))
    }

    /// Faithfulness correlation on given subsets (`runs` per frame, frame-major): what the Quantus comparison
    /// feeds, with Quantus' own random subsets.
    pub fn correlation_on(
        &self,
        subject: &Subject,
        attr: &Attribution,
        subsets: &[Vec<usize>],
    ) -> Result<Spread, ExplainError> {
        let (runs, falls) = Self::checked_falls(subject, attr, subsets)?;
        let (n, frame) = (subject.count(), subject.frame());
        let cells = frame[1] * frame[2];
        let maps = cell_maps(attr, frame);
        let values = (0..n)
            .map(|i| {
                let m = &maps[i * cells..(i + 1) * cells];
                let sums: Vec<f64> =
                    (0..runs).map(|s| subsets[i * runs + s].iter().map(|&j| f64::from(m[j])).sum()).collect();
                super::similarity::pearson_f64(&sums, &falls[i * runs..(i + 1) * runs])
            })
            .collect();
        Ok(Spread::of(values))
    }

    /// Captum's normalised infidelity per frame, for perturbations that remove random subsets of cells.
    pub fn infidelity(&self, subject: &Subject, attr: &Attribution) -> Result<Spread, ExplainError> {
        let subsets = self.random_subsets(subject, self.infidelity_samples, 0x1AF1)?;
        self.infidelity_on(subject, attr, &subsets)
    }

    /// Infidelity for given cell-removal perturbations (the same number per frame, frame-major): what the Captum
    /// comparison feeds.
    pub fn infidelity_on(
        &self,
        subject: &Subject,
        attr: &Attribution,
        subsets: &[Vec<usize>],
    ) -> Result<Spread, ExplainError> {
        let (count, falls) = Self::checked_falls(subject, attr, subsets)?;
        let (n, frame, len) = (subject.count(), subject.frame(), subject.inputs.len());
        let [c, h, w] = frame;
        let x = subject.inputs.values;
        // φ per input value: an input-resolution map as it is; a cell map for every channel of its cell.
        let cell = cell_maps(attr, frame);
        let at = |i: usize, ch: usize, j: usize| -> f64 {
            match attr.resolution {
                Resolution::Input => f64::from(attr.map(i)[ch * h * w + j]),
                _ => f64::from(cell[i * h * w + j]),
            }
        };
        let values = (0..n)
            .map(|i| {
                let xi = &x[i * len..(i + 1) * len];
                let (mut a, mut b, mut cc) = (0.0, 0.0, 0.0);
                for s in 0..count {
                    // Iᵀφ over the removed cells: I = x − 0 there, 0 elsewhere.
                    let dot: f64 = subsets[i * count + s]
                        .iter()
                        .map(|&j| (0..c).map(|ch| f64::from(xi[ch * h * w + j]) * at(i, ch, j)).sum::<f64>())
                        .sum();
                    let fall = falls[i * count + s];
                    a += dot * dot;
                    b += dot * fall;
                    cc += fall * fall;
                }
                let beta = if a == 0.0 { 0.0 } else { b / a };
                (beta * beta * a - 2.0 * beta * b + cc) / count as f64
            })
            .collect();
        Ok(Spread::of(values))
    }

    /// Max sensitivity per frame: `method`'s maps on `sensitivity_samples` perturbed copies of each frame (one
    /// batched call), against its map of the frame itself (`attr`).
    pub fn max_sensitivity(
        &self,
        subject: &Subject,
        method: &dyn Method,
        attr: &Attribution,
    ) -> Result<Spread, ExplainError> {
        super::deletion::check_maps(subject, attr)?;
        let (n, len, m) = (subject.count(), subject.inputs.len(), self.sensitivity_samples);
        let r = self.sensitivity_radius;
        if !(r > 0.0 && r.is_finite()) || m == 0 {
            return Err(ExplainError::Invalid(format!(
                "max sensitivity: the radius must be positive and at least one sample drawn, got radius {r}, {m} samples"
            )));
        }
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.seed ^ 0x5E45);
        let noise: Vec<f32> = (0..n * m * len).map(|_| rng.random_range(-r..=r)).collect();
        self.max_sensitivity_on(subject, method, attr, &noise)
    }

    /// Max sensitivity for given perturbations δ (`[N·m, len]`, m per frame, frame-major): what the Captum
    /// comparison feeds.
    pub fn max_sensitivity_on(
        &self,
        subject: &Subject,
        method: &dyn Method,
        attr: &Attribution,
        noise: &[f32],
    ) -> Result<Spread, ExplainError> {
        super::deletion::check_maps(subject, attr)?;
        let (n, len) = (subject.count(), subject.inputs.len());
        if noise.is_empty() || !noise.len().is_multiple_of(n * len) {
            return Err(ExplainError::Invalid(format!(
                "max sensitivity: {} noise values for {n} frames of {len}: give the same number of copies per frame",
                noise.len()
            )));
        }
        let m = noise.len() / (n * len);
        let x = subject.inputs.values;
        let copies: Vec<f32> = (0..n * m)
            .flat_map(|q| {
                let i = q / m;
                x[i * len..(i + 1) * len].iter().zip(&noise[q * len..(q + 1) * len]).map(|(a, d)| a + d)
            })
            .collect();
        let targets: Vec<_> = (0..n * m).map(|q| subject.targets[q / m].clone()).collect();
        let inputs = Inputs::new(&copies, subject.inputs.shape)?;
        // Copy q is of frame q / m (and starts from that frame's held state).
        let frame_of: Vec<usize> = (0..n * m).map(|q| q / m).collect();
        let perturbed = method.attribute(&subject.model_of(subject.net, Some(&frame_of)), &inputs, &targets, None)?;
        let values = (0..n)
            .map(|i| {
                let own = attr.map(i);
                let norm = own.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt();
                let norm = if norm == 0.0 { 1.0 } else { norm };
                (0..m)
                    .map(|s| {
                        let p = perturbed.map(i * m + s);
                        own.iter().zip(p).map(|(a, b)| f64::from(a - b).powi(2)).sum::<f64>().sqrt() / norm
                    })
                    .fold(0.0, f64::max)
            })
            .collect();
        Ok(Spread::of(values))
    }
}
