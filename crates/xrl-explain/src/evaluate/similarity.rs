//! How alike two saliency maps of one frame are: the measures of the model-parameter randomisation test.
//!
//! Adebayo et al. 2018 ("Sanity checks for saliency maps") compare the map of a trained network with the map of
//! the same network with layers re-initialised by four measures: Spearman's rank correlation of the absolute maps,
//! of the signed maps, SSIM, and the rank correlation of the maps' HOG descriptors. Huber, Limmer & André 2022
//! add that a randomised network may highlight the same structure with the opposite polarity, so each measure is
//! also taken against the inverted map and the larger value kept ([`Measure::similarity`]).
//!
//! Maps are flat cell maps of one frame (row-major `[h, w]`, as [`super::cell_maps`] gives them). Every function
//! computes in f64 and returns [`ExplainError::Invalid`] for maps of different lengths, maps that do not fill
//! `[h, w]`, empty maps, non-finite values, or parameters that do not fit the frame. Agreement with the Python
//! references (scipy 1.17, scikit-image 0.26, Quantus 0.6) is tested in `tests/evaluate_similarity.rs`.

use crate::ExplainError;
use serde::{Deserialize, Serialize};

/// SSIM's Gaussian weights: σ = 1.5 truncated at 3.5σ (radius 5, an 11-tap filter), as skimage's
/// `structural_similarity(gaussian_weights=True)` sets them to follow Wang et al. 2004.
pub const SSIM_SIGMA: f64 = 1.5;
const SSIM_TRUNCATE: f64 = 3.5;
/// Wang et al. 2004's stabilising constants, relative to the data range (1 on min–max maps).
const SSIM_K1: f64 = 0.01;
const SSIM_K2: f64 = 0.03;
/// skimage's `_hog_normalize_block` ε and L2-Hys clipping threshold.
const HOG_EPS: f64 = 1e-5;
const HOG_CLIP: f64 = 0.2;

/// The measures' hyper-parameters. [`SimilarityParams::for_frame`] sizes them to the frame; serialised with the
/// results so that a reader knows what was measured.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SimilarityParams {
    /// The percentile at which absolute maps are clipped (Adebayo et al.: 99).
    pub percentile: f64,
    /// SSIM's `win_size`: odd, at most the frame's shorter side. With Gaussian weights it sets only the border
    /// that is left out of the mean ((window − 1)/2 cells each side); the weights stay σ = 1.5, radius 5.
    pub ssim_window: usize,
    /// HOG's cell side in cells of the map (`pixels_per_cell`).
    pub hog_cell: usize,
    /// HOG's block side in HOG cells (`cells_per_block`).
    pub hog_block: usize,
    /// HOG's orientation bins over 0–180°.
    pub hog_orientations: usize,
}

impl SimilarityParams {
    /// Defaults for an `h × w` frame.
    ///
    /// * Frames with a shorter side of 32 or more (Atari's 84×84): skimage's own defaults for Gaussian SSIM
    ///   (window 11, the filter's extent) and Adebayo et al.'s HOG of 16×16-cell cells, 3×3-cell blocks (an 84×84
    ///   frame: 5×5 HOG cells over its first 80 rows and columns, as skimage drops the remainder; 729 values).
    /// * Smaller frames (MinAtar's 10×10): window 3 — skimage's window 11 does not fit, and a wider window would
    ///   leave the frame's border out of the mean while MinAtar's objects often sit there (Breakout's paddle is
    ///   on the last row) — and HOG cells of 2×2 cells with 3×3-cell blocks (5×5 HOG cells, 729 values).
    ///
    /// All: 99th-percentile clipping, 9 orientations, L2-Hys block normalisation. A frame narrower than 3 gets
    /// window 1; HOG needs a side of at least `hog_cell · hog_block` (6 here) and is refused on smaller frames.
    pub fn for_frame(h: usize, w: usize) -> Self {
        let side = h.min(w);
        let (ssim_window, hog_cell) = if side >= 32 { (11, 16) } else { (if side >= 3 { 3 } else { 1 }, 2) };
        SimilarityParams { percentile: 99.0, ssim_window, hog_cell, hog_block: 3, hog_orientations: 9 }
    }
}

