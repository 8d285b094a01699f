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
    assert_clean_failure(&xrl(&["rollout", "--env", "CartPole-v1", "--episodes", "0"]), "at least 1");
    assert_clean_failure(&xrl(&["rollout", "--env", "MinAtar/Breakout-v0", "--sticky", "2"]), "sticky");
    assert_clean_failure(&xrl(&["rollout", "--env", "MinAtar/Breakout-v0", "--rng", "mt"]), "fast");
    assert_clean_failure(&xrl(&["render", "--env", "CartPole-v1", "--out", "x.mp4"]), ".gif");
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
    for cmd in [vec!["envs"], vec!["rollout"], vec!["render"], vec!["bench", "envs"]] {
        let mut args = cmd.clone();
        args.push("--help");
        let o = xrl(&args);
        assert!(o.status.success() && stdout(&o).contains("Usage: xrl"), "{cmd:?}");
    }
}
