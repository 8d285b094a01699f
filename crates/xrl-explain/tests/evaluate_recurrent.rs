//! The evaluation tests on recurrent networks, at held states: a GRU whose output reads one cell and the state it
//! is given, so that every curve, agreement and sensitivity has a value known by hand — and changes exactly as it
//! should when the held state changes.

mod common;
use xrl::burn::tensor::Device;
use xrl::nn::{Core, CoreKind, HeadKind, Net, NetSpec, Torso};
use xrl_explain::evaluate::deletion::{AgreementConfig, DeletionConfig, Replacement};
use xrl_explain::evaluate::faithfulness::FaithfulnessConfig;
use xrl_explain::evaluate::randomisation::{Randomisation, randomise};
use xrl_explain::evaluate::similarity::{Measure, SimilarityParams};
use xrl_explain::evaluate::{HeldState, Subject, cell_maps};
use xrl_explain::{AtState, Attribution, Gradient, GradientKind, Inputs, Method, Target};

/// 1×3×3 frames → FC 2 (unit 0 = ReLU(cell 4)) → GRU 2 → Q. Every gate weight is zero but the new gate's from
/// feature 0 and from h₀ (both 1), so z = r = σ(0) = ½ and h′₀ = ½·tanh(f₀ + ½·h₀) + ½·h₀; Q0 = h′₀, Q1 = 0.6.
/// With cell 4 = 1 and h₀ = 0.8, Q0 = 0.843 (action 0); without the cell, 0.590 (action 1).
fn gru_reads_cell_four() -> Net {
    let spec = NetSpec::new(vec![1, 3, 3], 2, Torso::Mlp { hidden: vec![2] }, HeadKind::Q)
        .with_core(Core { kind: CoreKind::Gru, hidden: 2 });
    common::net_with(&spec, |name, shape| {
        let mut v = vec![0.0; shape.iter().product()];
        match name {
            "torso.fc.0.weight" => v[4 * 2] = 1.0,                     // input 4 → feature 0
            "core.Gru.new_gate.input_transform.weight" => v[0] = 1.0,  // feature 0 → n₀
            "core.Gru.new_gate.hidden_transform.weight" => v[0] = 1.0, // h₀ → n₀
            "head.out.weight" => v[0] = 1.0,                           // h′₀ → Q0
            "head.out.bias" => v[1] = 0.6,
            _ => {}
        }
        v
    })
}

/// Q0 of the network above by hand, for cell 4's value `x4` and held h₀.
fn q0(x4: f64, h0: f64) -> f64 {
    0.5 * (x4.max(0.0) + 0.5 * h0).tanh() + 0.5 * h0
}

/// ∂Q0/∂(cell 4) by hand (cell 4 positive).
fn dq0(x4: f64, h0: f64) -> f64 {
    0.5 * (1.0 - (x4 + 0.5 * h0).tanh().powi(2))
}

fn held(h0: &[f32]) -> HeldState {
    HeldState { hidden: h0.iter().flat_map(|&h| [h, 0.0]).collect(), cell: None, size: 2 }
}

const SHAPE: [usize; 3] = [1, 3, 3];

fn close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() < 1e-5, "{what}: {a} vs {b} by hand");
}

#[test]
fn a_recurrent_network_needs_its_held_state() {
    let net = gru_reads_cell_four();
    let x = [1.0f32; 9];
    let targets = [Target::Q(0)];
    let err = Subject::new(&net, Inputs::new(&x, &SHAPE).unwrap(), &targets).err().unwrap();
    assert!(err.to_string().contains("give the state entering each frame"), "{err}");
    let wrong = HeldState { hidden: vec![0.0; 3], cell: None, size: 3 };
    let err = Subject::at_states(&net, Inputs::new(&x, &SHAPE).unwrap(), &targets, &wrong).err().unwrap();
    assert!(err.to_string().contains("needs one row of 2 per frame"), "{err}");
    let lstm = HeldState { cell: Some(vec![0.0; 2]), ..held(&[0.0]) };
    let err = Subject::at_states(&net, Inputs::new(&x, &SHAPE).unwrap(), &targets, &lstm).err().unwrap();
    assert!(err.to_string().contains("and no cell"), "{err}");
    let nan = held(&[f32::NAN]);
    let err = Subject::at_states(&net, Inputs::new(&x, &SHAPE).unwrap(), &targets, &nan).err().unwrap();
    assert!(err.to_string().contains("finite"), "{err}");
    // A feed-forward network takes no state.
    let ff = NetSpec::new(vec![1, 3, 3], 2, Torso::Mlp { hidden: vec![2] }, HeadKind::Q);
    let ff = Net::new(&ff, &Device::flex()).unwrap();
    let err = Subject::at_states(&ff, Inputs::new(&x, &SHAPE).unwrap(), &targets, &held(&[0.0])).err().unwrap();
    assert!(err.to_string().contains("use Subject::new"), "{err}");
}

