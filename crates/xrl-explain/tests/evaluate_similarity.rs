//! The randomisation test's similarity measures: values by hand, the inversion rule, refusals, and agreement with
//! scipy, scikit-image and Quantus on the maps of `fixtures/evaluate_similarity.json`
//! (`fixtures/make_evaluate_fixtures.py`).

use serde_json::Value;
use xrl_explain::evaluate::similarity::{
    Measure, SimilarityParams, abs_visualisation, average_ranks, hog, hog_similarity, min_max, normalise_by_max,
    pearson, spearman, ssim,
};

/// Reproducible maps without a generator crate: a 64-bit LCG's top bits in [−1, 1).
fn map(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

#[test]
fn identical_maps_score_one_under_every_measure() {
    for (h, w) in [(10, 10), (84, 84)] {
        let m = map(h * w, 1);
        for measure in Measure::ALL {
            let s = measure.similarity(&m, &m, h, w).unwrap();
            assert!((s - 1.0).abs() < 1e-12, "{measure:?} on {h}×{w}: {s}");
        }
        assert!((ssim(&m, &m, h, w, 3).unwrap() - 1.0).abs() < 1e-12);
        assert!((hog_similarity(&m, &m, h, w, &SimilarityParams::for_frame(h, w)).unwrap() - 1.0).abs() < 1e-12);
        assert!((pearson(&m, &m).unwrap() - 1.0).abs() < 1e-12);
    }
}

/// Huber et al.'s rule: a map and its inverse are the same explanation. For rank measures the inverse is −map;
/// for SSIM and HOG it is 1 − the min–max (absolute) map, built here as a raw map whose absolute visualisation is
/// exactly that (values in [0, 1], more than 1% of the cells at 0 and as many at 1, so that the 99th
/// percentile of the map and of its inverse is 1 and neither is clipped).
#[test]
fn a_map_and_its_inverse_score_one_under_the_inversion_rule() {
    for (h, w) in [(10, 10), (84, 84)] {
        let n = h * w;
        let mut m: Vec<f32> = map(n, 2).iter().map(|v| (v + 1.0) / 2.0 * 0.9 + 0.05).collect();
        let k = n / 100 + 2;
        m[..k].fill(0.0);
        m[k..2 * k].fill(1.0);
        let inverse: Vec<f32> = m.iter().map(|v| 1.0 - v).collect();
        for side in [&m, &inverse] {
            let v = abs_visualisation(side, 99.0).unwrap();
            assert!(v.iter().zip(side.iter()).all(|(a, &b)| *a == b as f64), "{h}×{w}: clipped");
        }
        let negated: Vec<f32> = m.iter().map(|v| -v).collect();
        for measure in Measure::ALL {
            let other = if matches!(measure, Measure::SpearmanSigned) { &negated } else { &inverse };
            let s = measure.similarity(&m, other, h, w).unwrap();
            assert!((s - 1.0).abs() < 1e-6, "{measure:?} on {h}×{w}: {s}");
        }
        // Without the rule the inverse is far from the map.
        assert!(spearman(&m, &inverse).unwrap() < -0.999);
        assert!(ssim(&m, &inverse, h, w, 3).unwrap() < 0.0);
    }
}

#[test]
fn spearman_with_ties_by_hand() {
    // Ranks [1, 2.5, 2.5, 4] and [1, 4, 2.5, 2.5]; deviations from 2.5 give r = 2.25 / 4.5.
    assert_eq!(average_ranks(&[1.0, 2.0, 2.0, 3.0]), [1.0, 2.5, 2.5, 4.0]);
    let r = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 3.0, 2.0, 2.0]).unwrap();
    assert!((r - 0.5).abs() < 1e-15, "{r}");
    // Ranks [1, 2, 3, 4, 5] and [1.5, 1.5, 3, 4.5, 4.5]: Σdd = 9, Σd² = 10 and 9, ρ = 9 / √90.
    let r = spearman(&[10.0, 20.0, 30.0, 40.0, 50.0], &[7.0, 7.0, 8.0, 9.0, 9.0]).unwrap();
    assert!((r - 9.0 / 90f64.sqrt()).abs() < 1e-15, "{r}");
    // Monotone transforms keep ρ; constant sides give 0.
    let a = [0.1f32, -3.0, 2.0, 0.5];
    let cubed: Vec<f32> = a.iter().map(|v| v * v * v).collect();
    assert!((spearman(&a, &cubed).unwrap() - 1.0).abs() < 1e-15);
    assert_eq!(spearman(&a, &[2.0; 4]).unwrap(), 0.0);
    assert_eq!(pearson(&[2.0; 4], &a).unwrap(), 0.0);
}

