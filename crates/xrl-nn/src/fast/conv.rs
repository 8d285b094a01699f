//! An unpadded k×k convolution with stride s, as one backend operation with its own backward, computed a few
//! samples at a time in per-thread buffers.
//!
//! Each thread takes a run of consecutive samples and goes through it in groups (one sample for the Nature CNN's
//! first two layers, up to 28 for MinAtar's tiny convolution, `GROUP_VALUES`). For a group it builds the im2col
//! matrix `[n·oh·ow, c·k·k]` (output position major, kernel offsets in the weight's `[c, ky, kx]` order) in its
//! buffer, multiplies it by the transposed weight into a second buffer by position (`[n·oh·ow, cout]`), and copies
//! that into the NCHW output's channel planes while adding the bias. The backward works the same way: the output
//! gradient goes into the second buffer by channel, the input gradient is its product with the weight into the first,
//! summed back onto the input planes (col2im); the weight gradient rebuilds the im2col matrix and adds one product per
//! group into a per-thread sum.
//!
//! Why not one product over the whole batch, as before: for the Nature CNN at batch 32 that built a 13 MB im2col
//! matrix, transposed the product to NCHW (and the gradient back), added the bias in another pass, and every new
//! burn-flex buffer was zeroed and then copied once more for alignment. A group's matrix (at most 400×256 values,
//! 400 KB) stays in the core's cache between being written and read. Nature CNN training step at batch 32, old and
//! new binaries alternating (three medians of 30 steps per run, several runs): 19.6–24.8 ms before, 15.8–17.1 after.
//! One sample alone (acting) lets gemm use the threads instead. On CPUs with AVX-512, layers of 32 or 64 output
//! channels (the Nature CNN's) take the forward product straight from the input instead, without an im2col matrix
//! (`direct`).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension, tensor::FloatTensor};
use burn::tensor::{Shape, Tensor};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use crate::fast::flex::{contiguous, dims, gemm, owned};

/// An unpadded k×k convolution with stride s of one `[c, h, w]` sample into `cout` channels.
#[derive(Clone, Copy, Debug)]
pub struct Geometry {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub k: usize,
    pub s: usize,
}

/// Output rows `y0..y1` and columns `x0..x1` of a convolution (or input rows and columns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub y0: usize,
    pub y1: usize,
    pub x0: usize,
    pub x1: usize,
}

impl Rect {
    pub fn len(&self) -> usize {
        (self.y1 - self.y0) * (self.x1 - self.x0)
    }

    pub fn is_empty(&self) -> bool {
        self.y1 <= self.y0 || self.x1 <= self.x0
    }

    /// Its positions, row by row.
    pub fn positions(&self) -> impl Iterator<Item = (usize, usize)> + use<> {
        let (x0, x1) = (self.x0, self.x1);
        (self.y0..self.y1).flat_map(move |y| (x0..x1).map(move |x| (y, x)))
    }
}

impl Geometry {
    pub fn out_hw(&self) -> (usize, usize) {
        ((self.h - self.k) / self.s + 1, (self.w - self.k) / self.s + 1)
    }

    /// Output positions per channel.
    pub fn positions(&self) -> usize {
        let (oh, ow) = self.out_hw();
        oh * ow
    }

    /// Values per im2col row (one kernel's footprint over all input channels).
    pub fn kk(&self) -> usize {
        self.c * self.k * self.k
    }

    pub fn in_len(&self) -> usize {
        self.c * self.h * self.w
    }

    pub fn out_len(&self) -> usize {
        self.cout * self.positions()
    }

    /// Every output position.
    pub fn all(&self) -> Rect {
        let (oh, ow) = self.out_hw();
        Rect { y0: 0, y1: oh, x0: 0, x1: ow }
    }

    /// The output positions whose windows read any input of `input` (empty when none does).
    pub fn reached_by(&self, input: Rect) -> Rect {
        if input.is_empty() {
            return Rect { y0: 0, y1: 0, x0: 0, x1: 0 };
        }
        let (oh, ow) = self.out_hw();
        // Window o covers inputs o·s .. o·s + k: it meets a..b when o·s < b and o·s + k > a.
        let span = |a: usize, b: usize, n: usize| {
            let first = (a + 1).saturating_sub(self.k).div_ceil(self.s);
            let last = if b == 0 { 0 } else { ((b - 1) / self.s + 1).min(n) };
            (first, last.max(first))
        };
        let ((y0, y1), (x0, x1)) = (span(input.y0, input.y1, oh), span(input.x0, input.x1, ow));
        Rect { y0, y1, x0, x1 }
    }