/// Two frames of all ones held at h₀ = 0.8 and −0.6: the deletion curve of each is Q0 at its own state, and falls
/// at exactly the step that removes cell 4 — first when the map ranks it first, last when it ranks it last.
#[test]
fn the_deletion_curve_of_a_gru_falls_at_the_cell_it_reads_from_each_frames_state() {
    let net = gru_reads_cell_four();
    let x = [1.0f32; 18];
    let targets = [Target::Q(0), Target::Q(0)];
    let h = [0.8f32, -0.6];
    let state = held(&h);
    let subject = Subject::at_states(&net, Inputs::new(&x, &SHAPE).unwrap(), &targets, &state).unwrap();
    let config = DeletionConfig { cells_per_step: Some(1), ..DeletionConfig::for_frame([1, 3, 3]) };
    for (map, fall_at) in [(common::map_at(&[(4, 1.0)], 2), 1), (common::map_at(&[(4, -1.0)], 2), 9)] {
        // Frame by frame (each alone) and both together give the same curves: row r of a pass starts from the
        // state of the frame it was made from.
        let both = config.saliency_curve(&subject, &map, false).unwrap();
        for (i, &h0) in h.iter().enumerate() {
            let want: Vec<f64> = (0..10).map(|p| q0(if p < fall_at { 1.0 } else { 0.0 }, f64::from(h0))).collect();
            let alone_state = held(&[h0]);
            let one =
                Subject::at_states(&net, Inputs::new(&x[..9], &SHAPE).unwrap(), &targets[..1], &alone_state).unwrap();
            let map1 = Attribution { maps: map.map(i).to_vec(), ..map.clone() };
            let curve = config.saliency_curve(&one, &map1, false).unwrap();
            for (p, (a, b)) in curve.mean.iter().zip(&want).enumerate() {
                close(*a, *b, &format!("frame {i}, point {p}"));
            }
            close(both.auc.values[i], curve.auc.values[0], "AUC of frame {i} together and alone");
        }
        let mean: Vec<f64> = (0..10)
            .map(|p| h.iter().map(|&h0| q0(if p < fall_at { 1.0 } else { 0.0 }, f64::from(h0))).sum::<f64>() / 2.0)
            .collect();
        for (a, b) in both.mean.iter().zip(&mean) {
            close(*a, *b, "mean curve");
        }
    }
}

