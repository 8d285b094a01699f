//! Attribution maps made visible: one explicit normalisation (per frame, or one scale for a whole episode so
//! frames are comparable), a colormap, and an overlay on the frame a human sees. Knows nothing of networks.

use image::{Rgb, RgbImage, imageops};

/// Which part of a map is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sign {
    /// |a|, on [0, 1].
    Absolute,
    /// max(a, 0), on [0, 1].
    Positive,
    /// a on [−1, 1], for diverging colormaps.
    Signed,
}

/// The value that maps to full intensity: the `percentile`-th percentile of |a| (or of a's positive part) over
/// all the given maps — one map for per-frame scaling, a whole episode's for one shared scale. Values beyond it
/// are clipped, so a few extreme pixels do not wash out the rest.
pub fn scale(maps: &[&[f32]], sign: Sign, percentile: f32) -> f32 {
    let mut v: Vec<f32> = maps
        .iter()
        .flat_map(|m| m.iter())
        .map(|&a| if sign == Sign::Positive { a.max(0.0) } else { a.abs() })
        .filter(|a| a.is_finite())
        .collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f32::total_cmp);
    let rank = ((percentile.clamp(0.0, 100.0) / 100.0) * (v.len() - 1) as f32).round() as usize;
    v[rank]
}

/// Maps values to [0, 1] (or [−1, 1] for [`Sign::Signed`]) by `scale`, clipping beyond it. A zero scale gives
/// zeros (an all-zero map stays dark, it is not stretched).
pub fn normalize(map: &[f32], scale: f32, sign: Sign) -> Vec<f32> {
    if scale <= 0.0 || !scale.is_finite() {
        return vec![0.0; map.len()];
    }
    map.iter()
        .map(|&a| match sign {
            Sign::Absolute => (a.abs() / scale).min(1.0),
            Sign::Positive => (a.max(0.0) / scale).min(1.0),
            Sign::Signed => (a / scale).clamp(-1.0, 1.0),
        })
        .collect()
}