/// A similarity measure of the randomisation test, with Adebayo et al.'s preprocessing and Huber et al.'s
/// inversion rule (see [`Measure::similarity`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Measure {
    /// Spearman's ρ of the absolute maps, clipped at the 99th percentile ([`abs_visualisation`]); Quantus MPRT's
    /// default measure (there without the clipping).
    SpearmanAbs,
    /// Spearman's ρ of the signed maps divided by max|·| ([`normalise_by_max`]).
    SpearmanSigned,
    /// Gaussian-weighted SSIM ([`ssim`]) of the absolute maps.
    Ssim,
    /// Spearman's ρ of the HOG descriptors ([`hog`]) of the absolute maps.
    Hog,
}

impl Measure {
    /// The four measures of Adebayo et al., in their order.
    pub const ALL: [Measure; 4] = [Measure::SpearmanAbs, Measure::SpearmanSigned, Measure::Ssim, Measure::Hog];

    /// The measure's name in evaluate.json.
    pub fn name(&self) -> &'static str {
        match self {
            Measure::SpearmanAbs => "spearman-abs",
            Measure::SpearmanSigned => "spearman-signed",
            Measure::Ssim => "ssim",
            Measure::Hog => "hog",
        }
    }

    /// [`Measure::similarity_with`] under [`SimilarityParams::for_frame`]`(h, w)`.
    pub fn similarity(&self, original: &[f32], other: &[f32], h: usize, w: usize) -> Result<f64, ExplainError> {
        self.similarity_with(&SimilarityParams::for_frame(h, w), original, other, h, w)
    }

    /// How alike `other` is to `original` (two `[h, w]` cell maps, signs kept), after each measure's
    /// preprocessing, under Huber et al. 2022's inversion rule: the larger of the similarity to `other` and to
    /// `other` inverted.
    ///
    /// * `SpearmanAbs`, `SpearmanSigned`: the inverse of a map for a rank measure is −map (or 1 − its min–max
    ///   map: the same ranks, reversed), against which ρ is exactly −ρ, so the rule keeps |ρ|.
    /// * `Ssim`, `Hog`: on [`abs_visualisation`]s, which are min–max maps (minimum 0, maximum 1); the inverse is
    ///   1 − map. HOG's unsigned orientations (0–180°) make it blind to the inversion already: both values are
    ///   the same, as the rule needs.
    ///
    /// A constant map has no ranks, and its rank correlations are 0 here (scipy returns NaN).
    pub fn similarity_with(
        &self,
        params: &SimilarityParams,
        original: &[f32],
        other: &[f32],
        h: usize,
        w: usize,
    ) -> Result<f64, ExplainError> {
        check_pair(original, other)?;
        check_frame(original.len(), h, w)?;
        Ok(match self {
            Measure::SpearmanAbs => {
                let a = abs_visualisation(original, params.percentile)?;
                let b = abs_visualisation(other, params.percentile)?;
                spearman_f64(&a, &b).abs()
            }
            Measure::SpearmanSigned => spearman_f64(&normalise_by_max(original), &normalise_by_max(other)).abs(),
            Measure::Ssim => {
                let a = abs_visualisation(original, params.percentile)?;
                let b = abs_visualisation(other, params.percentile)?;
                let direct = ssim_f64(&a, &b, h, w, params.ssim_window)?;
                let inverted = ssim_f64(&a, &invert(&b), h, w, params.ssim_window)?;
                direct.max(inverted)
            }
            Measure::Hog => {
                let a = abs_visualisation(original, params.percentile)?;
                let b = abs_visualisation(other, params.percentile)?;
                let (cell, block, bins) = (params.hog_cell, params.hog_block, params.hog_orientations);
                let ha = hog_f64(&a, h, w, cell, block, bins)?;
                let direct = spearman_f64(&ha, &hog_f64(&b, h, w, cell, block, bins)?);
                let inverted = spearman_f64(&ha, &hog_f64(&invert(&b), h, w, cell, block, bins)?);
                direct.max(inverted)
            }
        })
    }
}

fn invalid(message: String) -> ExplainError {
    ExplainError::Invalid(message)
}

/// Two maps of the same, non-zero length, all finite.
fn check_pair(a: &[f32], b: &[f32]) -> Result<(), ExplainError> {
    if a.len() != b.len() {
        return Err(invalid(format!("maps of {} and {} values: compare maps of the same frame", a.len(), b.len())));
    }
    check_map(a)?;
    check_map(b)
}

