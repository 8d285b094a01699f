//! The attention mask as an explanation (the IFE seed's): a network with a soft spatial attention over its cells
//! ([`xrl_nn::Torso::Ife`]) shows, per frame, the weight α it gives each cell. It is read, not computed from a
//! target: the same mask whatever action or value is asked about (the weights sum to 1 over the cells). Maps are at
//! the attention's own resolution (14 × 14 on 84 × 84 frames, MinAtar's 10 × 10), like Grad-CAM's at its layer;
//! [`upsample`] brings them to the frame (nearest, as the seed asked for, or bilinear, as its `cv2.resize` call
//! actually did) and [`overlay`] draws the seed's video frame.

use crate::{Budget, Call, Computed, ExplainError, Method, Resolution};
use xrl_nn::{Pass, to_vec};

/// The probe the mask is read from.
pub const LAYER: &str = "attention";

#[derive(Clone, Debug, Default)]
pub struct Attention {
    pub budget: Budget,
}

impl Method for Attention {
    fn name(&self) -> String {
        LAYER.into()
    }

    fn compute(&self, c: &Call) -> Result<Computed, ExplainError> {
        if !c.model.layers().is_some_and(|l| l.iter().any(|n| n == LAYER)) {
            return Err(ExplainError::Invalid(
                "attention reads a network's attention mask, and this network has none: train with --torso ife \
                 (the IFE seed's extractor), or use the gradient methods"
                    .into(),
            ));
        }
        let (len, n) = (c.inputs.len(), c.inputs.count());
        let device = c.model.device();
        let (mut maps, mut hw) = (Vec::with_capacity(n), [1, 1]);
        let step = self.budget.chunk_rows(len);
        for start in (0..n).step_by(step) {
            let end = (start + step).min(n);
            let x = xrl_nn::batch(&c.inputs.values[start * len..end * len], len, &device);
            let pass = Pass { probe: Some(LAYER.into()), ..Pass::default() };
            let rows: Vec<usize> = (start..end).collect();
            let probe = c.model.heads_for(x, &pass, &rows).probe.expect("the network names the attention layer");
            let [_, _, h, w] = probe.activation.dims();
            hw = [h, w];
            maps.extend(to_vec(probe.activation));
        }
        Ok(Computed { maps, shape: hw.to_vec(), resolution: Resolution::Layer { layer: LAYER.into() }, delta: None })
    }
}

/// The attention mask of `net` on one observation, `[h, w]` cells summing to 1 (the means of a noisy network).
pub fn mask(net: &xrl_nn::Net, obs: &[f32]) -> Result<(Vec<f32>, [usize; 2]), ExplainError> {
    if !net.layer_names().iter().any(|n| n == LAYER) {
        return Err(ExplainError::Invalid(
            "this network has no attention mask: train with --torso ife (the IFE seed's extractor)".into(),
        ));
    }
    let x = xrl_nn::batch(obs, obs.len(), &net.device().inner());
    let pass = Pass { probe: Some(LAYER.into()), ..Pass::default() };
    let probe = net.forward(x, &pass).probe.expect("the network names the attention layer");
    let [_, _, h, w] = probe.activation.dims();
    Ok((to_vec(probe.activation), [h, w]))
}

/// `how` as a user names it.
pub fn parse_upsample(s: &str) -> Result<Upsample, ExplainError> {
    match s {
        "nearest" => Ok(Upsample::Nearest),
        "bilinear" => Ok(Upsample::Bilinear),
        _ => Err(ExplainError::Invalid(format!("unknown upsampling `{s}`; use nearest or bilinear"))),
    }
}

/// A map of `shape` (`[.., H, W]`) as |values| summed into `[gh, gw]` cells: over its leading axes, and over
/// blocks of (H/gh) × (W/gw) pixels; `None` when the grid does not tile it.
pub fn to_cells(map: &[f32], shape: &[usize], [gh, gw]: [usize; 2]) -> Option<Vec<f32>> {
    let d = shape.len();
    let (h, w) = if d >= 2 { (shape[d - 2], shape[d - 1]) } else { return None };
    if gh == 0 || gw == 0 || h % gh != 0 || w % gw != 0 {
        return None;
    }
    let (bh, bw) = (h / gh, w / gw);
    let mut out = vec![0.0; gh * gw];
    for plane in map.chunks(h * w) {
        for (i, v) in plane.iter().enumerate() {
            let (y, x) = (i / w, i % w);
            out[(y / bh) * gw + x / bw] += v.abs();
        }
    }
    Some(out)
}