    /// The sample's im2col matrix `[positions, kk]` into `cols`.
    fn im2col(&self, x: &[f32], cols: &mut [f32]) {
        self.im2col_rect(x, self.all(), cols);
    }

    /// The im2col rows of the output positions in `rect`, row by row.
    fn im2col_rect(&self, x: &[f32], rect: Rect, cols: &mut [f32]) {
        match self.k {
            3 => im2col_k::<3>(self, x, rect, cols),
            4 => im2col_k::<4>(self, x, rect, cols),
            8 => im2col_k::<8>(self, x, rect, cols),
            _ => im2col_k::<0>(self, x, rect, cols),
        }
    }

    /// Adds every im2col row of `cols` back onto the input it was copied from (the adjoint of `im2col`).
    fn col2im(&self, cols: &[f32], dx: &mut [f32]) {
        match self.k {
            3 => col2im_k::<3>(self, cols, dx),
            4 => col2im_k::<4>(self, cols, dx),
            8 => col2im_k::<8>(self, cols, dx),
            _ => col2im_k::<0>(self, cols, dx),
        }
    }

    /// The im2col matrices of samples `first..first + n` of `xs`, one after another.
    fn im2col_group(&self, xs: &[f32], (first, n): (usize, usize), cols: &mut [f32]) {
        let block = self.positions() * self.kk();
        for (i, piece) in cols[..n * block].chunks_exact_mut(block).enumerate() {
            self.im2col(&xs[(first + i) * self.in_len()..][..self.in_len()], piece);
        }
    }

    /// Samples `first..first + n` of NCHW values `ys` by channel (`[cout, n·positions]`).
    fn by_channel(&self, ys: &[f32], (first, n): (usize, usize), out: &mut [f32]) {
        let p = self.positions();
        for (co, row) in out[..n * self.out_len()].chunks_exact_mut(n * p).enumerate() {
            for (i, dst) in row.chunks_exact_mut(p).enumerate() {
                dst.copy_from_slice(&ys[((first + i) * self.cout + co) * p..][..p]);
            }
        }
    }
}

/// Copies every kernel row (`k` contiguous inputs) with one slice copy. `K` is the kernel size when known at
/// compile time (0: use `g.k`), so the common sizes copy with fixed-length moves.
fn im2col_k<const K: usize>(g: &Geometry, x: &[f32], rect: Rect, cols: &mut [f32]) {
    let k = if K > 0 { K } else { g.k };
    let kk = g.kk();
    for (row, (oy, ox)) in cols[..rect.len() * kk].chunks_exact_mut(kk).zip(rect.positions()) {
        for ci in 0..g.c {
            for ky in 0..k {
                let from = (ci * g.h + oy * g.s + ky) * g.w + ox * g.s;
                let to = (ci * k + ky) * k;
                row[to..to + k].copy_from_slice(&x[from..from + k]);
            }
        }
    }
}

/// The adjoint of [`im2col_k`], plane by plane so that each input plane is summed while it is in cache.
fn col2im_k<const K: usize>(g: &Geometry, cols: &[f32], dx: &mut [f32]) {
    let k = if K > 0 { K } else { g.k };
    let (oh, ow) = g.out_hw();
    let kk = g.kk();
    for (ci, plane) in dx.chunks_exact_mut(g.h * g.w).enumerate() {
        for oy in 0..oh {
            for ox in 0..ow {
                let row = &cols[(oy * ow + ox) * kk + ci * k * k..][..k * k];
                for ky in 0..k {
                    let at = (oy * g.s + ky) * g.w + ox * g.s;
                    for (d, v) in plane[at..at + k].iter_mut().zip(&row[ky * k..(ky + 1) * k]) {
                        *d += v;
                    }
                }
            }
        }
    }
}

