//! The interpretable "what and where" feature extractor of the IFE seed (`tiencapham/IFE`, `ImpalaCNNLarge`
//! modified; `impala_large:2`): a human-understandable encoding (HUE) of non-overlapping convolutions, so that each
//! cell of its grid sees exactly one input patch; a soft spatial attention that re-weights the cells (its mask is
//! the explanation); and an agent-friendly encoding (AFE) of overlapping convolutions for the head.
//!
//! - HUE: conv 3×3 stride 3 → 2×2 stride 2 → 1×1 (widths 16m, 32m, 32m), ReLU after each, weights scaled by the
//!   ReLU gain √2 after the default initialisation and biases 0, as the seed. On 84 × 84 frames the grid is 14 × 14,
//!   each cell one 6 × 6 patch. The MinAtar variant's convolutions are 1 × 1, so its cells are MinAtar's own 10 × 10
//!   cells (our choice: a MinAtar cell is already one object position).
//! - Attention: e_i = w₂·ReLU(W₁ z_i + b₁) + b₂ per cell (W₁: 32m → 512), α = softmax over cells, z̃_i = α_i z_i.
//!   The probe `attention` is α as `[batch, 1, H, W]`.
//! - AFE: max-pool 3×3 stride 2 padding 1, two IMPALA residual blocks (ReLU → conv 3×3 → ReLU → conv 3×3, plus the
//!   input) with spectral normalisation on both convolutions, ReLU, an adaptive max-pool to 8 × 8 (PyTorch's
//!   windows), flattened. The MinAtar variant pools to 5 × 5 and keeps that size.
//!
//! Spectral normalisation divides each residual convolution's weight W (as an `[out, in·k·k]` matrix) by its
//! largest singular value σ. PyTorch's `spectral_norm` keeps a vector u between training steps and runs one power
//! iteration per pass; here every pass finds u afresh, with no state to save or resume: the Gram matrix W·Wᵀ
//! (`out × out`, 64 × 64) is squared [`SQUARINGS`] times (each a power of 2 more iterations, normalised), its
//! product with ones is u, and σ = ‖Wᵀu‖, differentiable in W with u held constant, as PyTorch's. A test checks it
//! against 3,000 host power iterations on initialised weights, whose top singular values lie close together (20
//! plain power iterations were 0.8 % off there).

use crate::relu::relu_with;
use crate::{Pass, Probe};
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor};

/// Squarings of the Gram matrix per pass for the spectral norm: 2^12 power iterations' worth.
pub const SQUARINGS: usize = 12;

/// The shape of an IFE torso for its frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IfeShape {
    pub channels: usize,
    pub width_multiplier: usize,
    /// The HUE grid (14 × 14 on 84 × 84 frames, 10 × 10 on MinAtar).
    pub cells: [usize; 2],
    /// The AFE's output grid (8 × 8; MinAtar 5 × 5).
    pub out: [usize; 2],
    /// HUE kernels (= strides): [3, 2, 1], or [1, 1, 1] for MinAtar.
    pub kernels: [usize; 3],
}

impl IfeShape {
    /// The shape for `[c, h, w]` frames: 84 × 84 (or any size the 6 × 6 patches tile) or MinAtar's 10 × 10.
    pub fn for_frame(frame: &[usize], m: usize) -> Result<Self, String> {
        match *frame {
            [c, 10, 10] => {
                Ok(IfeShape { channels: c, width_multiplier: m, cells: [10, 10], out: [5, 5], kernels: [1; 3] })
            }
            [c, h, w] if h >= 12 && w >= 12 && h % 6 == 0 && w % 6 == 0 => Ok(IfeShape {
                channels: c,
                width_multiplier: m,
                cells: [h / 6, w / 6],
                out: [8, 8],
                kernels: [3, 2, 1],
            }),
            _ => Err(format!(
                "the IFE torso needs MinAtar's C × 10 × 10 frames or frames whose sides are multiples of 6 (its cells \
                 are 6 × 6 patches; Atari's 84 × 84), got {frame:?}"
            )),
        }
    }

    fn widths(&self) -> [usize; 3] {
        let m = self.width_multiplier;
        [16 * m, 32 * m, 32 * m]
    }

