//! SmoothGrad (Smilkov et al. 2017), SmoothGrad² and VarGrad (Adebayo et al. 2018) around a gradient method:
//! the mean (of squares, or the variance) of its maps over inputs with Gaussian noise of standard deviation
//! `sigma · (max − min)` of each sample (PAIR saliency's convention), or of `sigma` itself with `absolute` (Captum
//! NoiseTunnel's `stdevs`).

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
    /// `sigma` is the standard deviation itself, in input units (Captum's `stdevs`), not a fraction of the range.
    pub absolute: bool,
    pub kind: SmoothKind,
    pub seed: u64,
}

impl SmoothGrad {
    /// PAIR saliency's defaults: 25 samples, σ 0.15 of the range, the mean.
    pub fn new(base: Gradient) -> Self {
        SmoothGrad { base, samples: 25, sigma: 0.15, absolute: false, kind: SmoothKind::Mean, seed: 0 }
    }

    pub fn attribute(&self, model: &dyn Model, inputs: &[f32], len: usize, target: &Target) -> Attribution {
        let s = self.samples.max(1);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.seed);
        let draws: Vec<f32> = (0..inputs.len() * s).map(|_| normal(&mut rng)).collect();
        self.attribute_with_noise(model, inputs, len, target, &draws)
    }

    /// The same with the standard-normal draws given: `samples` copies per input, sample-major (copy k of input i
    /// at `(i · samples + k) · len`), scaled here by the noise level. Lets tests replay another tool's noise.
    pub fn attribute_with_noise(
        &self,
        model: &dyn Model,
        inputs: &[f32],
        len: usize,
        target: &Target,
        draws: &[f32],
    ) -> Attribution {
        let n = inputs.len() / len;
        let s = self.samples.max(1);
        assert_eq!(draws.len(), n * s * len, "one standard-normal draw per input value and noise sample");
        // All noisy copies at once: sample-major, `s` copies per sample.
        let mut noisy = Vec::with_capacity(n * s * len);
        let mut targets = vec![];
        for i in 0..n {
            let x = &inputs[i * len..(i + 1) * len];
            let (lo, hi) = x.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
            let sd = if self.absolute { self.sigma } else { self.sigma * (hi - lo) };
            for k in 0..s {
                let z = &draws[(i * s + k) * len..(i * s + k + 1) * len];
                noisy.extend(x.iter().zip(z).map(|(v, z)| v + sd * z));
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
