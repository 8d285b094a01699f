//! Run directories: nothing is lost. Checkpoints are checked before use; a NaN loss stops training and keeps the
//! last good checkpoint; a resumed run continues its metrics without gaps.

use xrl::agents::dqn::{DqnConfig, OptimizerConfig};
use xrl::nn::Torso;
use xrl::run::{AgentCard, EnvCard, RunCard, RunDir, load_weights};
use xrl::train::{TrainError, train};

fn tmp(name: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("xrl-runs-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

fn card(total: usize, every: usize, config: DqnConfig) -> RunCard {
    RunCard {
        xrl_version: "test".into(),
        seed: 3,
        total_steps: total,
        checkpoint_every: every,
        env: EnvCard { id: "CartPole-v1".into(), sticky_action_prob: 0.0, ..EnvCard::default() },
        net: config.net_spec(&[4], 2),
        agent: AgentCard::Dqn(config),
        imported: None,
    }
}

fn small() -> DqnConfig {
    DqnConfig {
        learning_starts: 500,
        replay_capacity: 2_000,
        batch_size: 32,
        torso: Torso::Mlp { hidden: vec![16] },
        ..DqnConfig::cartpole()
    }
}

fn metrics_steps(dir: &RunDir) -> Vec<(usize, usize)> {
    let text = std::fs::read_to_string(dir.metrics_path()).unwrap();
    assert!(text.starts_with(xrl::train::METRICS_HEADER));
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 7, "{l}");
            (f[0].parse().unwrap(), f[1].parse().unwrap())
        })
        .collect()
}

