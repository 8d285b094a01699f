//! Perturbation saliency (Greydanus et al. 2018): blur a Gaussian blob of the input around each point of a grid
//! and score how much the output moves: `S(i, j) = ½‖f(I) − f(I′)‖²` over the policy logits (actor) or the value
//! (critic), or the change of a chosen target. `I′ = I ⊙ (1 − M) + blur(I) ⊙ M`, with `M` a Gaussian of σ = 5 px
//! (peak 1) and the blur σ = 3 px, on a grid of stride 5 — the paper's settings for 80×80 frames.
//!
//! Unlike the original, the grid covers the frame exactly (no empty last row and column) and the map is brought
//! to input resolution by bilinear interpolation between grid points; all perturbed copies of a frame go through
//! the network in batches instead of one forward pass each (several frames' copies share a batch).

use super::{Budget, Model, Rows, Target, outputs, target_value};

/// What the score compares.
#[derive(Clone, Debug, PartialEq)]
pub enum Score {
    /// ½‖logits(I) − logits(I′)‖² over all actions.
    Actor,
    /// ½(V(I) − V(I′))².
    Critic,
    /// ½(T(I) − T(I′))² for any target.
    Target(Target),
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

    /// `inputs` are `n` samples of shape `[C, H, W]`.
    pub fn attribute(&self, model: &dyn Model, inputs: &[f32], shape: [usize; 3]) -> PerturbationMaps {
        let [c, h, w] = shape;
        let len = c * h * w;
        let n = inputs.len() / len;
        let s = self.stride.max(1);
        let (gys, gxs): (Vec<usize>, Vec<usize>) = ((0..h).step_by(s).collect(), (0..w).step_by(s).collect());
        let (gh, gw) = (gys.len(), gxs.len());
        let g = gh * gw;
        // Per frame: blur(I) − I, so that I′ = I + M ⊙ (blur(I) − I).
        let diffs: Vec<Vec<f32>> = inputs
            .chunks(len)
            .map(|x| blur(x, c, h, w, self.blur_sigma).iter().zip(x).map(|(b, v)| b - v).collect())
            .collect();
        let gauss = |d: f32| (-d * d / (2.0 * self.mask_sigma * self.mask_sigma)).exp();
        // Row i·(1 + G) is frame i itself; row i·(1 + G) + 1 + k its copy perturbed at grid point k. Rows are made
        // a chunk at a time, and a chunk may hold several frames' copies.
        let fill = |r: usize, out: &mut [f32]| {
            let (i, k) = (r / (1 + g), r % (1 + g));
            out.copy_from_slice(&inputs[i * len..(i + 1) * len]);
            if k == 0 {
                return;
            }
            let (gy, gx) = (gys[(k - 1) / gw] as f32, gxs[(k - 1) % gw] as f32);
            // The Gaussian mask is separable: exp(−dy²/2σ²)·exp(−dx²/2σ²).
            let mx: Vec<f32> = (0..w).map(|xx| gauss(xx as f32 - gx)).collect();
            for y in 0..h {
                let my = gauss(y as f32 - gy);
                for ch in 0..c {
                    let row = ch * h * w + y * w;
                    for (xx, mx) in mx.iter().enumerate() {
                        out[row + xx] += my * mx * diffs[i][row + xx];
                    }
                }
            }
        };
        let rows = Rows::Made { count: n * (1 + g), fill: &fill };
        let frame_of: Vec<usize> = (0..n * (1 + g)).map(|r| r / (1 + g)).collect();
        // The compared outputs of every row: logits, V or the target.
        let outs = outputs(model, rows, len, &frame_of, self.budget, &|h, samples| match &self.score {
            Score::Actor => h.logits.or(h.q).expect("the actor score needs logits (or Q values)"),
            Score::Critic => h.value.expect("the critic score needs a value head"),
            Score::Target(t) => target_value(&h, t, samples),
        });
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
    let r = (4.0 * sigma + 0.5) as isize;
    let kernel: Vec<f32> = (-r..=r).map(|d| (-(d * d) as f32 / (2.0 * sigma * sigma)).exp()).collect();
    let norm: f32 = kernel.iter().sum();
    let reflect = |i: isize, n: usize| -> usize {
        let n = n as isize;
        let mut i = i;
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
    let mut tmp = vec![0.0f32; x.len()];
    let mut out = vec![0.0f32; x.len()];
    for ch in 0..c {
        let p = ch * h * w;
        for y in 0..h {
            for xx in 0..w {
                tmp[p + y * w + xx] = (-r..=r)
                    .map(|d| kernel[(d + r) as usize] * x[p + y * w + reflect(xx as isize + d, w)])
                    .sum::<f32>()
                    / norm;
            }
        }
        for y in 0..h {
            for xx in 0..w {
                out[p + y * w + xx] = (-r..=r)
                    .map(|d| kernel[(d + r) as usize] * tmp[p + reflect(y as isize + d, h) * w + xx])
                    .sum::<f32>()
                    / norm;
            }
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
