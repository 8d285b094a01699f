//! A fully connected layer's product `x·W` (`x` `[m, k]`, `W` `[k, n]` row-major, as burn's `Linear` stores it)
//! whose backward computes the input gradient as `(W·gᵀ)ᵀ` rather than `g·Wᵀ`.
//!
//! Why: with a large weight and few rows, gemm handles `g·Wᵀ` by packing the whole transposed weight with strided
//! reads. For the Nature CNN's first fully connected layer (3136×512) that costs 1.9 ms at 8 rows and 2.4 ms at 32,
//! against 0.33 and 0.70 ms for the same product written as `(W·gᵀ)ᵀ` (medians of 30 products through burn, timed
//! outside the repository; `xrl bench nets` and `xrl bench explain` measure whole steps, docs/BENCHMARKS.md). Smaller weights keep burn's
//! own matmul, which is faster for them. The weight gradient is `xᵀ·g` either way.
//!
//! One row off the autodiff device (acting) through a weight below that size takes a plain-Rust row-streaming
//! product instead ([`LinearOps::one_row_linear`]).

use burn::backend::TensorMetadata;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, binary};
use burn::backend::ops::FloatTensorOps;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension, tensor::FloatTensor};
use burn::nn::Linear;
use burn::tensor::Tensor;

/// Weights with at least this many entries take the `(W·gᵀ)ᵀ` backward (Nature's fc1 has 1.6M; MinAtar's 131k,
/// for which `g·Wᵀ` is faster: 0.12 vs 0.18 ms at 32 rows).
const BIG_WEIGHT: usize = 1 << 20;

