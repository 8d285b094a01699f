//! Bad input and faults, across every command, as a careless user and a fault injector would give them. Each case
//! asserts what the README promises: a non-zero exit, an `error:` line that names what was wrong (the option or
//! file, the value found) and what to do, and no panic; where data could be lost, that every file that existed
//! before is still there, unchanged. Cases are tables, one per command, so adding one is adding a line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

fn xrl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xrl")).args(args).output().expect("the xrl binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// One case: its arguments and the words the error must contain (what was wrong, and what to do).
struct Case<'a> {
    args: Vec<String>,
    needles: &'a [&'a str],
}

fn case<'a>(args: &[&str], needles: &'a [&'a str]) -> Case<'a> {
    Case { args: args.iter().map(|s| s.to_string()).collect(), needles }
}

fn cs<'a>(args: Vec<String>, needles: &'a [&'a str]) -> Case<'a> {
    Case { args, needles }
}

/// Runs every case (in parallel threads: each is a separate process) and reports every one that breaks the
/// promise, all at once.
fn check_all(cases: Vec<Case>) {
    eprintln!("{} cases", cases.len());
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .map(|c| {
                s.spawn(move || {
                    let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
                    let o = xrl(&args);
                    verdict(&o, c.needles).err().map(|why| format!("xrl {}\n    {why}", c.args.join(" ")))
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().unwrap()).collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {} cases broke the promise:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Non-zero exit, a line starting `error:` with every needle, no panic.
fn verdict(o: &Output, needles: &[&str]) -> Result<(), String> {
    let err = text(&o.stderr);
    if o.status.success() {
        return Err(format!("exited 0; stdout: {}", text(&o.stdout)));
    }
    if err.contains("panicked") || err.contains("RUST_BACKTRACE") {
        return Err(format!("panicked: {err}"));
    }
    if !err.lines().any(|l| l.starts_with("error:")) {
        return Err(format!("no `error:` line: {err}"));
    }
    let missing: Vec<&&str> = needles.iter().filter(|n| !err.contains(**n)).collect();
    if !missing.is_empty() {
        return Err(format!("stderr lacks {missing:?}: {err}"));
    }
    Ok(())
}

fn fixtures() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../xrl/tests/fixtures"))
}

/// A scratch directory of this test process.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("xrl-bad-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The shared runs the cases read (never write): an imported MinAtar DQN, a trained CartPole DQN and a trained
/// MinAtar A2C, made once per test process.
struct Runs {
    minatar: String,
    cartpole: String,
    a2c: String,
}

fn runs() -> &'static Runs {
    static RUNS: OnceLock<Runs> = OnceLock::new();
    RUNS.get_or_init(|| {
        let root = scratch("runs");
        let minatar = root.join("minatar").display().to_string();
        let pt = fixtures().join("minatar_dqn.pt").display().to_string();
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
            &minatar,
        ]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        let cartpole = root.join("cartpole").display().to_string();
        let o = xrl(&[
            "train",
            "--env",
            "CartPole-v1",
            "--steps",
            "2000",
            "--checkpoint-every",
            "1000",
            "--out",
            &cartpole,
            "--quiet",
        ]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        let a2c = root.join("a2c").display().to_string();
        let o = xrl(&[
            "train",
            "--env",
            "MinAtar/Breakout-v0",
            "--agent",
            "a2c",
            "--steps",
            "1000",
            "--out",
            &a2c,
            "--quiet",
        ]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        Runs { minatar, cartpole, a2c }
    })
}

/// A copy of a shared run that a case may damage.
fn copy_run(from: &str, to: &Path) -> String {
    let o = Command::new("cp").args(["-r", from]).arg(to).status().unwrap();
    assert!(o.success());
    to.display().to_string()
}

/// Every file under `dir` (but the lock file) with its bytes, for "nothing changed" checks.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().map(Result::unwrap) {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if e.file_name() != "run.lock" {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// A `.npy` of little-endian f32 (`<f4`) or i64 (`<i8`) values.
fn write_npy(path: &Path, shape: &[usize], values: &[f32], dtype: &str) {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let dims = if dims.len() == 1 { format!("{},", dims[0]) } else { dims.join(", ") };
    let mut header = format!("{{'descr': '{dtype}', 'fortran_order': False, 'shape': ({dims}), }}");
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend((header.len() as u16).to_le_bytes());
    b.extend(header.as_bytes());
    for v in values {
        if dtype == "<i8" {
            b.extend((*v as i64).to_le_bytes());
        } else {
            b.extend(v.to_le_bytes());
        }
    }
    std::fs::write(path, b).unwrap();
}

/// Runs xrl with `args`, failing the test (`what` says which case) if it has not finished after 20 s: a command
/// that waits on a FIFO would never finish.
fn within_20s(args: &[&str], what: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xrl"))
        .args(args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed().as_secs() > 20 {
            let _ = child.kill();
            panic!("{what}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn mkfifo(path: &Path) -> bool {
    Command::new("mkfifo").arg(path).status().is_ok_and(|s| s.success())
}

#[test]
fn envs_rollout_and_render() {
    let d = scratch("render");
    let file = d.join("a-file");
    std::fs::write(&file, b"a file where a folder is needed").unwrap();
    let under_file = file.join("x.gif").display().to_string();
    std::fs::create_dir_all(d.join("dir.gif")).unwrap();
    let dir_gif = d.join("dir.gif").display().to_string();
    let fifo = d.join("fifo.gif");
    let have_fifo = mkfifo(&fifo);
    let fifo = fifo.display().to_string();
    std::os::unix::fs::symlink("/dev/full", d.join("full.gif")).unwrap();
    let full = d.join("full.gif").display().to_string();
    let r = |extra: &[&str]| -> Vec<String> {
        ["render", "--env", "CartPole-v1", "--steps", "2"].iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let mut cases = vec![
        case(&["envs", "--jsn"], &["unexpected argument '--jsn'", "--json"]),
        case(&["envs", "extra"], &["unexpected argument 'extra'"]),
        case(&["rollout", "--env", "Pong-v9"], &["unknown environment id `Pong-v9`", "known ids: CartPole-v1"]),
        case(&["rollout", "--env", ""], &["unknown environment id ``", "known ids"]),
        case(&["rollout", "--env", "minatar/breakout-v0"], &["`minatar/breakout-v0`", "MinAtar/Breakout-v0"]),
        case(&["rollout"], &["--env <ID>", "required"]),
        case(&["rollout", "--env", "CartPole-v1", "--policy", "dqn"], &["`dqn`", "available policy is `random`"]),
        case(&["rollout", "--env", "CartPole-v1", "--episodes", "0"], &["--episodes", "between 1 and", "got 0"]),
        case(&["rollout", "--env", "CartPole-v1", "--episodes", "-3"], &["invalid value '-3' for '--episodes"]),
        case(&["rollout", "--env", "CartPole-v1", "--episodes", "2000000"], &["--episodes", "between 1 and 1000000"]),
        case(&["rollout", "--env", "CartPole-v1", "--episodes", "many"], &["invalid value 'many'", "--episodes"]),
        case(&["rollout", "--env", "CartPole-v1", "--seed", "-1"], &["invalid value '-1' for '--seed"]),
        case(&["rollout", "--env", "MinAtar/Breakout-v0", "--sticky", "2"], &["sticky", "2"]),
        case(&["rollout", "--env", "MinAtar/Breakout-v0", "--sticky", "NaN"], &["sticky", "NaN"]),
        case(&["rollout", "--env", "MinAtar/Breakout-v0", "--rng", "mt"], &["`mt`", "use `fast` or `numpy`"]),
        case(
            &["rollout", "--env", "CartPole-v1", "--sticky", "0.5"],
            &["MinAtar options", "CartPole-v1", "leave them out"],
        ),
        case(&["rollout", "--env", "Acrobot-v1", "--no-ramping"], &["MinAtar options", "Acrobot-v1"]),
        case(&["rollout", "--env", "CartPole-v1", "--rng", "numpy"], &["MinAtar options"]),
        case(
            &["rollout", "--env", "MinAtar/Breakout-v0", "--rng", "numpy", "--seed", "4294967296"],
            &["--rng numpy takes a --seed below 2^32", "4294967296"],
        ),
        case(&["render", "--env", "CartPole-v1", "--out", "x.avi"], &[".gif or .mp4", "x.avi"]),
        case(&["render", "--env", "CartPole-v1", "--out", "noext"], &[".gif or .mp4", "noext"]),
        cs(r(&["--out", &under_file]), &["cannot write", "a-file"]),
        cs(r(&["--out", &dir_gif]), &["dir.gif", "a directory", "choose a file name"]),
        cs(r(&["--out", &full]), &["full.gif", "a device"]),
        cs(r(&["--out", "/proc/xrl.gif"]), &["/proc/xrl.gif"]),
        cs(r(&["--out", "x.gif", "--fps", "0"]), &["--fps", "(0, 100]", "got 0"]),
        cs(r(&["--out", "x.gif", "--fps", "NaN"]), &["--fps", "NaN"]),
        cs(r(&["--out", "x.gif", "--fps", "1000"]), &["--fps", "1000"]),
        case(
            &["render", "--env", "CartPole-v1", "--steps", "0", "--out", "x.gif"],
            &["--steps", "between 1 and 10000", "got 0"],
        ),
        case(&["render", "--env", "CartPole-v1", "--steps", "20000", "--out", "x.gif"], &["--steps", "10000"]),
        case(&["render", "--env", "Nope-v0", "--out", "x.gif"], &["`Nope-v0`", "known ids"]),
        case(&["render", "--env", "CartPole-v1"], &["--out <OUT>", "required"]),
    ];
    if have_fifo {
        cases.push(cs(r(&["--out", &fifo]), &["fifo.gif", "FIFO"]));
    }
    check_all(cases);
    assert!(!Path::new("x.gif").exists() && !Path::new("noext").exists(), "nothing written for a refused command");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn new_training_runs() {
    let d = scratch("train");
    let existing = runs().cartpole.clone();
    let before = snapshot(Path::new(&existing));
    let file = d.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let under_file = file.join("run").display().to_string();
    let out = d.join("never").display().to_string();
    let t = |extra: &[&str]| -> Vec<String> {
        [&["train", "--env", "CartPole-v1", "--steps", "100", "--out", &out][..], extra]
            .concat()
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let c = |args: Vec<String>, needles| Case { args, needles };
    let cases = vec![
        c(t(&["--agent", "sac"]), &["unknown agent `sac`", "`a3c`, `ppo` and `rainbow`"]),
        c(t(&["--agent", ""]), &["unknown agent ``"]),
        c(t(&["--n-step", "0"]), &["--n-step", "at least 1"]),
        c(t(&["--n-step", "5000"]), &["n_step = 5000", "between 1 and 1000"]),
        c(t(&["--lr", "0"]), &["--lr", "positive", "2.5e-4"]),
        c(t(&["--lr", "NaN"]), &["--lr", "positive"]),
        c(t(&["--lr", "inf"]), &["--lr", "positive"]),
        c(t(&["--lr", "fast"]), &["invalid value 'fast'", "--lr"]),
        c(t(&["--workers", "2"]), &["--workers is an A3C option", "dqn does not use it"]),
        c(t(&["--agent", "a3c", "--workers", "5000"]), &["workers = 5000", "between 0 and 1024"]),
        c(t(&["--frames", "3"]), &["--frames is a DRQN option"]),
        c(t(&["--agent", "drqn", "--frames", "1"]), &["--frames must be between 2 and 1024 for drqn", "got 1"]),
        c(t(&["--core", "lstm"]), &["--core is an A2C option", "--agent drqn"]),
        c(t(&["--agent", "a2c", "--core", "rnn"]), &["unknown --core `rnn`", "lstm or gru"]),
        c(
            t(&["--agent", "a2c", "--core", "lstm", "--core-size", "100000000"]),
            &["--core-size must be between 1 and 65536"],
        ),
        c(t(&["--agent", "drqn", "--frames", "100000"]), &["--frames must be between 2 and 1024"]),
        c(t(&["--agent", "drqn", "--core-size", "0"]), &["--core-size must be between 1 and 65536", "got 0"]),
        c(t(&["--core-size", "64"]), &["--core-size", "--agent drqn or a2c --core"]),
        c(t(&["--agent", "a2c", "--double"]), &["--double, --dueling and --n-step are DQN options", "a2c"]),
        c(t(&["--agent", "a3c", "--n-step", "3"]), &["DQN options", "a3c"]),
        c(t(&["--checkpoint-every", "0"]), &["--checkpoint-every", "at least 1"]),
        c(t(&["--sticky", "0.5"]), &["--sticky and --no-ramping are MinAtar options", "CartPole-v1"]),
        c(
            vec![
                "train".into(),
                "--env".into(),
                "MinAtar/Breakout-v0".into(),
                "--steps".into(),
                "9".into(),
                "--sticky".into(),
                "1.5".into(),
                "--out".into(),
                out.clone(),
            ],
            &["--sticky is a probability in [0, 1]", "1.5"],
        ),
        c(t(&["--device", "gpu"]), &["`gpu`", "use `cpu`"]),
        c(t(&["--device", "cuda:x"]), &["cuda:x", "whole number"]),
        c(t(&["--env", "Pendulum-v1"]), &["cannot be used multiple times"]),
        c(
            vec![
                "train".into(),
                "--env".into(),
                "Pendulum-v1".into(),
                "--steps".into(),
                "9".into(),
                "--out".into(),
                out.clone(),
            ],
            &["Pendulum-v1 has continuous actions", "CartPole-v1"],
        ),
        c(
            vec![
                "train".into(),
                "--env".into(),
                "Nope".into(),
                "--steps".into(),
                "9".into(),
                "--out".into(),
                out.clone(),
            ],
            &["unknown environment id `Nope`", "known ids"],
        ),
        c(
            vec!["train".into(), "--env".into(), "CartPole-v1".into(), "--steps".into(), "9".into()],
            &["--out", "required"],
        ),
        c(
            vec!["train".into(), "--env".into(), "CartPole-v1".into(), "--out".into(), out.clone()],
            &["--steps", "required"],
        ),
        c(vec!["train".into()], &["required"]),
        c(t(&["--steps", "3000", "--checkpoint-every", "1"]), &["cannot be used multiple times"]),
        c(
            vec![
                "train".into(),
                "--env".into(),
                "CartPole-v1".into(),
                "--steps".into(),
                "3000".into(),
                "--checkpoint-every".into(),
                "1".into(),
                "--out".into(),
                out.clone(),
            ],
            &["--checkpoint-every must be at least 3 steps", "at most 1000 checkpoints"],
        ),
        c(
            vec![
                "train".into(),
                "--env".into(),
                "CartPole-v1".into(),
                "--steps".into(),
                "18446744073709551615".into(),
                "--out".into(),
                out.clone(),
            ],
            &["--steps must be between 1 and 1000000000000"],
        ),
        c(
            vec![
                "train".into(),
                "--env".into(),
                "CartPole-v1".into(),
                "--steps".into(),
                "0".into(),
                "--out".into(),
                out.clone(),
            ],
            &["--steps must be between 1 and", "got 0"],
        ),
        c(
            vec![
                "train".into(),
                "--env".into(),
                "CartPole-v1".into(),
                "--steps".into(),
                "-5".into(),
                "--out".into(),
                out.clone(),
            ],
            &["invalid value '-5' for '--steps"],
        ),
        c(
            vec![
                "train".into(),
                "--env".into(),
                "CartPole-v1".into(),
                "--steps".into(),
                "9".into(),
                "--out".into(),
                existing.clone(),
            ],
            &["already holds a run", "--resume", "another --out"],
        ),
        c(
            vec![
                "train".into(),
                "--env".into(),
                "CartPole-v1".into(),
                "--steps".into(),
                "9".into(),
                "--out".into(),
                under_file,
            ],
            &["a-file"],
        ),
        c(
            vec!["train".into(), "--resume".into(), existing.clone(), "--env".into(), "CartPole-v1".into()],
            &["cannot be used with"],
        ),
        c(
            vec!["train".into(), "--resume".into(), existing.clone(), "--agent".into(), "a2c".into()],
            &["cannot be used with"],
        ),
        c(
            vec!["train".into(), "--resume".into(), existing.clone(), "--seed".into(), "3".into()],
            &["cannot be used with"],
        ),
    ];
    let mut cases = cases;
    #[cfg(not(feature = "ndarray"))]
    cases.push(c(t(&["--device", "ndarray"]), &["--features ndarray"]));
    check_all(cases);
    assert!(!Path::new(&out).exists(), "no run directory left by a refused command");
    assert_eq!(snapshot(Path::new(&existing)), before, "the existing run is untouched");
    let _ = std::fs::remove_dir_all(&d);
}

/// A damaged run: each case copies a trained run, damages one thing, and checks that resuming, playing and
/// explaining it are refused with the file and the fix — and that the resume changed nothing.
#[test]
fn damaged_runs_are_refused_and_left_as_they_were() {
    let d = scratch("damaged");
    let base = runs().cartpole.clone();
    type Damage = Box<dyn Fn(&Path)>;
    let edit_card = |from: &'static str, to: &'static str| -> Damage {
        Box::new(move |run: &Path| {
            let p = run.join("run.toml");
            let t = std::fs::read_to_string(&p).unwrap();
            assert!(t.contains(from), "{from} in {t}");
            std::fs::write(&p, t.replacen(from, to, 1)).unwrap();
        })
    };
    let write = |rel: &'static str, bytes: &'static [u8]| -> Damage {
        Box::new(move |run: &Path| std::fs::write(run.join(rel), bytes).unwrap())
    };
    let flip = |suffix: &'static str| -> Damage {
        Box::new(move |run: &Path| {
            let p = run.join(format!("checkpoints/step-0000002000.{suffix}"));
            let mut b = std::fs::read(&p).unwrap();
            let i = b.len() / 2;
            b[i] ^= 0x5A;
            std::fs::write(&p, b).unwrap();
        })
    };
    let remove =
        |rel: &'static str| -> Damage { Box::new(move |run: &Path| std::fs::remove_file(run.join(rel)).unwrap()) };
    // (name, damage, needles of the resume's error, whether play and explain are refused too)
    let cases: Vec<(&str, Damage, &[&str], bool)> = vec![
        ("card-garbage", write("run.toml", b"not = [toml"), &["run.toml", "invalid run card"], true),
        ("card-empty", write("run.toml", b""), &["run.toml", "invalid run card", "missing field"], true),
        (
            "card-gamma",
            edit_card("gamma = 0.99", "gamma = 5.0"),
            &["run.toml", "gamma = 5", "[0, 1]", "put each value back"],
            true,
        ),
        (
            "card-epsilon",
            edit_card("epsilon_end = 0.05", "epsilon_end = 7.0"),
            &["epsilon_end = 7", "a probability"],
            true,
        ),
        ("card-nstep", edit_card("n_step = 1", "n_step = 0"), &["n_step = 0", "one-step"], true),
        ("card-batch", edit_card("batch_size = 128", "batch_size = 0"), &["batch_size = 0"], true),
        ("card-type", edit_card("seed = 0", "seed = \"zero\""), &["run.toml", "invalid run card", "seed"], true),
        (
            "card-env",
            edit_card("id = \"CartPole-v1\"", "id = \"Acrobot-v1\""),
            &["run.toml", "the env id or the network was edited", "put back"],
            true,
        ),
        (
            "card-env-unknown",
            edit_card("id = \"CartPole-v1\"", "id = \"CartPole-v9\""),
            &["run.toml", "CartPole-v9", "known ids"],
            true,
        ),
        (
            "card-unknown-field",
            edit_card("seed = 0", "seed = 0\ncolour = 3"),
            &["run.toml", "unknown field `colour`"],
            true,
        ),
        (
            "card-agent-kind",
            edit_card("kind = \"dqn\"", "kind = \"sac\""),
            &["run.toml", "unknown variant `sac`"],
            true,
        ),
        ("card-hidden", edit_card("hidden = [", "hidden = [7, "), &["online.safetensors"], true),
        ("card-missing", remove("run.toml"), &["run.toml", "cannot read the run card", "made by `xrl train`"], true),
        ("weights-flipped", flip("online.safetensors"), &["online.safetensors", "checksum mismatch"], true),
        ("target-flipped", flip("target.safetensors"), &["target.safetensors", "checksum mismatch"], false),
        ("replay-flipped", flip("replay.bin"), &["replay.bin", "checksum mismatch"], false),
        ("optim-flipped", flip("optim.bin"), &["optim.bin", "checksum mismatch"], false),
        (
            "weights-gone",
            remove("checkpoints/step-0000002000.online.safetensors"),
            &["online.safetensors", "cannot read checkpoint file"],
            true,
        ),
        (
            "optim-gone",
            remove("checkpoints/step-0000002000.optim.bin"),
            &["optim.bin", "cannot read checkpoint file"],
            false,
        ),
        (
            "index-and-records-gone",
            Box::new(|run: &Path| {
                std::fs::remove_file(run.join("checkpoints/latest.json")).unwrap();
                for e in std::fs::read_dir(run.join("checkpoints")).unwrap().map(Result::unwrap) {
                    if e.file_name().to_string_lossy().ends_with(".state.json") {
                        std::fs::remove_file(e.path()).unwrap();
                    }
                }
            }),
            &["latest.json: missing", "nothing was changed", "Put latest.json back", "new --out"],
            true,
        ),
        (
            "index-damaged-and-weights-flipped",
            Box::new(|run: &Path| {
                std::fs::write(run.join("checkpoints/latest.json"), b"{\"step\": 20").unwrap();
                let p = run.join("checkpoints/step-0000002000.online.safetensors");
                let mut b = std::fs::read(&p).unwrap();
                b[200] ^= 1;
                std::fs::write(&p, b).unwrap();
            }),
            &["latest.json: damaged", "Put latest.json back"],
            true,
        ),
        (
            "metrics-garbled",
            garble_metrics(3, "1,2,three"),
            &["metrics.csv", "line 4: `1,2,three`", "Fix or restore that line"],
            false,
        ),
        ("metrics-header", garble_metrics(0, "a,b,c"), &["metrics.csv", "line 1: the header"], false),
        (
            "metrics-truncated",
            Box::new(|run: &Path| {
                let p = run.join("metrics.csv");
                let t = std::fs::read_to_string(&p).unwrap();
                std::fs::write(&p, t.lines().take(3).collect::<Vec<_>>().join("\n") + "\n").unwrap();
            }),
            &["metrics.csv", "the log ends after 2 episodes", "the checkpoint counts"],
            false,
        ),
        (
            "card-checkpoint-every",
            edit_card("checkpoint_every = 1000", "checkpoint_every = 0"),
            &["run.toml", "checkpoint_every = 0", "at least 1 step"],
            true,
        ),
        (
            "index-escapes",
            Box::new(|run: &Path| {
                let p = run.join("checkpoints/latest.json");
                let t = std::fs::read_to_string(&p).unwrap();
                std::fs::write(&p, t.replace("\"stem\": \"step-0000002000\"", "\"stem\": \"../../precious\"")).unwrap();
                for e in std::fs::read_dir(run.join("checkpoints")).unwrap().map(Result::unwrap) {
                    if e.file_name().to_string_lossy().ends_with(".state.json") {
                        std::fs::remove_file(e.path()).unwrap();
                    }
                }
            }),
            &["latest.json: damaged", "do not belong together", "../../precious"],
            true,
        ),
        (
            "metrics-gone",
            remove("metrics.csv"),
            &["metrics.csv", "cannot read the run's episode log", "Put it back"],
            false,
        ),
    ];
    eprintln!("{} cases", cases.len());
    let mut failures = vec![];
    for (name, damage, needles, readers_refused) in &cases {
        let run = copy_run(&base, &d.join(name));
        damage(Path::new(&run));
        let before = snapshot(Path::new(&run));
        let o = xrl(&["train", "--resume", &run, "--steps", "2500", "--quiet"]);
        if let Err(why) = verdict(&o, needles) {
            failures.push(format!("{name}: resume: {why}"));
        }
        let after = snapshot(Path::new(&run));
        // Nothing may change, run.toml included: `--steps` is recorded only once the run passes every check.
        let changed: Vec<_> = before
            .iter()
            .filter(|(p, b)| after.iter().find(|(q, _)| q == p).is_none_or(|(_, a)| a != b))
            .map(|(p, _)| p.display().to_string())
            .collect();
        if !changed.is_empty() || after.len() != before.len() {
            failures.push(format!(
                "{name}: the refused resume changed {changed:?} ({} → {} files)",
                before.len(),
                after.len()
            ));
        }
        if *readers_refused {
            for args in [
                vec!["play", "--run", &run, "--episodes", "1"],
                vec!["explain", "--run", &run, "--frames", "0..2", "--out", &format!("{run}-explain")],
            ] {
                if let Err(why) = verdict(&xrl(&args), &[]) {
                    failures.push(format!("{name}: {}: {why}", args[0]));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} damaged runs:\n{}", failures.len(), cases.len(), failures.join("\n"));
    let _ = std::fs::remove_dir_all(&d);
}

fn garble_metrics(line: usize, with: &'static str) -> Box<dyn Fn(&Path)> {
    Box::new(move |run: &Path| {
        let p = run.join("metrics.csv");
        let t = std::fs::read_to_string(&p).unwrap();
        let mut lines: Vec<&str> = t.lines().collect();
        lines[line] = with;
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    })
}

#[test]
fn resuming_playing_and_importing() {
    let d = scratch("resume");
    let r = runs();
    let card_only = d.join("card-only");
    std::fs::create_dir_all(&card_only).unwrap();
    std::fs::copy(Path::new(&r.cartpole).join("run.toml"), card_only.join("run.toml")).unwrap();
    let card_only = card_only.display().to_string();
    let a_file = d.join("a-file");
    std::fs::write(&a_file, b"x").unwrap();
    let a_file = a_file.display().to_string();
    let fifo = d.join("play.gif");
    let have_fifo = mkfifo(&fifo);
    let fifo = fifo.display().to_string();
    std::fs::create_dir_all(d.join("dir.gif")).unwrap();
    let dir_gif = d.join("dir.gif").display().to_string();
    let fx = |f: &str| fixtures().join(f).display().to_string();
    let garbage = d.join("garbage.pt");
    std::fs::write(&garbage, b"this is not a pickle").unwrap();
    let garbage = garbage.display().to_string();
    let nan_st = d.join("nan.safetensors");
    {
        // The fixture's first weight made NaN: a diverged network must not be imported.
        let mut b = std::fs::read(fixtures().join("minatar_dqn.safetensors")).unwrap();
        let header = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
        b[8 + header..12 + header].copy_from_slice(&f32::NAN.to_le_bytes());
        std::fs::write(&nan_st, b).unwrap();
    }
    let nan_st = nan_st.display().to_string();
    let new = d.join("new").display().to_string();
    let demo_dir = d.join("demo");
    let o = xrl(&["demo", "--out", demo_dir.to_str().unwrap(), "--frames", "0..2"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let demo_run = demo_dir.join("run").display().to_string();
    let imp = |file: &str, format: &str, arch: &str, env: &str, out: &str| -> Vec<String> {
        ["import", file, "--format", format, "--arch", arch, "--env", env, "--out", out]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let s = |v: &[&str]| -> Vec<String> { v.iter().map(|s| s.to_string()).collect() };
    let c = |args: Vec<String>, needles| Case { args, needles };
    let (cp, mi) = (r.cartpole.as_str(), r.minatar.as_str());
    let mut cases = vec![
        c(s(&["train", "--resume", "/nonexistent/run"]), &["/nonexistent/run/run.toml", "cannot read the run card"]),
        c(s(&["train", "--resume", &a_file]), &["a-file/run.toml", "cannot read the run card"]),
        c(
            s(&["train", "--resume", mi]),
            &["imported from", "no training state", "xrl train --env MinAtar/Breakout-v0"],
        ),
        c(s(&["train", "--resume", &demo_run]), &["holds weights only", "xrl demo --train"]),
        c(
            s(&["train", "--resume", cp, "--steps", "1000"]),
            &["--steps 1000 is below the 2000 steps", "give 2000 or more"],
        ),
        c(s(&["train", "--resume", cp, "--lr", "0"]), &["--lr must be a positive number"]),
        c(s(&["train", "--resume", cp, "--lr", "-1e-3"]), &["--lr must be a positive number"]),
        c(s(&["play", "--run", cp, "--epsilon", "-0.5"]), &["--epsilon must be in [0, 1]", "got -0.5"]),
        c(s(&["train", "--resume", cp, "--workers", "2"]), &["cannot be used with"]),
        c(s(&["play", "--run", "/nonexistent/run"]), &["/nonexistent/run/run.toml", "made by `xrl train`"]),
        c(s(&["play", "--run", &card_only]), &["has no checkpoint yet", "train longer or resume it"]),
        c(s(&["play", "--run", cp, "--episodes", "0"]), &["--episodes", "between 1 and 1000000", "got 0"]),
        c(s(&["play", "--run", cp, "--episodes", "99999999"]), &["--episodes", "1000000"]),
        c(s(&["play", "--run", cp, "--epsilon", "2"]), &["--epsilon must be in [0, 1]", "got 2"]),
        c(s(&["play", "--run", cp, "--epsilon", "NaN"]), &["--epsilon must be in [0, 1]", "NaN"]),
        c(s(&["play", "--run", cp, "--gif", "x.png"]), &["--gif must name a .gif file", "x.png"]),
        c(s(&["play", "--run", cp, "--gif", &dir_gif, "--episodes", "1"]), &["dir.gif", "a directory"]),
        c(s(&["play", "--run", cp, "--device", "tpu"]), &["`tpu`", "use `cpu`"]),
        c(s(&["play", "--episodes", "1"]), &["--run <RUN>", "required"]),
        c(imp("/nonexistent.pt", "pytorch", "mlp-dqn", "CartPole-v1", &new), &["/nonexistent.pt"]),
        c(
            imp(&fx("minatar_dqn.pt"), "onnx", "mlp-dqn", "CartPole-v1", &new),
            &["unknown format `onnx`", "pytorch, safetensors or sb3"],
        ),
        c(
            imp(&fx("minatar_dqn.pt"), "pytorch", "resnet", "CartPole-v1", &new),
            &["unknown architecture `resnet`", "known: nature-dqn"],
        ),
        c(imp(&fx("minatar_dqn.pt"), "pytorch", "mlp-dqn", "CartPole-v1", &new), &["minatar_dqn.pt", "no tensors"]),
        c(
            imp(&fx("minatar_dqn.pt"), "pytorch", "minatar-dqn", "CartPole-v1", &new),
            &["minatar-dqn does not fit this environment"],
        ),
        c(
            imp(&fx("mlp_dqn.cleanrl_model"), "pytorch", "mlp-dqn", "Pendulum-v1", &new),
            &["Pendulum-v1 has continuous actions"],
        ),
        c(
            imp(&fx("mlp_dqn.cleanrl_model"), "pytorch", "mlp-dqn", "CartPole-v9", &new),
            &["`CartPole-v9`", "known ids"],
        ),
        c(imp(&fx("mlp_dqn.cleanrl_model"), "pytorch", "mlp-dqn", "Acrobot-v1", &new), &["mlp_dqn.cleanrl_model"]),
        c(
            imp(&fx("mlp_dqn.cleanrl_model"), "pytorch", "mlp-dqn", "CartPole-v1", cp),
            &["already holds a run", "another --out"],
        ),
        c(imp(&garbage, "pytorch", "mlp-dqn", "CartPole-v1", &new), &["garbage.pt", "cannot read PyTorch weights"]),
        c(imp(&garbage, "sb3", "sb3-mlp-dqn", "CartPole-v1", &new), &["garbage.pt"]),
        c(imp(&garbage, "safetensors", "mlp-dqn", "CartPole-v1", &new), &["garbage.pt", "safetensors"]),
        c(imp(&fx("minatar_dqn.pt"), "sb3", "sb3-mlp-dqn", "CartPole-v1", &new), &["minatar_dqn.pt"]),
        c(
            [imp(&fx("sb3_dqn_cartpole.zip"), "sb3", "sb3-mlp-dqn", "CartPole-v1", &new), s(&["--key", "model"])]
                .concat(),
            &["--key picks a state dict nested in a PyTorch file", "leave --key out"],
        ),
        c(
            imp(&fx("minatar_dqn.pt"), "pytorch", "minatar-dqn", "MinAtar/Seaquest-v0", &new),
            &["are they for another environment?", "[10, 10, 10]"],
        ),
        c(
            imp(&fx("minatar_dqn.pt"), "pytorch", "minatar-dqn", "MinAtar/Breakout-v0", &a_file),
            &["is not a directory", "choose a new directory"],
        ),
        c(imp(&nan_st, "safetensors", "minatar-dqn", "MinAtar/Breakout-v0", &new), &["nan.safetensors", "NaN"]),
        c(imp(&d.display().to_string(), "pytorch", "mlp-dqn", "CartPole-v1", &new), &["xrl-bad-"]),
        c(
            [imp(&fx("mlp_dqn_nested.pt"), "pytorch", "mlp-dqn", "CartPole-v1", &new), s(&["--key", "nothing"])]
                .concat(),
            &["mlp_dqn_nested.pt", "nothing"],
        ),
    ];
    if have_fifo {
        cases.push(c(s(&["play", "--run", cp, "--gif", &fifo, "--episodes", "1"]), &["play.gif", "FIFO"]));
    }
    let before = snapshot(Path::new(cp));
    check_all(cases);
    assert_eq!(snapshot(Path::new(cp)), before, "the trained run is untouched by refused commands");
    assert!(!Path::new(&new).exists(), "no run made by a refused import");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn explaining() {
    let d = scratch("explain");
    let r = runs();
    let (mi, cp, a2c) = (r.minatar.as_str(), r.cartpole.as_str(), r.a2c.as_str());
    let out = d.join("out").display().to_string();
    let npy = |name: &str, shape: &[usize], values: Vec<f32>, dtype: &str| {
        let p = d.join(name);
        write_npy(&p, shape, &values, dtype);
        p.display().to_string()
    };
    let obs2 = npy("obs2.npy", &[2, 4, 10, 10], vec![0.0; 800], "<f4");
    let wrong_shape = npy("wrong.npy", &[2, 3, 10, 10], vec![0.0; 600], "<f4");
    let mut nan = vec![0.0; 800];
    nan[417] = f32::NAN;
    let nan_obs = npy("nan.npy", &[2, 4, 10, 10], nan, "<f4");
    let mut inf = vec![0.0; 400];
    inf[3] = f32::INFINITY;
    let inf_base = npy("inf-base.npy", &[4, 10, 10], inf, "<f4");
    let small_base = npy("small-base.npy", &[4, 5, 5], vec![0.0; 100], "<f4");
    let ints = npy("ints.npy", &[2], vec![1.0, 9.0], "<i8");
    let three = npy("three.npy", &[3], vec![0.0, 1.0, 2.0], "<f4");
    let frac = npy("frac.npy", &[2], vec![0.5, 1.0], "<f4");
    let text_targets = d.join("targets.txt");
    std::fs::write(&text_targets, "1\nleft\n").unwrap();
    let text_targets = text_targets.display().to_string();
    let not_npy = d.join("not.npy");
    std::fs::write(&not_npy, b"hello").unwrap();
    let not_npy = not_npy.display().to_string();
    // A header whose shape multiplies past the machine's integers, over a file of 8 values.
    let overflow = d.join("overflow.npy");
    {
        let mut header = "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387906, 4), }".to_string();
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend((header.len() as u16).to_le_bytes());
        b.extend(header.as_bytes());
        b.extend([0u8; 32]);
        std::fs::write(&overflow, b).unwrap();
    }
    let overflow = overflow.display().to_string();
    // Directories that hold an earlier explanation and evaluation.
    let explained = d.join("explained").display().to_string();
    let o = xrl(&["explain", "--run", mi, "--frames", "0..2", "--methods", "grad", "--out", &explained]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let evaluated = d.join("evaluated").display().to_string();
    let o = xrl(&["evaluate", "--run", mi, "--frames", "0..2", "--methods", "grad", "--out", &evaluated]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // A directory of the user's own files, which no job may write into.
    let users = d.join("users");
    std::fs::create_dir_all(&users).unwrap();
    std::fs::write(users.join("mine.png"), b"the user's").unwrap();
    let users = users.display().to_string();
    let bad_traj = d.join("bad.safetensors");
    std::fs::write(&bad_traj, b"\x08\x00\x00\x00\x00\x00\x00\x00{}").unwrap();
    let bad_traj = bad_traj.display().to_string();
    let a_file = d.join("a-file");
    std::fs::write(&a_file, b"x").unwrap();
    let a_file = a_file.display().to_string();
    let e = |run: &str, extra: &[&str]| -> Vec<String> {
        [&["explain", "--run", run, "--frames", "0..2", "--out", &out][..], extra]
            .concat()
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let ei = |extra: &[&str]| -> Vec<String> {
        [&["explain", "--run", mi, "--out", &out][..], extra].concat().iter().map(|s| s.to_string()).collect()
    };
    let ev = |extra: &[&str]| -> Vec<String> {
        [&["evaluate", "--run", mi, "--out", &out][..], extra].concat().iter().map(|s| s.to_string()).collect()
    };
    let c = |args: Vec<String>, needles| Case { args, needles };
    let cases = vec![
        c(e(mi, &["--target", "value"]), &["target `value` does not fit this network", "Q values only", "max-q"]),
        c(e(mi, &["--target", "logit:1"]), &["`logit:1`", "Q values only"]),
        c(e(mi, &["--target", "advantage:1"]), &["`advantage:1`", "Q values only"]),
        c(e(mi, &["--target", "log-prob:1"]), &["`log-prob:1`"]),
        c(e(a2c, &["--target", "max-q"]), &["`max-q`", "does not fit this network"]),
        c(e(a2c, &["--target", "q:1"]), &["`q:1`", "does not fit this network"]),
        c(e(mi, &["--target", "q:9"]), &["`q:9`", "action 9 is out of range", "6 actions (0–5)"]),
        c(e(mi, &["--target", "action:-1"]), &["action:-1"]),
        c(e(mi, &["--target", "contrast:1:1"]), &["compares action 1 with itself", "two different actions"]),
        c(e(mi, &["--target", "contrast:1"]), &["contrast:1"]),
        c(e(mi, &["--target", "bogus"]), &["unknown target `bogus`", "chosen, action:A"]),
        c(e(mi, &["--target", ""]), &["unknown target ``"]),
        c(e(mi, &["--methods", "bogus"]), &["unknown method `bogus`", "grad, grad-x-input"]),
        c(e(mi, &["--methods", ""]), &["unknown method ``", "use grad"]),
        c(e(mi, &["--methods", "grad,,ig"]), &["unknown method ``"]),
        c(e(mi, &["--methods", "gradcam:conv9"]), &["conv9", "conv1"]),
        c(e(mi, &["--methods", "smoothgrad:ig"]), &["smoothgrad:ig", "BASE"]),
        c(e(cp, &["--methods", "gradcam:fc9"]), &["fc9", "fc1"]),
        c(ei(&["--frames", "5..2"]), &["--frames must look like A..B with A < B", "`5..2`"]),
        c(ei(&["--frames", "0..0"]), &["`0..0`"]),
        c(ei(&["--frames", "abc"]), &["`abc`"]),
        c(ei(&["--frames=-1..3"]), &["`-1..3`"]),
        c(ei(&["--frames", "0..99999999999999999999"]), &["0..99999999999999999999"]),
        c(e(mi, &["--methods", "ig", "--ig-steps", "0"]), &["--ig-steps must be between 1 and 10000", "got 0"]),
        c(e(mi, &["--methods", "ig", "--ig-steps", "100000000"]), &["--ig-steps", "10000"]),
        c(e(mi, &["--methods", "ig", "--ig-rule", "simpson"]), &["unknown --ig-rule `simpson`", "gauss-legendre"]),
        c(e(mi, &["--methods", "ig", "--ig-baseline", "/nonexistent.npy"]), &["/nonexistent.npy"]),
        c(
            e(mi, &["--methods", "ig", "--ig-baseline", "frame:99"]),
            &["--ig-baseline frame:99", "choose an earlier frame"],
        ),
        c(e(mi, &["--methods", "ig", "--ig-baseline", "blur:-2"]), &["blur:-2"]),
        c(e(mi, &["--methods", "ig", "--ig-baseline", "ones"]), &["`ones`", "zeros"]),
        c(e(mi, &["--methods", "ig", "--ig-baseline", &inf_base]), &["inf-base.npy", "inf"]),
        c(e(mi, &["--methods", "ig", "--ig-baseline", &small_base]), &["small-base.npy"]),
        c(e(mi, &["--methods", "ig", "--ig-baseline", &not_npy]), &["not.npy"]),
        c(
            e(mi, &["--methods", "grad", "--ig-steps", "10"]),
            &["--ig-steps is an option of ig", "add one to --methods"],
        ),
        c(e(mi, &["--methods", "grad", "--ig-baseline", "blur"]), &["--ig-baseline is an option of ig"]),
        c(e(mi, &["--methods", "grad", "--noise-samples", "5"]), &["--noise-samples is an option of smoothgrad"]),
        c(e(mi, &["--methods", "grad", "--occlusion-window", "2"]), &["--occlusion-window is an option of occlusion"]),
        c(e(mi, &["--methods", "grad", "--gradcam-no-relu"]), &["--gradcam-no-relu is an option of gradcam"]),
        c(
            e(mi, &["--methods", "grad", "--perturbation-score", "value"]),
            &["--perturbation-score is an option of perturbation"],
        ),
        c(
            e(mi, &["--methods", "smoothgrad:grad", "--noise-samples", "0"]),
            &["--noise-samples must be between 1 and 10000"],
        ),
        c(e(mi, &["--methods", "smoothgrad:grad", "--noise-sigma", "-1"]), &["-1"]),
        c(
            e(mi, &["--methods", "smoothgrad:grad", "--noise-sigma", "NaN"]),
            &["--noise-sigma must be a positive number"],
        ),
        c(
            e(mi, &["--methods", "smoothgrad:grad", "--noise-sigma", "0"]),
            &["--noise-sigma must be a positive number", "got 0"],
        ),
        c(e(mi, &["--methods", "occlusion", "--occlusion-window", "0"]), &["--occlusion-window must be at least 1"]),
        c(e(mi, &["--methods", "occlusion", "--occlusion-stride", "0"]), &["--occlusion-stride must be at least 1"]),
        c(e(mi, &["--methods", "occlusion", "--occlusion-window", "11"]), &["window", "11", "10"]),
        c(e(mi, &["--methods", "occlusion", "--occlusion-fill", "gray"]), &["gray", "mean"]),
        c(
            e(mi, &["--methods", "occlusion", "--occlusion-fill", "inf"]),
            &["--occlusion-fill `inf`", "a number, mean or blur"],
        ),
        c(
            e(mi, &["--methods", "perturbation", "--perturbation-score", "loss"]),
            &["`loss`", "policy, value or target"],
        ),
        // It fails while computing, after the output directory is claimed: give it a directory of its own.
        c(
            [
                &["explain", "--run", mi, "--frames", "0..2", "--out", &format!("{out}-value")][..],
                &["--methods", "perturbation", "--perturbation-score", "value"],
            ]
            .concat()
            .iter()
            .map(|s| s.to_string())
            .collect(),
            &["value"],
        ),
        c(e(mi, &["--unroll", "2"]), &["--unroll needs a run whose network carries a recurrent state"]),
        c(e(mi, &["--layout", "mosaic"]), &["unknown layout `mosaic`", "grid, overlay, composite or greydanus"]),
        c(e(mi, &["--layout", "composite"]), &["actor and critic", "a2c, a3c"]),
        c(e(mi, &["--video", "avi"]), &["unknown video format `avi`", "gif or mp4"]),
        c(e(mi, &["--device", "metal"]), &["`metal`", "cpu"]),
        c(e("/nonexistent/run", &[]), &["/nonexistent/run/run.toml", "made by `xrl train`"]),
        c(e(mi, &["--out", &a_file]), &["cannot be used multiple times"]),
        c(
            vec![
                "explain".into(),
                "--run".into(),
                mi.into(),
                "--frames".into(),
                "0..2".into(),
                "--out".into(),
                a_file.clone(),
            ],
            &["a-file"],
        ),
        c(ei(&["--inputs", "/nonexistent.npy"]), &["/nonexistent.npy"]),
        c(ei(&["--inputs", &wrong_shape]), &["the inputs have shape [2, 3, 10, 10]", "takes [N, 4, 10, 10]"]),
        c(ei(&["--inputs", &nan_obs]), &["is NaN", "sample 1, offset 17", "finite"]),
        c(ei(&["--inputs", &not_npy]), &["not.npy"]),
        c(ei(&["--inputs", &obs2, "--frames", "0..1"]), &["--frames picks frames of an episode", "--inputs"]),
        c(ei(&["--inputs", &obs2, "--trajectory", &bad_traj]), &["cannot be used with"]),
        c(ei(&["--inputs", &obs2, "--targets", &ints]), &["action 9 is out of range"]),
        c(ei(&["--inputs", &obs2, "--targets", &three]), &["3", "2"]),
        c(ei(&["--inputs", &obs2, "--targets", &frac]), &["frac.npy", "entry 0 is 0.5", "not an action index"]),
        c(
            ei(&["--inputs", &obs2, "--targets", &text_targets]),
            &["targets.txt", "line 2 (`left`) is not an action index"],
        ),
        c(ei(&["--inputs", &obs2, "--targets", "/nonexistent.txt"]), &["/nonexistent.txt"]),
        c(ei(&["--trajectory", "/nonexistent.safetensors"]), &["/nonexistent.safetensors"]),
        c(ei(&["--trajectory", &bad_traj]), &["bad.safetensors"]),
        c(ei(&["--trajectory", &obs2]), &["obs2.npy"]),
        c(s_explain_no_out(mi), &["--out <OUT>", "required"]),
        c(ev(&["--methods", "bogus"]), &["unknown method `bogus`", "grad, grad-x-input"]),
        c(ei(&["--inputs", &overflow]), &["overflow.npy", "needs more values than the file holds"]),
        c(e(cp, &["--video", "gif"]), &["--video shows pictures of frames", "vector observations"]),
        c(
            ei(&["--inputs", &obs2, "--seed", "5", "--methods", "grad"]),
            &["--seed is an option of smoothgrad", "no episode is played"],
        ),
        c(
            ei(&["--inputs", &obs2, "--targets", &ints, "--target", "value"]),
            &["--targets gives each input its own action", "--target value"],
        ),
        c(
            vec![
                "explain".into(),
                "--run".into(),
                mi.into(),
                "--frames".into(),
                "0..2".into(),
                "--out".into(),
                users.clone(),
            ],
            &["not empty (it holds 1 entries, e.g. `mine.png`)", "nothing was changed"],
        ),
        c(
            vec![
                "evaluate".into(),
                "--run".into(),
                mi.into(),
                "--frames".into(),
                "0..2".into(),
                "--out".into(),
                users.clone(),
            ],
            &["not empty", "Choose a new or empty directory"],
        ),
        c(
            vec![
                "explain".into(),
                "--run".into(),
                mi.into(),
                "--frames".into(),
                "0..2".into(),
                "--out".into(),
                explained.clone(),
            ],
            &["not empty (it holds", "nothing was changed", "Choose a new or empty directory"],
        ),
        c(
            vec![
                "evaluate".into(),
                "--run".into(),
                mi.into(),
                "--frames".into(),
                "0..2".into(),
                "--out".into(),
                evaluated.clone(),
            ],
            &["not empty (it holds", "Choose a new or empty directory"],
        ),
        c(ev(&["--target", "value"]), &["target `value` does not fit this network", "Q values only"]),
        c(ev(&["--frames", "4..1"]), &["--frames must look like A..B with A < B"]),
        c(ev(&["--frames", "500..600"]), &["frame 500 does not exist", "choose --frames within"]),
        c(ev(&["--methods", "grad", "--ig-steps", "8"]), &["--ig-steps is an option of ig"]),
        c(ev(&["--methods", "ig", "--ig-steps", "0"]), &["--ig-steps must be between 1 and 10000"]),
        c(ev(&["--inputs", &wrong_shape]), &["the inputs have shape [2, 3, 10, 10]"]),
        c(ev(&["--inputs", &obs2, "--frames", "0..1"]), &["--frames picks frames of an episode"]),
        c(ev(&["--trajectory", &bad_traj]), &["bad.safetensors"]),
        c(ev(&["--device", "tpu"]), &["`tpu`", "cpu"]),
        c(
            vec!["evaluate".into(), "--run".into(), "/nonexistent/run".into(), "--out".into(), out.clone()],
            &["/nonexistent/run/run.toml"],
        ),
    ];
    check_all(cases);
    assert_eq!(std::fs::read(Path::new(&users).join("mine.png")).unwrap(), b"the user's");
    assert!(!Path::new(&out).join("summary.json").exists(), "no results written by a refused explain");
    assert!(!Path::new(&out).join("evaluate.json").exists(), "nor by a refused evaluate");
    let _ = std::fs::remove_dir_all(&d);
}

fn s_explain_no_out(run: &str) -> Vec<String> {
    vec!["explain".into(), "--run".into(), run.into()]
}

/// `xrl fsm`, `xrl fsm play`, `xrl diff-ig` and `report --fsm`: a small machine of a briefly trained GRU policy,
/// then every way of asking for one wrongly.
#[test]
fn finite_state_machines() {
    let root = scratch("fsm");
    let gru = root.join("gru").display().to_string();
    let o = xrl(&[
        "train",
        "--env",
        "CartPole-v1",
        "--agent",
        "a2c",
        "--core",
        "gru",
        "--core-size",
        "8",
        "--torso",
        "mmn",
        "--steps",
        "3000",
        "--out",
        &gru,
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let fsm = root.join("fsm").display().to_string();
    let small = [
        "--data-episodes",
        "2",
        "--qbn-epochs",
        "2",
        "--patience",
        "2",
        "--finetune-epochs",
        "1",
        "--extract-episodes",
        "2",
        "--max-steps",
        "100",
    ];
    let build = |run: &str, out: &str, extra: &[&str]| -> Vec<String> {
        [&["fsm", "--run", run, "--hx", "4", "--ox", "4", "--out", out][..], &small[..], extra]
            .concat()
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let args = build(&gru, &fsm, &[]);
    let o = xrl(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let foreign = root.join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("mine.txt"), "keep").unwrap();
    let foreign = foreign.display().to_string();
    // A copy whose files are damaged, one at a time.
    let damaged = |name: &str, with: &[u8]| -> String {
        let d = root.join(format!("damaged-{name}"));
        Command::new("cp").args(["-r", &fsm]).arg(&d).status().unwrap();
        std::fs::write(d.join(name), with).unwrap();
        d.display().to_string()
    };
    let (bad_ox, bad_ex, bad_card) =
        (damaged("ox.safetensors", b"not safetensors"), damaged("extraction.json", b"{"), damaged("fsm.json", b"[]"));
    // A machine whose indices point outside it (valid JSON, edited): refused, not a panic.
    let edited = {
        let d = root.join("edited");
        Command::new("cp").args(["-r", &fsm]).arg(&d).status().unwrap();
        let mut ex: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("extraction.json")).unwrap()).unwrap();
        ex["minimised"]["start"] = 99.into();
        std::fs::write(d.join("extraction.json"), serde_json::to_vec(&ex).unwrap()).unwrap();
        d.display().to_string()
    };
    // An unfinished directory: the fine-tuned MMN and the machine are missing.
    let unfinished = {
        let d = root.join("unfinished");
        Command::new("cp").args(["-r", &fsm]).arg(&d).status().unwrap();
        std::fs::remove_file(d.join("mmn.safetensors")).unwrap();
        std::fs::remove_file(d.join("extraction.json")).unwrap();
        d.display().to_string()
    };
    // A played machine whose scores were damaged, and a diff-IG directory whose picture was.
    let bad_scores = damaged("scores.json", b"{\"episodes\": ");
    let mine = root.join("mine.html");
    std::fs::write(&mine, "<p>my own notes</p>").unwrap();
    let mine = mine.display().to_string();
    let out = |n: &str| root.join(n).display().to_string();
    // A trajectory of the GRU policy, for diff-IG between two of its steps.
    let o = xrl(&["explain", "--run", &gru, "--methods", "grad", "--frames", "0..6", "--out", &out("ex")]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let traj = root.join("ex").join("trajectory.safetensors").display().to_string();
    let o =
        xrl(&["diff-ig", "--fsm", &fsm, "--trajectory", &traj, "--input", "5", "--baseline", "0", "--out", &out("dt")]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("steps 5 (input) and 0 (baseline)"), "{}", text(&o.stdout));
    assert!(root.join("dt").join("diff_ig.json").is_file());
    let bad_pic = out("dt-bad");
    Command::new("cp").args(["-r", &out("dt"), &bad_pic]).status().unwrap();
    std::fs::write(Path::new(&bad_pic).join("point-0.png"), b"not a picture").unwrap();
    let r = runs();
    check_all(vec![
        case(
            &["diff-ig", "--fsm", &fsm, "--trajectory", &traj, "--input", "99", "--baseline", "0", "--out", &out("d8")],
            &["--input 99 is past the trajectory's last step"],
        ),
        case(&["diff-ig", "--fsm", &fsm, "--trajectory", &traj, "--out", &out("d9")], &["--input"]),
        cs(build(&r.cartpole, &out("o1"), &[]), &["GRU core", "--core gru"]),
        cs(build(&r.a2c, &out("o2"), &[]), &["GRU core", "--torso mmn"]),
        cs(build("/nonexistent/run", &out("o3"), &[]), &["/nonexistent/run", "run card"]),
        cs(build(&gru, &out("o4"), &["--quantiser", "quad"]), &["unknown --quantiser `quad`", "ternary or binary"]),
        case(
            &["fsm", "--run", &gru, "--hx", "4", "--ox", "4", "--out", &out("o5"), "--data-episodes", "0"],
            &["--data-episodes must be between 1"],
        ),
        case(&["fsm", "--run", &gru, "--hx", "0", "--ox", "4", "--out", &out("o6")], &["--hx must be between 1"]),
        cs(build(&gru, &foreign, &[]), &["not empty", "new or empty directory"]),
        cs(build(&gru, &fsm, &["--seed", "5"]), &["other settings", "seed 0 there, 5 now", "new --out"]),
        cs(build(&gru, &bad_card, &[]), &["fsm.json"]),
        cs(build(&gru, &bad_ox, &[]), &["ox.safetensors", "remove it and rerun"]),
        cs(build(&gru, &bad_ex, &[]), &["extraction.json", "remove it and rerun"]),
        case(&["fsm", "play", "/nonexistent/fsm"], &["/nonexistent/fsm", "fsm.json"]),
        case(&["fsm", "play", &fsm, "--episodes", "0"], &["--episodes must be between 1"]),
        case(&["fsm", "play", &fsm, "--video-frames", "100000"], &["--video-frames must be at most"]),
        case(&["fsm", "play", &bad_ex], &["extraction.json", "damaged"]),
        case(&["fsm", "play", &bad_ox], &["ox.safetensors"]),
        case(&["fsm", "--run", &gru, "--out", &out("o7")], &["--hx"]),
        case(&["diff-ig", "--fsm", &fsm, "--out", &out("d1"), "--bits", "cells"], &["unknown --bits `cells`"]),
        case(&["diff-ig", "--fsm", &fsm, "--out", &out("d2"), "--per-bit", "some"], &["unknown --per-bit `some`"]),
        case(&["diff-ig", "--fsm", &fsm, "--out", &out("d3"), "--quadrature", "simpson"], &["unknown --quadrature"]),
        case(&["diff-ig", "--fsm", &fsm, "--out", &out("d4"), "--steps", "0"], &["--steps must be between 1"]),
        case(&["diff-ig", "--fsm", &fsm, "--out", &out("d5"), "--points", "0"], &["--points must be between 1"]),
        case(&["diff-ig", "--fsm", &fsm, "--out", &foreign], &["not empty"]),
        case(&["diff-ig", "--fsm", "/nonexistent/fsm", "--out", &out("d6")], &["/nonexistent/fsm"]),
        case(&["diff-ig", "--fsm", &bad_ex, "--out", &out("d7")], &["extraction.json"]),
        case(&["report", "--run", &r.a2c, "--fsm", &fsm, "--out", &out("r.html")], &["not of", "this run"]),
        case(&["report", "--run", &gru, "--fsm", &fsm, "--out", &mine], &["not an xrl report", "nothing was changed"]),
        case(&["fsm", "play", &edited], &["extraction.json", "damaged", "start state 99"]),
        case(&["diff-ig", "--fsm", &edited, "--out", &out("d10")], &["extraction.json", "damaged"]),
        case(&["report", "--run", &gru, "--fsm", &edited, "--out", &out("r2.html")], &["damaged"]),
        case(&["fsm", "play", &unfinished], &["has not finished", "resumes"]),
        case(&["diff-ig", "--fsm", &unfinished, "--out", &out("d11")], &["has not finished"]),
        case(&["fsm", "play", &gru], &["not a directory `xrl fsm` wrote"]),
        case(&["report", "--run", &gru, "--fsm", &bad_scores, "--out", &out("r3.html")], &["scores.json"]),
        case(
            &["report", "--run", &gru, "--fsm", &fsm, "--diff-ig", &bad_pic, "--out", &out("r4.html")],
            &["point-0.png", "not a PNG"],
        ),
        case(
            &[
                "diff-ig",
                "--fsm",
                &fsm,
                "--trajectory",
                &traj,
                "--input",
                "1",
                "--baseline",
                "0",
                "--points",
                "3",
                "--out",
                &out("d12"),
            ],
            &["--points", "cannot be used with"],
        ),
        case(&["train", "--env", "CartPole-v1", "--agent", "ppo", "--steps", "10", "--out", &foreign], &["not empty"]),
        case(&["bench", "ppo", "--updates", "1000000000"], &["--updates must be between 1 and 1000"]),
        case(
            &[
                "train",
                "--env",
                "CartPole-v1",
                "--agent",
                "a2c",
                "--torso",
                "tiny",
                "--steps",
                "10",
                "--out",
                &out("t1"),
            ],
            &["unknown --torso `tiny`", "default, mmn or ife"],
        ),
        case(
            &[
                "train",
                "--env",
                "CartPole-v1",
                "--agent",
                "dqn",
                "--torso",
                "mmn",
                "--steps",
                "10",
                "--out",
                &out("t2"),
            ],
            &["--torso mmn is an A2C option"],
        ),
    ]);
    // What was there is unchanged: the foreign directory, the user's page, the machine's card.
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "<p>my own notes</p>");
    assert_eq!(std::fs::read_to_string(Path::new(&foreign).join("mine.txt")).unwrap(), "keep");
    assert_eq!(std::fs::read_dir(&foreign).unwrap().count(), 1);
    // The good directory still plays, and a rerun keeps every stage.
    let o = xrl(&["fsm", "play", &fsm, "--episodes", "2", "--video-frames", "5"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = xrl(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(text(&o.stderr).matches("kept from").count() >= 5, "{}", text(&o.stderr));
}

#[test]
fn reports_demos_and_benchmarks() {
    let d = scratch("report");
    let r = runs();
    let mi = r.minatar.as_str();
    let explained = d.join("explained").display().to_string();
    let o = xrl(&["explain", "--run", mi, "--frames", "0..2", "--methods", "grad", "--out", &explained]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // Explanations of another game (Breakout run, an Asterix summary).
    let other = d.join("other").display().to_string();
    std::fs::create_dir_all(&other).unwrap();
    let summary = std::fs::read_to_string(Path::new(&explained).join("summary.json")).unwrap();
    std::fs::write(
        Path::new(&other).join("summary.json"),
        summary.replace("MinAtar/Breakout-v0", "MinAtar/Asterix-v0"),
    )
    .unwrap();
    let old = d.join("old").display().to_string();
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(Path::new(&old).join("summary.json"), summary.replacen("\"version\": 2", "\"version\": 1", 1))
        .unwrap();
    let broken = d.join("broken").display().to_string();
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(Path::new(&broken).join("summary.json"), "{\"version\": 2, \"run\":").unwrap();
    std::fs::create_dir_all(d.join("dir.html")).unwrap();
    let dir_html = d.join("dir.html").display().to_string();
    let fifo = d.join("fifo.html");
    let have_fifo = mkfifo(&fifo);
    let fifo = fifo.display().to_string();
    let a_file = d.join("a-file");
    std::fs::write(&a_file, b"x").unwrap();
    let a_file = a_file.display().to_string();
    let html = d.join("r.html").display().to_string();
    // Another run of the same game (the explanations above are of `mi`, at step 0 — this one was trained).
    let other_run = d.join("other-run").display().to_string();
    let o = xrl(&[
        "train",
        "--env",
        "MinAtar/Breakout-v0",
        "--agent",
        "a2c",
        "--steps",
        "1000",
        "--out",
        &other_run,
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let explained_cp = d.join("explained-cp").display().to_string();
    let o = xrl(&["explain", "--run", &r.cartpole, "--frames", "0..2", "--methods", "grad", "--out", &explained_cp]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let users = d.join("users");
    std::fs::create_dir_all(&users).unwrap();
    std::fs::write(users.join("mine.txt"), b"the user's").unwrap();
    let users = users.display().to_string();
    let s = |v: &[&str]| -> Vec<String> { v.iter().map(|s| s.to_string()).collect() };
    let c = |args: Vec<String>, needles| Case { args, needles };
    let mut cases = vec![
        c(s(&["report", "--run", "/nonexistent/run", "--out", &html]), &["/nonexistent/run/run.toml"]),
        c(s(&["report", "--run", mi, "--explanations", "/nonexistent", "--out", &html]), &["/nonexistent"]),
        c(
            s(&["report", "--run", mi, "--explanations", &other, "--out", &html]),
            &["MinAtar/Asterix-v0", "MinAtar/Breakout-v0"],
        ),
        c(
            s(&["report", "--run", mi, "--explanations", &old, "--out", &html]),
            &["version 1 summary", "run `xrl explain` again"],
        ),
        c(
            s(&["report", "--run", mi, "--explanations", &broken, "--out", &html]),
            &["summary.json", "run `xrl explain` again"],
        ),
        c(s(&["report", "--run", mi, "--out", &dir_html]), &["dir.html", "a directory"]),
        c(
            s(&["report", "--run", mi, "--evaluation", "/nonexistent", "--out", &html]),
            &["/nonexistent/evaluate.json", "written by `xrl evaluate`"],
        ),
        c(
            s(&["report", "--run", mi, "--evaluation", &broken, "--out", &html]),
            &["evaluate.json", "written by `xrl evaluate`"],
        ),
        c(s(&["report", "--run", mi, "--out", &format!("{a_file}/r.html")]), &["a-file"]),
        c(s(&["report", "--run", mi]), &["--out <OUT>", "required"]),
        c(s(&["report", "--run", mi, "--out", &a_file]), &["--out must name an .html file", "a-file"]),
        c(
            s(&["report", "--run", &r.cartpole, "--explanations", &explained_cp, "--out", &html]),
            &["has no frame pictures", "vector observations"],
        ),
        c(
            s(&["report", "--run", &other_run, "--explanations", &explained, "--out", &html]),
            &["was made from", "give the outputs of this run"],
        ),
        c(s(&["demo", "--out", &users]), &["not empty", "mine.txt"]),
        c(s(&["demo", "--frames", "5..2", "--out", &d.join("demo1").display().to_string()]), &["--frames", "5..2"]),
        c(s(&["demo", "--out", &a_file]), &["a-file"]),
        c(s(&["demo", "--frames", "0..x", "--out", &d.join("demo2").display().to_string()]), &["0..x"]),
        c(s(&["bench", "explain", "--bogus"]), &["unexpected argument '--bogus'"]),
        c(s(&["bench", "nets", "--runs", "0"]), &["--runs"]),
        c(s(&["bench", "teleport"]), &["unrecognized subcommand 'teleport'"]),
        c(s(&["frobnicate"]), &["unrecognized subcommand 'frobnicate'"]),
    ];
    if have_fifo {
        cases.push(c(s(&["report", "--run", mi, "--out", &fifo]), &["fifo.html", "FIFO"]));
    }
    check_all(cases);
    let _ = std::fs::remove_dir_all(&d);
}

/// `--out` through a symlink writes the file the link names (the link stays a link); a FIFO is refused without
/// being opened (which would block until a reader came).
#[test]
fn a_symlink_as_out_is_followed_and_a_fifo_is_refused() {
    let d = scratch("links");
    let target = d.join("real.gif");
    std::fs::write(&target, b"old").unwrap();
    let link = d.join("link.gif");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let o = xrl(&["render", "--env", "CartPole-v1", "--steps", "2", "--out", link.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link is still a link");
    assert!(std::fs::read(&target).unwrap().starts_with(b"GIF89a"), "the file it names was written");
    let fifo = d.join("f.gif");
    if mkfifo(&fifo) {
        let o = xrl(&["render", "--env", "CartPole-v1", "--steps", "2", "--out", fifo.to_str().unwrap()]);
        assert!(verdict(&o, &["FIFO"]).is_ok(), "{}", text(&o.stderr));
        assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo_like(), "the FIFO is still there");
    }
    let _ = std::fs::remove_dir_all(&d);
}

trait FifoLike {
    fn is_fifo_like(&self) -> bool;
}
impl FifoLike for std::fs::FileType {
    fn is_fifo_like(&self) -> bool {
        std::os::unix::fs::FileTypeExt::is_fifo(self)
    }
}

/// A closed pipe ends a command quietly (exit 0, nothing on stderr); a full device is an `error:` line, exit 1.
#[test]
fn a_broken_pipe_is_quiet_and_a_full_stdout_is_an_error() {
    for args in [
        &["envs", "--json"][..],
        &["rollout", "--env", "CartPole-v1", "--episodes", "300"][..],
        &["play", "--run", &runs().cartpole, "--episodes", "300"][..],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_xrl"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read a few bytes, then hang up.
        let mut first = [0u8; 8];
        std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
        assert!(o.stderr.is_empty(), "{args:?}: {}", text(&o.stderr));
    }
    for args in [&["envs"][..], &["--help"][..], &["explain", "--help"][..]] {
        let full = std::fs::File::create("/dev/full").unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_xrl")).args(args).stdout(full).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(verdict(&o, &["cannot write to standard output", "No space left"]).is_ok(), "{}", text(&o.stderr));
    }
}

/// Two `train --resume` of one run at once: one trains, the other is refused with the PID of the first, and the
/// run ends as one resume would leave it.
#[test]
fn two_concurrent_resumes_train_once() {
    let d = scratch("concurrent");
    let run = copy_run(&runs().cartpole, &d.join("run"));
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_xrl"))
            .args(["train", "--resume", &run, "--steps", "100000", "--quiet"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (ida, idb) = (a.id(), b.id());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let ok = [&a, &b].iter().filter(|o| o.status.success()).count();
    assert_eq!(ok, 1, "exactly one trains:\n{}\n{}", text(&a.stderr), text(&b.stderr));
    let (refused, winner) = if a.status.success() { (&b, ida) } else { (&a, idb) };
    assert!(
        verdict(refused, &[&format!("process {winner} is writing this run"), "wait for it to finish"]).is_ok(),
        "{}",
        text(&refused.stderr)
    );
    let latest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(&run).join("checkpoints/latest.json")).unwrap())
            .unwrap();
    assert_eq!(latest["step"], 100_000);
    assert_episodes_consecutive(Path::new(&run));
    let _ = std::fs::remove_dir_all(&d);
}

fn assert_episodes_consecutive(run: &Path) {
    let text = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let rows: Vec<(u64, u64)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 7, "a whole row: {l}");
            (f[0].parse().unwrap(), f[1].parse().unwrap())
        })
        .collect();
    assert!(rows.windows(2).all(|w| w[0].0 <= w[1].0), "steps never go backwards");
    assert!(rows.iter().enumerate().all(|(i, r)| r.1 == i as u64 + 1), "episodes are consecutive");
}

/// kill -9 at several moments — as soon as a checkpoint's temporary file appears (mid-write), and at odd times —
/// each followed by a resume: the run always reopens, steps never go backwards, episodes stay consecutive, and the
/// final checkpoint plays.
#[test]
fn kill_nine_at_several_moments_then_resume() {
    let d = scratch("kill");
    let run = d.join("run");
    let out = run.display().to_string();
    let o = xrl(&[
        "train",
        "--env",
        "CartPole-v1",
        "--steps",
        "4000",
        "--checkpoint-every",
        "2000",
        "--seed",
        "4",
        "--out",
        &out,
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let ckpt = run.join("checkpoints");
    let mut last_step = 0;
    let mut caught_mid_write = 0;
    for round in 0..4u64 {
        // Each round asks for a million more steps than the last (about 25 s of CartPole DQN here) and is killed
        // long before it gets there.
        let steps = format!("{}", 4_000 + (round + 1) * 1_000_000);
        let mut child = Command::new(env!("CARGO_BIN_EXE_xrl"))
            .args(["train", "--resume", &out, "--steps", &steps, "--quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        let mid_write = round % 2 == 0;
        loop {
            let tmp = std::fs::read_dir(&ckpt)
                .map(|es| es.filter_map(Result::ok).any(|e| e.file_name().to_string_lossy().contains(".tmp-")))
                .unwrap_or(false);
            if (mid_write && tmp) || start.elapsed().as_millis() > 1500 + 700 * u128::from(round) {
                caught_mid_write += usize::from(tmp);
                break;
            }
            assert!(child.try_wait().unwrap().is_none(), "round {round}: the run ended before it was killed");
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let o = xrl(&["play", "--run", &out, "--episodes", "1", "--json"]);
        assert!(o.status.success(), "round {round}: {}", text(&o.stderr));
        let latest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(ckpt.join("latest.json")).unwrap()).unwrap();
        let step = latest["step"].as_u64().unwrap();
        assert!(step >= last_step, "steps never go backwards: {last_step} then {step}");
        last_step = step;
    }
    // The last resume finishes: a few thousand steps past the last checkpoint.
    let o = xrl(&["train", "--resume", &out, "--steps", &format!("{}", last_step + 3_000), "--quiet"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_episodes_consecutive(&run);
    let o = xrl(&["play", "--run", &out, "--episodes", "2"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    eprintln!("kill -9: {caught_mid_write} of 4 kills landed while a checkpoint file was being written");
    let _ = std::fs::remove_dir_all(&d);
}

/// A full filesystem (a 2 MB tmpfs, where this process may mount one): writes fail with an `error:` line, the file
/// that was there before is unchanged, and a run resumes once space is back.
#[test]
fn a_full_filesystem_loses_nothing() {
    let d = scratch("full");
    let mnt = d.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&mnt)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)");
        return;
    }
    let result = std::panic::catch_unwind(|| {
        // A GIF that was written before, then a bigger one that does not fit: the old one stays whole.
        let gif = mnt.join("old.gif");
        let o = xrl(&["render", "--env", "MinAtar/Breakout-v0", "--steps", "2", "--out", gif.to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        let old = std::fs::read(&gif).unwrap();
        let filler = mnt.join("filler");
        let free = 2 * 1024 * 1024 - old.len() as u64 - 64 * 1024;
        std::fs::write(&filler, vec![7u8; free as usize]).unwrap();
        let o = xrl(&["render", "--env", "MinAtar/Breakout-v0", "--steps", "400", "--out", gif.to_str().unwrap()]);
        assert!(verdict(&o, &["old.gif", "No space left"]).is_ok(), "{}", text(&o.stderr));
        assert_eq!(std::fs::read(&gif).unwrap(), old, "the old file is unchanged");
        let leftovers: Vec<_> =
            std::fs::read_dir(&mnt).unwrap().filter_map(Result::ok).map(|e| e.file_name()).collect();
        assert_eq!(leftovers.len(), 2, "no temporary file left: {leftovers:?}");
        // A run resumed on the full disk fails at its checkpoint and keeps the last one; with space back it goes on.
        std::fs::remove_file(&filler).unwrap();
        let run = mnt.join("run");
        let out = run.display().to_string();
        let o = xrl(&[
            "train",
            "--env",
            "CartPole-v1",
            "--steps",
            "2000",
            "--checkpoint-every",
            "1000",
            "--out",
            &out,
            "--quiet",
        ]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        let used: u64 = snapshot(&run).iter().map(|(_, b)| b.len() as u64).sum();
        let free = 2 * 1024 * 1024 - used - 200 * 1024;
        std::fs::write(&filler, vec![7u8; free as usize]).unwrap();
        let before = snapshot(&run);
        let o = xrl(&["train", "--resume", &out, "--steps", "4000", "--quiet"]);
        assert!(verdict(&o, &["No space left"]).is_ok(), "{}", text(&o.stderr));
        let after = snapshot(&run);
        for (p, b) in &before {
            let kept = after.iter().find(|(q, _)| q == p).map(|(_, a)| a);
            // Derived files, redrawn or appended as the run goes; the checkpoints must be as they were.
            let may_change = p.ends_with("run.toml")
                || p.ends_with("metrics.csv")
                || p.ends_with("learning_curve.png")
                || p.starts_with(run.join("tensorboard"));
            assert!(kept.is_some(), "{} is still there", p.display());
            assert!(may_change || kept == Some(b), "{} is unchanged", p.display());
        }
        std::fs::remove_file(&filler).unwrap();
        let o = xrl(&["train", "--resume", &out, "--quiet"]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        assert_episodes_consecutive(&run);
    });
    let _ = Command::new("umount").arg(&mnt).status();
    let _ = std::fs::remove_dir_all(&d);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

/// Inputs that are FIFOs are refused at once (reading one would wait for a writer forever), and a closed or full
/// standard error never turns an error or a training run into a panic.
#[test]
fn fifo_inputs_and_a_broken_stderr_are_handled() {
    let d = scratch("fifo-in");
    let fifo = d.join("in.npy");
    if mkfifo(&fifo) {
        let f = fifo.to_str().unwrap();
        let mi = runs().minatar.clone();
        let out = d.join("out").display().to_string();
        for args in [
            vec!["explain", "--run", mi.as_str(), "--inputs", f, "--out", out.as_str()],
            vec![
                "import",
                f,
                "--format",
                "pytorch",
                "--arch",
                "mlp-dqn",
                "--env",
                "CartPole-v1",
                "--out",
                out.as_str(),
            ],
            vec!["explain", "--run", mi.as_str(), "--trajectory", f, "--out", out.as_str()],
        ] {
            let o = within_20s(&args, &format!("{args:?} blocked on the FIFO"));
            assert!(verdict(&o, &["named pipe (FIFO), not a regular file"]).is_ok(), "{args:?}: {}", text(&o.stderr));
        }
    }
    // A FIFO where a run's own file belongs (its checkpoint index, its episode log) is refused, not read forever.
    if mkfifo(&d.join("probe-fifo")) {
        for (rel, command) in [("checkpoints/latest.json", "play"), ("metrics.csv", "train")] {
            let run = copy_run(&runs().cartpole, &d.join(rel.replace('/', "-")));
            std::fs::remove_file(Path::new(&run).join(rel)).unwrap();
            assert!(mkfifo(&Path::new(&run).join(rel)));
            let args: Vec<&str> = if command == "play" {
                vec!["play", "--run", &run, "--episodes", "1"]
            } else {
                vec!["train", "--resume", &run, "--steps", "2500", "--quiet"]
            };
            let o = within_20s(&args, &format!("{args:?} blocked on the FIFO at {rel}"));
            assert!(verdict(&o, &["named pipe (FIFO), not a regular file"]).is_ok(), "{rel}: {}", text(&o.stderr));
        }
    }
    // A claim left by a killed job does not block the directory: the next job takes it over.
    let stale = d.join("stale");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join(".xrl-claim"), b"").unwrap();
    let mi = runs().minatar.clone();
    let o = xrl(&["explain", "--run", &mi, "--frames", "0..2", "--methods", "grad", "--out", stale.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(stale.join("summary.json").exists() && !stale.join(".xrl-claim").exists());
    // An error with nowhere to say it: exit 1, not a panic's 101.
    let full = || std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let o =
        Command::new(env!("CARGO_BIN_EXE_xrl")).args(["rollout", "--env", "Nope-v0"]).stderr(full()).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    // Training with standard error full (warnings, progress) still trains to the end.
    let run = d.join("run");
    let o = Command::new(env!("CARGO_BIN_EXE_xrl"))
        .args(["train", "--env", "CartPole-v1", "--steps", "3000", "--checkpoint-every", "1000", "--out"])
        .arg(&run)
        .stderr(full())
        .output()
        .unwrap();
    assert!(o.status.success(), "exit {:?}", o.status.code());
    let latest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("checkpoints/latest.json")).unwrap()).unwrap();
    assert_eq!(latest["step"], 3000);
    let _ = std::fs::remove_dir_all(&d);
}
