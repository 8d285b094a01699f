//! A fully connected layer's product `x·W` (`x` `[m, k]`, `W` `[k, n]` row-major, as burn's `Linear` stores it)
//! with products of its own for big weights.
//!
//! Why: a big weight (the Nature CNN's first fully connected layer, 3136×512) is read from memory for every product,
//! and gemm's choices for few rows are poor. Its input gradient `g·Wᵀ` makes gemm pack the whole transposed weight
//! with strided reads: 1.9 ms at 8 rows and 2.4 ms at 32, against 0.33 and 0.70 ms for the same product written as
//! `(W·gᵀ)ᵀ` (medians of 30 products through burn). That one in turn runs gemm's kernels with 8 of their 16 lanes
//! at 8 rows (0.27 ms on two threads); up to [`FEW_ROWS`] rows, dot products of the weight's rows with the
//! gradient's take 0.15 ms ([`few_rows_input_grad`]). The forward at few rows splits the weight's columns between
//! the threads (0.15 against gemm's own split, 0.21 ms). (Timed outside the repository on this workplace's 2-vCPU
//! machine; `xrl bench nets` and `xrl bench explain` measure whole steps, docs/BENCHMARKS.md.) Smaller weights keep
//! burn's own matmul, which is faster for them. The weight gradient is `xᵀ·g` either way.
//!
//! One row off the autodiff device (acting) through a weight below that size takes a plain-Rust row-streaming
//! product instead ([`LinearOps::one_row_linear`]); through a big weight it takes the few-row forward (Nature act
//! 280–293 µs with gemm's product, 282–283 with the split: old and new binaries alternating, a throwaway loop).

use burn::backend::TensorMetadata;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, binary};
use burn::backend::ops::FloatTensorOps;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension, tensor::FloatTensor};
use burn::nn::Linear;
use burn::tensor::Tensor;

/// Weights with at least this many entries take the products of this module (Nature's fc1 has 1.6M; MinAtar's
/// 131k, for which burn's `g·Wᵀ` is faster: 0.12 vs 0.18 ms for `(W·gᵀ)ᵀ` at 32 rows).
const BIG_WEIGHT: usize = 1 << 20;

/// Up to this many rows, a big weight's products split its columns (forward) or rows (input gradient) between the
/// threads; above, gemm's own products use all of its lanes.
const FEW_ROWS: usize = 8;

