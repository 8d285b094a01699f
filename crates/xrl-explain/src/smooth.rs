//! SmoothGrad (Smilkov et al. 2017), SmoothGrad² and VarGrad (Adebayo et al. 2018) around a gradient method:
//! the mean (of squares, or the variance) of its maps over inputs with Gaussian noise of standard deviation
//! `sigma · (max − min)` of each sample (PAIR saliency's convention), or of `sigma` itself with `absolute` (Captum
//! NoiseTunnel's `stdevs`).

use super::local::FirstConv;
use super::{Gradient, GradientKind, Maps, Model, Rows, Target};
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
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

    pub(crate) fn maps(&self, model: &dyn Model, inputs: &[f32], len: usize, targets: &[Target]) -> Maps {
        // Copy r's noise comes from its own stream (seeded by the seed and r), so a chunk is made without the
        // draws of any other copy.
        let seed = self.seed;
        let draws = move |r: usize, z: &mut [f32]| {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ (r as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            z.iter_mut().for_each(|v| *v = rng.sample(StandardNormal));
        };
        self.smooth(model, inputs, len, targets, &draws)
    }

    /// [`crate::Method::attribute`] with the standard-normal draws given: `samples` copies per input, sample-major
    /// (copy k of input i at `(i · samples + k) · len`), scaled here by the noise level. Lets tests replay another
    /// tool's noise.
    pub fn attribute_with_noise(
        &self,
        model: &dyn Model,
        inputs: &crate::Inputs,
        targets: &[Target],
        draws: &[f32],
    ) -> Result<crate::Attribution, crate::ExplainError> {
        let s = self.samples.max(1);
        if draws.len() != inputs.values.len() * s {
            return Err(crate::ExplainError::Invalid(format!(
                "{} draws: give one standard-normal draw per input value and noise sample ({})",
                draws.len(),
                inputs.values.len() * s
            )));
        }
        /// This SmoothGrad with its draws replayed.
        struct Replayed<'a>(&'a SmoothGrad, &'a [f32]);
        impl crate::Method for Replayed<'_> {
            fn name(&self) -> String {
                crate::Method::name(self.0)
            }
            fn compute(&self, c: &crate::Call) -> Result<crate::Computed, crate::ExplainError> {
                self.0.check()?;
                let len = c.inputs.len();
                let fill = |r: usize, z: &mut [f32]| z.copy_from_slice(&self.1[r * len..(r + 1) * len]);
                Ok(crate::Computed::at_input(self.0.smooth(c.model, c.inputs.values, len, c.targets, &fill).maps, c))
            }
        }
        crate::Method::attribute(&Replayed(self, draws), model, inputs, targets, None)
    }

    /// `draws(r, z)` writes the standard-normal draws of noisy copy r (copy r % samples of input r / samples).
    fn smooth(
        &self,
        model: &dyn Model,
        inputs: &[f32],
        len: usize,
        targets: &[Target],
        draws: &(dyn Fn(usize, &mut [f32]) + Sync),
    ) -> Maps {
        let n = inputs.len() / len;
        let s = self.samples.max(1);
        let sd: Vec<f32> = inputs
            .chunks(len)
            .map(|x| {
                let (lo, hi) = x.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
                if self.absolute { self.sigma } else { self.sigma * (hi - lo) }
            })
            .collect();
        // Noisy copy r of input i = r / s, made a chunk at a time.
        let fill = |r: usize, out: &mut [f32]| {
            let i = r / s;
            draws(r, out);
            for (o, x) in out.iter_mut().zip(&inputs[i * len..(i + 1) * len]) {
                *o = x + sd[i] * *o;
            }
        };
        // Copy k of sample i still belongs to sample i: its target (`chosen`) and any per-sample context.
        let sample_of: Vec<usize> = (0..n * s).map(|r| r / s).collect();
        let linear = self.kind == SmoothKind::Mean && self.base.kind != GradientKind::TimesInput;
        if let Some(first) = linear.then(|| FirstConv::of(model)).flatten() {
            // A convolutional network and a map linear in the gradient: the noisy copies start at the first
            // convolution's output, and the mean of the gradients there goes back through it once per sample.
            let zl = first.out_len();
            let fill_z = |r: usize, z: &mut [f32]| {
                let mut x = vec![0.0f32; len];
                fill(r, &mut x);
                first.apply(&x, true, z);
            };
            let mut mean = vec![0.0f32; n * zl];
            let rows = Rows::Made { count: n * s, fill: &fill_z };
            self.base.attribute_rows(&first, rows, zl, &sample_of, targets, &mut |start, g| {
                for (k, g) in g.chunks(zl).enumerate() {
                    let i = (start + k) / s;
                    mean[i * zl..(i + 1) * zl].iter_mut().zip(g).for_each(|(m, g)| *m += g / s as f32);
                }
            });
            return Maps { maps: first.input_gradients(&mean), delta: None };
        }
        // Running mean, sum of squared deviations (Welford: exact zero for equal maps) and sum of squares.
        let (mut mean, mut m2, mut sum_sq) =
            (vec![0.0f32; inputs.len()], vec![0.0f32; inputs.len()], vec![0.0f32; inputs.len()]);
        let rows = Rows::Made { count: n * s, fill: &fill };
        self.base.attribute_rows(model, rows, len, &sample_of, targets, &mut |start, maps| {
            for (k, m) in maps.chunks(len).enumerate() {
                let (i, count) = ((start + k) / s, ((start + k) % s + 1) as f32);
                let at = i * len..(i + 1) * len;
                for (((mu, d2), q), &v) in
                    mean[at.clone()].iter_mut().zip(&mut m2[at.clone()]).zip(&mut sum_sq[at]).zip(m)
                {
                    let delta = v - *mu;
                    *mu += delta / count;
                    *d2 += delta * (v - *mu);
                    *q += v * v;
                }
            }
        });
        let s = s as f32;
        let maps = match self.kind {
            SmoothKind::Mean => mean,
            SmoothKind::Squared => sum_sq.iter().map(|q| q / s).collect(),
            // The population variance, as Captum's VarGrad.
            SmoothKind::Variance => m2.iter().map(|d| d / s).collect(),
        };
        Maps { maps, delta: None }
    }
}
