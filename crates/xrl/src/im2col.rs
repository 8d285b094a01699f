//! im2col for unpadded square convolutions, and its adjoint col2im, as one backend operation with its own backward.
//!
//! `im2col(x)` turns `[b, c, h, w]` inputs into `[b·oh·ow, c·k·k]` rows (output position major, kernel offsets in
//! the weight's `[c, ky, kx]` order), so that a convolution is one matrix product over the whole batch
//! ([`crate::nn::conv_gemm`]). Written as a gather (`select` with an index tensor), burn-flex ran both directions
//! on one core, and the backward's scatter-add was a quarter of a saliency pass through the Nature CNN. Here the
//! forward copies each kernel row (`k` contiguous inputs) with one slice copy, rows of outputs in parallel; the
//! backward sums each input plane's contributions in its own task, so no two tasks write the same value.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension, tensor::FloatTensor};
use burn::tensor::{DType, Shape, Tensor};
use burn_flex::FlexTensor;
use rayon::prelude::*;

/// An unpadded k×k convolution with stride s over `[b, c, h, w]` inputs.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    s: usize,
}

impl Geometry {
    fn out_hw(&self) -> (usize, usize) {
        ((self.h - self.k) / self.s + 1, (self.w - self.k) / self.s + 1)
    }

    /// im2col (`to_cols`) or col2im of `x` on backend `B`.
    fn run<B: Im2col>(&self, x: FloatTensor<B>, to_cols: bool) -> FloatTensor<B> {
        let Geometry { b, c, h, w, k, s } = *self;
        if to_cols { B::im2col(x, b, c, h, w, k, s) } else { B::col2im(x, b, c, h, w, k, s) }
    }
}

#[backend_extension(Flex, Autodiff)]
pub trait Im2col: Backend {
    /// `[b, c, h, w]` → `[b·oh·ow, c·k·k]`.
    fn im2col(x: FloatTensor<Self>, b: usize, c: usize, h: usize, w: usize, k: usize, s: usize) -> FloatTensor<Self>;
    /// The adjoint: `[b·oh·ow, c·k·k]` → `[b, c, h, w]`, every column value added to the input it was copied from.
    fn col2im(cols: FloatTensor<Self>, b: usize, c: usize, h: usize, w: usize, k: usize, s: usize)
    -> FloatTensor<Self>;
}

/// The f32 values of a Flex tensor in row-major order (a copy only if it is a strided view).
fn contiguous(t: &FlexTensor) -> FlexTensor {
    if t.is_contiguous() && t.layout().start_offset() == 0 { t.clone() } else { t.to_contiguous() }
}

/// Copies every kernel row of one output row (`oy` of sample `bi`) into `dst` (`ow · c·k·k` values). `K` is the
/// kernel size when known at compile time (0: use `g.k`), so the common sizes copy with fixed-length moves.
fn fill_row<const K: usize>(g: &Geometry, src: &[f32], bi: usize, oy: usize, dst: &mut [f32]) {
    let k = if K > 0 { K } else { g.k };
    let (_, ow) = g.out_hw();
    let kk = g.c * k * k;
    for ox in 0..ow {
        let cols = &mut dst[ox * kk..(ox + 1) * kk];
        for ci in 0..g.c {
            for ky in 0..k {
                let from = ((bi * g.c + ci) * g.h + oy * g.s + ky) * g.w + ox * g.s;
                let to = (ci * k + ky) * k;
                cols[to..to + k].copy_from_slice(&src[from..from + k]);
            }
        }
    }
}

/// Adds every column row's contributions to one input plane (`ci` of sample `bi`, `h · w` values in `dst`).
fn sum_plane<const K: usize>(g: &Geometry, src: &[f32], bi: usize, ci: usize, dst: &mut [f32]) {
    let k = if K > 0 { K } else { g.k };
    let (oh, ow) = g.out_hw();
    let kk = g.c * k * k;
    for oy in 0..oh {
        for ox in 0..ow {
            let row = &src[((bi * oh + oy) * ow + ox) * kk + ci * k * k..][..k * k];
            for ky in 0..k {
                let at = (oy * g.s + ky) * g.w + ox * g.s;
                for (d, v) in dst[at..at + k].iter_mut().zip(&row[ky * k..(ky + 1) * k]) {
                    *d += v;
                }
            }
        }
    }
}

/// A new zeroed f32 tensor of `shape` whose `chunk`-sized pieces `f(index, piece)` fills in parallel.
fn build(shape: Vec<usize>, chunk: usize, f: impl Fn(usize, &mut [f32]) + Send + Sync) -> FlexTensor {
    let mut out = FlexTensor::empty(Shape::from(shape), DType::F32);
    out.storage_mut::<f32>().par_chunks_mut(chunk).enumerate().for_each(|(i, piece)| f(i, piece));
    out
}

impl Im2col for Flex {
    fn im2col(x: FloatTensor<Self>, b: usize, c: usize, h: usize, w: usize, k: usize, s: usize) -> FloatTensor<Self> {
        let g = Geometry { b, c, h, w, k, s };
        let (oh, ow) = g.out_hw();
        let x = contiguous(&x);
        let src: &[f32] = x.storage();
        // One task per output row (oy) of one sample.
        build(vec![b * oh * ow, c * k * k], ow * c * k * k, |row, dst| {
            let (bi, oy) = (row / oh, row % oh);
            match k {
                3 => fill_row::<3>(&g, src, bi, oy, dst),
                4 => fill_row::<4>(&g, src, bi, oy, dst),
                8 => fill_row::<8>(&g, src, bi, oy, dst),
                _ => fill_row::<0>(&g, src, bi, oy, dst),
            }
        })
    }