#[test]
fn preprocessing_by_hand() {
    // |map| = [0, 1, 2, …, 99]: the 99th percentile is 98.01, the top cell clips to 1.
    let m: Vec<f32> = (0..100).map(|i| if i % 2 == 0 { i as f32 } else { -(i as f32) }).collect();
    let v = abs_visualisation(&m, 99.0).unwrap();
    assert!((v[50] - 50.0 / 98.01).abs() < 1e-12 && v[99] == 1.0 && v[0] == 0.0);
    assert_eq!(normalise_by_max(&[1.0, -4.0, 2.0]), [0.25, -1.0, 0.5]);
    assert_eq!(normalise_by_max(&[0.0, 0.0]), [0.0, 0.0]);
    assert_eq!(min_max(&[3.0, 5.0, 4.0]), [0.0, 1.0, 0.5]);
    assert_eq!(min_max(&[3.0, 3.0]), [0.0, 0.0]);
}

#[test]
fn bad_maps_and_parameters_are_refused_with_a_reason() {
    let m = map(100, 3);
    let cases: Vec<(String, &str)> = vec![
        (spearman(&m, &m[..99]).unwrap_err().to_string(), "maps of 100 and 99 values"),
        (pearson(&[], &[]).unwrap_err().to_string(), "empty map"),
        (spearman(&[1.0, f32::NAN], &[1.0, 2.0]).unwrap_err().to_string(), "is NaN"),
        (ssim(&m, &m, 10, 10, 4).unwrap_err().to_string(), "odd window of at most 10"),
        (ssim(&m, &m, 10, 10, 11).unwrap_err().to_string(), "odd window of at most 10"),
        (ssim(&m, &m, 5, 10, 3).unwrap_err().to_string(), "not a 5×10 frame"),
        (hog(&m, 10, 10, 4, 3, 9).unwrap_err().to_string(), "at least 12×12"),
        (hog(&m, 10, 10, 0, 3, 9).unwrap_err().to_string(), "at least 1"),
        (Measure::Hog.similarity(&m[..9], &m[..9], 3, 3).unwrap_err().to_string(), "at least 6×6"),
        (abs_visualisation(&m, 120.0).unwrap_err().to_string(), "from 0 to 100"),
    ];
    for (got, want) in cases {
        assert!(got.contains(want), "`{got}` lacks `{want}`");
    }
    // Frames too small for HOG still take the rank measures and SSIM (window 1).
    for measure in [Measure::SpearmanAbs, Measure::SpearmanSigned, Measure::Ssim] {
        assert!(measure.similarity(&m[..7], &m[..7], 1, 7).is_ok(), "{measure:?}");
    }
}

#[test]
fn measures_serialise_in_kebab_case() {
    let json = serde_json::to_string(&Measure::ALL).unwrap();
    assert_eq!(json, r#"["spearman-abs","spearman-signed","ssim","hog"]"#);
    assert!(Measure::ALL.iter().all(|m| json.contains(m.name())));
    let p = SimilarityParams::for_frame(84, 84);
    assert_eq!((p.ssim_window, p.hog_cell, p.hog_block, p.hog_orientations), (11, 16, 3, 9));
    let p = SimilarityParams::for_frame(10, 10);
    assert_eq!((p.ssim_window, p.hog_cell, p.hog_block, p.percentile), (3, 2, 3, 99.0));
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("fixture field {key}"))
}

fn usize_of(v: &Value, key: &str) -> usize {
    v[key].as_u64().unwrap() as usize
}

fn checksum(v: &[f64]) -> f64 {
    v.iter().enumerate().map(|(i, x)| x * ((i % 13) + 1) as f64).sum()
}