fn check_map(a: &[f32]) -> Result<(), ExplainError> {
    if a.is_empty() {
        return Err(invalid("an empty map: a map needs at least one value".into()));
    }
    if let Some(i) = a.iter().position(|v| !v.is_finite()) {
        return Err(invalid(format!("map value {i} is {}: maps must be finite numbers", a[i])));
    }
    Ok(())
}

fn check_frame(len: usize, h: usize, w: usize) -> Result<(), ExplainError> {
    if h.checked_mul(w) != Some(len) {
        return Err(invalid(format!("a map of {len} values is not a {h}×{w} frame")));
    }
    Ok(())
}

fn widen(a: &[f32]) -> Vec<f64> {
    a.iter().map(|&v| v as f64).collect()
}

/// Pearson's correlation coefficient r = Σ(a − ā)(b − b̄) / √(Σ(a − ā)² Σ(b − b̄)²), clamped to [−1, 1], as
/// `scipy.stats.pearsonr(a, b)[0]`. 0 when either side is constant (scipy: NaN with a warning), so that a
/// constant map counts as unrelated rather than poisoning a mean.
pub fn pearson(a: &[f32], b: &[f32]) -> Result<f64, ExplainError> {
    check_pair(a, b)?;
    Ok(pearson_f64(&widen(a), &widen(b)))
}

/// [`pearson`] on f64 samples of equal length (the caller checks them).
pub fn pearson_f64(a: &[f64], b: &[f64]) -> f64 {
    let constant = |x: &[f64]| x.iter().all(|&v| v == x[0]);
    if a.is_empty() || constant(a) || constant(b) {
        return 0.0;
    }
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    if saa == 0.0 || sbb == 0.0 {
        return 0.0;
    }
    (sab / (saa.sqrt() * sbb.sqrt())).clamp(-1.0, 1.0)
}

