//! Perturbation saliency (Greydanus et al. 2018): blur a Gaussian blob of the input around each point of a grid
//! and score how much the output moves: `S(i, j) = ½‖f(I) − f(I′)‖²` over the policy logits (actor) or the value
//! (critic), or the change of a chosen target. `I′ = I ⊙ (1 − M) + blur(I) ⊙ M`, with `M` a Gaussian of σ = 5 px
//! (peak 1) and the blur σ = 3 px, on a grid of stride 5 — the paper's settings for 80×80 frames.
//!
//! The mask is cut at 4σ from its centre along each axis, as scipy's `gaussian_filter` cuts the original code's
//! blurred-disc mask. Unlike the original, the grid covers the frame exactly (no empty last row and column) and the
//! map is brought to input resolution by bilinear interpolation between grid points; all perturbed copies of a frame
//! go through the network in batches instead of one forward pass each (several frames' copies share a batch), and
//! through a convolutional [`xrl_nn::Net`] the convolutions recompute only the positions each mask reaches
//! (`explain::local`).

use super::local::LocalConvs;
use super::{Budget, Model, Rows, Target, outputs, target_value};
use rayon::prelude::*;
use xrl_nn::Heads;
use xrl_nn::fast::conv::Rect;

/// What the score compares.
#[derive(Clone, Debug, PartialEq)]
pub enum Score {
    /// ½‖logits(I) − logits(I′)‖² over all actions.
    Actor,
    /// ½(V(I) − V(I′))².
    Critic,
    /// ½(T(I) − T(I′))² for each sample's target.
    Target,
}

#[derive(Clone, Debug)]
pub struct Perturbation {
    pub score: Score,
    pub mask_sigma: f32,
    pub blur_sigma: f32,
    pub stride: usize,
    pub budget: Budget,
}

/// Per sample: the grid scores and the map at input resolution.
#[derive(Clone, Debug, PartialEq)]
pub struct PerturbationMaps {
    /// `[n, H, W]`.
    pub maps: Vec<f32>,
    /// `[n, gh, gw]` raw scores at the grid points `(k·stride, l·stride)`.
    pub grid: Vec<f32>,
    pub gh: usize,
    pub gw: usize,
}

impl Perturbation {
    pub fn new(score: Score) -> Self {
        Perturbation { score, mask_sigma: 5.0, blur_sigma: 3.0, stride: 5, budget: Budget::default() }
    }