/// Every fixture value within 1e-4 of the Python references (scipy 1.17.1, scikit-image 0.26.0, Quantus 0.6.0);
/// prints the largest difference of each kind.
#[test]
fn agrees_with_scipy_skimage_and_quantus() {
    let text = include_str!("fixtures/evaluate_similarity.json");
    let fixture: Value = serde_json::from_str(text).unwrap();
    let mut worst: std::collections::BTreeMap<&str, f64> = Default::default();
    let mut check = |kind: &'static str, case: &str, got: f64, want: f64| {
        let d = (got - want).abs();
        assert!(d < 1e-4, "{case} {kind}: {got} vs {want}");
        let e = worst.entry(kind).or_insert(0.0);
        *e = e.max(d);
    };
    for c in fixture["cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let (h, w) = (usize_of(c, "h"), usize_of(c, "w"));
        let (a, b) = (floats(&c["a"]), floats(&c["b"]));
        check("scipy spearmanr", name, spearman(&a, &b).unwrap(), num(c, "spearman"));
        check("scipy pearsonr", name, pearson(&a, &b).unwrap(), num(c, "pearson"));
        let params = SimilarityParams::for_frame(h, w);
        let abs_rho = Measure::SpearmanAbs.similarity_with(&params, &a, &b, h, w).unwrap();
        check("spearman-abs (|rho|)", name, abs_rho, num(c, "spearman_abs").abs());
        let signed_rho = Measure::SpearmanSigned.similarity(&a, &b, h, w).unwrap();
        check("spearman-signed (|rho|)", name, signed_rho, num(c, "spearman_signed").abs());
        // Quantus MPRT's default: Spearman of abs maps divided by their max (no percentile clipping).
        let abs_a: Vec<f32> = a.iter().map(|v| v.abs()).collect();
        let abs_b: Vec<f32> = b.iter().map(|v| v.abs()).collect();
        check("quantus correlation_spearman", name, spearman(&abs_a, &abs_b).unwrap(), num(c, "quantus_spearman"));
        check("quantus correlation_pearson", name, pearson(&abs_a, &abs_b).unwrap(), num(c, "quantus_pearson"));
        if h * w <= 100 {
            // With 100 cells the 99th-percentile clip moves only the top cell, below no other: same ranks.
            check("quantus correlation_spearman = spearman-abs", name, abs_rho, num(c, "quantus_spearman").abs());
        }
        for s in c["ssim"].as_array().unwrap() {
            let window = usize_of(s, "window");
            check("skimage structural_similarity", name, ssim(&a, &b, h, w, window).unwrap(), num(s, "raw"));
            let p = SimilarityParams { ssim_window: window, ..params };
            let measured = Measure::Ssim.similarity_with(&p, &a, &b, h, w).unwrap();
            check("ssim measure (inversion rule)", name, measured, num(s, "abs").max(num(s, "abs_inverted")));
        }
        for g in c["hog"].as_array().unwrap() {
            let (cell, block) = (usize_of(g, "cell"), usize_of(g, "block"));
            let p = SimilarityParams { hog_cell: cell, hog_block: block, ..params };
            let descriptors = |m: &[f32]| hog_of_min_max(m, h, w, cell, block);
            let (da, db) = (descriptors(&a), descriptors(&b));
            assert_eq!(da.len(), usize_of(g, "len"), "{name}: HOG length");
            check("skimage hog (checksum)", name, checksum(&da), num(g, "checksum_a"));
            check("skimage hog (checksum)", name, checksum(&db), num(g, "checksum_b"));
            if let Some(full) = g.get("full_a") {
                for (got, want) in da.iter().zip(full.as_array().unwrap()) {
                    check("skimage hog (values)", name, *got, want.as_f64().unwrap());
                }
            }
            let measured = Measure::Hog.similarity_with(&p, &a, &b, h, w).unwrap();
            let want = num(g, "similarity_abs").max(num(g, "similarity_abs_inverted"));
            check("hog measure (inversion rule)", name, measured, want);
        }
    }
    for (kind, d) in &worst {
        println!("max |difference| {kind}: {d:.3e}");
    }
    assert!(worst.len() >= 10, "every kind of reference was compared: {worst:?}");
}

/// HOG of a map's min–max normalisation, what the references compute (`hog(mm(a), …)`); `hog` takes f32 maps,
/// so the normalised map is rounded to f32 first (equal cells stay equal, so no gradient changes its bin).
fn hog_of_min_max(m: &[f32], h: usize, w: usize, cell: usize, block: usize) -> Vec<f64> {
    let mm: Vec<f32> = min_max(m).iter().map(|&v| v as f32).collect();
    hog(&mm, h, w, cell, block, 9).unwrap()
}