/// Per method of `results` (in order), per frame: Spearman's ρ between the `attention` result's mask and the
/// method's |map| summed into the mask's cells; `None` for the mask itself, for maps whose grid does not tile the
/// mask's, and for every method when no attention result is among them.
pub fn spearman_with_mask(results: &[crate::Attribution]) -> Vec<Option<Vec<f64>>> {
    let Some(mask) = results.iter().find(|a| a.method == LAYER) else { return vec![None; results.len()] };
    let cells = [mask.shape[0], mask.shape[1]];
    let n = mask.maps.len() / mask.map_len().max(1);
    results
        .iter()
        .map(|a| {
            if a.method == LAYER {
                return None;
            }
            (0..n)
                .map(|f| {
                    let m = &mask.maps[f * mask.map_len()..(f + 1) * mask.map_len()];
                    let pooled = to_cells(&a.maps[f * a.map_len()..(f + 1) * a.map_len()], &a.shape, cells)?;
                    crate::evaluate::similarity::spearman(m, &pooled).ok()
                })
                .collect()
        })
        .collect()
}

/// How a mask is brought to the frame's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upsample {
    /// Each frame pixel takes its cell's value (what the seed meant: `cv2.INTER_NEAREST`).
    Nearest,
    /// OpenCV's default bilinear (`cv2.resize` with pixel centres aligned, half-pixel offsets, edges clamped):
    /// what the seed's call did, its interpolation flag landing in the `dst` argument.
    Bilinear,
}

/// `mask` (`[h, w]`) at `[oh, ow]`.
pub fn upsample(mask: &[f32], [h, w]: [usize; 2], [oh, ow]: [usize; 2], how: Upsample) -> Vec<f32> {
    let at = |y: usize, x: usize| mask[y * w + x];
    let mut out = Vec::with_capacity(oh * ow);
    for oy in 0..oh {
        for ox in 0..ow {
            out.push(match how {
                // OpenCV's nearest: source index ⌊dst · scale⌋.
                Upsample::Nearest => at((oy * h / oh).min(h - 1), (ox * w / ow).min(w - 1)),
                Upsample::Bilinear => {
                    let src = |d: usize, n: usize, o: usize| {
                        let s = ((d as f32 + 0.5) * n as f32 / o as f32 - 0.5).max(0.0);
                        let i = (s.floor() as usize).min(n - 1);
                        (i, (i + 1).min(n - 1), s - i as f32)
                    };
                    let ((y0, y1, fy), (x0, x1, fx)) = (src(oy, h, oh), src(ox, w, ow));
                    let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
                    let bottom = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
                    top * (1.0 - fy) + bottom * fy
                }
            });
        }
    }
    out
}

/// `mask` scaled to [0, 1] by its own minimum and maximum (all 0 for a constant mask).
pub fn min_max(mask: &[f32]) -> Vec<f32> {
    let (lo, hi) = mask.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    mask.iter().map(|v| if hi > lo { (v - lo) / (hi - lo) } else { 0.0 }).collect()
}

