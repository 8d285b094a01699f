//! The saliency tests on networks whose answers are known by hand: a network that reads one cell, so a map that
//! finds that cell must make deletion fall at exactly that cell, change the action when its top cell goes, and
//! correlate perfectly with the target's fall.

use std::path::Path;
use xrl::burn::tensor::Device;
use xrl::nn::{HeadKind, Net, NetSpec, Torso};
use xrl_explain::evaluate::deletion::{AgreementConfig, CurveScore, DeletionConfig, Replacement, auc, impute};
use xrl_explain::evaluate::faithfulness::FaithfulnessConfig;
use xrl_explain::evaluate::similarity::pearson_f64 as pearson;
use xrl_explain::evaluate::{Subject, cell_maps, ranked};
use xrl_explain::{Attribution, Gradient, GradientKind, Inputs, Method, Resolution, Target};

/// A network with weights set by name: `values(name, shape)` gives each tensor's values (row-major in burn's
/// layout: Linear weights `[in, out]`).
fn net_with(spec: &NetSpec, values: impl Fn(&str, &[usize]) -> Vec<f32>) -> Net {
    let device = Device::flex();
    let net = Net::new(spec, &device).unwrap();
    let mut bytes = xrl::run::weights_bytes(&net).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    for (name, t) in header.as_object().unwrap().iter().filter(|(k, _)| *k != "__metadata__") {
        assert_eq!(t["dtype"], "F32");
        let shape: Vec<usize> = t["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        let [start, end] = [0, 1].map(|i| t["data_offsets"][i].as_u64().unwrap() as usize + 8 + header_len);
        let v = values(name, &shape);
        assert_eq!(v.len() * 4, end - start, "{name}");
        for (k, x) in v.iter().enumerate() {
            bytes[start + 4 * k..start + 4 * k + 4].copy_from_slice(&x.to_le_bytes());
        }
    }
    xrl::run::load_weights(spec, Path::new("test"), bytes, &device).unwrap()
}

/// Frames of 1×3×3 cells; Q0 = ReLU(x at cell 4), Q1 = 0.5: the greedy action is 0 exactly while cell 4 holds 1.
fn reads_cell_four() -> Net {
    let spec = NetSpec::new(vec![1, 3, 3], 2, Torso::Mlp { hidden: vec![2] }, HeadKind::Q);
    net_with(&spec, |name, shape| {
        let mut v = vec![0.0; shape.iter().product()];
        match name {
            "torso.fc.0.weight" => v[4 * 2] = 1.0, // input 4 → unit 0
            "head.out.weight" => v[0] = 1.0,       // unit 0 → Q0
            "head.out.bias" => v[1] = 0.5,
            _ => {}
        }
        v
    })
}

fn one_hot(cell: usize, sign: f32) -> Attribution {
    let mut maps = vec![0.0; 9];
    maps[cell] = sign;
    Attribution {
        method: "hand".into(),
        maps,
        shape: vec![1, 3, 3],
        resolution: Resolution::Input,
        delta: None,
        seconds: 0.0,
    }
}

const SHAPE: [usize; 3] = [1, 3, 3];
const ONES: [f32; 9] = [1.0; 9];

#[test]
fn deletion_falls_at_exactly_the_cell_the_network_reads() {
    let net = reads_cell_four();
    let inputs = Inputs::new(&ONES, &SHAPE).unwrap();
    let targets = [Target::Q(0)];
    let subject = Subject::new(&net, inputs, &targets).unwrap();
    let config = DeletionConfig { seed: 3, ..DeletionConfig::for_frame([1, 3, 3]) };
    // The right map: cell 4 first — the target is gone after the first step, and insertion has it at once.
    let r = config.run(&subject, &one_hot(4, 1.0)).unwrap();
    assert_eq!(r.deletion.mean, [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    assert_eq!(r.insertion.mean, [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
    assert!((r.deletion.auc.mean - 0.5 / 9.0).abs() < 1e-12);
    assert!((r.insertion.auc.mean - 8.5 / 9.0).abs() < 1e-12);
    assert_eq!(r.deletion.fraction.len(), 10);
    assert!((r.deletion.fraction[3] - 3.0 / 9.0).abs() < 1e-12);
    // The wrong map (cell 4 last): the target holds until the last step.
    let r = config.run(&subject, &one_hot(4, -1.0)).unwrap();
    assert_eq!(r.deletion.mean, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]);
    assert!((r.deletion.auc.mean - 8.5 / 9.0).abs() < 1e-12);
    // The random order falls where cell 4 happens to come; a map ranking cell 4 k-th falls after step k.
    let random = &r.random_deletion.mean;
    let k = random.iter().position(|&s| s == 0.0).unwrap();
    assert!(random[..k].iter().all(|&s| s == 1.0) && random[k..].iter().all(|&s| s == 0.0), "{random:?}");
    // Probabilities: softmax([1, 0.5])[0] with the cell, softmax([0, 0.5])[0] without it.
    let p =
        DeletionConfig { score: CurveScore::Probability, ..config.clone() }.run(&subject, &one_hot(4, 1.0)).unwrap();
    let (with, without) = (1.0 / (1.0 + (-0.5f64).exp()), 1.0 / (1.0 + 0.5f64.exp()));
    assert!(
        (p.deletion.mean[0] - with).abs() < 1e-6 && (p.deletion.mean[1] - without).abs() < 1e-6,
        "{:?}",
        p.deletion.mean
    );
    // A target that names no action has no probability curve.
    let value = [Target::MaxQ];
    let s = Subject::new(&net, inputs, &value).unwrap();
    let e = DeletionConfig { score: CurveScore::Probability, ..config }.run(&s, &one_hot(4, 1.0)).unwrap_err();
    assert!(e.to_string().contains("names none"), "{e}");
}

#[test]
fn rise_auc_is_the_trapezoid_on_the_unit_interval() {
    assert_eq!(auc(&[1.0, 1.0, 1.0]), 1.0);
    assert_eq!(auc(&[1.0, 0.0, 0.0, 0.0, 0.0]), 0.125);
    assert!((auc(&[0.0, 0.5, 1.0]) - 0.5).abs() < 1e-15);
}

#[test]
fn the_action_changes_when_the_top_cell_goes_and_holds_when_the_bottom_goes() {
    let net = reads_cell_four();
    let inputs = Inputs::new(&ONES, &SHAPE).unwrap();
    let targets = [Target::Action(0)];
    let subject = Subject::new(&net, inputs, &targets).unwrap();
    assert_eq!(subject.greedy(&ONES), [0]);
    let config = AgreementConfig { ks: vec![1, 2], ..AgreementConfig::default() };
    let a = config.run(&subject, &one_hot(4, 1.0), 0).unwrap();
    assert_eq!(a.top_k, [0.0, 0.0], "removing cell 4 flips the action");
    assert_eq!(a.bottom_k, [1.0, 1.0], "removing cells the network ignores does not");
    assert!(a.top_percent.iter().all(|&v| v == 0.0), "every top-k% set holds cell 4");
    // The map's sign does not matter here: |saliency| ranks.
    assert_eq!(config.run(&subject, &one_hot(4, -1.0), 0).unwrap().top_k, [0.0, 0.0]);
    // In a random order the action survives until cell 4 is reached.
    let r = &a.random_percent;
    assert!(r.windows(2).all(|w| w[0] >= w[1]) && r[98] == 0.0, "{r:?}");
    let bad = AgreementConfig { ks: vec![10], ..AgreementConfig::default() }.run(&subject, &one_hot(4, 1.0), 0);
    assert!(bad.unwrap_err().to_string().contains("between 1 and 9 cells"));
}

#[test]
fn faithfulness_is_perfect_for_the_exact_map_and_infidelity_zero_for_the_gradient_of_a_linear_net() {
    let net = reads_cell_four();
    // Two frames; cell 4 is on in both, other cells vary (the network ignores them).
    let x: Vec<f32> = (0..18).map(|i| if i % 9 == 4 { 1.0 } else { ((i * 7) % 3) as f32 / 2.0 }).collect();
    let inputs = Inputs::new(&x, &SHAPE).unwrap();
    let targets = [Target::Q(0), Target::Q(0)];
    let subject = Subject::new(&net, inputs, &targets).unwrap();
    let config = FaithfulnessConfig { subset_fraction: 0.3, ..FaithfulnessConfig::default() };
    let exact = Attribution { maps: [one_hot(4, 1.0).maps, one_hot(4, 1.0).maps].concat(), ..one_hot(4, 1.0) };
    let c = config.correlation(&subject, &exact).unwrap();
    assert!(c.values.iter().all(|&v| (v - 1.0).abs() < 1e-12), "{c:?}");
    // A map on the wrong cell correlates with nothing the network does.
    let wrong = Attribution { maps: [one_hot(0, 1.0).maps, one_hot(0, 1.0).maps].concat(), ..one_hot(0, 1.0) };
    assert!(config.correlation(&subject, &wrong).unwrap().mean.abs() < 0.5);
    // Given subsets: {4} and {0} alternately, the map's sums are 1, 0, 1, 0 and the falls 1, 0, 1, 0.
    let subsets: Vec<Vec<usize>> = (0..8).map(|s| vec![if s % 2 == 0 { 4 } else { 0 }]).collect();
    assert_eq!(config.correlation_on(&subject, &exact, &subsets).unwrap().values, [1.0, 1.0]);
    // The network is linear where the frames are (unit 0 active): Δf = Iᵀ∇f exactly, so the gradient's
    // infidelity is 0, and its gradient does not move within the L∞ ball (max sensitivity 0).
    let grad = Gradient { kind: GradientKind::Vanilla, budget: Default::default() };
    let maps = subject.maps(&grad).unwrap();
    assert!(config.infidelity(&subject, &maps).unwrap().values.iter().all(|v| v.abs() < 1e-10));
    assert!(config.infidelity(&subject, &wrong).unwrap().mean > 0.01, "a map elsewhere is unfaithful");
    let s = config.max_sensitivity(&subject, &grad, &maps).unwrap();
    assert_eq!(s.values, [0.0, 0.0]);
    assert_eq!(grad.name(), "grad");
}

#[test]
fn measures_and_ranks_on_hand_made_maps() {
    assert!((pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]) - 1.0).abs() < 1e-15);
    assert!((pearson(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-15);
    assert_eq!(pearson(&[1.0, 1.0], &[3.0, 2.0]), 0.0, "a constant side reads as no relation");
    assert_eq!(ranked(&[0.1, 0.9, 0.5, 0.9]), [1, 3, 2, 0], "descending, ties by position");
    // Cell maps: channels summed; a layer map upsampled by nearest neighbour.
    let two = Attribution { maps: (0..8).map(|v| v as f32).collect(), shape: vec![2, 2, 2], ..one_hot(0, 1.0) };
    assert_eq!(cell_maps(&two, [2, 2, 2]), [4.0, 6.0, 8.0, 10.0]);
    let layer = Attribution {
        maps: vec![1.0, 2.0, 3.0, 4.0],
        shape: vec![2, 2],
        resolution: Resolution::Layer { layer: "conv1".into() },
        ..one_hot(0, 1.0)
    };
    assert_eq!(cell_maps(&layer, [1, 4, 4])[..8], [1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0]);
}

/// Quantus 0.6's FaithfulnessCorrelation, PixelFlipping and ROAD (its imputation too), and Captum 0.8's infidelity (normalised) and sensitivity_max, on the
/// same network, frames, maps and perturbations (fixtures/make_quantus_captum_eval_fixture.py).
#[test]
fn faithfulness_infidelity_and_sensitivity_agree_with_quantus_and_captum() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/eval_quantus_captum.json"));
    let fx: serde_json::Value = serde_json::from_str(&text.unwrap()).unwrap();
    let floats = |v: &serde_json::Value| -> Vec<f32> {
        v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
    };
    let f64s =
        |v: &serde_json::Value| -> Vec<f64> { v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect() };
    let sets = |v: &serde_json::Value| -> Vec<Vec<usize>> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as usize).collect())
            .collect()
    };
    let spec = NetSpec::new(vec![1, 10, 10], 3, Torso::Mlp { hidden: vec![16] }, HeadKind::Q);
    let net = net_with(&spec, |name, _| floats(&fx["weights"][name]));
    let obs = floats(&fx["obs"]);
    let shape = [1, 10, 10];
    let inputs = Inputs::new(&obs, &shape).unwrap();
    let targets: Vec<Target> =
        fx["targets"].as_array().unwrap().iter().map(|t| Target::Action(t.as_u64().unwrap() as usize)).collect();
    let subject = Subject::new(&net, inputs, &targets).unwrap();
    let maps = Attribution { maps: floats(&fx["maps"]), shape: shape.to_vec(), ..one_hot(0, 1.0) };
    let config = FaithfulnessConfig::default();
    let close = |ours: &[f64], theirs: &[f64], what: &str| {
        for (a, b) in ours.iter().zip(theirs) {
            assert!((a - b).abs() < 1e-4, "{what}: ours {ours:?}, reference {theirs:?}");
        }
        assert_eq!(ours.len(), theirs.len());
    };
    let fc = config.correlation_on(&subject, &maps, &sets(&fx["faithfulness_correlation"]["subsets"])).unwrap();
    close(&fc.values, &f64s(&fx["faithfulness_correlation"]["values"]), "faithfulness correlation (Quantus)");
    let inf = config.infidelity_on(&subject, &maps, &sets(&fx["infidelity"]["subsets"])).unwrap();
    // Infidelity is a squared error of values around 1e-3: compare relative to its size.
    let theirs = f64s(&fx["infidelity"]["values"]);
    for (a, b) in inf.values.iter().zip(&theirs) {
        assert!(
            (a - b).abs() <= 1e-4 * b.abs().max(1e-3),
            "infidelity (Captum): ours {:?}, reference {theirs:?}",
            inf.values
        );
    }
    // Pixel flipping is xrl's deletion curve one cell at a time, without its first point (the intact frame).
    let deletion = DeletionConfig { cells_per_step: Some(1), ..DeletionConfig::for_frame([1, 10, 10]) };
    for i in 0..subject.count() {
        let one =
            Subject::new(&net, Inputs::new(&obs[i * 100..(i + 1) * 100], &shape).unwrap(), &targets[i..=i]).unwrap();
        let map = Attribution { maps: maps.map(i).to_vec(), ..maps.clone() };
        let curve = deletion.run(&one, &map).unwrap().deletion.mean;
        close(&curve[1..], &f64s(&fx["pixel_flipping"][i]), "pixel flipping (Quantus)");
    }
    // ROAD's noisy linear imputation (noise 0) value for value, then the ROAD curve on |maps| against the greedy
    // actions: xrl's action agreement with that replacement.
    let im = &fx["imputation"];
    let frame2 = floats(&im["frame"]);
    let gone: Vec<usize> = im["removed"].as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as usize).collect();
    let mut rng = <rand_xoshiro::Xoshiro256PlusPlus as rand::SeedableRng>::seed_from_u64(0);
    let ours = impute(&frame2, [2, 10, 10], &gone, 0.0, &mut rng);
    let theirs = floats(&im["values"]);
    assert!(ours.iter().zip(&theirs).all(|(a, b)| (a - b).abs() < 1e-5), "imputation differs from Quantus'");
    let greedy_targets: Vec<Target> =
        fx["road"]["greedy"].as_array().unwrap().iter().map(|t| Target::Action(t.as_u64().unwrap() as usize)).collect();
    let road_subject = Subject::new(&net, inputs, &greedy_targets).unwrap();
    assert_eq!(
        road_subject.greedy(&obs),
        greedy_targets
            .iter()
            .map(|t| match t {
                Target::Action(a) => *a,
                _ => 0,
            })
            .collect::<Vec<_>>()
    );
    let abs_maps = Attribution { maps: maps.maps.iter().map(|v| v.abs()).collect(), ..maps.clone() };
    let road = AgreementConfig {
        percents: (1..100).step_by(2).collect(),
        ks: vec![1],
        replacement: Replacement::Imputed { noise: 0.0 },
    }
    .run(&road_subject, &abs_maps, 0)
    .unwrap();
    let quantus_road: Vec<f64> = fx["road"]["percentages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| fx["road"]["values"][p.as_u64().unwrap().to_string()].as_f64().unwrap())
        .collect();
    close(&road.top_percent, &quantus_road, "ROAD (Quantus)");
    let grad = Gradient { kind: GradientKind::Vanilla, budget: Default::default() };
    let own = subject.maps(&grad).unwrap();
    let sens = config.max_sensitivity_on(&subject, &grad, &own, &floats(&fx["sensitivity_max"]["noise"])).unwrap();
    close(&sens.values, &f64s(&fx["sensitivity_max"]["values"]), "sensitivity_max (Captum)");
}

