//! Occlusion (Zeiler & Fergus 2014, as Captum's `Occlusion`): slide a window over the input, replace what it
//! covers, and credit each covered element with the drop of the target, averaged over the windows covering it.
//! Windows that do not fit at the far edge are clipped there rather than dropped, so every element is covered.
//! All occluded copies of a sample go through the model in batches.

use super::{Attribution, Budget, Model, Target, values};

/// What replaces the occluded values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fill {
    Constant(f32),
    /// The sample's mean value.
    Mean,
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
    pub fn attribute(&self, model: &dyn Model, inputs: &[f32], shape: [usize; 3], target: &Target) -> Attribution {
        let [c, h, w] = shape;
        let len = c * h * w;
        let n = inputs.len() / len;
        let [wc, wh, ww] = self.window;
        let positions: Vec<[usize; 3]> = starts(c, wc, self.stride[0])
            .into_iter()
            .flat_map(|a| starts(h, wh, self.stride[1]).into_iter().map(move |b| (a, b)))
            .flat_map(|(a, b)| starts(w, ww, self.stride[2]).into_iter().map(move |d| [a, b, d]))
            .collect();
        let covered = |p: &[usize; 3], i: usize| {
            let (ch, y, x) = (i / (h * w), (i / w) % h, i % w);
            ch >= p[0] && ch < p[0] + wc && y >= p[1] && y < p[1] + wh && x >= p[2] && x < p[2] + ww
        };
        // Every sample, then every occluded copy of it, through the model in chunks.
        let mut rows = inputs.to_vec();
        let mut sample_of: Vec<usize> = (0..n).collect();
        for s in 0..n {
            let x = &inputs[s * len..(s + 1) * len];
            let fill = match self.fill {
                Fill::Constant(v) => v,
                Fill::Mean => x.iter().sum::<f32>() / len as f32,
            };
            for p in &positions {
                rows.extend(x.iter().enumerate().map(|(i, &v)| if covered(p, i) { fill } else { v }));
                sample_of.push(s);
            }
        }
        let values = values(model, &rows, len, &sample_of, target, self.budget);
        let mut maps = vec![0.0f32; inputs.len()];
        let mut counts = vec![0u32; len];
        for p in &positions {
            for (i, cnt) in counts.iter_mut().enumerate() {
                *cnt += covered(p, i) as u32;
            }
        }
        for s in 0..n {
            for (k, p) in positions.iter().enumerate() {
                let drop = values[s] - values[n + s * positions.len() + k];
                for i in (0..len).filter(|&i| covered(p, i)) {
                    maps[s * len + i] += drop;
                }
            }
            for i in 0..len {
                if counts[i] > 0 {
                    maps[s * len + i] /= counts[i] as f32;
                }
            }
        }
        Attribution { maps, len, delta: None }
    }
}