/// An episode's maps as intensities: each map (`per` values, `cells` spatial cells on its last axes) becomes
/// |map| summed over its leading axes (channels, stacked frames), then every frame is normalised on one scale —
/// the episode's 99th percentile — so frames are comparable.
pub fn episode_intensities(maps: &[f32], per: usize, cells: usize) -> Vec<Vec<f32>> {
    let raw: Vec<Vec<f32>> = maps
        .chunks(per)
        .map(|m| (0..cells).map(|i| m.iter().skip(i).step_by(cells).map(|v| v.abs()).sum()).collect())
        .collect();
    let refs: Vec<&[f32]> = raw.iter().map(Vec::as_slice).collect();
    let s = scale(&refs, Sign::Absolute, 99.0);
    raw.iter().map(|m| normalize(m, s, Sign::Absolute)).collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Colormap {
    Viridis,
    Inferno,
    Magma,
    Turbo,
    /// Diverging blue–white–red for signed maps.
    RedBlue,
    Greys,
    /// matplotlib's `hot` (black → red → yellow → white): the differential-IG seed's.
    Hot,
}

impl Colormap {
    /// The colour of `t` in [0, 1] (signed values: pass (v + 1)/2).
    pub fn at(self, t: f32) -> [u8; 3] {
        let t = t.clamp(0.0, 1.0) as f64;
        let c = match self {
            Colormap::Viridis => colorous::VIRIDIS.eval_continuous(t),
            Colormap::Inferno => colorous::INFERNO.eval_continuous(t),
            Colormap::Magma => colorous::MAGMA.eval_continuous(t),
            Colormap::Turbo => colorous::TURBO.eval_continuous(t),
            Colormap::RedBlue => colorous::RED_BLUE.eval_continuous(1.0 - t),
            Colormap::Greys => colorous::GREYS.eval_continuous(1.0 - t),
            Colormap::Hot => {
                let ramp = |lo: f64| (((t - lo) * 3.0).clamp(0.0, 1.0) * 255.0).round() as u8;
                return [ramp(0.0), ramp(1.0 / 3.0), ramp(2.0 / 3.0)];
            }
        };
        [c.r, c.g, c.b]
    }
}

/// A `w × h` picture of normalised values (row-major); signed values are shown on the colormap's two halves.
pub fn colorize(values: &[f32], w: u32, h: u32, cmap: Colormap, sign: Sign) -> RgbImage {
    assert_eq!(values.len(), (w * h) as usize, "a {w}×{h} map needs {} values", w * h);
    RgbImage::from_fn(w, h, |x, y| {
        let v = values[(y * w + x) as usize];
        Rgb(cmap.at(if sign == Sign::Signed { (v + 1.0) / 2.0 } else { v }))
    })
}

/// Blends `heat` over `frame` (resized to the frame with nearest-neighbour, so cells stay sharp), weighting each
/// pixel's heat by `alpha × intensity` so that unimportant regions keep the frame visible.
pub fn overlay(frame: &RgbImage, heat: &RgbImage, intensity: &[f32], alpha: f32) -> RgbImage {
    let (w, h) = frame.dimensions();
    let (hw, hh) = heat.dimensions();
    assert_eq!(intensity.len(), (hw * hh) as usize, "one intensity per heat-map cell");
    let heat = imageops::resize(heat, w, h, imageops::FilterType::Nearest);
    RgbImage::from_fn(w, h, |x, y| {
        let (cx, cy) = ((x * hw / w).min(hw - 1), (y * hh / h).min(hh - 1));
        let a = (alpha * intensity[(cy * hw + cx) as usize].abs()).clamp(0.0, 1.0);
        let (f, m) = (frame.get_pixel(x, y).0, heat.get_pixel(x, y).0);
        Rgb(std::array::from_fn(|i| (f[i] as f32 * (1.0 - a) + m[i] as f32 * a).round() as u8))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_scale_and_normalisation_by_hand() {
        let m = [0.0, -4.0, 1.0, 2.0, 100.0];
        assert_eq!(scale(&[&m], Sign::Absolute, 100.0), 100.0);
        assert_eq!(scale(&[&m], Sign::Absolute, 75.0), 4.0, "the 75th percentile of [0, 1, 2, 4, 100]");
        assert_eq!(scale(&[&m], Sign::Positive, 50.0), 1.0, "positive parts [0, 0, 1, 2, 100]");
        assert_eq!(normalize(&m, 4.0, Sign::Absolute), vec![0.0, 1.0, 0.25, 0.5, 1.0]);
        assert_eq!(normalize(&m, 4.0, Sign::Positive), vec![0.0, 0.0, 0.25, 0.5, 1.0]);
        assert_eq!(normalize(&m, 4.0, Sign::Signed), vec![0.0, -1.0, 0.25, 0.5, 1.0]);
        assert_eq!(normalize(&m, 0.0, Sign::Absolute), vec![0.0; 5], "an all-zero scale is not stretched");
    }

    #[test]
    fn episode_intensities_sum_channels_and_share_one_scale() {
        // Two frames of 2 channels × 2 cells. Summed |·| over channels: frame 0 [1, 3], frame 1 [1, 1]; the
        // episode's scale is 3, so both frames are divided by 3.
        let maps = [1.0, -1.0, 0.0, 2.0, 0.5, 0.5, -0.5, 0.5];
        let i = episode_intensities(&maps, 4, 2);
        assert_eq!(i, vec![vec![1.0 / 3.0, 1.0], vec![1.0 / 3.0, 1.0 / 3.0]]);
    }

    #[test]
    fn one_scale_for_an_episode_keeps_frames_comparable() {
        let (quiet, loud) = ([0.0f32, 1.0], [0.0f32, 10.0]);
        let s = scale(&[&quiet, &loud], Sign::Absolute, 100.0);
        assert_eq!(normalize(&quiet, s, Sign::Absolute), vec![0.0, 0.1]);
        // Per frame, the quiet frame would look as bright as the loud one.
        assert_eq!(normalize(&quiet, scale(&[&quiet], Sign::Absolute, 100.0), Sign::Absolute), vec![0.0, 1.0]);
    }

    #[test]
    fn colormap_endpoints_and_overlay_blend() {
        // d3's viridis runs from #440154 to #fde725.
        assert_eq!(Colormap::Viridis.at(0.0), [0x44, 0x01, 0x54]);
        assert_eq!(Colormap::Viridis.at(1.0), [0xfd, 0xe7, 0x25]);
        let signed = colorize(&[-1.0, 0.0, 1.0], 3, 1, Colormap::RedBlue, Sign::Signed);
        let (neg, mid, pos) = (signed.get_pixel(0, 0).0, signed.get_pixel(1, 0).0, signed.get_pixel(2, 0).0);
        assert!(neg[2] > neg[0] && pos[0] > pos[2] && mid.iter().all(|&c| c > 200), "{neg:?} {mid:?} {pos:?}");
        // A 2×1 heat map over a 4×2 grey frame: the left half untouched (intensity 0), the right half half-blended.
        let frame = RgbImage::from_pixel(4, 2, Rgb([100, 100, 100]));
        let heat = RgbImage::from_fn(2, 1, |_, _| Rgb([200, 0, 0]));
        let out = overlay(&frame, &heat, &[0.0, 1.0], 0.5);
        assert_eq!(out.get_pixel(0, 0).0, [100, 100, 100]);
        assert_eq!(out.get_pixel(3, 1).0, [150, 50, 50]);
    }
}

/// Rec. 709 luminance of a frame, as grey levels.
fn luminance(frame: &RgbImage) -> Vec<f32> {
    frame.pixels().map(|p| 0.2126 * p[0] as f32 + 0.7152 * p[1] as f32 + 0.0722 * p[2] as f32).collect()
}

/// Upsamples an `mw × mh` map of intensities to the frame's size (nearest neighbour).
fn upsample(map: &[f32], mw: u32, mh: u32, w: u32, h: u32) -> Vec<f32> {
    (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .map(|(x, y)| map[((y * mh / h).min(mh - 1) * mw + (x * mw / w).min(mw - 1)) as usize])
        .collect()
}

/// Seed 003's actor–critic composite: the frame's luminance in grey, the critic's map added to red and the
/// actor's to green (intensities in [0, 1] at `mw × mh`). Sums are clipped at 255 — the original added uint8
/// values and wrapped around, turning the strongest evidence dark.
pub fn actor_critic_composite(frame: &RgbImage, actor: &[f32], critic: &[f32], mw: u32, mh: u32) -> RgbImage {
    let (w, h) = frame.dimensions();
    let grey = luminance(frame);
    let (a, c) = (upsample(actor, mw, mh, w, h), upsample(critic, mw, mh, w, h));
    RgbImage::from_fn(w, h, |x, y| {
        let i = (y * w + x) as usize;
        let add = |base: f32, v: f32| (base + 255.0 * v.clamp(0.0, 1.0)).min(255.0).round() as u8;
        Rgb([add(grey[i], c[i]), add(grey[i], a[i]), grey[i].round() as u8])
    })
}

/// Greydanus et al.'s rendering: the actor's map added to the frame's blue channel and the critic's to red,
/// clipped to [0, 255] (intensities in [0, 1] at `mw × mh`, scaled by `gain`).
pub fn greydanus_additive(frame: &RgbImage, actor: &[f32], critic: &[f32], mw: u32, mh: u32, gain: f32) -> RgbImage {
    let (w, h) = frame.dimensions();
    let (a, c) = (upsample(actor, mw, mh, w, h), upsample(critic, mw, mh, w, h));
    RgbImage::from_fn(w, h, |x, y| {
        let i = (y * w + x) as usize;
        let p = frame.get_pixel(x, y).0;
        let add = |base: u8, v: f32| (base as f32 + gain * 255.0 * v.max(0.0)).min(255.0).round() as u8;
        Rgb([add(p[0], c[i]), p[1], add(p[2], a[i])])
    })
}

/// Tiles pictures in rows (e.g. methods × {actor, critic}, seed 002's layout), `gap` pixels apart on a dark
/// background; every cell is resized (nearest) to the first picture's size.
pub fn grid(rows: &[Vec<RgbImage>], gap: u32) -> RgbImage {
    let first = rows.iter().flatten().next().expect("a grid needs at least one picture");
    let (cw, ch) = first.dimensions();
    let cols = rows.iter().map(Vec::len).max().unwrap_or(1) as u32;
    let (w, h) = (cols * cw + (cols + 1) * gap, rows.len() as u32 * ch + (rows.len() as u32 + 1) * gap);
    let mut out = RgbImage::from_pixel(w, h, Rgb([24, 24, 24]));
    for (r, row) in rows.iter().enumerate() {
        for (c, img) in row.iter().enumerate() {
            let cell = imageops::resize(img, cw, ch, imageops::FilterType::Nearest);
            let (x, y) = (gap + c as u32 * (cw + gap), gap + r as u32 * (ch + gap));
            imageops::replace(&mut out, &cell, x as i64, y as i64);
        }
    }
    out
}

#[cfg(test)]
mod layout_tests {
    use super::*;

    #[test]
    fn composite_clips_instead_of_wrapping() {
        let frame = RgbImage::from_pixel(2, 1, Rgb([200, 200, 200]));
        let out = actor_critic_composite(&frame, &[0.0, 1.0], &[1.0, 0.0], 2, 1);
        // Luminance 200; +255 clips at 255 (the original wrapped to 199).
        assert_eq!(out.get_pixel(0, 0).0, [255, 200, 200]);
        assert_eq!(out.get_pixel(1, 0).0, [200, 255, 200]);
        let g = greydanus_additive(&frame, &[0.2, 0.0], &[0.0, 0.1], 2, 1, 1.0);
        assert_eq!((g.get_pixel(0, 0).0, g.get_pixel(1, 0).0), ([200, 200, 251], [226, 200, 200]));
    }

    #[test]
    fn grid_places_cells_with_gaps() {
        let red = RgbImage::from_pixel(2, 2, Rgb([255, 0, 0]));
        let blue = RgbImage::from_pixel(4, 4, Rgb([0, 0, 255]));
        let g = grid(&[vec![red.clone(), blue], vec![red]], 1);
        assert_eq!(g.dimensions(), (2 * 2 + 3, 2 * 2 + 3));
        assert_eq!(g.get_pixel(1, 1).0, [255, 0, 0]);
        assert_eq!(g.get_pixel(4, 1).0, [0, 0, 255], "the second cell, resized to 2×2");
        assert_eq!(g.get_pixel(0, 0).0, [24, 24, 24]);
    }
}