/// The held state is really used: changing it moves every curve by what the formula says, flips the actions
/// that depend on it, and changes the gradient maps.
#[test]
fn changing_the_held_state_changes_every_test_as_the_network_says() {
    let net = gru_reads_cell_four();
    let x = [1.0f32; 18];
    let targets = [Target::Q(0), Target::Q(0)];
    let one_hot = common::map_at(&[(4, 1.0), (0, 0.5)], 2);
    let run = |h: [f32; 2]| {
        let state = held(&h);
        let subject = Subject::at_states(&net, Inputs::new(&x, &SHAPE).unwrap(), &targets, &state).unwrap();
        let deletion = DeletionConfig { cells_per_step: Some(1), ..DeletionConfig::for_frame([1, 3, 3]) }
            .run(&subject, &one_hot)
            .unwrap();
        let agreement = AgreementConfig { percents: vec![10, 50], ks: vec![1, 2], replacement: Replacement::Zero }
            .run(&subject, &one_hot, 0)
            .unwrap();
        let greedy = subject.greedy(&x);
        let grad = Gradient { kind: GradientKind::Vanilla, budget: Default::default() };
        let maps = subject.maps(&grad).unwrap();
        (deletion, agreement, greedy, maps)
    };
    let (d1, a1, g1, m1) = run([0.8, 0.8]);
    let (d2, a2, g2, m2) = run([0.8, -0.6]);
    // Frame 1 alone changed: its AUC by the formula (cell 4 goes first; the curve is Q0 without it after that).
    let auc = |h0: f64| (q0(1.0, h0) / 2.0 + 8.0 * q0(0.0, h0) + q0(0.0, h0) / 2.0) / 9.0;
    close(d1.deletion.auc.values[1], auc(0.8), "AUC at h₀ = 0.8");
    close(d2.deletion.auc.values[1], auc(-0.6), "AUC at h₀ = −0.6");
    close(d1.deletion.auc.values[0], d2.deletion.auc.values[0], "frame 0's state did not change");
    // Greedy actions: Q0(1, 0.8) = 0.843 > 0.6 > Q0(·, −0.6): frame 1 acts 1 at h₀ = −0.6, whatever the cells.
    assert_eq!((g1, g2), (vec![0, 0], vec![0, 1]));
    assert!(q0(1.0, 0.8) > 0.6 && q0(0.0, 0.8) < 0.6 && q0(1.0, -0.6) < 0.6);
    // Removing the top cell (cell 4) flips frame 0 (and frame 1 at 0.8); at −0.6 frame 1 keeps its action 1.
    assert_eq!(a1.top_k, vec![0.0, 0.0]);
    assert_eq!(a2.top_k, vec![0.5, 0.5]);
    // The bottom cells are not cell 4: every action holds.
    assert_eq!((a1.bottom_k.clone(), a2.bottom_k.clone()), (vec![1.0, 1.0], vec![1.0, 1.0]));
    // The gradient maps: only cell 4, ∂Q0/∂x₄ at each frame's own state.
    for (m, h) in [(&m1, [0.8, 0.8]), (&m2, [0.8, -0.6])] {
        for (i, h0) in h.into_iter().enumerate() {
            let row = m.map(i);
            close(f64::from(row[4]), dq0(1.0, h0), &format!("gradient of frame {i} at h₀ = {h0}"));
            assert!(row.iter().enumerate().all(|(j, v)| j == 4 || *v == 0.0));
        }
    }
}

/// Faithfulness correlation, infidelity and max sensitivity at held states: the exact values of this network.
#[test]
fn faithfulness_and_sensitivity_use_each_frames_state() {
    let net = gru_reads_cell_four();
    let x = [1.0f32; 18];
    let targets = [Target::Q(0), Target::Q(0)];
    let h = [0.8f32, -0.6];
    let state = held(&h);
    let subject = Subject::at_states(&net, Inputs::new(&x, &SHAPE).unwrap(), &targets, &state).unwrap();
    let config = FaithfulnessConfig { subset_fraction: 0.3, ..FaithfulnessConfig::default() };
    // A map on cell 4 alone: its sum over a subset is 1 exactly when the subset removes cell 4, and so is the fall.
    let exact = common::map_at(&[(4, 1.0)], 2);
    let fc = config.correlation(&subject, &exact).unwrap();
    for v in &fc.values {
        close(*v, 1.0, "faithfulness correlation of the exact map");
    }
    // Infidelity of φ = the fall itself on cell 4 (β = 1): zero, whatever the state.
    let maps: Vec<f32> = h
        .iter()
        .flat_map(|&h0| {
            let mut m = vec![0.0f32; 9];
            m[4] = (q0(1.0, f64::from(h0)) - q0(0.0, f64::from(h0))) as f32;
            m
        })
        .collect();
    let fall_map = Attribution { maps, ..exact.clone() };
    let inf = config.infidelity(&subject, &fall_map).unwrap();
    assert!(inf.values.iter().all(|v| v.abs() < 1e-10), "{:?}", inf.values);
    // Max sensitivity of the gradient: noise on cell 4 only, +0.01 and −0.02 for frame 0, +0.02 and 0 for frame 1.
    let mut noise = vec![0.0f32; 4 * 9];
    for (q, d) in [0.01f32, -0.02, 0.02, 0.0].iter().enumerate() {
        noise[q * 9 + 4] = *d;
    }
    let grad = Gradient { kind: GradientKind::Vanilla, budget: Default::default() };
    let own = subject.maps(&grad).unwrap();
    let sens = config.max_sensitivity_on(&subject, &grad, &own, &noise).unwrap();
    for (i, (&h0, ds)) in h.iter().zip([[0.01, -0.02], [0.02, 0.0]]).enumerate() {
        let g = dq0(1.0, f64::from(h0));
        let want = ds.iter().map(|&d: &f64| (dq0(1.0 + d, f64::from(h0)) - g).abs() / g).fold(0.0, f64::max);
        assert!((sens.values[i] - want).abs() < 1e-4, "frame {i}: {} vs {want} by hand", sens.values[i]);
    }
}