/// One sample's output `[positions, cout]` into its channel planes `[cout, positions]`, the bias added. Large
/// planes go eight positions at a time, each channel's eight values written together: for the Nature CNN's first
/// layer (400 positions) that took 3.9 µs a sample against 7.6 reading one value per channel at a stride, but was
/// slower for its 81- and 49-position layers (timed outside the repository; conv1 at 8 frames 0.359 → 0.337 ms).
fn to_planes(by_position: &[f32], bias: &[f32], y: &mut [f32]) {
    let cout = bias.len();
    let p = y.len() / cout.max(1);
    let full = if p >= 256 { p / 8 * 8 } else { 0 };
    for p0 in (0..full).step_by(8) {
        let rows: [&[f32]; 8] = std::array::from_fn(|r| &by_position[(p0 + r) * cout..][..cout]);
        for (co, &b) in bias.iter().enumerate() {
            let dst = &mut y[co * p + p0..][..8];
            dst.iter_mut().zip(&rows).for_each(|(d, row)| *d = row[co] + b);
        }
    }
    if full < p {
        for (co, (plane, &b)) in y.chunks_exact_mut(p).zip(bias).enumerate() {
            let values = by_position[full * cout + co..].iter().step_by(cout);
            plane[full..].iter_mut().zip(values).for_each(|(y, v)| *y = v + b);
        }
    }
}

/// The weight `[cout, kk]` transposed, `[kk, cout]`: the forward product's left operand in gemm's own
/// (column-major) layout, so that gemm copies none of its operands.
pub fn transposed(weight: &[f32], cout: usize, kk: usize) -> Vec<f32> {
    let mut wt = vec![0f32; kk * cout];
    for (co, row) in weight.chunks_exact(kk).enumerate() {
        row.iter().enumerate().for_each(|(i, &v)| wt[i * cout + co] = v);
    }
    wt
}

/// [`transposed`] for a weight this thread has transposed before (the same shape and the same values, compared
/// byte for byte), else made and kept (the last eight). Acting and explaining pass the same weights again and again:
/// the Nature CNN's three transposes took 15% of an action, and a comparison reads each value once instead of
/// writing it at a stride. Training changes its weights every step; a comparison then stops at the first value
/// that differs.
fn transposed_kept(weight: &[f32], cout: usize, kk: usize) -> std::sync::Arc<Vec<f32>> {
    use std::cell::RefCell;
    use std::sync::Arc;
    type Kept = Vec<((usize, usize), Vec<f32>, Arc<Vec<f32>>)>;
    thread_local! {
        static KEPT: RefCell<Kept> = const { RefCell::new(Vec::new()) };
    }
    // f32 equality would miss NaN weights and match 0.0 with −0.0; the bits decide.
    // (Sixty-four values at a time without stopping inside, so that the comparison runs on vectors.)
    let bits = |v: &[f32]| {
        v.len() == weight.len()
            && v.chunks(64)
                .zip(weight.chunks(64))
                .all(|(a, b)| a.iter().zip(b).fold(true, |same, (x, y)| same & (x.to_bits() == y.to_bits())))
    };
    KEPT.with_borrow_mut(|kept| {
        if let Some((_, _, wt)) = kept.iter().find(|(shape, w, _)| *shape == (cout, kk) && bits(w)) {
            return wt.clone();
        }
        let wt = Arc::new(transposed(weight, cout, kk));
        if kept.len() == 8 {
            kept.remove(0);
        }
        kept.push(((cout, kk), weight.to_vec(), wt.clone()));
        wt
    })
}

/// The forward product at the output positions `rect` of one sample, `[rect.len(), cout]` (position-major, no
/// bias) into `by_position`; `wt` is [`transposed`]'s weight and `cols` the im2col buffer (unused where the direct
/// kernel takes the product).
pub fn product_at(g: &Geometry, x: &[f32], wt: &[f32], rect: Rect, cols: &mut [f32], by_position: &mut [f32]) {
    if direct::fits(g) {
        return direct::product(g, x, wt, rect, by_position);
    }
    g.im2col_rect(x, rect, cols);
    forward_product(g, wt, (cols, rect.len()), by_position, false);
}

/// The forward product straight from the input, with no im2col matrix, on AVX-512 vectors: six output positions at
/// a time against every output channel (32 or 64 of them: two or four vectors), one multiply-add per weight column
/// and position, the input value broadcast. gemm's kernel does the same multiply-adds; building its im2col operand
/// was 9–10% of the `perf` samples of Grad-CAM on 8 Nature frames. Per layer, four frames on one thread: conv1 273 →
/// 231 µs, conv2 210 → 189, conv3 169 → 137 (timed outside the repository). Other channel counts (MinAtar's 16,
/// whose tiny products gemm takes several samples at a time) and CPUs without AVX-512 keep the im2col product.
mod direct {
    use super::{Geometry, Rect};