    /// `inputs` are `n` samples of shape `[C, H, W]`; `targets` (one per sample) are read by [`Score::Target`].
    pub fn maps(&self, model: &dyn Model, inputs: &[f32], shape: [usize; 3], targets: &[Target]) -> PerturbationMaps {
        let [c, h, w] = shape;
        let len = c * h * w;
        let n = inputs.len() / len;
        let s = self.stride.max(1);
        let (gys, gxs): (Vec<usize>, Vec<usize>) = ((0..h).step_by(s).collect(), (0..w).step_by(s).collect());
        let (gh, gw) = (gys.len(), gxs.len());
        let g = gh * gw;
        // Per frame: blur(I) − I, so that I′ = I + M ⊙ (blur(I) − I).
        let diffs: Vec<Vec<f32>> = inputs
            .par_chunks(len)
            .map(|x| blur(x, c, h, w, self.blur_sigma).iter().zip(x).map(|(b, v)| b - v).collect())
            .collect();
        // The mask M is a Gaussian cut, like scipy's `gaussian_filter` in the original code, at 4σ from the grid
        // point along each axis: zero outside a square of side 2·⌊4σ + ½⌋ + 1 (41 px for σ = 5).
        let radius = (4.0 * self.mask_sigma + 0.5) as usize;
        let gauss = |d: f32| (-d * d / (2.0 * self.mask_sigma * self.mask_sigma)).exp();
        let point = |k: usize| (gys[(k - 1) / gw], gxs[(k - 1) % gw]);
        let square = |k: usize| {
            let (gy, gx) = point(k);
            Rect {
                y0: gy.saturating_sub(radius),
                y1: (gy + radius + 1).min(h),
                x0: gx.saturating_sub(radius),
                x1: (gx + radius + 1).min(w),
            }
        };
        // Writes I′ of frame i perturbed at grid point k over the mask's square of `out` (all channels).
        let perturb = |i: usize, k: usize, out: &mut [f32]| {
            let ((gy, gx), sq) = (point(k), square(k));
            // The mask is separable: exp(−dy²/2σ²)·exp(−dx²/2σ²).
            let mx: Vec<f32> = (sq.x0..sq.x1).map(|xx| gauss(xx as f32 - gx as f32)).collect();
            let (frame, diff) = (&inputs[i * len..(i + 1) * len], &diffs[i]);
            for y in sq.y0..sq.y1 {
                let my = gauss(y as f32 - gy as f32);
                for ch in 0..c {
                    let row = ch * h * w + y * w;
                    for (j, mx) in mx.iter().enumerate() {
                        let at = row + sq.x0 + j;
                        out[at] = frame[at] + my * mx * diff[at];
                    }
                }
            }
        };
        // Row i·(1 + G) is frame i itself; row i·(1 + G) + 1 + k its copy perturbed at grid point k. Rows are made
        // a chunk at a time, and a chunk may hold several frames' copies.
        let count = n * (1 + g);
        let frame_of: Vec<usize> = (0..count).map(|r| r / (1 + g)).collect();
        // The compared outputs of every row: logits, V or the target.
        let pick = |h: Heads, samples: &[usize]| match &self.score {
            Score::Actor => h.logits.or(h.q).expect("the actor score needs logits (or Q values)"),
            Score::Critic => h.value.expect("the critic score needs a value head"),
            Score::Target => target_value(&h, targets, samples),
        };
        // The shortcut pays when a mask's square leaves part of the frame alone (not on MinAtar's 10×10).
        let small = 2 * radius + 1 < h.max(w);
        let outs = if let Some(local) = small.then(|| LocalConvs::of(model)).flatten() {
            // A convolutional network: each row is the convolutions' output, computed where the mask's square
            // reaches (the rest is the frame's own), and the fully connected layers run on those rows.
            let bases = local.bases(inputs, len);
            let fill = |r: usize, out: &mut [f32]| {
                let (i, k) = (r / (1 + g), r % (1 + g));
                if k == 0 {
                    return out.copy_from_slice(bases[i].features());
                }
                let frame = &inputs[i * len..(i + 1) * len];
                local.patched(&bases[i], frame, square(k), |x| perturb(i, k, x), out);
            };
            let rows = Rows::Made { count, fill: &fill };
            outputs(&local, rows, local.feature_len(), &frame_of, self.budget, &pick)
        } else {
            let fill = |r: usize, out: &mut [f32]| {
                let (i, k) = (r / (1 + g), r % (1 + g));
                out.copy_from_slice(&inputs[i * len..(i + 1) * len]);
                if k > 0 {
                    perturb(i, k, out);
                }
            };
            outputs(model, Rows::Made { count, fill: &fill }, len, &frame_of, self.budget, &pick)
        };
        let dim = outs.len() / (n * (1 + g));
        let mut grid = Vec::with_capacity(n * g);
        let mut maps = Vec::with_capacity(n * h * w);
        for (i, frame) in outs.chunks(dim * (1 + g)).enumerate() {
            let base = &frame[..dim];
            for o in frame[dim..].chunks(dim) {
                grid.push(0.5 * o.iter().zip(base).map(|(a, b)| (a - b) * (a - b)).sum::<f32>());
            }
            maps.extend(bilinear(&grid[i * g..(i + 1) * g], gh, gw, s, h, w));
        }
        PerturbationMaps { maps, grid, gh, gw }
    }
}

