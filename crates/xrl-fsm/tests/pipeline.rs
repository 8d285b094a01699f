//! The finite-state pipeline end to end on a small CartPole GRU policy: the extracted and minimised machine,
//! playing alone from the extraction episodes' seeds, reproduces the MMN's episodes step for step; a rerun keeps
//! every stage from its files; another configuration is refused; the outputs describe the machine.

use xrl::new_run::{AgentKind, NewRun};
use xrl::nn::CoreKind;
use xrl::run::RunDir;
use xrl_fsm::pipeline::{self, FsmConfig, FsmDir, extraction_seed, play_machine};

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("xrl-fsm-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn small(config: FsmConfig) -> FsmConfig {
    FsmConfig {
        data_episodes: 6,
        max_steps: 200,
        qbn_epochs: 6,
        patience: 3,
        finetune_epochs: 2,
        finetune_episodes: 4,
        finetune_batch: 2,
        extract_episodes: 4,
        extract_max_steps: 300,
        ..config
    }
}

/// A GRU policy in the seed's control shape, trained briefly (enough for episodes of a few dozen steps).
fn policy_run(root: &std::path::Path) -> RunDir {
    let mut run = NewRun::new("CartPole-v1", AgentKind::A2c, 20_000);
    (run.core, run.core_size, run.mmn_torso, run.seed) = (Some(CoreKind::Gru), Some(16), true, 3);
    let card = run.card().unwrap();
    assert_eq!(card.net.torso, xrl::nn::Torso::MmnMlp);
    let dir = RunDir::new(root.join("run"));
    dir.create(&card).unwrap();
    xrl::train::train(&dir, &xrl::burn::tensor::Device::flex(), |_| {}).unwrap();
    dir
}