    pub(super) fn fits(g: &Geometry) -> bool {
        matches!(g.cout, 32 | 64) && crate::fast::flex::avx512()
    }

    /// [`super::product_at`]'s product; call only where [`fits`].
    pub(super) fn product(g: &Geometry, x: &[f32], wt: &[f32], rect: Rect, by_position: &mut [f32]) {
        let (oh, ow) = g.out_hw();
        assert!(fits(g) && rect.y1 <= oh && rect.x1 <= ow, "the direct product of {g:?} at {rect:?}");
        assert!(x.len() >= g.in_len() && wt.len() >= g.kk() * g.cout && by_position.len() >= rect.len() * g.cout);
        // Each position's window corner in the input; a window from a corner inside the output grid lies inside
        // the input, so every read below is inside `x`.
        let corners: Vec<usize> = rect.positions().map(|(oy, ox)| (oy * g.w + ox) * g.s).collect();
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU supports AVX-512F (`fits`); the asserts above bound every read and write.
        unsafe {
            match g.cout {
                32 => avx512::product::<2>(g, x, wt, &corners, by_position),
                _ => avx512::product::<4>(g, x, wt, &corners, by_position),
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    mod avx512 {
        use super::Geometry;
        use std::arch::x86_64::*;

        /// Output positions per tile: 6 × 4 sums in registers for 64 channels, with the weight's four vectors.
        const TILE: usize = 6;

        /// `out [corners.len(), 16·V]` = the convolution at the windows whose corners are `corners`.
        ///
        /// # Safety
        /// AVX-512F; `x` holds every window, `wt` `g.kk()` rows of `16·V` values and `out` every position's row.
        #[target_feature(enable = "avx512f")]
        pub(super) unsafe fn product<const V: usize>(
            g: &Geometry,
            x: &[f32],
            wt: &[f32],
            corners: &[usize],
            out: &mut [f32],
        ) {
            let (xp, cout, plane) = (x.as_ptr(), 16 * V, g.h * g.w);
            for (t, tile) in corners.chunks(TILE).enumerate() {
                // A short last tile repeats its first corner in the unused lanes (computed, never stored).
                let mut at = [tile[0]; TILE];
                at[..tile.len()].copy_from_slice(tile);
                let mut acc = [[_mm512_setzero_ps(); V]; TILE];
                let mut wrow = wt.as_ptr();
                for ci in 0..g.c {
                    for ky in 0..g.k {
                        // SAFETY (every read): inside the windows, as the caller guarantees.
                        let row = unsafe { xp.add(ci * plane + ky * g.w) };
                        for kx in 0..g.k {
                            let mut w = [_mm512_setzero_ps(); V];
                            for (v, w) in w.iter_mut().enumerate() {
                                *w = unsafe { _mm512_loadu_ps(wrow.add(16 * v)) };
                            }
                            wrow = unsafe { wrow.add(cout) };
                            for (acc, &corner) in acc.iter_mut().zip(&at) {
                                let b = _mm512_set1_ps(unsafe { *row.add(kx + corner) });
                                for v in 0..V {
                                    acc[v] = _mm512_fmadd_ps(b, w[v], acc[v]);
                                }
                            }
                        }
                    }
                }
                for (i, acc) in acc.iter().take(tile.len()).enumerate() {
                    let dst = &mut out[(t * TILE + i) * cout..][..cout];
                    for (v, acc) in acc.iter().enumerate() {
                        // SAFETY: sixteen values inside `dst`.
                        unsafe { _mm512_storeu_ps(dst.as_mut_ptr().add(16 * v), *acc) };
                    }
                }
            }
        }
    }
}

/// Positions per forward product: gemm copies its left operand (the weight) into its own layout whenever a product
/// is wider than 48 columns (8 of its 6-column blocks), though ours is already in a layout it reads in place;
/// products of at most 48 positions each were 5% faster for the Nature CNN's conv2 and conv3 (81 and 98 positions:
/// 50.0 → 47.2 µs and 67.9 → 64.3 µs single-threaded, timed outside the repository).
const PRODUCT_WIDTH: usize = 48;

/// `by_position [np, cout] = cols [np, kk] · weightᵀ`, computed as its transpose `weightᵀᵀ · colsᵀ`, whose operands
/// gemm reads in place (with cols as the left operand gemm re-packed it, a transposing copy as large as the im2col
/// matrix: 23% of a batched Nature-CNN forward); in pieces of [`PRODUCT_WIDTH`] positions unless gemm spreads one
/// product over the threads.
fn forward_product(g: &Geometry, wt: &[f32], (cols, np): (&[f32], usize), by_position: &mut [f32], parallel: bool) {
    let (cout, kk) = (g.cout, g.kk());
    for (p0, n) in pieces(np, parallel) {
        gemm(
            (cout, n, kk),
            &mut by_position[p0 * cout..],
            (1, cout),
            false,
            wt,
            (1, cout),
            &cols[p0 * kk..],
            (1, kk),
            parallel,
        );
    }
}

/// The pieces (first position, positions) of a product over `np` positions: of [`PRODUCT_WIDTH`], or one piece when
/// gemm spreads the product over the threads.
fn pieces(np: usize, parallel: bool) -> impl Iterator<Item = (usize, usize)> {
    let width = if parallel { np } else { PRODUCT_WIDTH };
    (0..np).step_by(width.max(1)).map(move |p0| (p0, width.min(np - p0)))
}

/// The input gradients `[b, c, h, w]` of `b` samples from their output gradients `grad` (`[b, cout, oh, ow]`, flat)
/// and the weight `[cout, kk]`, as plain values: the convolution's own backward.
pub fn input_gradient(g: &Geometry, weight: &[f32], grad: &[f32]) -> Vec<f32> {
    let (oh, ow) = g.out_hw();
    let b = grad.len() / g.out_len();
    let grad = owned(grad.to_vec(), vec![b, g.cout, oh, ow]);
    let weight = owned(weight.to_vec(), vec![g.cout, g.c, g.k, g.k]);
    let dx = <Flex as ConvOps>::conv_input_grad(grad, weight, g.h, g.w, g.s);
    dx.storage::<f32>().to_vec()
}

#[backend_extension(Flex, Autodiff)]
pub trait ConvOps: Backend {
    /// `[b, c, h, w]` inputs, a `[cout, c, k, k]` weight and a `[cout]` bias → `[b, cout, oh, ow]`.
    fn conv_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: usize,
    ) -> FloatTensor<Self>;
    /// The input gradient `[b, c, h, w]` from the output gradient (`h`, `w`: the input's size, which a stride may
    /// not determine).
    fn conv_input_grad(
        grad: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        h: usize,
        w: usize,
        stride: usize,
    ) -> FloatTensor<Self>;
    /// The weight gradient `[cout, c, k, k]` from the input and the output gradient.
    fn conv_weight_grad(x: FloatTensor<Self>, grad: FloatTensor<Self>, k: usize, stride: usize) -> FloatTensor<Self>;
}

/// Values of im2col matrix one product may cover: tiny convolutions (MinAtar's: 64 positions × 36) take several
/// samples per product, and a group's matrix (256 KB) stays in a core's cache.
const GROUP_VALUES: usize = 1 << 16;

/// Samples in runs of consecutive samples, one run per thread, each run in groups that share one product.
#[derive(Clone, Copy, Debug)]
struct Groups {
    b: usize,
    /// Samples per run (per thread).
    per: usize,
    /// Samples per product.
    size: usize,
}

impl Groups {
    fn new(g: &Geometry, b: usize) -> Self {
        let per = b.div_ceil(rayon::current_num_threads().clamp(1, b.max(1))).max(1);
        Groups { b, per, size: (GROUP_VALUES / (g.positions() * g.kk()).max(1)).clamp(1, per) }
    }

    /// The groups (first sample, samples) of the run that starts at `first`.
    fn of_run(&self, first: usize) -> impl Iterator<Item = (usize, usize)> + use<> {
        let (end, size) = ((first + self.per).min(self.b), self.size);
        (first..end).step_by(size).map(move |s| (s, size.min(end - s)))
    }

    /// One sample alone: let gemm spread over the threads instead.
    fn gemm_in_parallel(&self) -> bool {
        self.b < 2
    }

    /// `f(scratch, (first, n), out_piece)` for every group, where `out` holds `sample_len` values per sample and
    /// `out_piece` is the group's part of it; the runs go in parallel.
    fn each(
        &self,
        g: &Geometry,
        out: &mut [f32],
        sample_len: usize,
        f: impl Fn(&mut Scratch, (usize, usize), &mut [f32]) + Sync,
    ) {
        out.par_chunks_mut(self.per * sample_len).enumerate().for_each(|(run, samples)| {
            let first_of_run = run * self.per;
            Scratch::with(g, self, |sc| {
                for (first, n) in self.of_run(first_of_run) {
                    f(sc, (first, n), &mut samples[(first - first_of_run) * sample_len..][..n * sample_len]);
                }
            })
        });
    }
}

/// Per-thread buffers: a group's im2col matrix `[n·positions, kk]` (or its gradient), and its outputs — by position,
/// `[n·positions, cout]`, in the forward — or their gradients — by channel, `[cout, n·positions]`, channel co's row
/// holding sample after sample's positions, in the backward. Every use writes the part it reads first.
#[derive(Default)]
struct Scratch {
    cols: Vec<f32>,
    outs: Vec<f32>,
}

impl Scratch {
    /// Runs `f` with this thread's buffers, grown to fit `groups` of `g`. They are kept between calls: made anew,
    /// a Nature-CNN action allocated and zeroed about 700 KB (page clearing and memset: 8% of its `perf` samples,
    /// 3% after; 479–499 → 465–480 µs per action, three runs each of a throwaway timing loop).
    fn with<R>(g: &Geometry, groups: &Groups, f: impl FnOnce(&mut Scratch) -> R) -> R {
        thread_local! {
            static KEPT: std::cell::Cell<Scratch> = std::cell::Cell::new(Scratch::default());
        }
        // Taken out, not borrowed: a nested call on the same thread (work stealing) finds empty buffers.
        let mut sc = KEPT.take();
        let n = groups.size;
        for (buf, len) in [(&mut sc.cols, n * g.positions() * g.kk()), (&mut sc.outs, n * g.out_len())] {
            if buf.len() < len {
                buf.resize(len, 0.0);
            }
        }
        let out = f(&mut sc);
        KEPT.set(sc);
        out
    }
}

impl ConvOps for Flex {
    fn conv_forward(x: FlexTensor, weight: FlexTensor, bias: FlexTensor, s: usize) -> FlexTensor {
        let [b, c, h, w] = dims(&x);
        let [cout, _, k, _] = dims(&weight);
        let g = Geometry { c, h, w, cout, k, s };
        let (x, weight, bias) = (contiguous(&x), contiguous(&weight), contiguous(&bias));
        let (xs, ws, bs) = (x.storage::<f32>(), weight.storage::<f32>(), bias.storage::<f32>());
        let (p, kk, groups) = (g.positions(), g.kk(), Groups::new(&g, b));
        let wt = transposed_kept(ws, cout, kk);
        let mut out = vec![0f32; b * g.out_len()];
        let parallel = groups.gemm_in_parallel();
        groups.each(&g, &mut out, g.out_len(), |sc, (first, n), ys| {
            if direct::fits(&g) && !parallel {
                for (i, by_position) in sc.outs[..n * p * cout].chunks_exact_mut(p * cout).enumerate() {
                    direct::product(&g, &xs[(first + i) * g.in_len()..][..g.in_len()], &wt, g.all(), by_position);
                }
            } else {
                g.im2col_group(xs, (first, n), &mut sc.cols);
                forward_product(&g, &wt, (&sc.cols, n * p), &mut sc.outs, parallel);
            }
            for (y, by_position) in ys.chunks_exact_mut(g.out_len()).zip(sc.outs.chunks_exact(p * cout)) {
                to_planes(by_position, bs, y);
            }
        });
        let (oh, ow) = g.out_hw();
        owned(out, vec![b, cout, oh, ow])
    }

    fn conv_input_grad(grad: FlexTensor, weight: FlexTensor, h: usize, w: usize, s: usize) -> FlexTensor {
        let [b, cout, _, _] = dims(&grad);
        let [_, c, k, _] = dims(&weight);
        let g = Geometry { c, h, w, cout, k, s };
        let (grad, weight) = (contiguous(&grad), contiguous(&weight));
        let (gs, ws) = (grad.storage::<f32>(), weight.storage::<f32>());
        let (p, kk, groups) = (g.positions(), g.kk(), Groups::new(&g, b));
        let mut dx = vec![0f32; b * g.in_len()];
        groups.each(&g, &mut dx, g.in_len(), |sc, (first, n), dxs| {
            g.by_channel(gs, (first, n), &mut sc.outs);
            // dcolsᵀ [kk, n·positions] = weightᵀ [kk, cout] · outs [cout, n·positions], in pieces for the same
            // reason as the forward (conv2's and conv3's products 4% and 7% faster, timed outside the repository).
            let (np, parallel) = (n * p, groups.gemm_in_parallel());
            for (p0, w) in pieces(np, parallel) {
                let (dcols, grads) = (&mut sc.cols[p0 * kk..], &sc.outs[p0..]);
                gemm((kk, w, cout), dcols, (1, kk), false, ws, (1, kk), grads, (np, 1), parallel);
            }
            for (dxb, dcols) in dxs.chunks_exact_mut(g.in_len()).zip(sc.cols.chunks_exact(p * kk)) {
                g.col2im(dcols, dxb);
            }
        });
        owned(dx, vec![b, c, h, w])
    }

    fn conv_weight_grad(x: FlexTensor, grad: FlexTensor, k: usize, s: usize) -> FlexTensor {
        let [b, c, h, w] = dims(&x);
        let [_, cout, _, _] = dims(&grad);
        let g = Geometry { c, h, w, cout, k, s };
        let (x, grad) = (contiguous(&x), contiguous(&grad));
        let (xs, gs) = (x.storage::<f32>(), grad.storage::<f32>());
        let (p, kk, groups) = (g.positions(), g.kk(), Groups::new(&g, b));
        // One partial sum per run (thread), added up in run order — not in whatever tree a parallel reduction
        // forms: the same numbers on every call.
        let firsts: Vec<usize> = (0..b).step_by(groups.per).collect();
        let partials: Vec<Vec<f32>> = firsts
            .into_par_iter()
            .map(|first_of_run| {
                let mut dw = vec![0f32; cout * kk];
                Scratch::with(&g, &groups, |sc| {
                    for (first, n) in groups.of_run(first_of_run) {
                        g.im2col_group(xs, (first, n), &mut sc.cols);
                        g.by_channel(gs, (first, n), &mut sc.outs);
                        // dwᵀ [kk, cout] += colsᵀ [kk, n·positions] · by_channelᵀ [n·positions, cout].
                        let (np, parallel) = (n * p, groups.gemm_in_parallel());
                        gemm((kk, cout, np), &mut dw, (1, kk), true, &sc.cols, (1, kk), &sc.outs, (1, np), parallel);
                    }
                });
                dw
            })
            .collect();
        let mut dw = vec![0f32; cout * kk];
        for part in &partials {
            dw.iter_mut().zip(part).for_each(|(a, b)| *a += b);
        }
        owned(dw, vec![cout, c, k, k])
    }
}

/// The convolution's backward: the input gradient needs the weight, the weight gradient needs the input, and the
/// bias gradient is the output gradient summed over samples and positions.
#[derive(Debug)]
struct ConvBackward;

impl<B: ConvOps> Backward<B, 3> for ConvBackward {
    /// (the input when the weight takes a gradient, the weight when the input does, [h, w, k, stride]).
    type State = (Option<B::FloatTensorPrimitive>, Option<B::FloatTensorPrimitive>, [usize; 4]);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, weight, [h, w, k, s]) = ops.state;
        if let Some(node) = node_x {
            let weight = weight.expect("the weight is kept when the input takes a gradient");
            grads.register::<B>(node.id, B::conv_input_grad(grad.clone(), weight, h, w, s));
        }
        if let Some(node) = node_w {
            let x = x.expect("the input is kept when the weight takes a gradient");
            grads.register::<B>(node.id, B::conv_weight_grad(x, grad.clone(), k, s));
        }
        if let Some(node) = node_b {
            let [b, cout, oh, ow]: [usize; 4] = grad.shape().as_slice().try_into().expect("a 4-d gradient");
            let rows = B::float_reshape(grad, Shape::from(vec![b, cout, oh * ow]));
            let sums = B::float_sum_dim(B::float_sum_dim(rows, 2), 0);
            grads.register::<B>(node.id, B::float_reshape(sums, Shape::from(vec![cout])));
        }
    }
}