/// Separable Gaussian blur of each channel, kernel truncated at 4σ, edges mirrored (scipy's `reflect`).
pub fn blur(x: &[f32], c: usize, h: usize, w: usize, sigma: f32) -> Vec<f32> {
    if sigma <= 0.0 {
        return x.to_vec();
    }
    let r = (4.0 * sigma + 0.5) as usize;
    let kernel: Vec<f32> =
        (0..=2 * r).map(|i| i as f32 - r as f32).map(|d| (-d * d / (2.0 * sigma * sigma)).exp()).collect();
    let norm: f32 = kernel.iter().sum();
    // Index i − r of 0..n mirrored back inside (scipy's `reflect`: … 1 0 | 0 1 … n−1 | n−1 n−2 …).
    let reflect = |i: usize, n: usize| -> usize {
        let mut i = i as isize - r as isize;
        let n = n as isize;
        loop {
            if i < 0 {
                i = -i - 1;
            } else if i >= n {
                i = 2 * n - i - 1;
            } else {
                return i as usize;
            }
        }
    };
    let (cols, rows): (Vec<usize>, Vec<usize>) =
        ((0..w + 2 * r).map(|i| reflect(i, w)).collect(), (0..h + 2 * r).map(|i| reflect(i, h)).collect());
    let mut out = vec![0.0f32; x.len()];
    let (mut padded, mut tmp) = (vec![0.0f32; w + 2 * r], vec![0.0f32; h * w]);
    for (plane, dst) in x.chunks_exact(h * w).zip(out.chunks_exact_mut(h * w)).take(c) {
        // Along rows: each output is the kernel over the mirrored row.
        for (row, t) in plane.chunks_exact(w).zip(tmp.chunks_exact_mut(w)) {
            padded.iter_mut().zip(&cols).for_each(|(p, &j)| *p = row[j]);
            t.fill(0.0);
            for (d, &k) in kernel.iter().enumerate() {
                t.iter_mut().zip(&padded[d..]).for_each(|(t, p)| *t += k * p);
            }
        }
        // Along columns: each output row is the kernel over the mirrored rows.
        for (y, o) in dst.chunks_exact_mut(w).enumerate() {
            for (d, &k) in kernel.iter().enumerate() {
                let src = &tmp[rows[y + d] * w..][..w];
                o.iter_mut().zip(src).for_each(|(o, v)| *o += k * v);
            }
            o.iter_mut().for_each(|o| *o /= norm * norm);
        }
    }
    out
}

/// Bilinear interpolation of grid values at pixels `(k·s, l·s)` onto an `h × w` image (constant past the last
/// grid point).
fn bilinear(grid: &[f32], gh: usize, gw: usize, s: usize, h: usize, w: usize) -> Vec<f32> {
    let at = |gy: usize, gx: usize| grid[gy.min(gh - 1) * gw + gx.min(gw - 1)];
    let mut out = Vec::with_capacity(h * w);
    for y in 0..h {
        let (gy, fy) = (y / s, (y % s) as f32 / s as f32);
        for x in 0..w {
            let (gx, fx) = (x / s, (x % s) as f32 / s as f32);
            let top = at(gy, gx) * (1.0 - fx) + at(gy, gx + 1) * fx;
            let bottom = at(gy + 1, gx) * (1.0 - fx) + at(gy + 1, gx + 1) * fx;
            out.push(top * (1.0 - fy) + bottom * fy);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blur_keeps_constants_and_mass() {
        let x = vec![2.0f32; 3 * 7 * 9];
        assert!(blur(&x, 3, 7, 9, 1.5).iter().all(|v| (v - 2.0).abs() < 1e-5));
        let mut spike = vec![0.0f32; 15 * 15];
        spike[7 * 15 + 7] = 1.0;
        let b = blur(&spike, 1, 15, 15, 1.0);
        assert!(
            (b.iter().sum::<f32>() - 1.0).abs() < 1e-4
                && b[7 * 15 + 7] < 0.2
                && b[7 * 15 + 7] == b.iter().cloned().fold(0.0, f32::max)
        );
    }

    #[test]
    fn bilinear_hits_grid_points_and_interpolates_between() {
        let g = [0.0, 10.0, 20.0, 30.0]; // 2×2 grid at stride 4
        let m = bilinear(&g, 2, 2, 4, 6, 6);
        assert_eq!((m[0], m[4], m[4 * 6], m[4 * 6 + 4]), (0.0, 10.0, 20.0, 30.0));
        assert_eq!(m[2], 5.0);
        assert_eq!(m[5], 10.0, "constant past the last grid point");
    }
}