#[test]
fn the_minimised_machine_replays_the_mmns_episodes_and_every_stage_resumes() {
    let root = tmp("pipeline");
    let run = policy_run(&root);
    let out = root.join("fsm");
    // The pipeline on the tests' device (Flex, or XRL_TEST_DEVICE's); the policy was trained on Flex.
    let device = xrl::nn::device::for_tests();
    let config = small(FsmConfig::new(8, 8));
    let mut notes = vec![];
    let ex = pipeline::run(&run.root, &out, &config, &device, &mut |n| notes.push(n.to_string())).unwrap();
    assert_eq!(ex.traces.len(), 4);
    assert!(ex.minimised.states() <= ex.machine.states() && ex.minimised.states() >= 1);
    assert!(ex.minimised.observations() <= ex.machine.observations());
    for name in [
        "fsm.json",
        "data.json",
        "ox.safetensors",
        "ox.json",
        "hx.safetensors",
        "hx.json",
        "mmn.safetensors",
        "extraction.json",
    ] {
        assert!(out.join(name).is_file(), "{name} missing; notes: {notes:?}");
    }
    // The data's test set is kept apart: the two sets together are every sample, and the test set is ~20%.
    let data: pipeline::BottleneckData = pipeline::read_json(&out.join("data.json")).unwrap();
    let (train, test) = (data.train_hidden.len() / data.hidden_len, data.test_hidden.len() / data.hidden_len);
    assert_eq!(data.train_features.len() / data.feature_len, train);
    assert!((test as f64 / (train + test) as f64 - 0.2).abs() < 0.01, "{train} / {test}");

    // Played alone (torso + observation encoder + machine), from the extraction seeds, the minimised machine
    // takes the very episodes the MMN took: same lengths and scores, every code seen, every transition recorded.
    let dir = FsmDir::new(&out);
    let card = dir.read_card().unwrap();
    let mmn = dir.mmn(&card, &device).unwrap();
    let mut env = xrl_env::make("CartPole-v1").unwrap();
    for machine in [&ex.machine, &ex.minimised] {
        let mut actions = vec![vec![]; 4];
        let played = play_machine(machine, &mmn, env.as_mut(), 4, extraction_seed(&config, 0), 300, |e, _, s| {
            actions[e].push(s.action)
        })
        .unwrap();
        assert_eq!(played.scores, ex.episode_scores);
        assert_eq!((played.unseen_codes, played.unrecorded_transitions), (0, 0));
        for (e, trace) in ex.traces.iter().enumerate() {
            let recorded: Vec<usize> = trace.steps.iter().map(|s| s.action).collect();
            assert_eq!(actions[e], recorded, "episode {e}");
        }
    }

    // A rerun keeps every stage: nothing is trained again and the machine is the same.
    let mut again = vec![];
    let ex2 = pipeline::run(&run.root, &out, &config, &device, &mut |n| again.push(n.to_string())).unwrap();
    assert_eq!(ex2, ex);
    assert!(again.iter().filter(|n| n.contains("kept from")).count() >= 5, "{again:?}");
    // A stage removed is made again; the ones after it are kept from their files.
    std::fs::remove_file(out.join("extraction.json")).unwrap();
    let ex3 = pipeline::run(&run.root, &out, &config, &device, &mut |_| {}).unwrap();
    assert_eq!(ex3.machine, ex.machine, "the same MMN and seeds give the same machine");

    // Other settings into the same directory are refused, and nothing there changes.
    let before = std::fs::read(out.join("fsm.json")).unwrap();
    let err = pipeline::run(&run.root, &out, &FsmConfig { ox_bits: 9, ..config.clone() }, &device, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("other settings") && err.contains("ox_bits 8 there, 9 now") && err.contains("new --out"),
        "{err}"
    );
    assert_eq!(std::fs::read(out.join("fsm.json")).unwrap(), before);
    // A directory of someone else's files is refused.
    let foreign = root.join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    let err = pipeline::run(&run.root, &foreign, &config, &device, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("not empty"), "{err}");

    // The written files describe the machine.
    let names = vec!["push left".to_string(), "push right".to_string()];
    let written = xrl_fsm::play::write_machine_files(&dir, &ex, &names).unwrap();
    assert!(written.iter().all(|p| p.is_file()));
    let text = std::fs::read_to_string(out.join("minimised.txt")).unwrap();
    assert!(text.starts_with(&format!("Total Unique States:{}\n", ex.minimised.states())), "{text}");
    let back: xrl_fsm::MooreMachine = pipeline::read_json(&out.join("minimised.json")).unwrap();
    assert_eq!(back, ex.minimised);
    let dot = std::fs::read_to_string(out.join("minimised.dot")).unwrap();
    assert_eq!(
        dot.matches(" -> ").count(),
        ex.minimised
            .next
            .iter()
            .map(|r| {
                let mut t: Vec<usize> = r.values().copied().collect();
                t.sort();
                t.dedup();
                t.len()
            })
            .sum::<usize>()
    );
    let svg = std::fs::read_to_string(out.join("minimised.svg")).unwrap();
    assert_eq!(svg.matches("<circle").count(), ex.minimised.states() + 1, "one per state, plus the start's ring");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_policy_without_a_gru_is_refused_with_what_to_train() {
    let root = tmp("no-gru");
    let card = NewRun::new("CartPole-v1", AgentKind::A2c, 2_000).card().unwrap();
    let dir = RunDir::new(root.join("run"));
    dir.create(&card).unwrap();
    xrl::train::train(&dir, &xrl::burn::tensor::Device::flex(), |_| {}).unwrap();
    let err = pipeline::run(
        &dir.root,
        &root.join("out"),
        &FsmConfig::new(4, 4),
        &xrl::burn::tensor::Device::flex(),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("GRU core") && err.contains("--core gru"), "{err}");
    assert!(!root.join("out").exists(), "nothing is written for a refused job");
    let bad = FsmConfig { test_fraction: 1.0, ..FsmConfig::new(4, 4) };
    assert!(bad.validate().unwrap_err().to_string().contains("--test-fraction"));
    let _ = std::fs::remove_dir_all(&root);
}

/// Fine-tuning moves the whole MMN towards the policy's action distribution: with untrained bottlenecks inserted
/// (an MMN far from the policy) the softmax MSE over the policy's episodes falls epoch by epoch.
#[test]
fn fine_tuning_brings_the_mmn_towards_the_policys_action_distribution() {
    use xrl::nn::qbn::{Qbn, QbnSpec};
    let root = tmp("finetune");
    let run = policy_run(&root);
    let device = xrl::nn::device::for_tests();
    let ad = device.clone().autodiff();
    let (_, net) = pipeline::load_policy(&run.root, None, &ad).unwrap();
    ad.seed(11);
    let ox = Qbn::new(&QbnSpec::observations(8, 8), &ad).unwrap();
    let hx = Qbn::new(&QbnSpec::hidden_states(16, 8), &ad).unwrap();
    let mmn = xrl_fsm::mmn::Mmn::new(net.clone(), Some(ox), Some(hx)).unwrap();
    let config = FsmConfig {
        finetune_epochs: 25,
        finetune_lr: 3e-3,
        patience: 1000,
        finetune_episodes: 4,
        finetune_batch: 2,
        max_steps: 100,
        ..FsmConfig::new(8, 8)
    };
    let mut env = xrl_env::make("CartPole-v1").unwrap();
    // A target no MMN reaches, so that every epoch runs.
    let (_, log) = pipeline::finetune(mmn, &net, env.as_mut(), &config, 1e9, &device, &mut |_| {}).unwrap();
    assert_eq!(log.epochs.len(), 25, "{}", log.stopped);
    let (first, last) = (log.epochs[0].train_loss, log.epochs[24].train_loss);
    assert!(last < 0.7 * first, "softmax MSE {first} → {last}");
    let _ = std::fs::remove_dir_all(&root);
}