/// The seed's video frame: the mask min–max scaled to [0, 1] and upsampled to the frame, then
/// `saturate(0.6 · frame + 255 · mask)` per channel — the frame dimmed to 60 %, attended cells brightened towards
/// white. (The seed adds 1 as well, a rounding of its own; left out.) `frame` is an RGB image.
pub fn overlay(frame: &xrl_render::RgbImage, mask: &[f32], hw: [usize; 2], how: Upsample) -> xrl_render::RgbImage {
    let (fw, fh) = frame.dimensions();
    let up = upsample(&min_max(mask), hw, [fh as usize, fw as usize], how);
    let mut out = frame.clone();
    for (i, px) in out.pixels_mut().enumerate() {
        for c in px.0.iter_mut() {
            *c = (0.6 * *c as f32 + 255.0 * up[i]).round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_are_summed_into_the_masks_cells() {
        // Two channels of 4 × 4 into 2 × 2 cells.
        let map: Vec<f32> = (0..32).map(|i| if i < 16 { 1.0 } else { -(i as f32 % 4.0) }).collect();
        let cells = to_cells(&map, &[2, 4, 4], [2, 2]).unwrap();
        // Each cell: 4 ones from channel 0 and |−x| for x in a 2 × 2 block of columns (0,1 or 2,3), twice.
        assert_eq!(cells, vec![4.0 + 2.0, 4.0 + 10.0, 4.0 + 2.0, 4.0 + 10.0]);
        assert!(to_cells(&map, &[2, 4, 4], [3, 3]).is_none());
    }

    /// A map that is the mask blown up to the frame (one channel) ranks the cells as the mask: ρ = 1; its negative's
    /// magnitude too; a reversed ranking gives −1; a map whose grid does not tile the mask's gives none.
    #[test]
    fn each_map_is_ranked_against_the_mask() {
        let attribution = |method: &str, maps: Vec<f32>, shape: Vec<usize>| crate::Attribution {
            method: method.into(),
            maps,
            shape,
            resolution: Resolution::Input,
            delta: None,
            seconds: 0.0,
        };
        let mask = [0.1f32, 0.4, 0.3, 0.2];
        let blown: Vec<f32> = (0..16).map(|i| mask[(i / 4 / 2) * 2 + (i % 4) / 2]).collect();
        let reversed: Vec<f32> = (0..16).map(|i| 1.0 - mask[(i / 4 / 2) * 2 + (i % 4) / 2]).collect();
        let results = vec![
            attribution("grad", blown.iter().map(|v| -v).collect(), vec![1, 4, 4]),
            attribution(LAYER, mask.to_vec(), vec![2, 2]),
            attribution("ig", reversed, vec![1, 4, 4]),
            attribution("odd", vec![0.0; 9], vec![1, 3, 3]),
        ];
        let rho = spearman_with_mask(&results);
        assert!((rho[0].as_ref().unwrap()[0] - 1.0).abs() < 1e-12, "{rho:?}");
        assert!(rho[1].is_none());
        assert!((rho[2].as_ref().unwrap()[0] + 1.0).abs() < 1e-12, "{rho:?}");
        assert!(rho[3].is_none());
        assert!(spearman_with_mask(&results[..1]).iter().all(Option::is_none));
    }

    #[test]
    fn upsampling_by_hand() {
        // A 2 × 2 mask to 4 × 4.
        let m = [0.0, 1.0, 2.0, 3.0];
        let near = upsample(&m, [2, 2], [4, 4], Upsample::Nearest);
        assert_eq!(near, vec![0., 0., 1., 1., 0., 0., 1., 1., 2., 2., 3., 3., 2., 2., 3., 3.]);
        // Bilinear with half-pixel centres: source x for dst 0..4 is −0.25 (clamped 0), 0.25, 0.75, 1.25 (→ 1).
        let bil = upsample(&m, [2, 2], [4, 4], Upsample::Bilinear);
        let row0 = [0.0, 0.25, 0.75, 1.0];
        for (i, v) in row0.iter().enumerate() {
            assert!((bil[i] - v).abs() < 1e-6, "{bil:?}");
        }
        // Row 1 (source y 0.25): a quarter of the way to row 1's values (+2).
        assert!((bil[4] - 0.5).abs() < 1e-6 && (bil[7] - 1.5).abs() < 1e-6, "{bil:?}");
        assert_eq!(&bil[12..], &[2.0, 2.25, 2.75, 3.0]);
    }

    #[test]
    fn the_overlay_dims_the_frame_and_brightens_the_attended_cells() {
        let frame = xrl_render::RgbImage::from_pixel(4, 2, xrl_render::Rgb([100, 200, 50]));
        // Left cell attended fully, right not at all.
        let out = overlay(&frame, &[0.9, 0.1], [1, 2], Upsample::Nearest);
        assert_eq!(out.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(out.get_pixel(3, 1).0, [60, 120, 30]);
    }
}
