//! Quantised bottleneck networks (Koul et al. 2019): autoencoders whose code layer is [`ternary`] (or
//! [`binary`]), trained to reconstruct a recurrent policy's observation features or hidden states, then inserted
//! between its torso and core (observations) or after its core (hidden states) so that the policy runs on finitely
//! many codes — the states and observation classes of its Moore machine.

use crate::quantise::{binary, ternary, ternary_surrogate};
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// What the decoder's last layer is bounded by: the torso's ReLU6 features (observations) or the GRU's tanh states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reconstruct {
    Relu6,
    Tanh,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Quantiser {
    /// {−1, 0, 1} (the seed's `TernaryTanh`).
    Ternary,
    /// {−1, 1}.
    Binary,
}

/// A bottleneck's shape: `input` values in, a code of `code` values, hidden widths as multiples of the code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QbnSpec {
    pub input: usize,
    pub code: usize,
    /// The encoder's hidden widths, as multiples of `code` (the decoder mirrors them).
    pub hidden: Vec<usize>,
    pub reconstruct: Reconstruct,
    pub quantiser: Quantiser,
}

impl QbnSpec {
    /// The seed's observation bottleneck (`ObsQBNet`): F → 8B → B, back through 8B to F with ReLU6.
    pub fn observations(features: usize, code: usize) -> Self {
        QbnSpec {
            input: features,
            code,
            hidden: vec![8],
            reconstruct: Reconstruct::Relu6,
            quantiser: Quantiser::Ternary,
        }
    }

    /// The seed's hidden-state bottleneck for control tasks: H → 8B → B, back with a final tanh.
    pub fn hidden_states(hidden: usize, code: usize) -> Self {
        QbnSpec { input: hidden, code, hidden: vec![8], reconstruct: Reconstruct::Tanh, quantiser: Quantiser::Ternary }
    }

    /// The seed's Atari hidden-state bottleneck (`HxQBNet`): H → 8B → 4B → B, mirrored.
    pub fn atari_hidden_states(hidden: usize, code: usize) -> Self {
        QbnSpec { hidden: vec![8, 4], ..Self::hidden_states(hidden, code) }
    }
}

/// Encoder: Linear → tanh for each hidden width, then Linear → the quantiser. Decoder: the mirror image, tanh after
/// each hidden layer, the output bounded by [`Reconstruct`].
#[derive(Module, Debug)]
pub struct Qbn {
    encoder: Vec<Linear>,
    decoder: Vec<Linear>,
    #[module(skip)]
    reconstruct: Reconstruct,
    #[module(skip)]
    quantiser: Quantiser,
}

impl Qbn {
    pub fn new(spec: &QbnSpec, device: &Device) -> Result<Self, String> {
        if spec.input == 0 || spec.code == 0 || spec.hidden.contains(&0) {
            return Err(format!("a bottleneck needs positive widths, got {spec:?}"));
        }
        let mut widths = vec![spec.input];
        widths.extend(spec.hidden.iter().map(|m| m * spec.code));
        widths.push(spec.code);
        let layers = |w: &[usize]| w.windows(2).map(|p| LinearConfig::new(p[0], p[1]).init(device)).collect();
        let back: Vec<usize> = widths.iter().rev().copied().collect();
        Ok(Qbn {
            encoder: layers(&widths),
            decoder: layers(&back),
            reconstruct: spec.reconstruct,
            quantiser: spec.quantiser,
        })
    }

    /// The width of what it reconstructs.
    pub fn input(&self) -> usize {
        self.encoder[0].weight.dims()[0]
    }

    /// The code's width (bits).
    pub fn code_len(&self) -> usize {
        self.decoder[0].weight.dims()[0]
    }

    /// The encoder's output before the quantiser, `[batch, code]` (what differential integrated gradients
    /// attribute: the code is its quantisation).
    pub fn pre_code(&self, x: Tensor<2>) -> Tensor<2> {
        tanh_between(&self.encoder, x)
    }

    /// The code of pre-quantisation values (see [`Qbn::pre_code`]).
    pub fn quantise(&self, z: Tensor<2>) -> Tensor<2> {
        match self.quantiser {
            Quantiser::Ternary => ternary(z),
            Quantiser::Binary => binary(z),
        }
    }

    /// The reconstruction through the quantiser's smooth surrogate instead of its code (the unrounded staircase,
    /// or tanh for binary codes): a function of `x` without jumps, whose gradient is the straight-through one.
    pub fn smooth_forward(&self, x: Tensor<2>) -> Tensor<2> {
        let z = self.pre_code(x);
        self.decode(match self.quantiser {
            Quantiser::Ternary => ternary_surrogate(z),
            Quantiser::Binary => z.tanh(),
        })
    }