#[backend_extension(Flex, Autodiff)]
pub trait LinearOps: Backend {
    /// `x·w` for a big `w`, with the input gradient from [`LinearOps::big_weight_input_grad`].
    fn big_weight_matmul(x: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self>;
    /// `g·wᵀ` for a big `w` `[k, n]`: dot products of its rows for few rows, else `(w·gᵀ)ᵀ`.
    fn big_weight_input_grad(g: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self>;
    /// `x·w + b` for one row `x` `[1, k]`, a row-major `w` `[k, n]` and a bias `b` `[n]`, without autodiff
    /// (acting). The bias is the sums' starting value: one pass over the output instead of a second op.
    fn one_row_linear(x: FloatTensor<Self>, w: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl LinearOps for Flex {
    fn big_weight_matmul(x: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self> {
        use crate::fast::flex::{contiguous, dims, owned};
        let ([m, k], [_, n]) = (dims(&x), dims(&w));
        if m > FEW_ROWS || rayon::current_num_threads() == 1 {
            return Self::float_matmul(x, w);
        }
        let (x, w) = (contiguous(&x), contiguous(&w));
        owned(few_rows_product(&x.storage::<f32>()[..m * k], &w.storage::<f32>()[..k * n], m, n), vec![m, n])
    }

    fn big_weight_input_grad(g: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self> {
        use crate::fast::flex::{contiguous, dims, owned};
        let ([m, n], [k, _]) = (dims(&g), dims(&w));
        if m > FEW_ROWS || !crate::fast::flex::avx512() {
            return Self::float_transpose(Self::float_matmul(w, Self::float_transpose(g)));
        }
        let (g, w) = (contiguous(&g), contiguous(&w));
        owned(few_rows_input_grad(&g.storage::<f32>()[..m * n], &w.storage::<f32>()[..k * n], m, k), vec![m, k])
    }

    fn one_row_linear(x: FloatTensor<Self>, w: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        use crate::fast::flex::{contiguous, dims, owned};
        let [k, n] = dims(&w);
        let (x, w, b) = (contiguous(&x), contiguous(&w), contiguous(&b));
        let mut out = vec![0f32; n];
        axpy_rows(&x.storage::<f32>()[..k], &w.storage::<f32>()[..k * n], &b.storage::<f32>()[..n], &mut out);
        owned(out, vec![1, n])
    }
}

#[derive(Debug)]
struct BigWeightBackward;

impl<B: LinearOps> Backward<B, 2> for BigWeightBackward {
    /// (x when the weight takes a gradient, w when the input does).
    type State = (Option<B::FloatTensorPrimitive>, Option<B::FloatTensorPrimitive>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, w) = ops.state;
        binary::<B, _, _>(
            ops.parents,
            ops.node,
            grads,
            |g| B::big_weight_input_grad(g, w.expect("the weight is kept when the input takes a gradient")),
            |g| B::float_matmul(B::float_transpose(x.expect("the input is kept when the weight takes a gradient")), g),
        );
    }
}

impl<B: LinearOps, C: CheckpointStrategy> LinearOps for Autodiff<B, C> {
    fn big_weight_matmul(x: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self> {
        let (x_tracked, w_tracked) = (x.is_tracked(), w.is_tracked());
        match BigWeightBackward.prepare::<C>([x.node(), w.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (x, w) = (x.into_primitive(), w.into_primitive());
                let state = (w_tracked.then(|| x.clone()), x_tracked.then(|| w.clone()));
                prep.finish(state, B::big_weight_matmul(x, w))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::big_weight_matmul(x.into_primitive(), w.into_primitive())),
        }
    }

    /// Acting runs off the autodiff device; here it is burn's product.
    fn one_row_linear(x: FloatTensor<Self>, w: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        let n = b.shape()[0];
        Self::float_add(Self::float_matmul(x, w), Self::float_reshape(b, burn::tensor::Shape::from(vec![1, n])))
    }

    /// Backward pieces are not themselves differentiated.
    fn big_weight_input_grad(g: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self> {
        FloatTensor::<Self>::new(B::big_weight_input_grad(g.into_primitive(), w.into_primitive()))
    }
}

/// An `[m, width]` result computed in column parts, one per thread (each a multiple of 16 columns wide but the
/// last): `part(columns, out)` fills its `[m, columns.len()]` piece, which is then copied into place.
fn in_column_parts(m: usize, width: usize, part: impl Fn(std::ops::Range<usize>, &mut [f32]) + Sync) -> Vec<f32> {
    use rayon::prelude::*;
    let step = width.div_ceil(rayon::current_num_threads()).next_multiple_of(16);
    let parts: Vec<(std::ops::Range<usize>, Vec<f32>)> = (0..width)
        .step_by(step)
        .map(|a| a..(a + step).min(width))
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|cols| {
            let mut out = vec![0f32; m * cols.len()];
            part(cols.clone(), &mut out);
            (cols, out)
        })
        .collect();
    let mut out = vec![0f32; m * width];
    for (cols, piece) in parts {
        for (row, values) in out.chunks_exact_mut(width).zip(piece.chunks_exact(cols.len())) {
            row[cols.clone()].copy_from_slice(values);
        }
    }
    out
}

/// `x [m, k] · w [k, n]` for few rows: each thread one gemm over its own columns of the weight (gemm's own split
/// shares a long product of 8 columns poorly: 0.21 against 0.15 ms for Nature's fc1 at 8 rows).
fn few_rows_product(x: &[f32], w: &[f32], m: usize, n: usize) -> Vec<f32> {
    let k = w.len() / n;
    in_column_parts(m, n, |cols, out| {
        let at = (m, cols.len(), k);
        crate::fast::flex::gemm(at, out, (cols.len(), 1), false, x, (k, 1), &w[cols.start..], (n, 1), false);
    })
}

/// `g [m, n] · wᵀ` for `w` `[k, n]` and at most [`FEW_ROWS`] rows: each thread takes its own rows of the weight
/// (columns of the result) and dots each with every row of `g` ([`dots`]); the weight is read once, in place.
fn few_rows_input_grad(g: &[f32], w: &[f32], m: usize, k: usize) -> Vec<f32> {
    let n = w.len() / k;
    in_column_parts(m, k, |rows, out| dots::of(g, m, w, n, rows, out))
}

/// Dot products of a few rows of `g` with rows of a weight, on AVX-512 vectors: three weight rows at a time against
/// every row of `g`, so that each vector read from the weight serves `m` products and each read from `g` three
/// (at 8 rows: 24 sums in registers, 11 reads per 24 multiply-adds).
mod dots {
    use std::ops::Range;

    /// `out [m, rows.len()]` (row-major) = `g [m, n]` · `w[rows]ᵀ` for a row-major `w` `[·, n]`, `m` ≤ 8. Call only
    /// where [`crate::fast::flex::avx512`].
    pub(super) fn of(g: &[f32], m: usize, w: &[f32], n: usize, rows: Range<usize>, out: &mut [f32]) {
        assert!(crate::fast::flex::avx512() && m <= 8 && g.len() == m * n && out.len() == m * rows.len());
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY (each arm): the CPU supports AVX-512F (asserted above).
            macro_rules! rows_of {
                ($($m:literal)*) => {
                    match m {
                        $($m => unsafe { avx512::dots::<$m>(g, w, n, rows, out) },)*
                        _ => unreachable!("at most 8 rows"),
                    }
                };
            }
            rows_of!(1 2 3 4 5 6 7 8)
        }
    }

    #[cfg(target_arch = "x86_64")]
    mod avx512 {
        use std::arch::x86_64::*;
        use std::ops::Range;

        #[target_feature(enable = "avx512f")]
        pub(super) fn dots<const M: usize>(g: &[f32], w: &[f32], n: usize, rows: Range<usize>, out: &mut [f32]) {
            let len = rows.len();
            let mut i = 0;
            while i + 3 <= len {
                block::<M, 3>(g, w, n, rows.start + i, (i, len), out);
                i += 3;
            }
            while i < len {
                block::<M, 1>(g, w, n, rows.start + i, (i, len), out);
                i += 1;
            }
        }

        /// Weight rows `row..row + R` against the `M` rows of `g`, into columns `at..at + R` of `out` (`[M, len]`).
        #[target_feature(enable = "avx512f")]
        #[inline]
        fn block<const M: usize, const R: usize>(
            g: &[f32],
            w: &[f32],
            n: usize,
            row: usize,
            (at, len): (usize, usize),
            out: &mut [f32],
        ) {
            let full = n / 16 * 16;
            let mut acc = [[_mm512_setzero_ps(); R]; M];
            for c in (0..full).step_by(16) {
                let mut x = [_mm512_setzero_ps(); R];
                for (q, x) in x.iter_mut().enumerate() {
                    *x = load(&w[(row + q) * n + c..][..16]);
                }
                for (r, acc) in acc.iter_mut().enumerate() {
                    let gr = load(&g[r * n + c..][..16]);
                    for q in 0..R {
                        acc[q] = _mm512_fmadd_ps(gr, x[q], acc[q]);
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                for (q, acc) in acc.iter().enumerate() {
                    let tail: f32 = (full..n).map(|j| g[r * n + j] * w[(row + q) * n + j]).sum();
                    out[r * len + at + q] = _mm512_reduce_add_ps(*acc) + tail;
                }
            }
        }

        /// Sixteen values as a vector.
        #[target_feature(enable = "avx512f")]
        #[inline]
        fn load(v: &[f32]) -> __m512 {
            let v: &[f32; 16] = v.try_into().expect("sixteen values");
            // SAFETY: reads the sixteen values of `v`.
            unsafe { _mm512_loadu_ps(v.as_ptr()) }
        }
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

/// `layer.forward(x)` for `[batch, in]` inputs. On burn's Flex backend: one row off the autodiff device (acting)
/// through a small weight by the row-streaming product, big weights with the big-weight backward, everything else
/// through burn's `Linear`. Every other backend takes the layer's own `forward`: [`LinearOps`] is a Flex extension,
/// and burn panics when an extension is called on a backend it does not list.
pub fn linear(layer: &Linear, x: Tensor<2>) -> Tensor<2> {
    if !crate::fast::on_flex(&x.device()) {
        return layer.forward(x);
    }
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
    use burn::tensor::Distribution;

    /// One row through the acting path equals burn's layer, for widths with and without a remainder block; the
    /// input is a ReLU's output (about half zeros, whose weight rows the loop skips).
    #[test]
    fn one_row_matches_burns_linear() {
        let d = crate::device::for_tests();
        d.seed(4);
        for (k, n) in [(1024, 128), (128, 6), (300, 70), (5, 64)] {
            let layer = LinearConfig::new(k, n).init(&d);
            let x = burn::tensor::activation::relu(Tensor::<2>::random([1, k], Distribution::Uniform(-1.0, 1.0), &d));
            let (ours, theirs) = (crate::to_vec(linear(&layer, x.clone())), crate::to_vec(layer.forward(x)));
            let scale = theirs.iter().fold(1f32, |m, v| m.max(v.abs()));
            assert!(ours.iter().zip(&theirs).all(|(a, b)| (a - b).abs() <= 1e-5 * scale), "k {k} n {n}");
        }
    }

    /// Output and both gradients equal burn's own `Linear` (whose backward is `g·Wᵀ` and `xᵀ·g`), for few rows
    /// (split between the threads; a weight width that is not a multiple of 16, and row counts that are not a
    /// multiple of three, exercise every remainder) and many.
    #[test]
    fn matches_burns_linear_forward_and_gradients() {
        let d = crate::device::for_tests().autodiff();
        d.seed(3);
        for (rows, k, n) in [(5, 2048, 600), (1, 2048, 600), (8, 1501, 700), (9, 2048, 600)] {
            let layer = LinearConfig::new(k, n).init(&d);
            let x = Tensor::<2>::random([rows, k], Distribution::Uniform(-1.0, 1.0), &d).require_grad();
            let g = Tensor::<2>::random([rows, n], Distribution::Uniform(-1.0, 1.0), &d);
            let ours = linear(&layer, x.clone());
            let theirs = layer.forward(x.clone());
            let (go, gt) = ((ours.clone() * g.clone()).sum().backward(), (theirs.clone() * g).sum().backward());
            let close = |a: Vec<f32>, b: Vec<f32>| {
                let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
                let worst = a.iter().zip(&b).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
                assert!(worst <= 1e-5 * scale, "{rows} rows, {k}×{n}: differ by {worst}, beyond 1e-5 of {scale}");
            };
            use crate::to_vec as v;
            close(v(ours), v(theirs));
            close(v(x.grad(&go).unwrap()), v(x.grad(&gt).unwrap()));
            let w = layer.weight.val();
            close(v(w.grad(&go).unwrap()), v(w.grad(&gt).unwrap()));
            let b = layer.bias.as_ref().unwrap().val();
            close(v(b.grad(&go).unwrap()), v(b.grad(&gt).unwrap()));
        }
    }
}