    fn col2im(y: FloatTensor<Self>, b: usize, c: usize, h: usize, w: usize, k: usize, s: usize) -> FloatTensor<Self> {
        let g = Geometry { b, c, h, w, k, s };
        let y = contiguous(&y);
        let src: &[f32] = y.storage();
        // One task per input plane (sample, channel): it alone writes that plane.
        build(vec![b, c, h, w], h * w, |plane, dst| {
            let (bi, ci) = (plane / c, plane % c);
            match k {
                3 => sum_plane::<3>(&g, src, bi, ci, dst),
                4 => sum_plane::<4>(&g, src, bi, ci, dst),
                8 => sum_plane::<8>(&g, src, bi, ci, dst),
                _ => sum_plane::<0>(&g, src, bi, ci, dst),
            }
        })
    }
}

/// The backward of im2col is col2im, and that of col2im is im2col.
#[derive(Debug)]
struct Adjoint {
    /// The forward was im2col.
    of_im2col: bool,
}

impl<B: Im2col> Backward<B, 1> for Adjoint {
    type State = Geometry;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let g = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| g.run::<B>(grad, !self.of_im2col));
    }
}

/// Runs im2col (`to_cols`) or col2im on the inner backend and records its adjoint for the backward pass.
fn tracked<B: Im2col, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    g: Geometry,
    to_cols: bool,
) -> FloatTensor<Autodiff<B, C>> {
    match (Adjoint { of_im2col: to_cols }).prepare::<C>([x.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(g, g.run::<B>(x.into_primitive(), to_cols)),
        OpsKind::UnTracked(prep) => prep.finish(g.run::<B>(x.into_primitive(), to_cols)),
    }
}

impl<B: Im2col, C: CheckpointStrategy> Im2col for Autodiff<B, C> {
    fn im2col(x: FloatTensor<Self>, b: usize, c: usize, h: usize, w: usize, k: usize, s: usize) -> FloatTensor<Self> {
        tracked::<B, C>(x, Geometry { b, c, h, w, k, s }, true)
    }

    fn col2im(y: FloatTensor<Self>, b: usize, c: usize, h: usize, w: usize, k: usize, s: usize) -> FloatTensor<Self> {
        tracked::<B, C>(y, Geometry { b, c, h, w, k, s }, false)
    }
}

/// `[b, c, h, w]` → `[b·oh·ow, c·k·k]` for a k×k kernel at stride s (no padding).
pub fn im2col(x: Tensor<4>, k: usize, s: usize) -> Tensor<2> {
    let [b, c, h, w] = x.dims();
    Tensor::from_dispatch(<Dispatch as Im2col>::im2col(x.into_dispatch(), b, c, h, w, k, s))
}

/// The adjoint of [`im2col`]: `[b·oh·ow, c·k·k]` → `[b, c, h, w]`.
pub fn col2im(cols: Tensor<2>, shape: [usize; 4], k: usize, s: usize) -> Tensor<4> {
    let [b, c, h, w] = shape;
    Tensor::from_dispatch(<Dispatch as Im2col>::col2im(cols.into_dispatch(), b, c, h, w, k, s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::to_vec;
    use burn::tensor::{Device, Distribution};

    /// By hand: a 1×1×3×3 input, 2×2 kernel, stride 1 → four positions.
    #[test]
    fn im2col_by_hand() {
        let x = Tensor::<1>::from_floats([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], &Device::flex())
            .reshape([1, 1, 3, 3]);
        let cols = to_vec(im2col(x, 2, 1));
        assert_eq!(cols, vec![1.0, 2.0, 4.0, 5.0, 2.0, 3.0, 5.0, 6.0, 4.0, 5.0, 7.0, 8.0, 5.0, 6.0, 8.0, 9.0]);
        // col2im of all-ones counts how many windows cover each input.
        let ones = Tensor::<2>::ones([4, 4], &Device::flex());
        assert_eq!(to_vec(col2im(ones, [1, 1, 3, 3], 2, 1)), vec![1.0, 2.0, 1.0, 2.0, 4.0, 2.0, 1.0, 2.0, 1.0]);
    }

    /// col2im is im2col's adjoint: ⟨im2col(x), y⟩ = ⟨x, col2im(y)⟩, and autodiff's gradients follow it both ways.
    #[test]
    fn col2im_is_the_adjoint_and_the_gradient() {
        let d = Device::flex().autodiff();
        d.seed(9);
        for (shape, k, s) in [([2, 3, 11, 9], 3, 2), ([3, 4, 20, 20], 4, 2), ([1, 2, 84, 84], 8, 4)] {
            let x = Tensor::<4>::random(shape, Distribution::Uniform(-1.0, 1.0), &d).require_grad();
            let cols = im2col(x.clone(), k, s);
            let y = Tensor::<2>::random(cols.dims(), Distribution::Uniform(-1.0, 1.0), &d).require_grad();
            let lhs = (cols * y.clone()).sum();
            let back = col2im(y.clone(), shape, k, s);
            let rhs = (x.clone() * back.clone()).sum();
            let (l, r) = (to_vec(lhs.clone())[0], to_vec(rhs.clone())[0]);
            assert!((l - r).abs() <= 1e-4 * l.abs().max(1.0), "{l} vs {r}");
            // d⟨im2col(x), y⟩/dx = col2im(y); d⟨x, col2im(y)⟩/dy = im2col(x).
            let gx = to_vec(x.grad(&lhs.backward()).unwrap());
            let want = to_vec(back);
            assert!(gx.iter().zip(&want).all(|(a, b)| (a - b).abs() <= 1e-5));
            let gy = to_vec(y.grad(&rhs.backward()).unwrap());
            let want = to_vec(im2col(x, k, s));
            assert!(gy.iter().zip(&want).all(|(a, b)| (a - b).abs() <= 1e-5));
        }
    }
}