/// Model-parameter randomisation at held states: the randomised networks receive the same recorded state, which
/// `xrl explain`'s own model at recorded states ([`AtState`]) confirms map for map; a zero state gives other scores.
#[test]
fn randomised_recurrent_networks_receive_the_recorded_state() {
    let spec = NetSpec::new(vec![2, 5, 5], 3, Torso::Mlp { hidden: vec![12] }, HeadKind::ActorCritic)
        .with_core(Core { kind: CoreKind::Lstm, hidden: 6 });
    let device = Device::flex();
    let base = Net::new(&spec, &device).unwrap();
    // Deterministic weights whatever burn's generator: every layer drawn from xrl's own seeded initialisers.
    let layers = xrl_explain::evaluate::randomisation::layers(&base).unwrap();
    let net = randomise(&base, &layers, 11).unwrap();
    let n = 4;
    let x: Vec<f32> = (0..n * 50).map(|k| ((k * 37 % 17) as f32 / 17.0).round()).collect();
    let hidden: Vec<f32> = (0..n * 6).map(|k| ((k * 13 % 11) as f32 / 5.5) - 1.0).collect();
    let cell: Vec<f32> = (0..n * 6).map(|k| ((k * 7 % 5) as f32 / 2.5) - 1.0).collect();
    let state = HeldState { hidden: hidden.clone(), cell: Some(cell.clone()), size: 6 };
    let shape = [2, 5, 5];
    let targets: Vec<Target> = (0..n).map(|i| Target::Action(i % 3)).collect();
    let subject = Subject::at_states(&net, Inputs::new(&x, &shape).unwrap(), &targets, &state).unwrap();
    let grad = Gradient { kind: GradientKind::Vanilla, budget: Default::default() };
    let params = SimilarityParams::for_frame(5, 5);
    let test = Randomisation {
        seed: 5,
        measures: vec![Measure::SpearmanAbs, Measure::SpearmanSigned],
        params: Some(params),
        independent: true,
    };
    let r = test.run(&subject, &grad).unwrap();
    assert_eq!(r.layers, ["head.out", "head.value", "core", "torso.fc.0"]);
    // The same numbers by explain's path: each randomised network through AtState at the recorded state.
    let burn_state = |h: &[f32], c: &[f32]| xrl::nn::RecurrentState {
        hidden: xrl::nn::batch(h, 6, &device),
        cell: Some(xrl::nn::batch(c, 6, &device)),
    };
    let maps_at = |net: &Net, s: xrl::nn::RecurrentState| {
        let a = grad.attribute(&AtState { net, state: s }, &Inputs::new(&x, &shape).unwrap(), &targets, None);
        cell_maps(&a.unwrap(), [2, 5, 5])
    };
    let original = maps_at(&net, burn_state(&hidden, &cell));
    let score = |other: &[f32], m: Measure| {
        let v: Vec<f64> = (0..n)
            .map(|i| m.similarity_with(&params, &original[i * 25..][..25], &other[i * 25..][..25], 5, 5).unwrap())
            .collect();
        v.iter().sum::<f64>() / n as f64
    };
    for (k, variant) in r.cascading.iter().enumerate() {
        let randomised = randomise(&net, &r.layers[..=k], 5).unwrap();
        let maps = maps_at(&randomised, burn_state(&hidden, &cell));
        for s in &variant.scores {
            let want = score(&maps, s.measure);
            assert!((s.mean - want).abs() < 1e-9, "cascading {k} {:?}: {} vs {want}", s.measure, s.mean);
        }
    }
    for (k, variant) in r.independent.iter().enumerate() {
        let randomised = randomise(&net, &r.layers[k..=k], 5).unwrap();
        let want = score(&maps_at(&randomised, burn_state(&hidden, &cell)), Measure::SpearmanAbs);
        assert!((variant.scores[0].mean - want).abs() < 1e-9, "independent {k}");
    }
    // Held at zeros instead, the test gives other numbers: the state is used.
    let zeros = HeldState { hidden: vec![0.0; n * 6], cell: Some(vec![0.0; n * 6]), size: 6 };
    let at_zero = Subject::at_states(&net, Inputs::new(&x, &shape).unwrap(), &targets, &zeros).unwrap();
    let z = test.run(&at_zero, &grad).unwrap();
    assert_ne!(z.cascading, r.cascading);
    assert_ne!(subject.maps(&grad).unwrap().maps, at_zero.maps(&grad).unwrap().maps);
}