    /// The codes of `x` (`[batch, input]` → `[batch, code]`, values in {−1, 0, 1}).
    pub fn encode(&self, x: Tensor<2>) -> Tensor<2> {
        self.quantise(self.pre_code(x))
    }

    /// What the codes stand for (`[batch, code]` → `[batch, input]`).
    pub fn decode(&self, code: Tensor<2>) -> Tensor<2> {
        let h = tanh_between(&self.decoder, code);
        match self.reconstruct {
            Reconstruct::Relu6 => relu(h).clamp_max(6.0),
            Reconstruct::Tanh => h.tanh(),
        }
    }

    /// Codes and reconstruction.
    pub fn forward(&self, x: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let code = self.encode(x);
        (code.clone(), self.decode(code))
    }
}

/// The layers in turn, tanh between them (not after the last).
fn tanh_between(layers: &[Linear], x: Tensor<2>) -> Tensor<2> {
    let last = layers.len() - 1;
    layers.iter().enumerate().fold(x, |h, (i, layer)| {
        let h = layer.forward(h);
        if i < last { h.tanh() } else { h }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{batch, device::for_tests, to_vec};
    use burn::optim::{AdamConfig, GradientsParams};

    #[test]
    fn the_seeds_shapes_and_codes_of_three_values() {
        let d = for_tests();
        let q = Qbn::new(&QbnSpec::atari_hidden_states(32, 4), &d).unwrap();
        let widths: Vec<[usize; 2]> = q.encoder.iter().chain(&q.decoder).map(|l| l.weight.dims()).collect();
        assert_eq!(widths, [[32, 32], [32, 16], [16, 4], [4, 16], [16, 32], [32, 32]]);
        let x: Vec<f32> = (0..5 * 32).map(|i| ((i * 37) % 17) as f32 / 8.5 - 1.0).collect();
        let (code, back) = q.forward(batch(&x, 32, &d));
        assert_eq!(code.dims(), [5, 4]);
        assert!(to_vec(code).iter().all(|v| [-1.0, 0.0, 1.0].contains(v)));
        assert!(to_vec(back).iter().all(|v| v.abs() < 1.0), "a tanh reconstruction");
        assert!(Qbn::new(&QbnSpec { code: 0, ..QbnSpec::observations(8, 4) }, &d).is_err());
    }

    /// Through the straight-through estimator the encoder learns too (without it no gradient would pass the
    /// rounding, and only the decoder could fit, to the data's variance at best): the reconstruction error of
    /// eight points falls well below what any constant code allows, and the encoder's first layer moves.
    #[test]
    fn a_bottleneck_learns_to_reconstruct_through_its_quantised_code() {
        let d = for_tests().autodiff();
        d.seed(3);
        let mut q = Qbn::new(&QbnSpec::observations(8, 6), &d).unwrap();
        // Eight distinct points in [0, 6]: every one a ternary code can tell apart.
        let x: Vec<f32> = (0..64).map(|i| if (i * 5 + i / 8) % 3 == 0 { 5.0 } else { 0.5 }).collect();
        let x = batch(&x, 8, &d);
        let mse = |q: &Qbn| ((q.forward(x.clone()).1 - x.clone()).powi_scalar(2)).mean();
        let before = to_vec(mse(&q))[0];
        let first = to_vec(q.encoder[0].weight.val());
        let mut adam = AdamConfig::new().init();
        for _ in 0..1500 {
            let loss = mse(&q);
            let grads = GradientsParams::from_grads(loss.backward(), &q);
            q = adam.step(1e-2, q, grads);
        }
        let after = to_vec(mse(&q))[0];
        // A code that carried nothing would leave the decoder at best the data's variance per feature.
        let xs = to_vec(x.clone());
        let constant: f32 = (0..8)
            .map(|f| {
                let col: Vec<f32> = (0..8).map(|r| xs[r * 8 + f]).collect();
                let m = col.iter().sum::<f32>() / 8.0;
                col.iter().map(|v| (v - m).powi(2)).sum::<f32>() / 8.0
            })
            .sum::<f32>()
            / 8.0;
        assert!(after < 0.6 * constant && after < before, "MSE {before} → {after}; a constant code: {constant}");
        let moved =
            to_vec(q.encoder[0].weight.val()).iter().zip(&first).filter(|(a, b)| (*a - *b).abs() > 1e-3).count();
        assert!(moved > first.len() / 2, "{moved} of {} encoder weights moved", first.len());
    }
}