impl<B: ConvOps, C: CheckpointStrategy> ConvOps for Autodiff<B, C> {
    fn conv_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        s: usize,
    ) -> FloatTensor<Self> {
        let (x_tracked, w_tracked) = (x.is_tracked(), weight.is_tracked());
        let (h, w, k) = (x.shape()[2], x.shape()[3], weight.shape()[2]);
        match ConvBackward.prepare::<C>([x.node(), weight.node(), bias.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (x, weight, bias) = (x.into_primitive(), weight.into_primitive(), bias.into_primitive());
                let state = (w_tracked.then(|| x.clone()), x_tracked.then(|| weight.clone()), [h, w, k, s]);
                prep.finish(state, B::conv_forward(x, weight, bias, s))
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::conv_forward(x.into_primitive(), weight.into_primitive(), bias.into_primitive(), s))
            }
        }
    }

    /// The backward's pieces are not themselves differentiated (no second derivatives through a convolution).
    fn conv_input_grad(
        grad: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        h: usize,
        w: usize,
        s: usize,
    ) -> FloatTensor<Self> {
        FloatTensor::<Self>::new(B::conv_input_grad(grad.into_primitive(), weight.into_primitive(), h, w, s))
    }

    fn conv_weight_grad(x: FloatTensor<Self>, grad: FloatTensor<Self>, k: usize, s: usize) -> FloatTensor<Self> {
        FloatTensor::<Self>::new(B::conv_weight_grad(x.into_primitive(), grad.into_primitive(), k, s))
    }
}

