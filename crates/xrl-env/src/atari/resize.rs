//! Image resizes with the semantics the references use (written from their definitions, in f32):
//! OpenCV's `INTER_AREA` (Gymnasium's `AtariPreprocessing`) and PIL's `BILINEAR` (scipy's `imresize`, used by the
//! seeds), each on one-channel u8 images, rounding to the nearest integer at the end.

/// For each output index: the source indices and their weights (summing to 1).
type Taps = Vec<Vec<(usize, f32)>>;

/// OpenCV's area table for one axis (`computeResizeAreaTab`): each output cell averages the source cells it
/// covers, partial cells weighted by their covered fraction.
fn area_taps(src: usize, dst: usize) -> Taps {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|d| {
            let f1 = d as f64 * scale;
            let f2 = f1 + scale;
            let s1 = f1.ceil() as usize;
            let s2 = (f2.floor() as usize).min(src);
            let cell = scale.min(src as f64 - f1);
            let mut taps = vec![];
            if s1 as f64 - f1 > 1e-3 {
                taps.push((s1 - 1, ((s1 as f64 - f1) / cell) as f32));
            }
            for s in s1..s2 {
                taps.push((s, (1.0 / cell) as f32));
            }
            if f2 - s2 as f64 > 1e-3 && s2 < src {
                taps.push((s2, ((f2 - s2 as f64).min(1.0).min(cell) / cell) as f32));
            }
            taps
        })
        .collect()
}

/// PIL's `BILINEAR` taps for one axis: a triangle filter widened by the scale when shrinking (antialiased).
fn bilinear_taps(src: usize, dst: usize) -> Taps {
    let scale = src as f64 / dst as f64;
    let filter_scale = scale.max(1.0);
    let support = filter_scale; // the triangle's support is 1 source pixel, times the scale when shrinking
    (0..dst)
        .map(|d| {
            let center = (d as f64 + 0.5) * scale;
            let lo = ((center - support + 0.5).floor().max(0.0)) as usize;
            let hi = ((center + support + 0.5).floor() as usize).min(src);
            let mut taps: Vec<(usize, f64)> = (lo..hi)
                .map(|s| {
                    let x = (s as f64 - center + 0.5) / filter_scale;
                    (s, (1.0 - x.abs()).max(0.0))
                })
                .filter(|&(_, w)| w > 0.0)
                .collect();
            let total: f64 = taps.iter().map(|t| t.1).sum();
            for t in &mut taps {
                t.1 /= total;
            }
            taps.into_iter().map(|(s, w)| (s, w as f32)).collect()
        })
        .collect()
}

fn separable(src: &[u8], h: usize, w: usize, rows: Taps, cols: Taps, out: &mut [u8]) {
    assert_eq!(out.len(), rows.len() * cols.len(), "output is not oh × ow");
    let mut r = Resizer { h, w, rows, cols, vert: vec![] };
    let mut f = vec![0.0; out.len()];
    r.run(src, &mut f);
    for (o, v) in out.iter_mut().zip(f) {
        *o = v as u8;
    }
}

/// OpenCV `cv2.resize(src, (ow, oh), interpolation=cv2.INTER_AREA)` of a one-channel h × w image.
pub fn resize_area(src: &[u8], h: usize, w: usize, oh: usize, ow: usize, out: &mut [u8]) {
    separable(src, h, w, area_taps(h, oh), area_taps(w, ow), out);
}

/// PIL `Image.resize((ow, oh), Image.BILINEAR)` of a one-channel h × w image.
pub fn resize_bilinear(src: &[u8], h: usize, w: usize, oh: usize, ow: usize, out: &mut [u8]) {
    separable(src, h, w, bilinear_taps(h, oh), bilinear_taps(w, ow), out);
}

/// Precomputed taps for repeated resizes of one size (every frame of an episode).
#[derive(Clone, Debug)]
pub(crate) struct Resizer {
    h: usize,
    w: usize,
    rows: Taps,
    cols: Taps,
    /// The vertical pass's output, oh × w.
    vert: Vec<f32>,
}

impl Resizer {
    pub(crate) fn area(h: usize, w: usize, oh: usize, ow: usize) -> Self {
        Resizer { h, w, rows: area_taps(h, oh), cols: area_taps(w, ow), vert: vec![] }
    }
    pub(crate) fn bilinear(h: usize, w: usize, oh: usize, ow: usize) -> Self {
        Resizer { h, w, rows: bilinear_taps(h, oh), cols: bilinear_taps(w, ow), vert: vec![] }
    }
    /// Resizes into `out` as f32 grey levels (already rounded to integers, as the u8 references produce).
    ///
    /// Rows first, whole rows at a time (contiguous, so the compiler vectorises it), then the few columns of each
    /// output row: OpenCV sums columns first, so a sum may round differently in the last bit, which the
    /// one-grey-level parity with OpenCV absorbs; this order does about half the work on 210 × 160 → 84 × 84.
    pub(crate) fn run(&mut self, src: &[u8], out: &mut [f32]) {
        let (w, ow, oh) = (self.w, self.cols.len(), self.rows.len());
        assert_eq!(src.len(), self.h * w, "source is not h × w");
        self.vert.resize(oh * w, 0.0);
        for (acc, taps) in self.vert.chunks_exact_mut(w).zip(&self.rows) {
            acc.fill(0.0);
            for &(s, b) in taps {
                for (a, &v) in acc.iter_mut().zip(&src[s * w..(s + 1) * w]) {
                    *a += v as f32 * b;
                }
            }
        }
        for (row, out) in self.vert.chunks_exact(w).zip(out.chunks_exact_mut(ow)) {
            for (o, taps) in out.iter_mut().zip(&self.cols) {
                let v: f32 = taps.iter().map(|&(s, a)| row[s] * a).sum();
                *o = v.round_ties_even().clamp(0.0, 255.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_of_an_integer_factor_is_the_block_mean() {
        // 4×4 → 2×2: each output is the mean of a 2×2 block.
        let src: Vec<u8> = (0..16).map(|i| (i * 10) as u8).collect();
        let mut out = [0u8; 4];
        resize_area(&src, 4, 4, 2, 2, &mut out);
        // Block means: (0+10+40+50)/4 = 25, (20+30+60+70)/4 = 45, 105, 125.
        assert_eq!(out, [25, 45, 105, 125]);
    }

    #[test]
    fn area_taps_cover_fractional_cells() {
        // 5 → 2: scale 2.5; cell 0 covers source 0, 1 and half of 2.
        let taps = area_taps(5, 2);
        assert_eq!(taps[0].iter().map(|t| t.0).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert!((taps[0][2].1 - 0.2).abs() < 1e-6 && (taps[0][0].1 - 0.4).abs() < 1e-6);
        assert_eq!(taps[1].iter().map(|t| t.0).collect::<Vec<_>>(), vec![2, 3, 4]);
        for t in &taps {
            assert!((t.iter().map(|x| x.1).sum::<f32>() - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn constant_images_stay_constant() {
        let src = vec![77u8; 210 * 160];
        let mut out = vec![0u8; 84 * 84];
        resize_area(&src, 210, 160, 84, 84, &mut out);
        assert!(out.iter().all(|&v| v == 77));
        resize_bilinear(&src, 210, 160, 80, 80, &mut out[..6400]);
        assert!(out[..6400].iter().all(|&v| v == 77));
    }
}
