//! A whole model-parameter randomisation run beside Quantus 0.6's MPRT, on the same draws.
//!
//! Quantus re-initialises each layer with torch's generator, which burn cannot reproduce; so the comparison goes the
//! other way round. xrl writes a MinAtar CNN on one-channel frames (1×10×10 → conv 16 3×3 → ReLU → FC 128 → ReLU →
//! 3 Q values; one channel, so that Quantus' features are xrl's cells), six frames and their targets, and every
//! tensor as xrl's randomisation draws it from seed 42 (`eval_mprt_xrl.safetensors`, 0.5 MB, by the ignored test
//! below; the original network's tensors are those draws in reverse order — exact in f32 on both sides, so one
//! set of values serves both); `fixtures/make_mprt_eval_fixture.py` runs Quantus'
//! own MPRT loop on it with only the layer re-initialisation replaced — each cascade step loads xrl's draws for
//! its layer — and writes the per-layer, per-frame scores (`eval_mprt_quantus.json`). This test replays the run
//! without Python and asks for every score within 1e-4.
//!
//! Regenerate (both files, in this order):
//!
//! ```sh
//! XRL_WRITE_MPRT_FIXTURE=1 cargo test --release -p xrl-explain --test evaluate_mprt -- --ignored
//! ~/xrl-ref/bin/python crates/xrl-explain/tests/fixtures/make_mprt_eval_fixture.py
//! ```

use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use xrl::burn::tensor::Device;
use xrl::nn::{HeadKind, Net, NetSpec, Torso};
use xrl_explain::evaluate::randomisation::{Randomisation, layers, named_tensors, randomise, with_tensors};
use xrl_explain::evaluate::similarity::{Measure, SimilarityParams};
use xrl_explain::evaluate::{Subject, cell_maps};
use xrl_explain::{Gradient, GradientKind, Inputs, Method, Target};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
const SEED: u64 = 42;
const FRAMES: usize = 6;
const SHAPE: [usize; 3] = [1, 10, 10];
const CELLS: usize = 100;

fn spec() -> NetSpec {
    NetSpec::new(SHAPE.to_vec(), 3, Torso::MinatarCnn, HeadKind::Q)
}

/// Quantus' MPRT preprocessing (|map| / max|map|) has the ranks of |map|; xrl's Spearman of |map| clips at the
/// 99th percentile first (Adebayo et al.'s visualisation), which ties the top cells. At the 100th percentile it
/// clips nothing and the two rank the same.
fn params() -> SimilarityParams {
    SimilarityParams { percentile: 100.0, ..SimilarityParams::for_frame(10, 10) }
}

/// Writes the network, frames, targets and xrl's draws (run by hand; see the module's doc).
#[test]
#[ignore = "writes the fixture; run with XRL_WRITE_MPRT_FIXTURE=1"]
fn export_mprt_fixture() {
    if std::env::var("XRL_WRITE_MPRT_FIXTURE").as_deref() != Ok("1") {
        return;
    }
    let fresh = Net::new(&spec(), &Device::flex()).unwrap();
    // A tensor's draw depends on the seed and its name only, not on the values it replaces.
    let drawn = randomise(&fresh, &layers(&fresh).unwrap(), SEED).unwrap();
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(3);
    let x: Vec<f32> = (0..FRAMES * CELLS).map(|_| rng.random::<f32>()).collect();
    let y: Vec<f32> = (0..FRAMES).map(|i| (i % 3) as f32).collect();
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = vec![];
    for t in named_tensors(&drawn).unwrap() {
        tensors.push((format!("rand.{}", t.name), t.shape, t.values));
    }
    tensors.push(("x".into(), vec![FRAMES, 1, 10, 10], x));
    tensors.push(("y".into(), vec![FRAMES], y));
    let bytes: Vec<Vec<u8>> =
        tensors.iter().map(|(_, _, v)| v.iter().flat_map(|f| f.to_le_bytes()).collect()).collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            (name.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b).unwrap())
        })
        .collect();
    let meta = HashMap::from([
        ("seed".to_string(), SEED.to_string()),
        ("layers".to_string(), layers(&fresh).unwrap().join(",")),
    ]);
    let out = safetensors::serialize(views, Some(meta)).unwrap();
    std::fs::write(format!("{DIR}/eval_mprt_xrl.safetensors"), out).unwrap();
}

/// The fixture's tensors by name.
fn read_fixture() -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(format!("{DIR}/eval_mprt_xrl.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, v)| {
            let values = v.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            (name, (v.shape().to_vec(), values))
        })
        .collect()
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (m, (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n).sqrt())
}