#[test]
fn spearman_and_its_p_value_match_scipy() {
    use xrl_explain::evaluate::counterfactual::spearman_p;
    // scipy.stats.spearmanr (1.17) on the same samples, ties included.
    let (r, p) = spearman_p(&[1.0, 2.0, 3.0, 4.0, 5.0], &[5.0, 6.0, 7.0, 8.0, 7.0]);
    assert!((r - 0.8207826816681233).abs() < 1e-12 && (p - 0.08858700531354384).abs() < 1e-9, "{r} {p}");
    let (r, p) = spearman_p(&[0.1, 0.4, 0.2, 0.9, 0.5, 0.3, 0.8], &[1.0, 3.0, 2.0, 2.0, 5.0, 0.0, 4.0]);
    assert!((r - 0.5585812268712466).abs() < 1e-12 && (p - 0.19245253188052228).abs() < 1e-9, "{r} {p}");
}

/// Object interventions on Breakout with a network that reads only the top brick row: removing that row is the
/// one intervention the agent responds to, and the gradient's mass on it says so; moving the ball or the paddle
/// changes nothing, and the map (zero there) does not follow them.
#[test]
fn interventions_find_the_object_the_network_reads() {
    use xrl_explain::evaluate::counterfactual::{interventions, run};
    let mut env = xrl::env::make("MinAtar/Breakout-v0").unwrap();
    env.reset(Some(0));
    let doc = env.state();
    let list = interventions("MinAtar/Breakout-v0", &doc).unwrap();
    let names: Vec<String> = list.iter().map(|i| format!("{} {}", i.object, i.edit)).collect();
    let game = &doc["game"];
    let (bx, px) = (game["ball_x"].as_i64().unwrap(), game["paddle_x"].as_i64().unwrap());
    let mut expected = vec![];
    for dx in [-2i64, 2] {
        if (0..10).contains(&(bx + dx)) && (0..10).contains(&(game["last_x"].as_i64().unwrap() + dx)) {
            expected.push(format!("ball move {dx:+}"));
        }
        if (0..10).contains(&(px + dx)) {
            expected.push(format!("paddle move {dx:+}"));
        }
    }
    expected.extend(["brick row 1 remove", "brick row 2 remove", "brick row 3 remove"].map(String::from));
    assert_eq!(names, expected);
    assert!(interventions("MinAtar/Asterix-v0", &doc).unwrap_err().to_string().contains("Breakout"));
    // Q0 = Σ of the brick channel (3) over row 1 (10 at the start); Q1 = 5.
    let spec = NetSpec::new(vec![4, 10, 10], 2, Torso::Mlp { hidden: vec![1] }, HeadKind::Q);
    let net = net_with(&spec, |name, shape| {
        let mut v = vec![0.0; shape.iter().product()];
        match name {
            "torso.fc.0.weight" => (0..10).for_each(|x| v[3 * 100 + 10 + x] = 1.0),
            "head.out.weight" => v[0] = 1.0,
            "head.out.bias" => v[1] = 5.0,
            _ => {}
        }
        v
    });
    let obs = env.obs().to_vec();
    let shape = [4, 10, 10];
    let targets = [Target::Q(0)];
    let subject = Subject::new(&net, Inputs::new(&obs, &shape).unwrap(), &targets).unwrap();
    let grad = Gradient { kind: GradientKind::Vanilla, budget: Default::default() };
    let maps = subject.maps(&grad).unwrap();
    let r = run(&subject, env.as_mut(), std::slice::from_ref(&doc), &grad, &maps).unwrap();
    for e in &r.effects {
        let reads = e.object == "brick row 1";
        assert_eq!(e.effect, if reads { 10.0 } else { 0.0 }, "{e:?}");
        // Row 1's ten cells hold all of the map's mass: 10× the frame's mean density.
        assert_eq!(e.mass, if reads { 10.0 } else { 0.0 }, "{e:?}");
        assert_eq!(e.flipped, reads, "{e:?}");
        if e.edit.starts_with("move") {
            assert_eq!(e.follows, Some(0.0), "{e:?}");
        }
    }
    let rows = r.kinds.iter().find(|k| k.kind == "brick-row").unwrap();
    assert_eq!((rows.count, rows.spearman, rows.p_value), (3, 1.0, 0.0));
    assert!((rows.slope - 1.0).abs() < 1e-12, "{rows:?}");
    assert_eq!(r.skipped, 0);
}
