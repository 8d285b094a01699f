//! SmoothGrad (Smilkov et al. 2017), SmoothGrad² and VarGrad (Adebayo et al. 2018) around a gradient method:
//! the mean (of squares, or the variance) of its maps over inputs with Gaussian noise of standard deviation
//! `sigma · (max − min)` of each sample.

use super::{Attribution, Gradient, Model, Target};
use rand::SeedableRng;
use rand_distr_free::normal;
use rand_xoshiro::Xoshiro256PlusPlus;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmoothKind {
    Mean,
    Squared,
    Variance,
}

#[derive(Clone, Debug)]
pub struct SmoothGrad {
    pub base: Gradient,
    pub samples: usize,
    /// Noise level as a fraction of each input's value range (PAIR saliency's default 0.15).
    pub sigma: f32,
    pub kind: SmoothKind,
    pub seed: u64,
}

impl SmoothGrad {
    pub fn attribute(&self, model: &dyn Model, inputs: &[f32], len: usize, target: &Target) -> Attribution {
        let n = inputs.len() / len;
        let s = self.samples.max(1);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.seed);
        // All noisy copies at once: sample-major, `s` copies per sample.
        let mut noisy = Vec::with_capacity(n * s * len);
        let mut targets = vec![];
        for i in 0..n {
            let x = &inputs[i * len..(i + 1) * len];
            let (lo, hi) = x.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
            let sd = self.sigma * (hi - lo);
            for _ in 0..s {
                noisy.extend(x.iter().map(|v| v + sd * normal(&mut rng)));
                targets.push(i);
            }
        }
        let target = match target {
            Target::Chosen(actions) => Target::Chosen(targets.iter().map(|&i| actions[i]).collect()),
            t => t.clone(),
        };
        // Copy k of sample i still belongs to sample i (for models with per-sample context).
        let remapped = Remap { inner: model, sample: &targets };
        let a = self.base.attribute(&remapped, &noisy, len, &target);
        let mut maps = vec![0.0f32; inputs.len()];
        for i in 0..n {
            for j in 0..len {
                let vals = (0..s).map(|k| a.maps[(i * s + k) * len + j]);
                maps[i * len + j] = match self.kind {
                    SmoothKind::Mean => vals.sum::<f32>() / s as f32,
                    SmoothKind::Squared => vals.map(|v| v * v).sum::<f32>() / s as f32,
                    SmoothKind::Variance => {
                        let v: Vec<f32> = vals.collect();
                        let m = v.iter().sum::<f32>() / s as f32;
                        v.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / s as f32
                    }
                };
            }
        }
        Attribution { maps, len, delta: None }
    }
}

struct Remap<'a> {
    inner: &'a dyn Model,
    sample: &'a [usize],
}

impl Model for Remap<'_> {
    fn heads(&self, x: burn::tensor::Tensor<2>, pass: &crate::nn::Pass) -> crate::nn::Heads {
        self.inner.heads(x, pass)
    }
    fn heads_for(&self, x: burn::tensor::Tensor<2>, pass: &crate::nn::Pass, samples: &[usize]) -> crate::nn::Heads {
        let mapped: Vec<usize> = samples.iter().map(|&k| self.sample[k]).collect();
        self.inner.heads_for(x, pass, &mapped)
    }
}

/// A standard normal draw (Box–Muller), so no distribution crate is needed for one function.
mod rand_distr_free {
    use rand::Rng;
    pub fn normal(rng: &mut impl Rng) -> f32 {
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random();
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
}
