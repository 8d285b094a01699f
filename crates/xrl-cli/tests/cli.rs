//! The `xrl` binary as a user runs it: outputs, exit codes, and errors that never panic.

use std::process::{Command, Output};

fn xrl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xrl")).args(args).output().expect("the xrl binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failure a user can act on: non-zero exit, an `error:` line, no panic.
fn assert_clean_failure(o: &Output, needle: &str) {
    assert!(!o.status.success(), "should fail: {}", stdout(o));
    let err = stderr(o);
    assert!(err.contains(needle), "stderr should mention `{needle}`: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn envs_lists_every_id_as_text_and_json() {
    let o = xrl(&["envs", "--json"]);
    assert!(o.status.success());
    let specs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ids: Vec<&str> = specs.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 14);
    assert!(ids.contains(&"MinAtar/SpaceInvaders-v1") && ids.contains(&"Pendulum-v1"));
    let breakout = specs.as_array().unwrap().iter().find(|s| s["id"] == "MinAtar/Breakout-v1").unwrap();
    assert_eq!(breakout["observation"]["shape"], serde_json::json!([4, 10, 10]));
    assert_eq!(breakout["action"]["meanings"], serde_json::json!(["no-op", "left", "right"]));
    let text = stdout(&xrl(&["envs"]));
    assert!(text.contains("CartPole-v1") && text.contains("binary 10×10×10"), "{text}");
}

#[test]
fn rollout_json_has_returns_and_lengths_and_is_deterministic() {
    let args =
        ["rollout", "--env", "MinAtar/Breakout-v0", "--policy", "random", "--episodes", "6", "--seed", "3", "--json"];
    let a = xrl(&args);
    assert!(a.status.success(), "{}", stderr(&a));
    let doc: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    assert_eq!(doc["returns"].as_array().unwrap().len(), 6);
    assert_eq!(doc["lengths"].as_array().unwrap().len(), 6);
    assert!(doc["lengths"].as_array().unwrap().iter().all(|l| l.as_u64().unwrap() >= 1));
    assert_eq!(a.stdout, xrl(&args).stdout, "same seed, same numbers");
    let text = stdout(&xrl(&["rollout", "--env", "CartPole-v1", "--episodes", "2"]));
    assert!(text.contains("mean return"), "{text}");
}

#[test]
fn bad_input_fails_cleanly_with_advice() {
    assert_clean_failure(&xrl(&["rollout", "--env", "Pong-v9"]), "known ids: CartPole-v1");
    assert_clean_failure(&xrl(&["rollout", "--env", "CartPole-v1", "--policy", "dqn"]), "available policy is `random`");
    assert_clean_failure(&xrl(&["rollout", "--env", "CartPole-v1", "--episodes", "0"]), "between 1 and");
    assert_clean_failure(&xrl(&["rollout", "--env", "MinAtar/Breakout-v0", "--sticky", "2"]), "sticky");
    assert_clean_failure(&xrl(&["rollout", "--env", "MinAtar/Breakout-v0", "--rng", "mt"]), "fast");
    assert_clean_failure(&xrl(&["render", "--env", "CartPole-v1", "--out", "x.avi"]), ".gif or .mp4");
    let dir = std::env::temp_dir().join(format!("xrl-cli-blocked-{}", std::process::id()));
    std::fs::write(&dir, b"a file where a folder is needed").unwrap();
    let out = dir.join("x.gif");
    assert_clean_failure(
        &xrl(&["render", "--env", "CartPole-v1", "--steps", "2", "--out", out.to_str().unwrap()]),
        "cannot write",
    );
    std::fs::remove_file(&dir).unwrap();
}