/// Ranks from 1, tied values sharing the mean of their ranks: `scipy.stats.rankdata(x, method='average')`.
pub fn average_ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&i, &j| x[i].total_cmp(&x[j]));
    let mut ranks = vec![0.0; x.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && x[order[end]] == x[order[start]] {
            end += 1;
        }
        // Positions start..end (0-based) hold ranks start+1..=end; each gets their mean.
        let rank = (start + end + 1) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

/// Spearman's rank correlation: Pearson's r of the average ranks ([`average_ranks`]), as
/// `scipy.stats.spearmanr(a, b)[0]` (Spearman 1904). 0 when either side is constant (scipy: NaN).
pub fn spearman(a: &[f32], b: &[f32]) -> Result<f64, ExplainError> {
    check_pair(a, b)?;
    Ok(spearman_f64(&widen(a), &widen(b)))
}

/// [`spearman`] on f64 samples of equal length (the caller checks them).
pub fn spearman_f64(a: &[f64], b: &[f64]) -> f64 {
    pearson_f64(&average_ranks(a), &average_ranks(b))
}

/// The q-th percentile (0–100) by linear interpolation between the nearest sorted values, as
/// `numpy.percentile(x, q)` (its default `method='linear'`, including its way of interpolating from the nearer
/// end). `x` must be non-empty and finite.
pub fn percentile(x: &[f64], q: f64) -> f64 {
    let mut v = x.to_vec();
    v.sort_by(f64::total_cmp);
    let pos = (q / 100.0).clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    let (a, b, t) = (v[lo], v[hi], pos - lo as f64);
    if t >= 0.5 { b - (b - a) * (1.0 - t) } else { a + (b - a) * t }
}

/// Adebayo et al. 2018's absolute map, the PAIR saliency library's `VisualizeImageGrayscale` on one channel:
/// s = |map|, then clip((s − min s) / (P(s) − min s), 0, 1) with P the `percentile`-th percentile (99), so the
/// top 1% of cells saturate at 1 and the result is a min–max map. If P equals the minimum (fewer than 1% of
/// cells above it) the maximum takes its place; a constant map gives zeros. (|·| summed over channels is
/// [`super::cell_maps`]'s sum taken before, on cell maps.)
pub fn abs_visualisation(map: &[f32], percentile_q: f64) -> Result<Vec<f64>, ExplainError> {
    check_map(map)?;
    if !(0.0..=100.0).contains(&percentile_q) {
        return Err(invalid(format!("percentile {percentile_q}: give a percentile from 0 to 100")));
    }
    let s: Vec<f64> = map.iter().map(|&v| (v as f64).abs()).collect();
    let lo = s.iter().copied().fold(f64::INFINITY, f64::min);
    let mut top = percentile(&s, percentile_q);
    if top <= lo {
        top = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    }
    if top <= lo {
        return Ok(vec![0.0; s.len()]);
    }
    Ok(s.iter().map(|&v| ((v - lo) / (top - lo)).clamp(0.0, 1.0)).collect())
}

/// A signed map divided by its largest magnitude, map / max|map|, as Quantus 0.6's `normalise_by_max`; an
/// all-zero map stays zero.
pub fn normalise_by_max(map: &[f32]) -> Vec<f64> {
    let top = map.iter().fold(0.0f64, |m, &v| m.max((v as f64).abs()));
    map.iter().map(|&v| if top > 0.0 { v as f64 / top } else { 0.0 }).collect()
}

/// Min–max normalisation (x − min) / (max − min) into [0, 1]; a constant map gives zeros.
pub fn min_max(map: &[f32]) -> Vec<f64> {
    min_max_f64(&widen(map))
}

fn min_max_f64(x: &[f64]) -> Vec<f64> {
    let lo = x.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if hi <= lo {
        return vec![0.0; x.len()];
    }
    x.iter().map(|&v| (v - lo) / (hi - lo)).collect()
}

/// Huber et al. 2022's inverted map of a min–max map: 1 − map.
fn invert(map: &[f64]) -> Vec<f64> {
    map.iter().map(|&v| 1.0 - v).collect()
}

/// Structural similarity (Wang et al. 2004) of the min–max-normalised maps ([`min_max`]) of an `h × w` frame.
///
/// Equals `skimage.metrics.structural_similarity(min_max(a), min_max(b), win_size=window,
/// gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)` on float64 arrays
/// (scikit-image 0.26): local means, variances and the covariance are Gaussian-weighted averages (σ = 1.5,
/// truncated at 3.5σ: radius 5; `scipy.ndimage.gaussian_filter` with `mode='reflect'`, the border mirrored
/// including its edge cell), population covariances, C1 = (0.01)², C2 = (0.03)², and the SSIM map is averaged
/// over the frame less a border of (window − 1)/2 cells. `window` must be odd and at most the shorter side; with
/// Gaussian weights it sets only that border, not the weights (skimage's default, 11, is the filter's extent).
pub fn ssim(a: &[f32], b: &[f32], h: usize, w: usize, window: usize) -> Result<f64, ExplainError> {
    check_pair(a, b)?;
    check_frame(a.len(), h, w)?;
    ssim_f64(&min_max(a), &min_max(b), h, w, window)
}

/// SSIM of two maps already in [0, 1] (data range 1); see [`ssim`].
fn ssim_f64(x: &[f64], y: &[f64], h: usize, w: usize, window: usize) -> Result<f64, ExplainError> {
    if window == 0 || window.is_multiple_of(2) || window > h.min(w) {
        return Err(invalid(format!(
            "SSIM window {window} on a {h}×{w} frame: give an odd window of at most {}",
            h.min(w)
        )));
    }
    let kernel = gaussian_kernel(SSIM_SIGMA, SSIM_TRUNCATE);
    let filter = |v: &[f64]| gaussian_filter(v, h, w, &kernel);
    let product = |p: &[f64], q: &[f64]| -> Vec<f64> { p.iter().zip(q).map(|(a, b)| a * b).collect() };
    let (ux, uy) = (filter(x), filter(y));
    let (uxx, uyy, uxy) = (filter(&product(x, x)), filter(&product(y, y)), filter(&product(x, y)));
    let (c1, c2) = (SSIM_K1 * SSIM_K1, SSIM_K2 * SSIM_K2);
    let pad = (window - 1) / 2;
    let (mut sum, mut count) = (0.0, 0usize);
    for r in pad..h - pad {
        for c in pad..w - pad {
            let i = r * w + c;
            let (vx, vy, vxy) = (uxx[i] - ux[i] * ux[i], uyy[i] - uy[i] * uy[i], uxy[i] - ux[i] * uy[i]);
            let num = (2.0 * ux[i] * uy[i] + c1) * (2.0 * vxy + c2);
            let den = (ux[i] * ux[i] + uy[i] * uy[i] + c1) * (vx + vy + c2);
            sum += num / den;
            count += 1;
        }
    }
    Ok(sum / count as f64)
}

/// `scipy.ndimage`'s 1-D Gaussian: exp(−x²/2σ²) for x in −r..=r, r = ⌊truncate·σ + 0.5⌋, normalised to sum 1.
fn gaussian_kernel(sigma: f64, truncate: f64) -> Vec<f64> {
    let r = (truncate * sigma + 0.5) as i64;
    let k: Vec<f64> = (-r..=r).map(|x| (-0.5 / (sigma * sigma) * (x * x) as f64).exp()).collect();
    let total: f64 = k.iter().sum();
    k.iter().map(|v| v / total).collect()
}

/// Index `i` of a line of `n` under `scipy.ndimage`'s `reflect` mode (d c b a | a b c d | d c b a), any
/// distance out.
fn reflect(i: isize, n: usize) -> usize {
    let period = 2 * n as isize;
    let m = i.rem_euclid(period);
    (if m >= n as isize { period - 1 - m } else { m }) as usize
}

/// The separable Gaussian filter of an `h × w` image, rows (axis 0) first, then columns, as
/// `scipy.ndimage.gaussian_filter(mode='reflect')`.
fn gaussian_filter(v: &[f64], h: usize, w: usize, kernel: &[f64]) -> Vec<f64> {
    let r = (kernel.len() / 2) as isize;
    let mut down = vec![0.0; v.len()];
    for y in 0..h {
        for x in 0..w {
            down[y * w + x] =
                kernel.iter().enumerate().map(|(k, &g)| g * v[reflect(y as isize + k as isize - r, h) * w + x]).sum();
        }
    }
    let mut out = vec![0.0; v.len()];
    for y in 0..h {
        for x in 0..w {
            out[y * w + x] = kernel
                .iter()
                .enumerate()
                .map(|(k, &g)| g * down[y * w + reflect(x as isize + k as isize - r, w)])
                .sum();
        }
    }
    out
}

/// Histogram of oriented gradients (Dalal & Triggs 2005) of an `h × w` map, as
/// `skimage.feature.hog(map, orientations=orientations, pixels_per_cell=(cell, cell),
/// cells_per_block=(block, block), block_norm='L2-Hys', transform_sqrt=False, feature_vector=True)`
/// (scikit-image 0.26) on a float64 array:
///
/// * gradients by central differences, zero on the border rows (row gradient) and columns (column gradient);
///   magnitude `hypot`, unsigned orientation `atan2(g_row, g_col)` in degrees mod 180;
/// * per cell of `cell × cell` map cells (⌊h/cell⌋ × ⌊w/cell⌋ of them; the rest of the frame is dropped), each
///   orientation bin of 180/`orientations` degrees sums the magnitudes whose orientation falls in it, divided
///   by cell²; like skimage's Cython, the sums and the bin edges are single precision;
/// * every `block × block` window of cells (stride one cell), flattened row, column, orientation, is
///   L2-Hys-normalised: v / √(‖v‖² + ε²), clipped at 0.2, normalised again (ε = 1e-5); blocks in row-major
///   order.
///
/// Length: (⌊h/cell⌋ − block + 1)·(⌊w/cell⌋ − block + 1)·block²·orientations.
pub fn hog(
    map: &[f32],
    h: usize,
    w: usize,
    cell: usize,
    block: usize,
    orientations: usize,
) -> Result<Vec<f64>, ExplainError> {
    check_map(map)?;
    check_frame(map.len(), h, w)?;
    hog_f64(&widen(map), h, w, cell, block, orientations)
}

fn hog_f64(
    v: &[f64],
    h: usize,
    w: usize,
    cell: usize,
    block: usize,
    orientations: usize,
) -> Result<Vec<f64>, ExplainError> {
    if cell == 0 || block == 0 || orientations == 0 {
        return Err(invalid(format!(
            "HOG cell {cell}, block {block}, {orientations} orientations: each must be at least 1"
        )));
    }
    let (cells_r, cells_c) = (h / cell, w / cell);
    if cells_r < block || cells_c < block {
        return Err(invalid(format!(
            "HOG of {cell}×{cell}-cell cells in {block}×{block}-cell blocks needs a frame of at least {0}×{0}, \
             not {h}×{w}",
            cell * block
        )));
    }
    let at = |r: usize, c: usize| v[r * w + c];
    let mut magnitude = vec![0.0; v.len()];
    let mut orientation = vec![0.0; v.len()];
    for r in 0..h {
        for c in 0..w {
            let g_row = if r == 0 || r + 1 >= h { 0.0 } else { at(r + 1, c) - at(r - 1, c) };
            let g_col = if c == 0 || c + 1 >= w { 0.0 } else { at(r, c + 1) - at(r, c - 1) };
            magnitude[r * w + c] = g_col.hypot(g_row);
            orientation[r * w + c] = g_row.atan2(g_col).to_degrees().rem_euclid(180.0);
        }
    }
    // skimage's bin edges are C floats: edge i = (180/orientations as f32)·i.
    let per_bin = (180.0 / orientations as f64) as f32;
    let edges: Vec<f64> = (0..=orientations).map(|i| (per_bin * i as f32) as f64).collect();
    let mut hist = vec![0.0f64; cells_r * cells_c * orientations];
    for cr in 0..cells_r {
        for cc in 0..cells_c {
            let mut totals = vec![0.0f32; orientations];
            for r in cr * cell..(cr + 1) * cell {
                for c in cc * cell..(cc + 1) * cell {
                    let o = orientation[r * w + c];
                    if let Some(bin) = (0..orientations).find(|&i| o >= edges[i] && o < edges[i + 1]) {
                        totals[bin] = (totals[bin] as f64 + magnitude[r * w + c]) as f32;
                    }
                }
            }
            let area = (cell * cell) as f32;
            for (bin, total) in totals.iter().enumerate() {
                hist[(cr * cells_c + cc) * orientations + bin] = (total / area) as f64;
            }
        }
    }
    let (blocks_r, blocks_c) = (cells_r - block + 1, cells_c - block + 1);
    let mut out = Vec::with_capacity(blocks_r * blocks_c * block * block * orientations);
    let mut values = Vec::with_capacity(block * block * orientations);
    for br in 0..blocks_r {
        for bc in 0..blocks_c {
            values.clear();
            for r in br..br + block {
                let row = (r * cells_c + bc) * orientations;
                values.extend_from_slice(&hist[row..row + block * orientations]);
            }
            let norm = |x: &[f64]| (x.iter().map(|a| a * a).sum::<f64>() + HOG_EPS * HOG_EPS).sqrt();
            let n1 = norm(&values);
            let clipped: Vec<f64> = values.iter().map(|a| (a / n1).min(HOG_CLIP)).collect();
            let n2 = norm(&clipped);
            out.extend(clipped.iter().map(|a| a / n2));
        }
    }
    Ok(out)
}

/// Adebayo et al.'s HOG similarity: Spearman's ρ ([`spearman`]) of the [`hog`] descriptors of the two maps'
/// min–max normalisations ([`min_max`]), under `params`' cell, block and orientations.
pub fn hog_similarity(
    a: &[f32],
    b: &[f32],
    h: usize,
    w: usize,
    params: &SimilarityParams,
) -> Result<f64, ExplainError> {
    check_pair(a, b)?;
    check_frame(a.len(), h, w)?;
    let (cell, block, bins) = (params.hog_cell, params.hog_block, params.hog_orientations);
    let ha = hog_f64(&min_max(a), h, w, cell, block, bins)?;
    let hb = hog_f64(&min_max(b), h, w, cell, block, bins)?;
    Ok(spearman_f64(&ha, &hb))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_mirrors_including_the_edge() {
        let got: Vec<usize> = (-5..9).map(|i| reflect(i, 4)).collect();
        assert_eq!(got, [3, 3, 2, 1, 0, 0, 1, 2, 3, 3, 2, 1, 0, 0]);
        assert!((-3..4).all(|i| reflect(i, 1) == 0));
    }

    #[test]
    fn percentile_interpolates_as_numpy() {
        let x: Vec<f64> = (0..10).map(|i| (i * i) as f64).collect();
        // numpy.percentile(np.arange(10)**2, q) for q = 0, 50, 99, 100.
        for (q, want) in [(0.0, 0.0), (50.0, 20.5), (99.0, 79.47), (100.0, 81.0)] {
            assert!((percentile(&x, q) - want).abs() < 1e-12, "{q}: {}", percentile(&x, q));
        }
    }
}