#[test]
fn a_whole_mprt_run_agrees_with_quantus_on_xrls_draws() {
    let fx = read_fixture();
    let quantus: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{DIR}/eval_mprt_quantus.json")).unwrap()).unwrap();
    let pick = |prefix: &str| -> HashMap<String, Vec<f32>> {
        fx.iter().filter_map(|(k, (_, v))| Some((k.strip_prefix(prefix)?.to_string(), v.clone()))).collect()
    };
    // The original network: xrl's draws reversed.
    let original: HashMap<String, Vec<f32>> =
        pick("rand.").into_iter().map(|(k, v)| (k, v.into_iter().rev().collect())).collect();
    let net = with_tensors(&Net::new(&spec(), &Device::flex()).unwrap(), &original).unwrap().frozen();
    let order = layers(&net).unwrap();
    assert_eq!(order, ["head.out", "torso.fc.0", "torso.convs.0"]);
    // The draws Quantus loaded are xrl's own from the seed, bit for bit: the fixture is not stale.
    let drawn = named_tensors(&randomise(&net, &order, SEED).unwrap()).unwrap();
    let exported = pick("rand.");
    assert_eq!(drawn.len(), exported.len());
    for t in &drawn {
        let same = t.values.iter().zip(&exported[&t.name]).all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "{}: the exported draw is not what xrl's randomisation gives from seed {SEED}", t.name);
    }
    let x = fx["x"].1.clone();
    let targets: Vec<Target> = fx["y"].1.iter().map(|&a| Target::Action(a as usize)).collect();
    let subject = Subject::new(&net, Inputs::new(&x, &SHAPE).unwrap(), &targets).unwrap();
    let grad = Gradient { kind: GradientKind::Vanilla, budget: Default::default() };
    // The same network on both sides: Quantus' Saliency maps (|gradient|) are xrl's gradient's magnitudes.
    let theirs: Vec<f64> = quantus["saliency"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let ours = subject.maps(&grad).unwrap();
    assert_eq!(ours.maps.len(), theirs.len());
    for (a, b) in ours.maps.iter().zip(&theirs) {
        assert!((f64::from(a.abs()) - b).abs() < 1e-5 * b.abs().max(1e-3), "saliency: {a} vs {b}");
    }
    // Quantus' run: the original against itself (1), then each cascade step, per frame.
    let scores = |layer: &str| -> Vec<f64> {
        quantus["scores"][layer].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
    };
    assert!(scores("original").iter().all(|&s| (s - 1.0).abs() < 1e-9));
    let test =
        Randomisation { seed: SEED, measures: vec![Measure::SpearmanAbs], params: Some(params()), independent: false };
    let r = test.run(&subject, &grad).unwrap();
    assert_eq!(r.layers, order);
    let originals = cell_maps(&ours, [1, 10, 10]);
    for (k, layer) in order.iter().enumerate() {
        let q = scores(layer);
        assert_eq!(q.len(), FRAMES, "{layer}");
        // xrl keeps |ρ| (Huber et al.'s inversion rule: a map and its inverse are equally informative); Quantus
        // the signed ρ. Frame by frame:
        let randomised = randomise(&net, &order[..=k], SEED).unwrap();
        let maps = cell_maps(&grad.attribute(&randomised, &subject.inputs, &targets, None).unwrap(), [1, 10, 10]);
        for i in 0..FRAMES {
            let ours = Measure::SpearmanAbs
                .similarity_with(&params(), &originals[i * CELLS..][..CELLS], &maps[i * CELLS..][..CELLS], 10, 10)
                .unwrap();
            assert!((ours - q[i].abs()).abs() < 1e-4, "+{layer}, frame {i}: xrl {ours}, Quantus {}", q[i]);
        }
        // And the test's own summary of the step.
        let (mean, std) = mean_std(&q.iter().map(|s| s.abs()).collect::<Vec<_>>());
        let s = &r.cascading[k].scores[0];
        assert_eq!(r.cascading[k].randomised, order[..=k]);
        assert!(
            (s.mean - mean).abs() < 1e-4 && (s.std - std).abs() < 1e-4,
            "+{layer}: {s:?} vs Quantus {mean} ± {std}"
        );
    }
    // Not a vacuous agreement: randomising the whole network moves the maps (Quantus saw it too).
    assert!(r.cascading[2].scores[0].mean < 0.9, "{:?}", r.cascading[2].scores[0]);
}