#[test]
fn render_writes_a_gif_with_one_frame_per_step() {
    let dir = std::env::temp_dir().join(format!("xrl-cli-render-{}", std::process::id()));
    let out = dir.join("breakout.gif");
    let o = xrl(&[
        "render",
        "--env",
        "MinAtar/Breakout-v0",
        "--seed",
        "1",
        "--steps",
        "12",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut d = gif::DecodeOptions::new().read_info(std::fs::File::open(&out).unwrap()).unwrap();
    assert_eq!((d.width(), d.height()), (320, 320));
    let mut frames = 0;
    while d.read_next_frame().unwrap().is_some() {
        frames += 1;
    }
    assert_eq!(frames, 13);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_subcommand_has_help() {
    let cmds = ["envs", "rollout", "render", "train", "play", "import", "explain", "evaluate", "report", "demo"]
        .map(|c| vec![c]);
    for cmd in cmds.into_iter().chain([vec!["bench", "envs"], vec!["bench", "nets"], vec!["bench", "explain"]]) {
        let mut args = cmd.clone();
        args.push("--help");
        let o = xrl(&args);
        assert!(o.status.success() && stdout(&o).contains("Usage: xrl"), "{cmd:?}");
    }
}

/// Kill a real training process mid-run, then resume it: every checkpoint is readable and `metrics.csv` stays
/// continuous.
#[test]
fn a_killed_training_run_resumes_from_its_last_checkpoint() {
    let dir = std::env::temp_dir().join(format!("xrl-cli-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.to_str().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_xrl"))
        .args(["train", "--env", "CartPole-v1", "--steps", "150000", "--seed", "2", "--checkpoint-every", "5000"])
        .args(["--out", out, "--quiet"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let latest = dir.join("checkpoints/latest.json");
    let wait_for = |at_least: u64| {
        let start = std::time::Instant::now();
        loop {
            let step = std::fs::read_to_string(&latest)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v["step"].as_u64());
            if step.is_some_and(|s| s >= at_least) {
                return;
            }
            assert!(start.elapsed().as_secs() < 120, "training made no checkpoint in time");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    };
    wait_for(20_000);
    // While it trains, a second writer is refused with its PID (and the run left alone).
    let second = xrl(&["train", "--resume", out, "--quiet"]);
    assert_clean_failure(&second, &format!("process {} is writing this run", child.id()));
    child.kill().unwrap();
    child.wait().unwrap();
    // The run is usable as it was left, and the killed writer's lock is gone with it.
    let o = xrl(&["play", "--run", out, "--episodes", "2", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Killed again, at another moment, while resumed.
    let mut child = Command::new(env!("CARGO_BIN_EXE_xrl"))
        .args(["train", "--resume", out, "--quiet"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(60_000);
    child.kill().unwrap();
    child.wait().unwrap();
    let o = xrl(&["train", "--resume", out, "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("to step 150000"), "{}", stdout(&o));
    let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let rows: Vec<(u64, u64)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 7, "complete row: {l}");
            (f[0].parse().unwrap(), f[1].parse().unwrap())
        })
        .collect();
    assert!(rows.windows(2).all(|w| w[0].0 < w[1].0), "steps increase");
    assert!(rows.iter().enumerate().all(|(i, r)| r.1 == i as u64 + 1), "episodes are consecutive");
    let weights = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().to_string_lossy().ends_with(".online.safetensors"));
    assert!(weights.count() >= 5);
    let o = xrl(&["play", "--run", out, "--episodes", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn train_and_play_refuse_bad_input_cleanly() {
    assert_clean_failure(
        &xrl(&["train", "--env", "CartPole-v1", "--steps", "10", "--out", "/tmp/x", "--agent", "sac"]),
        "available agents are `dqn`, `drqn`, `a2c`, `a3c`, `ppo` and `rainbow`",
    );
    assert_clean_failure(
        &xrl(&["train", "--env", "Pendulum-v1", "--steps", "10", "--out", "/tmp/xrl-never"]),
        "discrete",
    );
    assert_clean_failure(&xrl(&["train", "--resume", "/nonexistent/run"]), "run card");
    assert_clean_failure(&xrl(&["play", "--run", "/nonexistent/run"]), "run card");
}

/// `--device` takes the names `xrl_nn::device::parse` knows; an unknown one, or a backend this build leaves out,
/// fails before any work with what to type instead.
#[test]
fn device_option_refuses_what_this_build_cannot_run() {
    let train = |device: &str| {
        xrl(&["train", "--env", "CartPole-v1", "--steps", "10", "--out", "/tmp/xrl-never", "--device", device])
    };
    assert_clean_failure(&train("gpu"), "use `cpu`");
    assert_clean_failure(&xrl(&["play", "--run", "/nonexistent/run", "--device", "cuda:x"]), "whole number");
    #[cfg(not(feature = "ndarray"))]
    assert_clean_failure(&train("ndarray"), "--features ndarray");
    #[cfg(not(feature = "cuda"))]
    assert_clean_failure(&train("cuda:1"), "--features cuda");
    assert!(!std::path::Path::new("/tmp/xrl-never").exists());
}

#[test]
fn import_makes_a_playable_run_and_refuses_what_does_not_fit() {
    let fx = concat!(env!("CARGO_MANIFEST_DIR"), "/../xrl/tests/fixtures/");
    let dir = std::env::temp_dir().join(format!("xrl-cli-import-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.to_str().unwrap();
    let zip = format!("{fx}sb3_dqn_cartpole.zip");
    let o = xrl(&["import", &zip, "--format", "sb3", "--arch", "sb3-mlp-dqn", "--env", "CartPole-v1", "--out", out]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = xrl(&["play", "--run", out, "--episodes", "2", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_clean_failure(&xrl(&["train", "--resume", out]), "no training state");
    let pt = format!("{fx}minatar_dqn.pt");
    let other = format!("{out}-2");
    assert_clean_failure(
        &xrl(&["import", &pt, "--format", "pytorch", "--arch", "mlp-dqn", "--env", "CartPole-v1", "--out", &other]),
        "no tensors",
    );
    assert_clean_failure(
        &xrl(&["import", &pt, "--format", "onnx", "--arch", "mlp-dqn", "--env", "CartPole-v1", "--out", &other]),
        "unknown format",
    );
    assert_clean_failure(
        &xrl(&["import", &pt, "--format", "pytorch", "--arch", "resnet", "--env", "CartPole-v1", "--out", &other]),
        "known: nature-dqn",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn drqn_needs_at_least_two_frames() {
    assert_clean_failure(
        &xrl(&[
            "train",
            "--env",
            "CartPole-v1",
            "--agent",
            "drqn",
            "--frames",
            "1",
            "--steps",
            "10",
            "--out",
            "/tmp/xrl-never",
        ]),
        "--frames must be between 2 and 1024",
    );
}

#[test]
fn explain_writes_pictures_maps_and_a_summary() {
    let fx = concat!(env!("CARGO_MANIFEST_DIR"), "/../xrl/tests/fixtures/");
    let dir = std::env::temp_dir().join(format!("xrl-cli-explain-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let run = dir.join("run");
    let out = dir.join("out");
    let pt = format!("{fx}minatar_dqn.pt");
    let o = xrl(&[
        "import",
        &pt,
        "--format",
        "pytorch",
        "--arch",
        "minatar-dqn",
        "--env",
        "MinAtar/Breakout-v0",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let args = ["explain", "--run", run.to_str().unwrap(), "--methods", "grad,gradcam:conv1,ig", "--frames", "1..4"];
    let o = xrl(&[&args[..], &["--out", out.to_str().unwrap(), "--video", "gif", "--save-maps"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let frames = summary["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[0]["frame"], 1);
    assert_eq!(frames[0]["q"].as_array().unwrap().len(), 6);
    assert!(frames.iter().all(|f| f["ig_delta"].as_f64().unwrap().abs() < 0.05), "IG completeness per frame");
    for f in summary["files"].as_array().unwrap() {
        assert!(std::path::Path::new(f.as_str().unwrap()).exists(), "{f} listed and written");
    }
    // The maps: [frames, 4, 10, 10] for input-space methods, [frames, 8, 8] for Grad-CAM on conv1.
    let npy = std::fs::read(out.join("gradcam_conv1.npy")).unwrap();
    assert!(String::from_utf8_lossy(&npy[..80]).contains("'shape': (3, 8, 8)"));
    let npy = std::fs::read(out.join("grad.npy")).unwrap();
    assert!(String::from_utf8_lossy(&npy[..80]).contains("'shape': (3, 4, 10, 10)"));
    assert!(out.join("frame_0002.png").exists() && out.join("explain.gif").exists());
    let refused = dir.join("refused");
    let bad = ["explain", "--run", run.to_str().unwrap(), "--out", refused.to_str().unwrap()];
    // An --out that holds results already is refused, the results left as they were.
    let before = std::fs::read(out.join("summary.json")).unwrap();
    assert_clean_failure(&xrl(&[&bad[..3], &["--out", out.to_str().unwrap()]].concat()), "not empty");
    assert_eq!(std::fs::read(out.join("summary.json")).unwrap(), before);
    assert_clean_failure(&xrl(&[&bad[..], &["--methods", "gradcam:conv9"]].concat()), "no layer `conv9`");
    assert_clean_failure(&xrl(&[&bad[..], &["--methods", "lime"]].concat()), "unknown method");
    assert_clean_failure(&xrl(&[&bad[..], &["--target", "q:9"]].concat()), "out of range");
    assert_clean_failure(&xrl(&[&bad[..], &["--frames", "5..2"]].concat()), "A..B");
    assert_clean_failure(&xrl(&[&bad[..], &["--layout", "composite"]].concat()), "actor-critic");
    // The composite layout on an actor-critic run.
    let ac = dir.join("ac");
    let o = xrl(&[
        "train",
        "--env",
        "MinAtar/Breakout-v0",
        "--agent",
        "a2c",
        "--steps",
        "2000",
        "--out",
        ac.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let comp = dir.join("composite");
    let o = xrl(&[
        "explain",
        "--run",
        ac.to_str().unwrap(),
        "--methods",
        "guided",
        "--target",
        "logit:1",
        "--layout",
        "composite",
    ]
    .iter()
    .copied()
    .chain(["--frames", "0..3", "--out", comp.to_str().unwrap(), "--video", "mp4"])
    .collect::<Vec<_>>());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(comp.join("frame_0002.png").exists());
    let grey = dir.join("greydanus");
    let o = xrl(&[
        "explain",
        "--run",
        ac.to_str().unwrap(),
        "--methods",
        "perturbation",
        "--layout",
        "greydanus",
        "--frames",
        "0..2",
        "--out",
        grey.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(grey.join("frame_0001.png").exists());
    let mp4 = std::fs::read(comp.join("explain.mp4")).unwrap();
    assert_eq!(&mp4[4..8], b"ftyp");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The values of an f32 `.npy` file written by `--save-maps` (format 1.0).
/// A fresh temporary directory `name-PID` holding `run`: the MinAtar paper's Q-network (`minatar_dqn.pt`)
/// imported for Breakout.
fn imported_minatar_run(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let fx = concat!(env!("CARGO_MANIFEST_DIR"), "/../xrl/tests/fixtures/");
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let run = dir.join("run");
    let pt = format!("{fx}minatar_dqn.pt");
    let args = ["import", &pt, "--format", "pytorch", "--arch", "minatar-dqn", "--env", "MinAtar/Breakout-v0"];
    let o = xrl(&[&args[..], &["--out", run.to_str().unwrap()]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    (dir, run)
}

fn npy_values(path: &std::path::Path) -> Vec<f32> {
    let b = std::fs::read(path).unwrap();
    let start = 10 + u16::from_le_bytes([b[8], b[9]]) as usize;
    b[start..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

#[test]
fn explain_options_reach_every_method() {
    let (dir, run) = imported_minatar_run("xrl-cli-explain-options");
    let explain = |out: &str, extra: &[&str]| {
        let out = dir.join(out);
        let base = ["explain", "--run", run.to_str().unwrap(), "--frames", "1..3", "--save-maps", "--out"];
        (xrl(&[&base[..], &[out.to_str().unwrap()], extra].concat()), out)
    };
    // IG from frame 1 of the episode: frame 1's own map is exactly zero, frame 2's is not.
    let (o, out) = explain("frame", &["--methods", "ig", "--ig-baseline", "frame:1", "--ig-rule", "middle"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let maps = npy_values(&out.join("ig.npy"));
    assert_eq!(maps.len(), 800);
    assert!(maps[..400].iter().all(|&v| v == 0.0));
    assert!(maps[400..].iter().any(|&v| v != 0.0));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["baseline"]["frame"], 1);
    assert_eq!(summary["options"]["ig_rule"], "riemann-middle");
    // A baseline file of zeros gives the zero baseline's maps.
    let zeros_path = dir.join("zeros.npy");
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 10, 10), }";
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    npy.extend((header.len() as u16 + 1).to_le_bytes());
    npy.extend(header.as_bytes());
    npy.push(b'\n');
    npy.extend(std::iter::repeat_n(0u8, 1600));
    std::fs::write(&zeros_path, npy).unwrap();
    let (o, from_file) = explain("file", &["--methods", "ig", "--ig-baseline", zeros_path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (o, zeros) = explain("zeros", &["--methods", "ig"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(npy_values(&from_file.join("ig.npy")), npy_values(&zeros.join("ig.npy")));
    // SmoothGrad² and VarGrad are non-negative; occlusion with a blurred fill; a blurred IG baseline.
    let methods = "smoothgrad2:grad,vargrad:guided,smoothgrad:deconv,occlusion";
    let (o, out) = explain(
        "noise",
        &["--methods", methods, "--noise-samples", "3", "--noise-sigma", "0.3", "--occlusion-fill", "blur:1"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    for m in ["smoothgrad2_grad", "vargrad_guided"] {
        let v = npy_values(&out.join(format!("{m}.npy")));
        assert!(v.iter().all(|&x| x >= 0.0) && v.iter().any(|&x| x > 0.0), "{m}");
    }
    assert!(npy_values(&out.join("occlusion.npy")).iter().any(|&x| x != 0.0));
    let (o, blurred) = explain("blur", &["--methods", "ig", "--ig-baseline", "blur:2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(npy_values(&blurred.join("ig.npy")), npy_values(&zeros.join("ig.npy")), "the baseline is used");
    // A smaller occlusion window changes the map.
    let (o, small) = explain("small", &["--methods", "occlusion", "--occlusion-window", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (o, default) = explain("default-occlusion", &["--methods", "occlusion"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(npy_values(&small.join("occlusion.npy")), npy_values(&default.join("occlusion.npy")));
    // Bad options fail cleanly.
    assert_clean_failure(&explain("e1", &["--methods", "ig", "--ig-rule", "simpson"]).0, "unknown --ig-rule");
    assert_clean_failure(&explain("e2", &["--methods", "ig", "--ig-baseline", "frame:100000"]).0, "ended before");
    assert_clean_failure(&explain("e3", &["--methods", "occlusion", "--occlusion-fill", "grey"]).0, "occlusion-fill");
    assert_clean_failure(&explain("e4", &["--methods", "smoothgrad:lime"]).0, "unknown method");
    let bad_value = ["--methods", "perturbation", "--perturbation-score", "value"];
    assert_clean_failure(&explain("e5", &bad_value).0, "needs a value head");
    let e7 = dir.join("e7");
    let ff = ["explain", "--run", run.to_str().unwrap(), "--unroll", "2", "--out", e7.to_str().unwrap()];
    assert_clean_failure(&xrl(&ff), "carries a recurrent state");
    let missing = dir.join("missing.npy");
    assert_clean_failure(
        &explain("e6", &["--methods", "ig", "--ig-baseline", missing.to_str().unwrap()]).0,
        "cannot read",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A recurrent A2C run explained at its recorded states and unrolled through its last frames: the two agree on
/// every frame's value only if each recorded state is the one the agent held when it acted on that frame.
#[test]
fn recurrent_runs_are_explained_at_their_recorded_states() {
    let dir = std::env::temp_dir().join(format!("xrl-cli-recurrent-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let run = dir.join("run");
    let args = ["train", "--env", "CartPole-v1", "--agent", "a2c", "--core", "gru", "--core-size", "16"];
    let o = xrl(&[&args[..], &["--steps", "3000", "--quiet", "--out", run.to_str().unwrap()]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let explain = |out: &str, extra: &[&str]| {
        let out = dir.join(out);
        let base = ["explain", "--run", run.to_str().unwrap(), "--methods", "grad,ig", "--frames", "4..9"];
        let o = xrl(&[&base[..], &["--out", out.to_str().unwrap()], extra].concat());
        assert!(o.status.success(), "{}", stderr(&o));
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
        s["frames"].as_array().unwrap().clone()
    };
    let at_state = explain("at", &[]);
    let unrolled = explain("unrolled", &["--unroll", "4"]);
    assert_eq!(at_state.len(), 5);
    for (a, u) in at_state.iter().zip(&unrolled) {
        let (va, vu) = (a["value"].as_f64().unwrap(), u["value"].as_f64().unwrap());
        assert!((va - vu).abs() < 1e-4 * va.abs().max(1.0), "frame {}: {va} vs {vu}", a["frame"]);
        let policy: Vec<f64> = a["policy"].as_array().unwrap().iter().map(|p| p.as_f64().unwrap()).collect();
        let greedy = if policy[1] > policy[0] { 1 } else { 0 };
        assert_eq!(a["action"], greedy, "the greedy action follows the policy at the recorded state");
        assert!(a["ig_delta"].as_f64().unwrap().abs() < 0.05);
        let shares: Vec<f64> =
            u["attribution_by_frame"]["grad"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(shares.len(), 4);
        assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-4 && shares.iter().all(|&s| s >= 0.0));
    }
    let e = dir.join("e");
    let bad = ["explain", "--run", run.to_str().unwrap(), "--out", e.to_str().unwrap()];
    assert_clean_failure(&xrl(&[&bad[..], &["--unroll", "6", "--frames", "2..4"]].concat()), "start --frames at 5");
    assert_clean_failure(
        &xrl(&["train", "--env", "CartPole-v1", "--core", "lstm", "--steps", "10", "--out", "x"]),
        "A2C option",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The README's first command, shortened: the embedded agent, explained, in a report whose contents are checked.
#[test]
fn demo_writes_a_report_with_every_method_and_frame() {
    let dir = std::env::temp_dir().join(format!("xrl-cli-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let o = xrl(&["demo", "--out", dir.to_str().unwrap(), "--frames", "0..5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("report.html"), "the demo says where the report is");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    // Five explained frames embedded, a slider over them, the run card, the learning curve, and per-frame values.
    let frames_start = html.find("const frames = [").unwrap();
    let frames_end = html[frames_start..].find("];").unwrap() + frames_start;
    assert_eq!(html[frames_start..frames_end].matches("data:image/png;base64,").count(), 5);
    assert!(html.contains(r#"max="4""#));
    assert!(html.contains("MinAtar/Breakout-v0 — A2C"));
    assert!(html.contains("alt=\"learning curve\""));
    let info_start = html.find("const info = ").unwrap() + "const info = ".len();
    let info_end = html[info_start..].find(";\n").unwrap() + info_start;
    let info: serde_json::Value = serde_json::from_str(&html[info_start..info_end]).unwrap();
    assert_eq!(info.as_array().unwrap().len(), 5);
    assert_eq!(info[0]["policy"].as_array().unwrap().len(), 6);
    for method in [
        "grad",
        "guided",
        "gradcam:conv1",
        "guided-gradcam:conv1",
        "ig",
        "smoothgrad:grad",
        "occlusion",
        "perturbation",
    ] {
        assert!(html.contains(&format!("\"{method}\":")), "timing of {method}");
    }
    // The report needs nothing from the network.
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert_clean_failure(&xrl(&["demo", "--out", dir.to_str().unwrap()]), "not empty");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--inputs` explains given observations, `--targets` gives each its own action (the same maps as one call per
/// target), and `--trajectory` explains a recorded episode again without replaying it (the same maps as the run
/// that recorded it).
#[test]
fn explain_takes_given_inputs_per_input_targets_and_saved_trajectories() {
    let (dir, run) = imported_minatar_run("xrl-cli-explain-inputs");
    let methods = "grad,gradcam:conv1,ig,occlusion";
    let explain = |out: &str, extra: &[&str]| {
        let out = dir.join(out);
        let base = ["explain", "--run", run.to_str().unwrap(), "--methods", methods, "--save-maps", "--out"];
        let o = xrl(&[&base[..], &[out.to_str().unwrap()], extra].concat());
        assert!(o.status.success(), "{}", stderr(&o));
        out
    };
    let played = explain("played", &["--frames", "0..4", "--seed", "3"]);
    let trajectory = played.join("trajectory.safetensors");
    let again = explain("again", &["--trajectory", trajectory.to_str().unwrap()]);
    for m in ["grad", "gradcam_conv1", "ig", "occlusion"] {
        let (a, b) = (npy_values(&played.join(format!("{m}.npy"))), npy_values(&again.join(format!("{m}.npy"))));
        assert!(!a.is_empty() && a == b, "{m}: the trajectory's maps differ from the played episode's");
    }
    // The recorded observations as a user's file, with one action per input.
    let tr = xrl::trajectory::Trajectory::load(&trajectory).unwrap();
    let obs_path = dir.join("obs.npy");
    xrl_render::write_npy(&obs_path, &[4, 4, 10, 10], &tr.obs[..1600]).unwrap();
    let actions = [0usize, 3, 5, 1];
    let actions_path = dir.join("actions.txt");
    std::fs::write(&actions_path, actions.iter().map(|a| format!("{a}\n")).collect::<String>()).unwrap();
    let inputs = ["--inputs", obs_path.to_str().unwrap()];
    let per = explain("per-input", &[&inputs[..], &["--targets", actions_path.to_str().unwrap()]].concat());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(per.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["source"], "inputs");
    assert_eq!(summary["frames"][1]["target"], "action:3 (right)");
    for m in ["grad", "gradcam_conv1", "ig", "occlusion"] {
        let all = npy_values(&per.join(format!("{m}.npy")));
        let per_map = all.len() / 4;
        for (i, a) in actions.iter().enumerate() {
            let one =
                explain(&format!("{m}-{i}-action-{a}"), &[&inputs[..], &["--target", &format!("action:{a}")]].concat());
            let single = npy_values(&one.join(format!("{m}.npy")));
            assert_eq!(&all[i * per_map..(i + 1) * per_map], &single[i * per_map..(i + 1) * per_map], "{m} input {i}");
        }
    }
    // Inputs that do not fit the run, and targets that do not fit the inputs, are errors that say what fits.
    let bad = dir.join("bad.npy");
    xrl_render::write_npy(&bad, &[2, 3, 10, 10], &vec![0.0; 600]).unwrap();
    let e = dir.join("e");
    let base = ["explain", "--run", run.to_str().unwrap(), "--out", e.to_str().unwrap()];
    assert_clean_failure(&xrl(&[&base[..], &["--inputs", bad.to_str().unwrap()]].concat()), "[N, 4, 10, 10]");
    std::fs::write(&actions_path, "0\n1\n").unwrap();
    let args = [&base[..], &inputs[..], &["--targets", actions_path.to_str().unwrap()]].concat();
    assert_clean_failure(&xrl(&args), "2 target actions for 4 inputs");
    assert_clean_failure(&xrl(&[&base[..], &["--target", "value"]].concat()), "Q values only");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A reader that stops early (`xrl rollout … | head -1`) ends the command quietly; a full disk on standard output
/// is an `error:` line and exit 1. Neither panics.
#[test]
fn standard_output_closed_or_full_is_handled() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_xrl"))
        .args(["rollout", "--env", "CartPole-v1", "--episodes", "20000", "--seed", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.starts_with("episode    0"), "{first}");
    // The reader is dropped here: the pipe is closed with most of the output still to come.
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "a closed pipe is not an error: {}", stderr(&out));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    if let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") {
        let o = Command::new(env!("CARGO_BIN_EXE_xrl")).arg("envs").stdout(full).output().unwrap();
        assert_clean_failure(&o, "No space left on device");
        assert!(stderr(&o).starts_with("error:"), "{}", stderr(&o));
    } else {
        eprintln!("skipped the full-device case: no /dev/full here");
    }
}

/// Requests that would hold unbounded memory, or write over what is not a file, are refused before any work.
#[test]
fn unbounded_or_special_outputs_are_refused() {
    let o = xrl(&["render", "--env", "CartPole-v1", "--steps", "100000000", "--out", "/tmp/xrl-never.gif"]);
    assert_clean_failure(&o, "--steps must be between 1 and 10000");
    let dir = std::env::temp_dir().join(format!("xrl-cli-special-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("taken.gif")).unwrap();
    let o = xrl(&["render", "--env", "CartPole-v1", "--steps", "2", "--out", dir.join("taken.gif").to_str().unwrap()]);
    assert_clean_failure(&o, "is a directory, not a regular file");
    assert!(dir.join("taken.gif").is_dir(), "the directory is left as it was");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A run card edited to another game (other observations, or other actions) is refused by every command that
/// reads it, naming what disagrees — not played with meaningless returns, nor a panic in a reshape.
#[test]
fn a_card_that_disagrees_with_its_network_is_refused() {
    let (dir, run) = imported_minatar_run("xrl-cli-edited-card");
    let card = std::fs::read_to_string(run.join("run.toml")).unwrap();
    for other in ["MinAtar/Seaquest-v0", "MinAtar/Breakout-v1"] {
        std::fs::write(run.join("run.toml"), card.replace("MinAtar/Breakout-v0", other)).unwrap();
        let play = xrl(&["play", "--run", run.to_str().unwrap(), "--episodes", "1"]);
        assert_clean_failure(&play, "was edited");
        let e = dir.join("e");
        let explain = xrl(&["explain", "--run", run.to_str().unwrap(), "--out", e.to_str().unwrap()]);
        assert_clean_failure(&explain, other);
    }
    // A hyper-parameter outside its domain, likewise.
    let edited = card.replacen("gamma = 0.99", "gamma = 5.0", 1);
    assert_ne!(edited, card, "the card has a gamma line");
    std::fs::write(run.join("run.toml"), edited).unwrap();
    let play = xrl(&["play", "--run", run.to_str().unwrap(), "--episodes", "1"]);
    assert_clean_failure(&play, "gamma = 5 is outside [0, 1]");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A DQN run shorter than its random warm-up trains, but says first that it will never update, and which option
/// fixes it.
#[test]
fn a_run_shorter_than_its_schedule_warns() {
    let dir = std::env::temp_dir().join(format!("xrl-cli-short-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let o = xrl(&[
        "train",
        "--env",
        "CartPole-v1",
        "--agent",
        "dqn",
        "--steps",
        "2000",
        "--quiet",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("warning: the run is 2000 steps but DQN plays 10000 random steps"), "{}", stderr(&o));
    assert!(stderr(&o).contains("--steps"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Options of another agent, and a new run's options on a resume, are refused rather than silently ignored.
#[test]
fn options_that_do_not_apply_are_refused() {
    let new = ["train", "--env", "CartPole-v1", "--steps", "10", "--out", "/tmp/xrl-never"];
    for (extra, says) in [
        (&["--agent", "dqn", "--workers", "2"][..], "--workers is an A3C option"),
        (&["--agent", "a2c", "--frames", "4"][..], "--frames is a DRQN option"),
        (&["--agent", "a3c", "--core-size", "64"][..], "--core-size sets the units of a recurrent core"),
        (&["--agent", "a2c", "--double"][..], "--double, --dueling and --n-step are DQN options"),
        (&["--agent", "dqn", "--core", "lstm"][..], "--core is an A2C option"),
    ] {
        assert_clean_failure(&xrl(&[&new[..], extra].concat()), says);
    }
    // clap's own refusal: exit 2 and its usage message.
    let o = xrl(&["train", "--resume", "/tmp/xrl-never", "--agent", "a2c"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot be used with") && !stderr(&o).contains("panicked"));
}

/// `xrl evaluate` on a played episode: evaluate.json with every test for every method and the random-map control,
/// the plots, and a random map that correlates with nothing while integrated gradients does.
#[test]
fn evaluate_writes_every_test_and_the_random_control() {
    let (dir, run) = imported_minatar_run("xrl-cli-evaluate");
    let out = dir.join("ev");
    let args = ["evaluate", "--run", run.to_str().unwrap(), "--methods", "grad,ig", "--frames", "0..6", "--seed", "1"];
    let o = xrl(&[&args[..], &["--out", out.to_str().unwrap()]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("random-map"), "{}", stdout(&o));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("evaluate.json")).unwrap()).unwrap();
    assert_eq!(r["version"], 1);
    assert_eq!(r["frames"].as_array().unwrap().len(), 6);
    let methods: Vec<&str> = r["methods"].as_array().unwrap().iter().map(|m| m["method"].as_str().unwrap()).collect();
    assert_eq!(methods, ["grad", "ig"]);
    let faithful = |m: &serde_json::Value| m["faithfulness_correlation"]["mean"].as_f64().unwrap();
    assert!(faithful(&r["random_map"]).abs() < 0.2, "{}", r["random_map"]);
    assert!(faithful(&r["methods"][1]) > 0.8, "{}", r["methods"][1]);
    for m in r["methods"].as_array().unwrap().iter().chain([&r["random_map"]]) {
        assert_eq!(m["deletion"]["deletion"]["mean"].as_array().unwrap().len(), 101, "one cell per step");
        assert_eq!(m["agreement"]["top_percent"].as_array().unwrap().len(), 99);
        assert!(m["infidelity"]["mean"].as_f64().unwrap() >= 0.0);
    }
    // Randomisation re-initialises every layer from the output down: one cascading variant per layer.
    let rand = &r["methods"][0]["randomisation"];
    assert_eq!(rand["layers"], serde_json::json!(["head.out", "torso.fc.0", "torso.convs.0"]));
    assert_eq!(rand["cascading"].as_array().unwrap().len(), 3);
    assert!(r["random_map"]["randomisation"].is_null());
    for f in ["deletion.png", "insertion.png", "agreement.png"] {
        assert!(std::fs::read(out.join(f)).unwrap().starts_with(b"\x89PNG"), "{f}");
    }
    // The same seed gives the same numbers.
    let again = dir.join("ev-again");
    let o = xrl(&[&args[..], &["--out", again.to_str().unwrap()]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let strip = |p: &std::path::Path| {
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        for m in v["methods"].as_array_mut().unwrap() {
            m["seconds"] = serde_json::Value::Null;
            m["map_seconds"] = serde_json::Value::Null;
        }
        v["random_map"]["seconds"] = serde_json::Value::Null;
        v["random_map"]["map_seconds"] = serde_json::Value::Null;
        v["run"] = serde_json::Value::Null;
        v
    };
    assert_eq!(strip(&out.join("evaluate.json")), strip(&again.join("evaluate.json")));
    // A vector-observation agent (CartPole): every test but the picture measures and object interventions, said so.
    let fx = concat!(env!("CARGO_MANIFEST_DIR"), "/../xrl/tests/fixtures/");
    let cp = dir.join("cartpole");
    let zip = format!("{fx}sb3_dqn_cartpole.zip");
    let o = xrl(&["import", &zip, "--format", "sb3", "--arch", "sb3-mlp-dqn", "--env", "CartPole-v1", "--out"]
        .iter()
        .copied()
        .chain([cp.to_str().unwrap()])
        .collect::<Vec<_>>());
    assert!(o.status.success(), "{}", stderr(&o));
    let cp_out = dir.join("ev-cartpole");
    let o = xrl(&["evaluate", "--run", cp.to_str().unwrap(), "--frames", "0..5", "--out", cp_out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Spearman only") && stderr(&o).contains("object interventions skipped"),
        "{}",
        stderr(&o)
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(cp_out.join("evaluate.json")).unwrap()).unwrap();
    assert_eq!(r["config"]["agreement"]["ks"], serde_json::json!([1, 2]), "k below CartPole's 4 features");
    std::fs::remove_dir_all(&dir).unwrap();
}