/// `[b, c, h, w]` → `[b, cout, oh, ow]`: the weight `[cout, c, k, k]` at `stride`, no padding, plus the bias.
pub fn conv2d(x: Tensor<4>, weight: Tensor<4>, bias: Tensor<1>, stride: usize) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as ConvOps>::conv_forward(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        stride,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// By hand: a 1×3×3 input, one 2×2 kernel, stride 1 → four positions; col2im of all-ones counts how many
    /// windows cover each input.
    #[test]
    fn im2col_and_col2im_by_hand() {
        let g = Geometry { c: 1, h: 3, w: 3, cout: 1, k: 2, s: 1 };
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let mut cols = vec![0.0; 16];
        g.im2col(&x, &mut cols);
        assert_eq!(cols, vec![1.0, 2.0, 4.0, 5.0, 2.0, 3.0, 5.0, 6.0, 4.0, 5.0, 7.0, 8.0, 5.0, 6.0, 8.0, 9.0]);
        let mut dx = vec![0.0; 9];
        g.col2im(&[1.0; 16], &mut dx);
        assert_eq!(dx, vec![1.0, 2.0, 1.0, 2.0, 4.0, 2.0, 1.0, 2.0, 1.0]);
    }

    /// `reached_by` names exactly the output positions whose windows meet the input rectangle (brute force over
    /// every window), strides that leave inputs unread included.
    #[test]
    fn reached_positions_are_those_whose_windows_meet_the_rectangle() {
        for (h, k, s) in [(84, 8, 4), (20, 4, 2), (9, 3, 1), (11, 3, 3), (10, 4, 3)] {
            let g = Geometry { c: 1, h, w: h, cout: 1, k, s };
            let (oh, _) = g.out_hw();
            for (a, b) in (0..=h).flat_map(|a| (a..=h).map(move |b| (a, b))) {
                let r = g.reached_by(Rect { y0: a, y1: b, x0: 0, x1: h });
                let want: Vec<usize> = (0..oh).filter(|o| a < b && o * s < b && o * s + k > a).collect();
                let got: Vec<usize> = (r.y0..r.y1).collect();
                assert_eq!(got, want, "h {h} k {k} s {s}, rows {a}..{b}");
            }
        }
    }

    /// col2im is im2col's adjoint, ⟨im2col(x), y⟩ = ⟨x, col2im(y)⟩, for every kernel-size path (3, 4, 8 and the
    /// general one), strides that leave inputs unread included.
    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(9);
        for (c, h, w, k, s) in [(3, 11, 9, 3, 2), (4, 20, 20, 4, 2), (2, 84, 84, 8, 4), (2, 9, 7, 5, 3)] {
            let g = Geometry { c, h, w, cout: 1, k, s };
            let x: Vec<f32> = (0..g.in_len()).map(|_| rng.random_range(-1.0..1.0)).collect();
            let y: Vec<f32> = (0..g.positions() * g.kk()).map(|_| rng.random_range(-1.0..1.0)).collect();
            let (mut cols, mut back) = (vec![0.0; y.len()], vec![0.0; x.len()]);
            g.im2col(&x, &mut cols);
            g.col2im(&y, &mut back);
            let lhs: f64 = cols.iter().zip(&y).map(|(a, b)| (a * b) as f64).sum();
            let rhs: f64 = x.iter().zip(&back).map(|(a, b)| (a * b) as f64).sum();
            assert!((lhs - rhs).abs() <= 1e-5 * lhs.abs().max(1.0), "k {k}: {lhs} vs {rhs}");
        }
    }
}