#[backend_extension(Flex, Autodiff)]
pub trait LinearOps: Backend {
    /// `x·w`, with the input gradient computed as `(w·gᵀ)ᵀ`.
    fn big_weight_matmul(x: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self>;
    /// `x·w + b` for one row `x` `[1, k]`, a row-major `w` `[k, n]` and a bias `b` `[n]`, without autodiff
    /// (acting). The bias is the sums' starting value: one pass over the output instead of a second op.
    fn one_row_linear(x: FloatTensor<Self>, w: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl LinearOps for Flex {
    fn big_weight_matmul(x: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_matmul(x, w)
    }

    fn one_row_linear(x: FloatTensor<Self>, w: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        use crate::flex::{contiguous, dims, owned};
        let [k, n] = dims(&w);
        let (x, w, b) = (contiguous(&x), contiguous(&w), contiguous(&b));
        let mut out = vec![0f32; n];
        axpy_rows(&x.storage::<f32>()[..k], &w.storage::<f32>()[..k * n], &b.storage::<f32>()[..n], &mut out);
        owned(out, vec![1, n])
    }
}

#[derive(Debug)]
struct BigWeightBackward;

impl<B: Backend> Backward<B, 2> for BigWeightBackward {
    /// (x when the weight takes a gradient, w when the input does).
    type State = (Option<B::FloatTensorPrimitive>, Option<B::FloatTensorPrimitive>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, w) = ops.state;
        binary::<B, _, _>(
            ops.parents,
            ops.node,
            grads,
            |g| {
                let w = w.expect("the weight is kept when the input takes a gradient");
                B::float_transpose(B::float_matmul(w, B::float_transpose(g)))
            },
            |g| B::float_matmul(B::float_transpose(x.expect("the input is kept when the weight takes a gradient")), g),
        );
    }
}

impl<B: Backend, C: CheckpointStrategy> LinearOps for Autodiff<B, C> {
    fn big_weight_matmul(x: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self> {
        let (x_tracked, w_tracked) = (x.is_tracked(), w.is_tracked());
        match BigWeightBackward.prepare::<C>([x.node(), w.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (x, w) = (x.into_primitive(), w.into_primitive());
                let state = (w_tracked.then(|| x.clone()), x_tracked.then(|| w.clone()));
                prep.finish(state, B::float_matmul(x, w))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::float_matmul(x.into_primitive(), w.into_primitive())),
        }
    }

    /// Acting runs off the autodiff device; here it is burn's product.
    fn one_row_linear(x: FloatTensor<Self>, w: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        let n = b.shape()[0];
        Self::float_add(Self::float_matmul(x, w), Self::float_reshape(b, burn::tensor::Shape::from(vec![1, n])))
    }
}

/// out = b + Σ_k x[k] · w[k, ·]: the weight streamed once, row by row, with the widest vectors the CPU has. gemm's
/// matrix–vector path took 8 µs of a 16 µs MinAtar acting step for the 1024×128 weight; this took about 5.5 µs,
/// close to the time it takes to read the 512 KB weight, and skipping the rows of zero inputs (a ReLU's output is
/// about half zeros) reads only the rows that count. (A skipped row would only matter to a weight of ±∞ or NaN,
/// where 0·w is NaN.)
fn axpy_rows(x: &[f32], w: &[f32], b: &[f32], out: &mut [f32]) {
    // Columns in blocks of 64 whose sums stay in registers over all rows; then the remainder.
    #[inline(always)]
    fn plain(x: &[f32], w: &[f32], b: &[f32], out: &mut [f32]) {
        const B: usize = 64;
        let n = out.len();
        let blocks = n / B;
        for blk in 0..blocks {
            let mut acc: [f32; B] = b[blk * B..(blk + 1) * B].try_into().expect("a block of B columns");
            for (xk, row) in x.iter().zip(w.chunks_exact(n)) {
                // The input is usually a ReLU's output: skipping its zeros skips reading their weight rows.
                if *xk == 0.0 {
                    continue;
                }
                let row: &[f32; B] = row[blk * B..(blk + 1) * B].try_into().expect("a block of B columns");
                for j in 0..B {
                    acc[j] += xk * row[j];
                }
            }
            out[blk * B..(blk + 1) * B].copy_from_slice(&acc);
        }
        out[blocks * B..].copy_from_slice(&b[blocks * B..]);
        for (xk, row) in x.iter().zip(w.chunks_exact(n)) {
            if *xk == 0.0 {
                continue;
            }
            for (o, v) in out[blocks * B..].iter_mut().zip(&row[blocks * B..]) {
                *o += xk * v;
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn wide(x: &[f32], w: &[f32], b: &[f32], out: &mut [f32]) {
            plain(x, w, b, out)
        }
        #[target_feature(enable = "avx2,fma")]
        fn avx2(x: &[f32], w: &[f32], b: &[f32], out: &mut [f32]) {
            plain(x, w, b, out)
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has just been found to support AVX-512F.
            return unsafe { wide(x, w, b, out) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has just been found to support AVX2 and FMA.
            return unsafe { avx2(x, w, b, out) };
        }
    }
    plain(x, w, b, out)
}

/// `layer.forward(x)` for `[batch, in]` inputs: one row off the autodiff device (acting) through a small weight by
/// the row-streaming product, big weights with the big-weight backward, everything else through burn's `Linear`.
pub fn linear(layer: &Linear, x: Tensor<2>) -> Tensor<2> {
    let w = layer.weight.val();
    let big = w.shape().num_elements() >= BIG_WEIGHT;
    let one_row = x.dims()[0] == 1 && !x.is_autodiff() && !big;
    if let (true, Some(b)) = (one_row, &layer.bias) {
        // A big weight does not stay in cache between actions, and there gemm is faster: 0.61–0.67 ms per
        // Nature-CNN action against 0.80–0.90 with the loop (3000 actions, three runs each).
        let op = <Dispatch as LinearOps>::one_row_linear;
        return Tensor::from_dispatch(op(x.into_dispatch(), w.into_dispatch(), b.val().into_dispatch()));
    }
    if !big {
        return layer.forward(x);
    }
    let out = Tensor::from_dispatch(<Dispatch as LinearOps>::big_weight_matmul(x.into_dispatch(), w.into_dispatch()));
    match &layer.bias {
        Some(b) => out + b.val().unsqueeze::<2>(),
        None => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LinearConfig;
    use burn::tensor::{Device, Distribution};

    /// One row through the acting path equals burn's layer, for widths with and without a remainder block; the
    /// input is a ReLU's output (about half zeros, whose weight rows the loop skips).
    #[test]
    fn one_row_matches_burns_linear() {
        let d = Device::flex();
        d.seed(4);
        for (k, n) in [(1024, 128), (128, 6), (300, 70), (5, 64)] {
            let layer = LinearConfig::new(k, n).init(&d);
            let x = burn::tensor::activation::relu(Tensor::<2>::random([1, k], Distribution::Uniform(-1.0, 1.0), &d));
            let (ours, theirs) = (crate::nn::to_vec(linear(&layer, x.clone())), crate::nn::to_vec(layer.forward(x)));
            let scale = theirs.iter().fold(1f32, |m, v| m.max(v.abs()));
            assert!(ours.iter().zip(&theirs).all(|(a, b)| (a - b).abs() <= 1e-5 * scale), "k {k} n {n}");
        }
    }

    /// Output and both gradients equal burn's own `Linear` (whose backward is `g·Wᵀ` and `xᵀ·g`).
    #[test]
    fn matches_burns_linear_forward_and_gradients() {
        let d = Device::flex().autodiff();
        d.seed(3);
        let layer = LinearConfig::new(2048, 600).init(&d);
        let x = Tensor::<2>::random([5, 2048], Distribution::Uniform(-1.0, 1.0), &d).require_grad();
        let g = Tensor::<2>::random([5, 600], Distribution::Uniform(-1.0, 1.0), &d);
        let ours = linear(&layer, x.clone());
        let theirs = layer.forward(x.clone());
        let (go, gt) = ((ours.clone() * g.clone()).sum().backward(), (theirs.clone() * g).sum().backward());
        let close = |a: Vec<f32>, b: Vec<f32>| {
            let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() <= 1e-5 * scale), "differ beyond 1e-5 of {scale}");
        };
        use crate::nn::to_vec as v;
        close(v(ours), v(theirs));
        close(v(x.grad(&go).unwrap()), v(x.grad(&gt).unwrap()));
        let w = layer.weight.val();
        close(v(w.grad(&go).unwrap()), v(w.grad(&gt).unwrap()));
        let b = layer.bias.as_ref().unwrap().val();
        close(v(b.grad(&go).unwrap()), v(b.grad(&gt).unwrap()));
    }
}