#[test]
fn a_resumed_run_continues_where_its_checkpoint_left_off() {
    let root = tmp("resume");
    let dir = RunDir::new(&root);
    dir.create(&card(6_000, 2_000, small())).unwrap();
    // Train the first 4,000 steps only, by running a shorter card, then restore the real one: the same as a run
    // killed right after its 4,000-step checkpoint.
    let full = dir.read_card().unwrap();
    let mut short = full.clone();
    short.total_steps = 4_000;
    std::fs::write(dir.card_path(), toml::to_string(&short).unwrap()).unwrap();
    let s = train(&dir, &xrl::burn::tensor::Device::flex(), |_| {}).unwrap();
    assert_eq!(s.step, 4_000);
    // A half-written metrics line, as a kill mid-write leaves it.
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.metrics_path())
        .map(|mut f| {
            use std::io::Write;
            f.write_all(b"4012,9").unwrap()
        })
        .unwrap();
    std::fs::write(dir.card_path(), toml::to_string(&full).unwrap()).unwrap();
    let s = train(&dir, &xrl::burn::tensor::Device::flex(), |_| {}).unwrap();
    assert_eq!((s.step, s.resumes), (6_000, 1));
    // The optimiser's state travels with the checkpoint: its step count is the agent's update count.
    let optim = std::fs::read(dir.checkpoint_file(&s.stem, "optim.bin")).unwrap();
    let optim = xrl::optim::Optimizer::from_bytes(&optim).unwrap();
    assert_eq!(optim.t as usize, s.updates);
    assert!(s.updates > 0);
    let rows = metrics_steps(&dir);
    // Steps increase and episode numbers run 1, 2, 3, … without gaps or repeats.
    assert!(rows.windows(2).all(|w| w[0].0 < w[1].0), "steps increase");
    assert!(rows.iter().enumerate().all(|(i, r)| r.1 == i + 1), "episodes are consecutive");
    assert!(rows.last().unwrap().0 <= 6_000);
    // Every weights file the run kept loads.
    let device = xrl::burn::tensor::Device::flex();
    for e in std::fs::read_dir(dir.checkpoints()).unwrap() {
        let path = e.unwrap().path();
        if path.to_string_lossy().ends_with(".safetensors") {
            load_weights(&full.net, &path, std::fs::read(&path).unwrap(), &device).unwrap();
        }
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn damaged_or_mismatched_checkpoints_are_refused_with_the_reason() {
    let root = tmp("damaged");
    let dir = RunDir::new(&root);
    dir.create(&card(1_000, 1_000, small())).unwrap();
    train(&dir, &xrl::burn::tensor::Device::flex(), |_| {}).unwrap();
    let c = dir.read_card().unwrap();
    let device = xrl::burn::tensor::Device::flex();
    let state = dir.latest().unwrap().unwrap();
    let weights = dir.checkpoint_file(&state.stem, "online.safetensors");
    let good = std::fs::read(&weights).unwrap();

    // A flipped bit is caught by the checksum.
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x10;
    std::fs::write(&weights, &flipped).unwrap();
    let err = dir.load_latest_online(&c, &device).err().unwrap().to_string();
    assert!(err.contains("checksum mismatch"), "{err}");
    // A truncated file too; and without the checksum, the safetensors reader refuses it.
    std::fs::write(&weights, &good[..good.len() / 3]).unwrap();
    assert!(dir.load_latest_online(&c, &device).err().unwrap().to_string().contains("checksum"));
    let err = load_weights(&c.net, &weights, good[..good.len() / 3].to_vec(), &device).err().unwrap().to_string();
    assert!(err.contains("does not load into the network run.toml describes"), "{err}");
    // Weights of another architecture name the tensors that do not fit.
    let mut other = c.net.clone();
    other.torso = Torso::Mlp { hidden: vec![16, 16] };
    let err = load_weights(&other, &weights, good.clone(), &device).err().unwrap().to_string();
    assert!(err.contains("does not fit") && err.contains("torso.fc.1"), "{err}");
    // Bytes with no tensors of the network.
    let err = load_weights(&c.net, &weights, b"{}".to_vec(), &device).err().unwrap().to_string();
    assert!(err.contains("safetensors") || err.contains("no tensors"), "{err}");
    std::fs::write(&weights, &good).unwrap();
    assert!(dir.load_latest_online(&c, &device).is_ok());
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint() {
    let root = tmp("nan");
    let dir = RunDir::new(&root);
    // Start learning late so that a clean checkpoint exists first; then an absurd learning rate blows the
    // weights up.
    let config = DqnConfig { learning_starts: 1_500, optimizer: OptimizerConfig::Adam { lr: 1e30 }, ..small() };
    dir.create(&card(20_000, 1_000, config)).unwrap();
    let err = train(&dir, &xrl::burn::tensor::Device::flex(), |_| {}).unwrap_err();
    let TrainError::NonFiniteLoss { step, .. } = &err else { panic!("expected a non-finite loss, got {err}") };
    assert!(*step > 1_500);
    assert!(err.to_string().contains("last good checkpoint"), "{err}");
    let state = dir.latest().unwrap().unwrap();
    assert!(state.step < *step && state.step >= 1_000);
    let c = dir.read_card().unwrap();
    let net = dir.load_latest_online(&c, &xrl::burn::tensor::Device::flex()).unwrap().1;
    let q = xrl::nn::to_vec(net.scores(xrl::nn::batch(&[0.0; 4], 4, &xrl::burn::tensor::Device::flex())));
    assert!(q.iter().all(|v| v.is_finite()), "the kept checkpoint is a good one: {q:?}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a3c_workers_update_the_shared_network_and_the_run_resumes() {
    use xrl::agents::a3c::A3cConfig;
    let root = tmp("a3c");
    let dir = RunDir::new(&root);
    let config = A3cConfig { workers: 2, ..A3cConfig::cartpole() };
    let mut c = card(20_000, 5_000, small());
    c.net = config.net_spec(&[4], 2);
    c.agent = AgentCard::A3c(config);
    dir.create(&c).unwrap();
    let s = train(&dir, &xrl::burn::tensor::Device::flex(), |_| {}).unwrap();
    assert_eq!(s.step, 20_000, "the final checkpoint is at the step budget");
    assert!(s.updates >= 20_000 / 5, "two workers made about one update per 5 steps: {}", s.updates);
    assert!(s.episodes > 0);
    let mut longer = dir.read_card().unwrap();
    longer.total_steps = 30_000;
    std::fs::write(dir.card_path(), toml::to_string(&longer).unwrap()).unwrap();
    let s = train(&dir, &xrl::burn::tensor::Device::flex(), |_| {}).unwrap();
    assert_eq!((s.step, s.resumes), (30_000, 1));
    let rows = metrics_steps(&dir);
    assert!(rows.iter().enumerate().all(|(i, r)| r.1 == i + 1), "episodes are consecutive");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn drqn_trains_on_stacked_frames_and_resumes() {
    let root = tmp("drqn");
    let dir = RunDir::new(&root);
    let config = small().drqn(3, 8);
    let mut c = card(3_000, 1_500, config.clone());
    c.env.frame_stack = 3;
    c.net = config.net_spec(&[3, 4], 2);
    assert_eq!((c.net.frames, c.net.core.map(|k| k.hidden)), (3, Some(8)));
    dir.create(&c).unwrap();
    let s = train(&dir, &xrl::burn::tensor::Device::flex(), |_| {}).unwrap();
    assert_eq!(s.step, 3_000);
    assert!(s.updates > 0);
    let mut longer = dir.read_card().unwrap();
    longer.total_steps = 4_000;
    std::fs::write(dir.card_path(), toml::to_string(&longer).unwrap()).unwrap();
    assert_eq!(train(&dir, &xrl::burn::tensor::Device::flex(), |_| {}).unwrap().step, 4_000);
    let net = dir.load_latest_online(&longer, &xrl::burn::tensor::Device::flex()).unwrap().1;
    let q = xrl::nn::to_vec(net.scores(xrl::nn::batch(&[0.1; 12], 12, &xrl::burn::tensor::Device::flex())));
    assert_eq!(q.len(), 2);
    std::fs::remove_dir_all(&root).unwrap();
}

/// While one process writes a run, a second writer is refused with the holder's PID, and nothing of the run is
/// touched; once the holder lets go (or dies: the lock is the system's), the run can be taken again.
#[test]
fn a_run_has_one_writer_at_a_time() {
    let root = tmp("lock");
    let dir = RunDir::new(&root);
    dir.create(&card(1_000, 1_000, small())).unwrap();
    let before: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name()).collect();
    let held = dir.lock().unwrap();
    let err = match train(&dir, &xrl::burn::tensor::Device::flex(), |_| {}) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a second writer must be refused"),
    };
    assert!(err.contains(&format!("process {} is writing this run", std::process::id())), "{err}");
    assert!(dir.latest().unwrap().is_none(), "the refused writer wrote no checkpoint");
    let after: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(after.len(), before.len() + 1, "only run.lock is new: {after:?}");
    drop(held);
    // A write a killed process left half done is cleaned when the run is next taken; a user's own file is not.
    std::fs::create_dir_all(dir.checkpoints()).unwrap();
    let stale = dir.checkpoints().join(".step-0000001000.online.safetensors.tmp-99999");
    std::fs::write(&stale, b"half").unwrap();
    std::fs::write(root.join("notes.tmp-1"), b"mine").unwrap();
    assert_eq!(train(&dir, &xrl::burn::tensor::Device::flex(), |_| {}).unwrap().step, 1_000);
    assert!(!stale.exists(), "the stale temporary file is gone");
    assert!(root.join("notes.tmp-1").exists(), "the user's file stays");
    let _ = std::fs::remove_dir_all(&root);
}

fn snapshot(d: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = vec![];
    for sub in [d.to_path_buf(), d.join("checkpoints")] {
        for e in std::fs::read_dir(&sub).unwrap().map(|e| e.unwrap()) {
            if e.path().is_file() && e.file_name() != "run.lock" {
                files.push((e.path().display().to_string(), std::fs::read(e.path()).unwrap()));
            }
        }
    }
    files.sort();
    files
}

/// A run whose commit point (`checkpoints/latest.json`) is gone or damaged is never restarted from step 0 over
/// its own files: the index is rebuilt from the newest checkpoint whose own record and files check (a damaged one
/// kept aside), and when none does the resume is refused, naming the recovery, with every file as it was.
#[test]
fn a_lost_checkpoint_index_is_rebuilt_from_the_checkpoints_or_refused() {
    let root = tmp("no-index");
    let dir = RunDir::new(&root);
    let flex = xrl::burn::tensor::Device::flex();
    dir.create(&card(2_000, 1_000, small())).unwrap();
    train(&dir, &flex, |_| {}).unwrap();
    let index = dir.checkpoints().join("latest.json");
    let committed = dir.latest().unwrap().unwrap();
    // Missing: readers see the newest complete checkpoint; training writes the index back and goes on from it.
    std::fs::remove_file(&index).unwrap();
    assert_eq!(dir.latest().unwrap().as_ref(), Some(&committed));
    dir.amend(None, Some(3_000)).unwrap();
    let mut notes = vec![];
    let s = train(&dir, &flex, |p| notes.extend(p.notes.clone())).unwrap();
    assert_eq!(s.step, 3_000);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains("was missing; rebuilt it") && notes[0].contains("step-0000002000"), "{notes:?}");
    // Damaged: the same, and the damaged bytes are kept.
    std::fs::write(&index, b"{ half a commit").unwrap();
    let note = dir.restore_index().unwrap().unwrap();
    assert!(note.contains("was damaged") && note.contains("latest.json.damaged"), "{note}");
    assert_eq!(std::fs::read(dir.checkpoints().join("latest.json.damaged")).unwrap(), b"{ half a commit");
    assert_eq!(dir.latest().unwrap().unwrap().step, 3_000);
    assert_eq!(dir.restore_index().unwrap(), None, "nothing left to repair");
    // No complete checkpoint to rebuild from (the newest weights damaged; older ones have lost their optimiser
    // state): refused, and nothing changes.
    std::fs::remove_file(&index).unwrap();
    let weights = dir.checkpoints().join("step-0000003000.online.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    bytes[100] ^= 0xFF;
    std::fs::write(&weights, bytes).unwrap();
    let before = snapshot(&root);
    let err = train(&dir, &flex, |_| {}).err().unwrap().to_string();
    assert!(err.contains("latest.json: missing") && err.contains("nothing was changed"), "{err}");
    assert!(err.contains("Put latest.json back"), "{err}");
    assert_eq!(snapshot(&root), before, "every file is as it was");
    let c = dir.read_card().unwrap();
    let err = dir.load_latest_online(&c, &flex).err().unwrap().to_string();
    assert!(err.contains("Put latest.json back"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}

/// `metrics.csv` is cut back to the checkpoint on resume (rows after it and a half-written last line go), and any
/// other damage is refused with the line to fix, leaving the file untouched.
#[test]
fn a_damaged_episode_log_is_repaired_back_to_the_checkpoint_or_refused() {
    let root = tmp("metrics");
    let dir = RunDir::new(&root);
    let flex = xrl::burn::tensor::Device::flex();
    dir.create(&card(2_000, 1_000, small())).unwrap();
    let state = train(&dir, &flex, |_| {}).unwrap();
    let path = dir.metrics_path();
    let good = std::fs::read_to_string(&path).unwrap();
    let rows: Vec<&str> = good.lines().collect();
    assert_eq!(rows.len(), state.episodes + 1);
    dir.amend(None, Some(2_001)).unwrap();
    let resume_with = |text: &str| {
        std::fs::write(&path, text).unwrap();
        dir.amend(None, Some(dir.read_card().unwrap().total_steps + 1)).unwrap();
        train(&dir, &flex, |_| {}).map(|_| ()).map_err(|e| e.to_string())
    };
    let refused = |text: String, needle: &str| {
        let err = resume_with(&text).unwrap_err();
        assert!(err.contains(needle) && err.contains("nothing was changed"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "left as it was");
    };
    // A row in the middle that does not parse, a skipped episode, lost rows, another header.
    let mut garbled = rows.clone();
    garbled[3] = "12,x";
    refused(garbled.join("\n") + "\n", "line 4: `12,x`");
    let mut skipped = rows.clone();
    skipped.remove(2);
    refused(skipped.join("\n") + "\n", "line 3: episode 3 where episode 2 belongs");
    refused(
        rows[..3].join("\n") + "\n",
        &format!("ends after 2 episodes, but the checkpoint counts {}", state.episodes),
    );
    refused(good.replacen("step,", "steps,", 1), "line 1: the header");
    // Rows past the checkpoint and a half-written one are repaired away (the resumed run plays them again).
    let after = format!("{good}999999,{},1,1,,0,1\n999999,{},1", state.episodes + 1, state.episodes + 2);
    resume_with(&after).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with(&good) && !text.contains("999999"), "{text}");
    let _ = std::fs::remove_dir_all(&root);
}

/// A resumed run takes the learning rate and step count its card says (`train --resume --lr … --steps …` writes
/// them there): the edited rate reaches the optimiser, and a total below what was trained is refused.
#[test]
fn a_resumed_run_takes_a_new_learning_rate_and_step_count() {
    let root = tmp("amend");
    let dir = RunDir::new(&root);
    dir.create(&card(2_000, 1_000, small())).unwrap();
    train(&dir, &xrl::burn::tensor::Device::flex(), |_| {}).unwrap();
    let old_lr = dir.read_card().unwrap().agent.lr();
    let err = dir.amend(None, Some(1_000)).err().unwrap().to_string();
    assert!(err.contains("below the 2000 steps"), "{err}");
    let card = dir.amend(Some(old_lr / 4.0), Some(3_000)).unwrap();
    assert_eq!((card.total_steps, card.agent.lr()), (3_000, old_lr / 4.0));
    assert_eq!(dir.read_card().unwrap(), card, "written to run.toml");
    let s = train(&dir, &xrl::burn::tensor::Device::flex(), |_| {}).unwrap();
    assert_eq!(s.step, 3_000);
    let optim = std::fs::read(dir.checkpoints().join(format!("{}.optim.bin", s.stem))).unwrap();
    assert_eq!(xrl::optim::Optimizer::from_bytes(&optim).unwrap().lr, old_lr / 4.0);
    let _ = std::fs::remove_dir_all(&root);
}

/// A PPO run interrupted after its first checkpoint resumes from it: its update count (and with it the learning
/// rate's annealing) and Adam's step count and moments come back, so it ends where the uninterrupted run ends —
/// the same number of updates and Adam steps, at the same final learning rate — with a consecutive episode log.
/// (The weights differ: like every agent's, the environments restart at a resume.)
#[test]
fn an_interrupted_ppo_run_resumes_its_updates_annealing_and_adam_state() {
    use xrl::agents::ppo::PpoConfig;
    let root = tmp("ppo");
    let config = PpoConfig { torso: Torso::Mlp { hidden: vec![16] }, ..PpoConfig::cartpole() };
    let mut c = card(4_096, 2_048, small());
    c.net = config.net_spec(&[4], 2);
    c.agent = AgentCard::Ppo(config);
    let straight = RunDir::new(root.join("straight"));
    straight.create(&c).unwrap();
    // The interrupted copy: the run's directory as it was right after its first checkpoint (a kill then).
    let cut = root.join("cut");
    let mut copied = false;
    let s = train(&straight, &xrl::burn::tensor::Device::flex(), |p| {
        if p.last_checkpoint == Some(2_048) && !copied {
            let ok = std::process::Command::new("cp").arg("-r").arg(straight.root.as_path()).arg(&cut).status();
            assert!(ok.unwrap().success());
            copied = true;
        }
    })
    .unwrap();
    assert_eq!((s.step, s.updates), (4_096, 8));
    assert!(copied);
    let cut = RunDir::new(cut);
    let _ = std::fs::remove_file(cut.root.join("run.lock"));
    let s = train(&cut, &xrl::burn::tensor::Device::flex(), |_| {}).unwrap();
    assert_eq!((s.step, s.updates, s.resumes), (4_096, 8, 1));
    let header = |d: &RunDir| -> serde_json::Value {
        let bytes = std::fs::read(d.checkpoints().join("step-0000004096.optim.bin")).unwrap();
        let line = bytes.split(|&b| b == b'\n').next().unwrap().to_vec();
        serde_json::from_slice(&line).unwrap()
    };
    let (a, b) = (header(&straight), header(&cut));
    assert_eq!((&a["t"], &a["lr"]), (&b["t"], &b["lr"]), "Adam steps and the final learning rate");
    assert_eq!(a["t"], 8 * 16, "8 updates × 4 epochs × 4 minibatches");
    assert!((a["lr"].as_f64().unwrap() - 2.5e-4 / 8.0).abs() < 1e-12, "the last update's rate: 2.5e-4 × (1 − 7/8)");
    let rows = metrics_steps(&cut);
    assert!(rows.iter().enumerate().all(|(i, r)| r.1 == i + 1), "episodes are consecutive");
    std::fs::remove_dir_all(&root).unwrap();
}

/// Rainbow's checkpoint holds its priorities beside the replay: a run killed after its first checkpoint resumes
/// from both (the sampler's maximum priority and every slot's come back), and its ablations train too.
#[test]
fn rainbow_resumes_with_its_priorities_and_its_ablations_train() {
    use xrl::new_run::{AgentKind, NewRun, RainbowOff};
    let root = tmp("rainbow");
    let dir = RunDir::new(&root);
    let card =
        NewRun { checkpoint_every: Some(1_500), ..NewRun::new("MinAtar/Breakout-v0", AgentKind::Rainbow, 3_000) }
            .card()
            .unwrap();
    assert_eq!(card.agent.name(), "Rainbow");
    dir.create(&card).unwrap();
    let mut short = card.clone();
    short.total_steps = 1_500;
    std::fs::write(dir.card_path(), toml::to_string(&short).unwrap()).unwrap();
    let device = xrl::burn::tensor::Device::flex();
    let s = train(&dir, &device, |_| {}).unwrap();
    assert_eq!((s.step, s.updates), (1_500, (1_500 - 1_000) / 4));
    let priorities = std::fs::read(dir.checkpoint_file(&s.stem, "priorities.bin")).unwrap();
    assert_eq!(priorities.len(), 8 * (100_000 + 2));
    let max = f64::from_le_bytes(priorities[8..16].try_into().unwrap());
    assert!(max > 0.0 && max.is_finite(), "max priority {max}");
    std::fs::write(dir.card_path(), toml::to_string(&card).unwrap()).unwrap();
    let s = train(&dir, &device, |_| {}).unwrap();
    assert_eq!((s.step, s.resumes, s.updates), (3_000, 1, (3_000 - 1_000) / 4));
    // Older checkpoints keep their weights only.
    let older = dir.checkpoint_file("step-0000001500", "priorities.bin");
    assert!(!older.exists(), "{older:?} should have been pruned");
    std::fs::remove_dir_all(&root).unwrap();

    let off = RainbowOff { per: true, noisy: true, c51: true, double: true, dueling: true };
    let card =
        NewRun { rainbow_off: off, ..NewRun::new("MinAtar/Breakout-v0", AgentKind::Rainbow, 1_200) }.card().unwrap();
    let xrl::run::AgentCard::Rainbow(c) = &card.agent else { panic!("a Rainbow card") };
    assert_eq!(c.name(), "Rainbow (no PER, no noisy, no C51, no double, no dueling)");
    assert_eq!((card.net.atoms, card.net.noisy), (None, None));
    let root = tmp("rainbow-off");
    let dir = RunDir::new(&root);
    dir.create(&card).unwrap();
    assert_eq!(train(&dir, &device, |_| {}).unwrap().updates, 200 / 4);
    std::fs::remove_dir_all(&root).unwrap();
}
