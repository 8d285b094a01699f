//! The saliency tests on networks whose answers are known by hand: a network that reads one cell, so a map that
//! finds that cell must make deletion fall at exactly that cell, change the action when its top cell goes, and
//! correlate perfectly with the target's fall.

mod common;
use xrl::nn::{HeadKind, Net, NetSpec, Torso};
use xrl_explain::evaluate::deletion::{AgreementConfig, CurveScore, DeletionConfig, Replacement, auc, impute};
use xrl_explain::evaluate::faithfulness::FaithfulnessConfig;
use xrl_explain::evaluate::similarity::pearson_f64 as pearson;
use xrl_explain::evaluate::{Subject, cell_maps, ranked};
use xrl_explain::{Attribution, Gradient, GradientKind, Inputs, Method, Resolution, Target};

/// Frames of 1×3×3 cells; Q0 = ReLU(x at cell 4), Q1 = 0.5: the greedy action is 0 exactly while cell 4 holds 1.
fn reads_cell_four() -> Net {
    let spec = NetSpec::new(vec![1, 3, 3], 2, Torso::Mlp { hidden: vec![2] }, HeadKind::Q);
    common::net_with(&spec, |name, shape| {
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
    common::map_at(&[(cell, sign)], 1)
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
    let net = common::net_with(&spec, |name, _| floats(&fx["weights"][name]));
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
    // Every MinAtar game has a list; other games have none.
    assert!(interventions("CartPole-v1", &doc).unwrap_err().to_string().contains("MinAtar games"));
    // Q0 = Σ of the brick channel (3) over row 1 (10 at the start); Q1 = 5.
    let spec = NetSpec::new(vec![4, 10, 10], 2, Torso::Mlp { hidden: vec![1] }, HeadKind::Q);
    let net = common::net_with(&spec, |name, shape| {
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

/// One intervention as the state predicts it: its name, the cells (row, column) it may change — the object's cells
/// where it was and where it goes, trails included — and its main cell: (channel, old cell, new cell of a move).
struct Predicted {
    name: String,
    row: i64,
    cells: Vec<[i64; 2]>,
    main: (usize, [i64; 2], Option<[i64; 2]>),
}

/// Resets `id` with `seed` and steps it with `actions` (cycled) until `ready` holds for its state document, for at
/// most `steps` steps; None if the episode ends first or `ready` never holds.
fn play_until(
    id: &str,
    seed: u64,
    actions: &[usize],
    steps: usize,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> Option<Box<dyn xrl::env::Env>> {
    let mut env = xrl::env::make(id).unwrap();
    env.reset(Some(seed));
    for t in 0..steps {
        if ready(&env.state()) {
            return Some(env);
        }
        if env.step(&xrl::env::Action::Discrete(actions[t % actions.len()])).unwrap().terminated {
            return None;
        }
    }
    None
}

/// The interventions' names are exactly the predicted ones, in order, and each edited document is accepted and
/// changes the observation only on the object's predicted cells, its main cell emptied (or moved) on its channel.
/// `shared(channel, cell)`: another object of the channel is on that cell, so it stays set.
fn check_edits(
    env: &mut dyn xrl::env::Env,
    list: &[xrl_explain::evaluate::counterfactual::Intervention],
    predicted: &[Predicted],
    shared: impl Fn(usize, [i64; 2]) -> bool,
) {
    let names: Vec<String> = list.iter().map(|i| format!("{} {}", i.object, i.edit)).collect();
    let expected: Vec<String> = predicted.iter().map(|p| p.name.clone()).collect();
    assert_eq!(names, expected);
    let before = env.obs().to_vec();
    let channels = before.len() / 100;
    let at = |o: &[f32], c: usize, [y, x]: [i64; 2]| o[c * 100 + (y * 10 + x) as usize];
    for (iv, p) in list.iter().zip(predicted) {
        env.set_state(&iv.doc).unwrap_or_else(|e| panic!("{}: {e}", p.name));
        let after = env.obs();
        let changed: Vec<[i64; 2]> = (0..100i64)
            .map(|j| [j / 10, j % 10])
            .filter(|&cell| (0..channels).any(|c| at(&before, c, cell) != at(after, c, cell)))
            .collect();
        assert!(!changed.is_empty(), "{}: nothing changed", p.name);
        assert!(changed.iter().all(|c| p.cells.contains(c)), "{}: changed {changed:?}, object {:?}", p.name, p.cells);
        let (c, old, new) = p.main;
        assert_eq!(at(&before, c, old), 1.0, "{}: the object is not where the state says", p.name);
        assert_eq!(at(after, c, old), if shared(c, old) { 1.0 } else { 0.0 }, "{}", p.name);
        if let Some(new) = new {
            assert_eq!(at(after, c, new), 1.0, "{}", p.name);
        }
    }
}

/// A Q network over `shape` frames: Q0 = Σ `weights` (cell index of the flat frame, weight) of the frame, Q1 = 0.5.
fn reads(shape: &[usize], weights: &[(usize, f32)]) -> Net {
    let spec = NetSpec::new(shape.to_vec(), 2, Torso::Mlp { hidden: vec![1] }, HeadKind::Q);
    common::net_with(&spec, |name, s| {
        let mut v = vec![0.0; s.iter().product()];
        match name {
            "torso.fc.0.weight" => weights.iter().for_each(|&(i, w)| v[i] = w),
            "head.out.weight" => v[0] = 1.0,
            "head.out.bias" => v[1] = 0.5,
            _ => {}
        }
        v
    })
}

fn int(v: &serde_json::Value) -> i64 {
    v.as_i64().unwrap()
}

/// Asterix: the player moved ±2 columns, each enemy and gold piece removed (its slot emptied) and moved ±2 columns.
/// A network that counts the gold on one row responds to that gold's removal only, and the gradient's mass is on
/// that row.
#[test]
fn asterix_interventions_move_the_player_and_remove_or_move_each_entity() {
    use xrl_explain::evaluate::counterfactual::{interventions, run};
    let id = "MinAtar/Asterix-v0";
    let slots = |d: &serde_json::Value| d["game"]["entities"].as_array().unwrap().clone();
    let has = |d: &serde_json::Value, gold: bool| slots(d).iter().any(|e| !e.is_null() && e["gold"] == gold);
    // Up and down on the player's column, so that both kinds appear.
    let mut env = (0..40)
        .find_map(|seed| play_until(id, seed, &[2, 0, 4, 0], 200, |d| has(d, true) && has(d, false)))
        .expect("a frame with an enemy and a piece of gold");
    let doc = env.state();
    let g = &doc["game"];
    let (px, py) = (int(&g["player_x"]), int(&g["player_y"]));
    let mut predicted = vec![];
    for dx in [-2i64, 2] {
        if (0..10).contains(&(px + dx)) {
            let cells = vec![[py, px], [py, px + dx]];
            predicted.push(Predicted {
                name: format!("player move {dx:+}"),
                row: py,
                cells,
                main: (0, [py, px], Some([py, px + dx])),
            });
        }
    }
    for (i, e) in slots(&doc).iter().enumerate().filter(|(_, e)| !e.is_null()) {
        let (r, x, right, gold) = (i as i64 + 1, int(&e["x"]), e["right"] == true, e["gold"] == true);
        let (kind, c) = if gold { ("gold", 3) } else { ("enemy", 1) };
        let trail = |x: i64| if right { x - 1 } else { x + 1 };
        let here = vec![[r, x], [r, trail(x)]];
        predicted.push(Predicted {
            name: format!("{kind} ({r}, {x}) remove"),
            row: r,
            cells: here.clone(),
            main: (c, [r, x], None),
        });
        for dx in [-2i64, 2] {
            if (0..10).contains(&(x + dx)) {
                predicted.push(Predicted {
                    name: format!("{kind} ({r}, {x}) move {dx:+}"),
                    row: r,
                    cells: [here.clone(), vec![[r, x + dx], [r, trail(x + dx)]]].concat(),
                    main: (c, [r, x], Some([r, x + dx])),
                });
            }
        }
    }
    let list = interventions(id, &doc).unwrap();
    // One entity a row: no two objects share a cell on one channel.
    check_edits(env.as_mut(), &list, &predicted, |_, _| false);
    for iv in list.iter().filter(|iv| iv.edit == "remove") {
        let row: usize = iv.object.split(['(', ',']).nth(1).unwrap().trim().parse().unwrap();
        assert!(iv.doc["game"]["entities"][row - 1].is_null(), "{}", iv.object);
    }
    // Q0 = the gold on the row of the first gold piece (1 there), Q1 = 0.5.
    let r = slots(&doc).iter().position(|e| !e.is_null() && e["gold"] == true).unwrap() as i64 + 1;
    let net = reads(&[4, 10, 10], &(0..10).map(|x| (3 * 100 + r as usize * 10 + x, 1.0)).collect::<Vec<_>>());
    env.set_state(&doc).unwrap();
    let obs = env.obs().to_vec();
    let targets = [Target::Q(0)];
    let subject = Subject::new(&net, Inputs::new(&obs, &[4, 10, 10]).unwrap(), &targets).unwrap();
    let grad = Gradient { kind: GradientKind::Vanilla, budget: Default::default() };
    let maps = subject.maps(&grad).unwrap();
    let result = run(&subject, env.as_mut(), std::slice::from_ref(&doc), &grad, &maps).unwrap();
    assert_eq!(result.skipped, 0);
    assert_eq!(result.effects.len(), predicted.len());
    for (e, p) in result.effects.iter().zip(&predicted) {
        let reads = e.kind == "gold" && e.edit == "remove" && p.row == r;
        assert_eq!(e.effect, if reads { 1.0 } else { 0.0 }, "{e:?}");
        assert_eq!(e.flipped, reads, "{e:?}");
        // The map is 1 on row r's ten cells: ten times the frame's mean there, 0 elsewhere.
        assert_eq!(e.mass, if p.row == r { 10.0 } else { 0.0 }, "{e:?}");
    }
    let kinds: Vec<&str> = result.kinds.iter().map(|k| k.kind.as_str()).collect();
    assert!(kinds.contains(&"gold") && kinds.contains(&"enemy"), "{kinds:?}");
}

/// Freeway: the chicken moved ±1 row within rows 1–9, each car moved ±2 columns around its ring; never a removed
/// car. A network reading the chicken's row responds by exactly 1 to each chicken move and to no car.
#[test]
fn freeway_interventions_move_the_chicken_and_each_car() {
    use xrl_explain::evaluate::counterfactual::{interventions, run};
    let id = "MinAtar/Freeway-v0";
    // Up until the chicken is on the road, away from both ends, so that both of its moves exist.
    let mut env = (0..40)
        .find_map(|seed| play_until(id, seed, &[2], 200, |d| (2..=8).contains(&int(&d["game"]["chicken_y"]))))
        .expect("a frame with the chicken on the road");
    let doc = env.state();
    let g = &doc["game"];
    let cy = int(&g["chicken_y"]);
    let mut predicted = vec![];
    for dy in [-1i64, 1] {
        predicted.push(Predicted {
            name: format!("chicken move {dy:+}"),
            row: cy,
            cells: vec![[cy, 4], [cy + dy, 4]],
            main: (0, [cy, 4], Some([cy + dy, 4])),
        });
    }
    let cars = g["cars"].as_array().unwrap();
    assert_eq!(cars.len(), 8);
    for (i, car) in cars.iter().enumerate() {
        let (r, x, s) = (i as i64 + 1, int(&car["x"]), int(&car["speed"]).signum());
        let trail = |x: i64| (x - s).rem_euclid(10);
        for dx in [-2i64, 2] {
            let nx = (x + dx).rem_euclid(10);
            predicted.push(Predicted {
                name: format!("car ({r}, {x}) move {dx:+}"),
                row: r,
                cells: vec![[r, x], [r, trail(x)], [r, nx], [r, trail(nx)]],
                main: (1, [r, x], Some([r, nx])),
            });
        }
    }
    let list = interventions(id, &doc).unwrap();
    check_edits(env.as_mut(), &list, &predicted, |_, _| false);
    // At the edges: no move onto the goal row 0 nor off the bottom; a car at column 9 wraps to 1.
    let mut edge = doc.clone();
    edge["game"]["chicken_y"] = 9.into();
    edge["game"]["cars"][0]["x"] = 9.into();
    let moves: Vec<String> =
        interventions(id, &edge).unwrap().iter().map(|i| format!("{} {}", i.object, i.edit)).collect();
    assert_eq!(moves[..3], ["chicken move -1", "car (1, 9) move -2", "car (1, 9) move +2"]);
    assert_eq!(interventions(id, &edge).unwrap()[2].doc["game"]["cars"][0]["x"], 1);
    edge["game"]["chicken_y"] = 1.into();
    assert_eq!(interventions(id, &edge).unwrap()[0].edit, "move +1");
    assert_eq!(interventions(id, &edge).unwrap().len(), 17);
    // Q0 = the chicken's row (Σ y · chicken[y][x]), Q1 = 0.5: never flipped, since the chicken stays on rows ≥ 1.
    let weights: Vec<(usize, f32)> = (0..100).map(|j| (j, (j / 10) as f32)).collect();
    let net = reads(&[7, 10, 10], &weights);
    env.set_state(&doc).unwrap();
    let obs = env.obs().to_vec();
    let targets = [Target::Q(0)];
    let subject = Subject::new(&net, Inputs::new(&obs, &[7, 10, 10]).unwrap(), &targets).unwrap();
    let grad = Gradient { kind: GradientKind::Vanilla, budget: Default::default() };
    let maps = subject.maps(&grad).unwrap();
    let result = run(&subject, env.as_mut(), std::slice::from_ref(&doc), &grad, &maps).unwrap();
    assert_eq!(result.skipped, 0);
    assert_eq!(result.effects.len(), 18);
    for (e, p) in result.effects.iter().zip(&predicted) {
        assert_eq!(e.effect, if e.kind == "chicken" { 1.0 } else { 0.0 }, "{e:?}");
        assert!(!e.flipped, "{e:?}");
        // The map is y on every cell of row y (mean 4.5): an object on row y has mass y / 4.5.
        assert!((e.mass - p.row as f64 / 4.5).abs() < 1e-12, "{e:?}");
    }
    // The map (the same on the moved frames: the network is linear there) follows the chicken by one row.
    for e in result.effects.iter().filter(|e| e.kind == "chicken") {
        let dy = if e.edit == "move +1" { 1.0 } else { -1.0 };
        assert!((e.follows.unwrap() - dy / 4.5).abs() < 1e-12, "{e:?}");
    }
}

/// Seaquest: the sub moved ±2 columns, each fish, enemy sub, diver, bullet and enemy bullet removed. A network
/// counting the fish on one row responds to removing a fish there only.
#[test]
fn seaquest_interventions_move_the_sub_and_remove_each_object() {
    use xrl_explain::evaluate::counterfactual::{interventions, run};
    let id = "MinAtar/Seaquest-v0";
    let lists = [("fish", "fish", 5), ("enemy_subs", "enemy-sub", 6), ("divers", "diver", 9)];
    let shots = [("bullets", "bullet", 2), ("enemy_bullets", "enemy-bullet", 4)];
    let ready = |d: &serde_json::Value| {
        lists.iter().chain(&shots).all(|(k, _, _)| !d["game"][k].as_array().unwrap().is_empty())
    };
    // Down into the water, then fire left and right.
    let actions = [4, 4, 4, 5, 1, 5, 0, 5, 3, 5, 0, 5];
    let mut env =
        (0..200).find_map(|seed| play_until(id, seed, &actions, 200, ready)).expect("a frame with every object");
    let doc = env.state();
    let g = &doc["game"];
    let (sx, sy, right) = (int(&g["sub_x"]), int(&g["sub_y"]), g["sub_right"] == true);
    let back = |x: i64| if right { x - 1 } else { x + 1 };
    let mut predicted = vec![];
    for dx in [-2i64, 2] {
        if (0..10).contains(&(sx + dx)) {
            predicted.push(Predicted {
                name: format!("sub move {dx:+}"),
                row: sy,
                cells: vec![[sy, sx], [sy, back(sx)], [sy, sx + dx], [sy, back(sx + dx)]],
                main: (0, [sy, sx], Some([sy, sx + dx])),
            });
        }
    }
    for (key, kind, c) in lists.iter().chain(&shots) {
        for m in g[key].as_array().unwrap() {
            let (x, y) = (int(&m["x"]), int(&m["y"]));
            let mut cells = vec![[y, x]];
            if *c != 2 && *c != 4 {
                // Fish, enemy subs and divers leave a trail behind them; bullets do not.
                cells.push([y, if m["right"] == true { x - 1 } else { x + 1 }]);
            }
            predicted.push(Predicted {
                name: format!("{kind} ({y}, {x}) remove"),
                row: y,
                cells,
                main: (*c, [y, x], None),
            });
        }
    }
    // Two objects of one list on one cell: removing one leaves the cell set.
    let shared = |c: usize, [y, x]: [i64; 2]| {
        // The sub (channel 0) is alone on its channel.
        lists.iter().chain(&shots).find(|l| l.2 == c).is_some_and(|(key, _, _)| {
            g[key].as_array().unwrap().iter().filter(|m| int(&m["x"]) == x && int(&m["y"]) == y).count() > 1
        })
    };
    let list = interventions(id, &doc).unwrap();
    check_edits(env.as_mut(), &list, &predicted, shared);
    // A removal takes out one element and keeps the others as they were (enemy subs their shot timers).
    for iv in list.iter().filter(|iv| iv.edit == "remove") {
        let (key, _, _) = lists.iter().chain(&shots).find(|l| iv.kind == l.1).unwrap();
        let (was, now) = (g[key].as_array().unwrap(), iv.doc["game"][key].as_array().unwrap());
        assert_eq!(now.len() + 1, was.len(), "{}", iv.object);
        assert!(now.iter().all(|m| was.contains(m)), "{}", iv.object);
    }
    // Q0 = the fish on the row of the first fish, Q1 = 0.5.
    let r = int(&g["fish"][0]["y"]);
    let on_r = g["fish"].as_array().unwrap().iter().filter(|f| int(&f["y"]) == r).count();
    let net = reads(&[10, 10, 10], &(0..10).map(|x| (5 * 100 + r as usize * 10 + x, 1.0)).collect::<Vec<_>>());
    env.set_state(&doc).unwrap();
    let obs = env.obs().to_vec();
    let targets = [Target::Q(0)];
    let subject = Subject::new(&net, Inputs::new(&obs, &[10, 10, 10]).unwrap(), &targets).unwrap();
    let grad = Gradient { kind: GradientKind::Vanilla, budget: Default::default() };
    let maps = subject.maps(&grad).unwrap();
    let result = run(&subject, env.as_mut(), std::slice::from_ref(&doc), &grad, &maps).unwrap();
    assert_eq!(result.skipped, 0);
    assert_eq!(result.effects.len(), predicted.len());
    for (e, p) in result.effects.iter().zip(&predicted) {
        let reads = e.kind == "fish" && p.row == r && !shared(5, p.main.1);
        assert_eq!(e.effect, if reads { 1.0 } else { 0.0 }, "{e:?}");
        assert_eq!(e.flipped, reads && on_r == 1, "{e:?}");
        assert_eq!(e.mass, if p.row == r { 10.0 } else { 0.0 }, "{e:?}");
    }
    let kinds: Vec<&str> = result.kinds.iter().map(|k| k.kind.as_str()).collect();
    assert_eq!(kinds, ["bullet", "diver", "enemy-bullet", "enemy-sub", "fish", "sub"]);
}
