//! Occlusion (Zeiler & Fergus 2014, as Captum's `Occlusion`): slide a window over the input, replace what it
//! covers, and credit each covered element with the drop of the target, averaged over the windows covering it.
//! Windows that do not fit at the far edge are clipped there rather than dropped, so every element is covered.
//! All occluded copies of a sample go through the model in batches; through a convolutional network, only what a
//! window reaches is recomputed in the convolutions (`explain::local`).

use super::local::LocalConvs;
use super::{Budget, Maps, Model, Rows, Target, blur, values};
use xrl_nn::fast::conv::Rect;

/// What replaces the occluded values.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fill {
    Constant(f32),
    /// The sample's mean value.
    Mean,
    /// The sample blurred (Gaussian of this σ in pixels, per channel): the window shows a blurred copy of itself.
    Blur(f32),
}

#[derive(Clone, Debug)]
pub struct Occlusion {
    /// Window `[channels, height, width]` over inputs of shape `[C, H, W]`.
    pub window: [usize; 3],
    pub stride: [usize; 3],
    pub fill: Fill,
    pub budget: Budget,
}

/// Window positions along one axis, as Captum places them: `⌈(size − window) / stride⌉ + 1` windows at multiples
/// of the stride, the last one clipped at the edge, so that every element is covered.
fn starts(size: usize, window: usize, stride: usize) -> Vec<usize> {
    let stride = stride.max(1);
    let count = size.saturating_sub(window).div_ceil(stride) + 1;
    (0..count).map(|k| k * stride).collect()
}

impl Occlusion {
    pub(crate) fn maps(&self, model: &dyn Model, inputs: &[f32], shape: [usize; 3], targets: &[Target]) -> Maps {
        let [c, h, w] = shape;
        let len = c * h * w;
        let n = inputs.len() / len;
        let [wc, wh, ww] = self.window;
        let positions: Vec<[usize; 3]> = starts(c, wc, self.stride[0])
            .into_iter()
            .flat_map(|a| starts(h, wh, self.stride[1]).into_iter().map(move |b| (a, b)))
            .flat_map(|(a, b)| starts(w, ww, self.stride[2]).into_iter().map(move |d| [a, b, d]))
            .collect();
        // The flat indices each window covers (clipped at the far edges).
        let cells: Vec<Vec<usize>> = positions
            .iter()
            .map(|p| {
                let mut v = vec![];
                for ch in p[0]..(p[0] + wc).min(c) {
                    for y in p[1]..(p[1] + wh).min(h) {
                        for x in p[2]..(p[2] + ww).min(w) {
                            v.push(ch * h * w + y * w + x);
                        }
                    }
                }
                v
            })
            .collect();
        // Every sample, then every occluded copy of it (row n + s·P + k: sample s, window k), made a chunk at a time.
        let fills: Vec<Vec<f32>> = inputs
            .chunks(len)
            .map(|x| match self.fill {
                Fill::Constant(v) => vec![v; len],
                Fill::Mean => vec![x.iter().sum::<f32>() / len as f32; len],
                Fill::Blur(sigma) => blur(x, c, h, w, sigma),
            })
            .collect();
        let p = positions.len();
        let fill_row = |r: usize, out: &mut [f32]| {
            let s = if r < n { r } else { (r - n) / p };
            out.copy_from_slice(&inputs[s * len..(s + 1) * len]);
            if r >= n {
                for &i in &cells[(r - n) % p] {
                    out[i] = fills[s][i];
                }
            }
        };
        let sample_of: Vec<usize> = (0..n).chain((0..n * p).map(|k| k / p)).collect();
        // A window smaller than the frame over a convolutional network: each row is the convolutions' output,
        // recomputed where the window reaches (explain::local), and the fully connected layers run on those rows.
        let small = wh < h || ww < w;
        let values = if let Some(local) = small.then(|| LocalConvs::of(model)).flatten() {
            let bases = local.bases(inputs, len);
            let fill_features = |r: usize, out: &mut [f32]| {
                let s = if r < n { r } else { (r - n) / p };
                if r < n {
                    return out.copy_from_slice(bases[s].features());
                }
                let [_, y0, x0] = positions[(r - n) % p];
                let rect = Rect { y0, y1: (y0 + wh).min(h), x0, x1: (x0 + ww).min(w) };
                let patch = |x: &mut [f32]| cells[(r - n) % p].iter().for_each(|&i| x[i] = fills[s][i]);
                local.patched(&bases[s], &inputs[s * len..(s + 1) * len], rect, patch, out);
            };
            let rows = Rows::Made { count: n + n * p, fill: &fill_features };
            values(&local, rows, local.feature_len(), &sample_of, targets, self.budget)
        } else {
            let rows = Rows::Made { count: n + n * p, fill: &fill_row };
            values(model, rows, len, &sample_of, targets, self.budget)
        };
        let mut maps = vec![0.0f32; inputs.len()];
        let mut counts = vec![0u32; len];
        for window in &cells {
            for &i in window {
                counts[i] += 1;
            }
        }
        for s in 0..n {
            for (k, window) in cells.iter().enumerate() {
                let drop = values[s] - values[n + s * positions.len() + k];
                for &i in window {
                    maps[s * len + i] += drop;
                }
            }
            for i in 0..len {
                if counts[i] > 0 {
                    maps[s * len + i] /= counts[i] as f32;
                }
            }
        }
        Maps { maps, delta: None }
    }
}