    /// The flattened output width.
    pub fn features(&self) -> usize {
        self.widths()[2] * self.out[0] * self.out[1]
    }
}

#[derive(Module, Debug)]
pub struct IfeModule {
    hue: Vec<Conv2d>,
    att_hidden: Linear,
    att_out: Linear,
    /// Two residual blocks of two convolutions each.
    res: Vec<Conv2d>,
    #[module(skip)]
    shape: IfeShape,
}

impl IfeModule {
    pub fn new(shape: IfeShape, device: &Device) -> Self {
        let [w1, w2, w3] = shape.widths();
        let ins = [shape.channels, w1, w2];
        let hue = [w1, w2, w3]
            .iter()
            .zip(ins)
            .zip(shape.kernels)
            .map(|((&out, c), k)| {
                let mut conv = Conv2dConfig::new([c, out], [k, k]).with_stride([k, k]).init(device);
                // The seed's init: the default, times the ReLU gain; biases 0.
                conv.weight = Param::from_tensor(conv.weight.val().mul_scalar(std::f32::consts::SQRT_2).detach());
                conv.bias = conv.bias.map(|b| burn::nn::Initializer::Zeros.init(b.dims(), device));
                conv
            })
            .collect();
        let res = (0..4)
            .map(|_| {
                Conv2dConfig::new([w3, w3], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(device)
            })
            .collect();
        IfeModule {
            hue,
            att_hidden: LinearConfig::new(w3, 512).init(device),
            att_out: LinearConfig::new(512, 1).init(device),
            res,
            shape,
        }
    }

    pub fn shape(&self) -> IfeShape {
        self.shape
    }

    /// The HUE convolutions (non-overlapping).
    pub fn hue(&self) -> &[Conv2d] {
        &self.hue
    }

    /// Probe names, input side first.
    pub fn layer_names() -> Vec<String> {
        let mut names: Vec<String> = (1..=3).flat_map(|i| [format!("conv{i}"), format!("conv{i}.relu")]).collect();
        names.push("attention".into());
        names.extend((1..=2).map(|i| format!("res{i}")));
        names
    }

    /// Frames `[rows, c, h, w]` to features `[rows, features]`.
    pub fn forward(&self, x: Tensor<4>, pass: &Pass, probe: &mut Option<Probe>) -> Tensor<2> {
        // HUE.
        let mut h = x;
        for (i, conv) in self.hue.iter().enumerate() {
            let z = crate::tap(pass, probe, format!("conv{}", i + 1), crate::conv_gemm(conv, h));
            h = crate::tap(pass, probe, format!("conv{}.relu", i + 1), relu_with(z, pass.relu));
        }
        // Attention over the cells.
        let [b, c, gh, gw] = h.dims();
        let cells = gh * gw;
        let z: Tensor<3> = h.reshape([b, c, cells]).swap_dims(1, 2); // [b, cells, c]
        let flat = z.clone().reshape([b * cells, c]);
        let e = crate::fast::linear::linear(&self.att_hidden, flat);
        let e = crate::fast::linear::linear(&self.att_out, relu_with(e, pass.relu)).reshape([b, cells]);
        let alpha = burn::tensor::activation::softmax(e, 1);
        let alpha = crate::tap(pass, probe, "attention".into(), alpha.reshape([b, 1, gh, gw])).reshape([b, cells, 1]);
        let h: Tensor<4> = (z * alpha).swap_dims(1, 2).reshape([b, c, gh, gw]);
        // AFE.
        let mut h = max_pool2d(h, MaxPoolOptions::new([3, 3]).with_stride([2, 2]).with_padding([1, 1]));
        let sigmas = spectral_norms(self.res.iter().map(|c| c.weight.val()).collect());
        let convs: Vec<(&Conv2d, Tensor<4>)> = self.res.iter().zip(sigmas).collect();
        for (i, pair) in convs.chunks(2).enumerate() {
            let a = spectral_conv(pair[0].0, pair[0].1.clone(), relu_with(h.clone(), pass.relu));
            let a = spectral_conv(pair[1].0, pair[1].1.clone(), relu_with(a, pass.relu));
            h = crate::tap(pass, probe, format!("res{}", i + 1), h + a);
        }
        let h = relu_with(h, pass.relu);
        let h = if h.dims()[2..] == self.shape.out { h } else { adaptive_max_pool2d(h, self.shape.out) };
        h.flatten(1, 3)
    }
}

/// A 3 × 3 padded convolution with its weight divided by `sigma`, its spectral norm. On burn's Flex backend the
/// input is padded with zeros and goes through xrl's unpadded convolution (the same numbers; burn's padded CPU
/// convolution was the slowest part of the extractor); other backends take burn's `conv2d`.
fn spectral_conv(conv: &Conv2d, sigma: Tensor<4>, x: Tensor<4>) -> Tensor<4> {
    let w = conv.weight.val() / sigma;
    let bias = conv.bias.as_ref().map(|b| b.val()).unwrap_or_else(|| Tensor::zeros([w.dims()[0]], &w.device()));
    if crate::fast::on_flex(&x.device()) {
        let x = x.pad((1, 1, 1, 1), burn::tensor::ops::PadMode::Constant(0.0));
        return crate::fast::conv::conv2d(x, w, bias, 1);
    }
    conv2d(x, w, Some(bias), ConvOptions::new([1, 1], [1, 1], [1, 1], 1))
}

/// The largest singular value of `w` as an `[out, rest]` matrix, `[1, 1, 1, 1]`, differentiable in `w` (the
/// power-iteration vectors are constants, as in PyTorch's `spectral_norm`).
pub fn spectral_norm(w: Tensor<4>) -> Tensor<4> {
    spectral_norms(vec![w]).remove(0)
}

/// [`spectral_norm`] of several weights of one shape at once: their Gram matrices are squared as one batch (four
/// residual convolutions cost one chain of batched products instead of four).
pub fn spectral_norms(ws: Vec<Tensor<4>>) -> Vec<Tensor<4>> {
    let n = ws.len();
    let [o, i, kh, kw] = ws[0].dims();
    let m: Tensor<3> = Tensor::stack(ws.into_iter().map(|w| w.reshape([o, i * kh * kw])).collect(), 0);
    let fixed = m.clone().detach();
    let device = fixed.device();
    // Each matrix normalised by its Frobenius norm, so the powers stay in range.
    let normalise = |v: Tensor<3>| {
        let norm = v.clone().powf_scalar(2.0).sum_dim(2).sum_dim(1).sqrt().add_scalar(1e-30);
        v / norm
    };
    let mut g = normalise(fixed.clone().matmul(fixed.swap_dims(1, 2)));
    for _ in 0..SQUARINGS {
        g = normalise(g.clone().matmul(g));
    }
    let u = normalise(g.matmul(Tensor::ones([n, o, 1], &device))).detach(); // [n, o, 1]
    let sigma: Tensor<3> = m.swap_dims(1, 2).matmul(u).powf_scalar(2.0).sum_dim(1).sqrt(); // [n, 1, 1]
    sigma.split(1, 0).into_iter().map(|s| s.reshape([1, 1, 1, 1])).collect()
}

/// PyTorch's `AdaptiveMaxPool2d`: output cell (i, j) is the maximum over rows ⌊i·H/oh⌋ … ⌈(i+1)·H/oh⌉ − 1 and the
/// same columns (overlapping windows when the output is larger than the input, as the seed's 7 → 8).
pub fn adaptive_max_pool2d(x: Tensor<4>, out: [usize; 2]) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let window = |i: usize, n: usize, o: usize| (i * n / o, ((i + 1) * n).div_ceil(o));
    let rows: Vec<Tensor<4>> = (0..out[0])
        .map(|i| {
            let (s, e) = window(i, h, out[0]);
            x.clone().slice([0..b, 0..c, s..e, 0..w]).max_dim(2)
        })
        .collect();
    let x = Tensor::cat(rows, 2);
    let cols: Vec<Tensor<4>> = (0..out[1])
        .map(|j| {
            let (s, e) = window(j, w, out[1]);
            x.clone().slice([0..b, 0..c, 0..out[0], s..e]).max_dim(3)
        })
        .collect();
    Tensor::cat(cols, 3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{device, to_vec};

    fn random(n: usize, d: &Device) -> Tensor<1> {
        let v: Vec<f32> = (0..n).map(|i| ((i * 7919 % 1009) as f32 / 1009.0) - 0.3).collect();
        Tensor::from_floats(v.as_slice(), d)
    }

    /// Each of the 14 × 14 cells depends on exactly one 6 × 6 patch: the gradient of one cell's HUE output reaches
    /// the input only inside that patch (and everywhere inside it).
    #[test]
    fn each_cell_sees_exactly_one_six_by_six_patch() {
        let d = device::for_tests().autodiff();
        let shape = IfeShape::for_frame(&[4, 84, 84], 2).unwrap();
        assert_eq!((shape.cells, shape.features()), ([14, 14], 64 * 8 * 8));
        let ife = IfeModule::new(shape, &d);
        // Positive inputs keep the ReLUs open somewhere in every patch.
        let v: Vec<f32> = to_vec(random(4 * 84 * 84, &d)).iter().map(|x| x.abs() + 0.1).collect();
        let x = Tensor::<4>::from_data(burn::tensor::TensorData::new(v, [1, 4, 84, 84]), &d).require_grad();
        let pass = Pass { probe: Some("conv3.relu".into()), ..Pass::default() };
        for (ci, cj) in [(0, 0), (5, 9), (13, 13)] {
            // One forward pass per backward (burn keeps no graph across backwards).
            let mut probe = None;
            let _ = ife.forward(x.clone(), &pass, &mut probe);
            let act = probe.unwrap().activation;
            let cell = act.clone().slice([0..1, 0..64, ci..ci + 1, cj..cj + 1]).sum();
            let g = to_vec(x.grad(&cell.backward()).unwrap());
            for y in 0..84 {
                for xx in 0..84 {
                    let inside = y / 6 == ci && xx / 6 == cj;
                    let any = (0..4).any(|ch| g[ch * 84 * 84 + y * 84 + xx] != 0.0);
                    assert!(!any || inside, "cell ({ci}, {cj}) reads pixel ({y}, {xx})");
                }
            }
            let patch = (0..6).flat_map(|dy| (0..6).map(move |dx| (6 * ci + dy, 6 * cj + dx)));
            let read = patch.filter(|&(y, xx)| (0..4).any(|ch| g[ch * 84 * 84 + y * 84 + xx] != 0.0)).count();
            assert!(read > 18, "cell ({ci}, {cj}) reads only {read} of its 36 pixels");
        }
    }

    /// The attention weights are a distribution over the cells, per frame.
    #[test]
    fn attention_weights_sum_to_one() {
        let d = device::for_tests();
        for frame in [[4usize, 84, 84], [4, 10, 10]] {
            let ife = IfeModule::new(IfeShape::for_frame(&frame, 2).unwrap(), &d);
            let n: usize = frame.iter().product();
            let x = random(3 * n, &d).reshape([3, frame[0], frame[1], frame[2]]);
            let pass = Pass { probe: Some("attention".into()), ..Pass::default() };
            let mut probe = None;
            let out = ife.forward(x, &pass, &mut probe);
            assert_eq!(out.dims()[1], IfeShape::for_frame(&frame, 2).unwrap().features());
            let a = to_vec(probe.unwrap().activation);
            let cells = a.len() / 3;
            for f in 0..3 {
                let s: f32 = a[f * cells..(f + 1) * cells].iter().sum();
                assert!((s - 1.0).abs() < 1e-5, "{frame:?} frame {f}: {s}");
                assert!(a[f * cells..(f + 1) * cells].iter().all(|&v| v > 0.0));
            }
        }
    }

    /// The padded fast path computes burn's padded convolution.
    #[test]
    fn the_padded_fast_path_is_burns_convolution() {
        let d = device::for_tests();
        let conv = Conv2dConfig::new([8, 8], [3, 3]).init(&d);
        let x = random(2 * 8 * 5 * 5, &d).reshape([2, 8, 5, 5]);
        let fast = to_vec(spectral_conv(&conv, spectral_norm(conv.weight.val()), x.clone()));
        let w = conv.weight.val();
        let w = w.clone() / spectral_norm(w);
        let b = conv.bias.as_ref().map(|b| b.val());
        let slow = to_vec(conv2d(x, w, b, ConvOptions::new([1, 1], [1, 1], [1, 1], 1)));
        assert_eq!(fast.len(), 2 * 8 * 5 * 5);
        for (a, b) in fast.iter().zip(&slow) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    /// On the residual convolutions' own initialisation (64 × 576 weights, singular values close together), the
    /// estimate is within 1e-3 of the largest singular value found by 3,000 power iterations on the host.
    #[test]
    fn the_spectral_norm_converges_on_initialised_weights() {
        let d = device::for_tests();
        let conv = Conv2dConfig::new([64, 64], [3, 3]).init(&d);
        let w = conv.weight.val();
        let est = to_vec(spectral_norm(w.clone()))[0] as f64;
        let m: Vec<f64> = to_vec(w).into_iter().map(f64::from).collect();
        let (rows, cols) = (64, 576);
        let mut v = vec![1.0f64; cols];
        let mut sigma = 0.0;
        for _ in 0..3_000 {
            let u: Vec<f64> = (0..rows).map(|r| (0..cols).map(|c| m[r * cols + c] * v[c]).sum()).collect();
            let nu = u.iter().map(|x| x * x).sum::<f64>().sqrt();
            let w2: Vec<f64> = (0..cols).map(|c| (0..rows).map(|r| m[r * cols + c] * u[r] / nu).sum()).collect();
            sigma = w2.iter().map(|x| x * x).sum::<f64>().sqrt();
            v = w2.iter().map(|x| x / sigma).collect();
        }
        eprintln!("spectral norm: {est} vs {sigma} (3,000 host iterations)");
        assert!((est - sigma).abs() <= 1e-3 * sigma, "{est} vs {sigma}");
    }

    /// The spectral norm of a matrix with known singular values; adaptive max-pooling 7 → 8 by hand.
    #[test]
    fn spectral_norm_and_adaptive_pooling_by_hand() {
        let d = device::for_tests();
        // [[3, 0], [0, -2]] as a 2 × 2 × 1 × 1 weight: σ = 3.
        let w = Tensor::<1>::from_floats([3.0, 0.0, 0.0, -2.0], &d).reshape([2, 2, 1, 1]);
        assert!((to_vec(spectral_norm(w.clone()))[0] - 3.0).abs() < 1e-4);
        // As a batch with another of the same shape ([[1, 0], [0, 5]]: σ = 5), each keeps its own norm.
        let w5 = Tensor::<1>::from_floats([1.0, 0.0, 0.0, 5.0], &d).reshape([2, 2, 1, 1]);
        let both: Vec<f32> = spectral_norms(vec![w, w5]).into_iter().map(|s| to_vec(s)[0]).collect();
        assert!((both[0] - 3.0).abs() < 1e-4 && (both[1] - 5.0).abs() < 1e-4, "{both:?}");
        // A rank-one weight u vᵀ: σ = |u|·|v|.
        let u = [1.0f32, 2.0, 2.0];
        let v: Vec<f32> = (0..18).map(|i| (i as f32 - 8.0) / 4.0).collect();
        let m: Vec<f32> = u.iter().flat_map(|a| v.iter().map(move |b| a * b)).collect();
        let norm_v = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let w = Tensor::<1>::from_floats(m.as_slice(), &d).reshape([3, 2, 3, 3]);
        assert!((to_vec(spectral_norm(w))[0] - 3.0 * norm_v).abs() < 1e-3 * norm_v);
        // Rows 0..7 of a 7 × 7 grid whose value is its row index·10 + column: the 8 windows per axis are
        // [0], [0,1], [1,2], [2,3], [3,4], [4,5], [5,6], [6].
        let grid: Vec<f32> = (0..49).map(|i| ((i / 7) * 10 + i % 7) as f32).collect();
        let x = Tensor::<1>::from_floats(grid.as_slice(), &d).reshape([1, 1, 7, 7]);
        let p = to_vec(adaptive_max_pool2d(x, [8, 8]));
        let ends = [0, 1, 2, 3, 4, 5, 6, 6];
        for i in 0..8 {
            for j in 0..8 {
                assert_eq!(p[i * 8 + j], (ends[i] * 10 + ends[j]) as f32, "({i}, {j})");
            }
        }
    }
}
