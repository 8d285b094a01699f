//! `xrl report` and `xrl demo`.

use anyhow::{Result, bail};
use clap::Args;
use std::path::PathBuf;
use xrl::run::RunDir;

#[derive(Args)]
pub struct ReportArgs {
    /// A run directory.
    #[arg(long)]
    run: PathBuf,
    /// A directory written by `xrl explain --layout grid` (its pictures and summary.json feed the frame player).
    #[arg(long)]
    explanations: Option<PathBuf>,
    /// A directory written by `xrl evaluate` (its evaluate.json and plots make the report's evaluation section).
    #[arg(long)]
    evaluation: Option<PathBuf>,
    /// A directory written by `xrl fsm` for this run (the machine's graph, a walk through an episode, its classes).
    #[arg(long)]
    fsm: Option<PathBuf>,
    /// With --fsm: a directory written by `xrl diff-ig` for that machine (its pictures at the decision points).
    #[arg(long, requires = "fsm")]
    diff_ig: Option<PathBuf>,
    /// The HTML file to write.
    #[arg(long)]
    out: PathBuf,
}

/// Writes the self-contained HTML report of a run and, optionally, its explanations.
pub fn report(a: &ReportArgs) -> Result<()> {
    if !a.out.extension().is_some_and(|e| e == "html" || e == "htm") {
        bail!("--out must name an .html file (the report is one HTML page), got {}", a.out.display());
    }
    let fsm = match &a.fsm {
        Some(f) => {
            let card = RunDir::new(&a.run).read_card()?;
            let names = xrl_fsm::play::action_names(card.env.make()?.as_ref());
            xrl_fsm::report::section_html(&a.run, f, a.diff_ig.as_deref(), &names)?
        }
        None => String::new(),
    };
    xrl_explain::report::write(&a.run, a.explanations.as_deref(), a.evaluation.as_deref(), &fsm, &a.out)?;
    say!("wrote {} — open it in a browser (it needs no network)", a.out.display());
    Ok(())
}

#[derive(Args)]
pub struct DemoArgs {
    /// Where to write the run, the explanations and report.html.
    #[arg(long, default_value = "xrl-demo")]
    out: PathBuf,
    /// Train the agent from scratch (A2C, 1M frames, seed 0: about 1–2 minutes on 2 cores) instead of using the
    /// embedded checkpoint that was trained by exactly that command.
    #[arg(long)]
    train: bool,
    /// Frames of the episode to explain.
    #[arg(long, default_value = "0..40")]
    frames: String,
    /// Also the finite-state demo: an embedded GRU policy on CartPole (A2C, `--torso mmn`) through `xrl fsm` (its
    /// bottlenecks trained for at most 80 epochs), `xrl fsm play`, `xrl diff-ig` and a report with the
    /// finite-state section, in OUT/fsm-report.html (about a minute more on 2 cores).
    #[arg(long)]
    fsm: bool,
}

/// The embedded demo run: A2C on MinAtar/Breakout-v0, trained by
/// `xrl train --env MinAtar/Breakout-v0 --agent a2c --steps 1000000 --seed 0 --checkpoint-every 1000000`.
mod embedded {
    macro_rules! asset {
        ($name:literal) => {
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/demo/breakout-a2c/", $name))
        };
    }
    pub const RUN_TOML: &[u8] = asset!("run.toml");
    pub const WEIGHTS: &[u8] = asset!("online.safetensors");
    pub const METRICS: &[u8] = asset!("metrics.csv");
    pub const CURVE: &[u8] = asset!("learning_curve.png");
    pub const STEP: usize = 1_000_000;

    /// The finite-state demo's GRU policy: A2C on CartPole-v1, trained by
    /// `xrl train --env CartPole-v1 --agent a2c --core gru --core-size 32 --torso mmn --steps 2000000 --seed 0
    /// --checkpoint-every 2000000`.
    pub mod gru {
        macro_rules! asset {
            ($name:literal) => {
                include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/demo/cartpole-gru/", $name))
            };
        }
        pub const RUN_TOML: &[u8] = asset!("run.toml");
        pub const WEIGHTS: &[u8] = asset!("online.safetensors");
        pub const METRICS: &[u8] = asset!("metrics.csv");
        pub const CURVE: &[u8] = asset!("learning_curve.png");
        pub const STEP: usize = 2_000_000;
    }
}

/// Unpacks an embedded run into `dir`.
fn unpack(dir: &RunDir, files: [&[u8]; 4], step: usize) -> Result<()> {
    let [card, weights, metrics, curve] = files;
    xrl::run::write_bytes(&dir.card_path(), card)?;
    xrl::run::write_bytes(&dir.metrics_path(), metrics)?;
    xrl::run::write_bytes(&dir.curve_path(), curve)?;
    let mut state =
        xrl::run::TrainerState { step, stem: format!("step-{step:010}"), ..xrl::run::TrainerState::fresh(0) };
    dir.save_checkpoint(&mut state, &[("online.safetensors", weights.to_vec())])?;
    Ok(())
}

/// The finite-state part of the demo: the embedded GRU policy's Moore machine, scored, its decision points
/// explained by differential IG, and a report with the finite-state section.
fn demo_fsm(out: &std::path::Path) -> Result<std::path::PathBuf> {
    use xrl_fsm::pipeline::{FsmConfig, FsmDir};
    let run = out.join("gru-run");
    unpack(
        &RunDir::new(&run),
        [embedded::gru::RUN_TOML, embedded::gru::WEIGHTS, embedded::gru::METRICS, embedded::gru::CURVE],
        embedded::gru::STEP,
    )?;
    say!("unpacked the embedded GRU A2C CartPole agent into {}; extracting its Moore machine …", run.display());
    let fsm = out.join("fsm");
    let config = FsmConfig { qbn_epochs: 80, patience: 20, ..FsmConfig::new(64, 64) };
    // The demo runs where `--device cpu` would (as its explanations do).
    let device = xrl_nn::device::parse("cpu").map_err(anyhow::Error::msg)?;
    let extraction = xrl_fsm::pipeline::run(&run, &fsm, &config, &device, &mut |note| tell!("{note}"))?;
    let dir = FsmDir::new(&fsm);
    let names = xrl_fsm::play::action_names(xrl_env::make("CartPole-v1")?.as_ref());
    xrl_fsm::play::write_machine_files(&dir, &extraction, &names)?;
    let (scores, _) = xrl_fsm::play::play(&dir, 20, 1_000_000, 10_000, 200, &device)?;
    say!(
        "machine: {} states, {} observation classes; mean score over 20 episodes: policy {:.1}, MMN {:.1}, machine alone {:.1}",
        scores.states,
        scores.observation_classes,
        scores.policy_mean,
        scores.mmn_mean,
        scores.machine_mean
    );
    #[derive(clap::Parser)]
    struct DiffIg {
        #[command(flatten)]
        args: crate::diff_ig::DiffIgArgs,
    }
    let dig = out.join("diff-ig");
    let (fsm_s, dig_s) = (fsm.display().to_string(), dig.display().to_string());
    let parsed = <DiffIg as clap::Parser>::try_parse_from(["diff-ig", "--fsm", &fsm_s, "--out", &dig_s])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::diff_ig::diff_ig(parsed.args)?;
    let section = xrl_fsm::report::section_html(&run, &fsm, Some(&dig), &names)?;
    let report = out.join("fsm-report.html");
    xrl_explain::report::write(&run, None, None, &section, &report)?;
    Ok(report)
}

pub fn demo(a: &DemoArgs) -> Result<()> {
    let run = a.out.join("run");
    let _claim = xrl_render::claim_dir(&a.out)?;
    if a.train {
        say!("training A2C on MinAtar/Breakout-v0 for 1M frames (seed 0) into {} …", run.display());
        crate::train::train(crate::train::TrainArgs::demo(&run))?;
    } else {
        let files = [embedded::RUN_TOML, embedded::WEIGHTS, embedded::METRICS, embedded::CURVE];
        unpack(&RunDir::new(&run), files, embedded::STEP)?;
        say!("unpacked the embedded A2C Breakout agent (trained for 1M frames) into {}", run.display());
    }
    let explain_dir = a.out.join("explain");
    let methods = "grad,guided,gradcam:conv1,guided-gradcam:conv1,ig,smoothgrad:grad,occlusion,perturbation";
    say!("explaining frames {} with {methods} …", a.frames);
    // Through clap, so the demo takes every other option's default exactly as `xrl explain` does.
    #[derive(clap::Parser)]
    struct Explain {
        #[command(flatten)]
        args: crate::explain::ExplainArgs,
    }
    let (run_s, out_s) = (run.display().to_string(), explain_dir.display().to_string());
    let argv = ["explain", "--run", &run_s, "--methods", methods, "--target", "chosen", "--seed", "0"];
    let argv = argv.into_iter().chain(["--frames", &a.frames, "--out", &out_s, "--layout", "grid", "--video", "gif"]);
    let parsed = <Explain as clap::Parser>::try_parse_from(argv).map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::explain::explain(parsed.args)?;
    // The same frames (the episode the explanations recorded) through every test.
    let evaluate_dir = a.out.join("evaluate");
    say!("evaluating the same frames and methods …");
    #[derive(clap::Parser)]
    struct Evaluate {
        #[command(flatten)]
        args: crate::evaluate::EvaluateArgs,
    }
    let (trajectory, ev_s) =
        (explain_dir.join("trajectory.safetensors").display().to_string(), evaluate_dir.display().to_string());
    let argv = ["evaluate", "--run", &run_s, "--methods", methods, "--target", "chosen", "--seed", "0"];
    let argv = argv.into_iter().chain(["--trajectory", &trajectory, "--out", &ev_s]);
    let parsed = <Evaluate as clap::Parser>::try_parse_from(argv).map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::evaluate::evaluate(&parsed.args)?;
    let report = a.out.join("report.html");
    xrl_explain::report::write(&run, Some(&explain_dir), Some(&evaluate_dir), "", &report)?;
    let fsm_report = if a.fsm { Some(demo_fsm(&a.out)?) } else { None };
    say!("wrote:");
    say!("  {}  the run (run.toml, checkpoint, metrics.csv, learning_curve.png)", run.display());
    say!("  {}  one picture per frame, explain.gif, summary.json", explain_dir.display());
    say!("  {}  evaluate.json and the deletion, insertion and agreement plots", evaluate_dir.display());
    say!("  {}  the report — open it in a browser (it works offline)", report.display());
    if let Some(r) = fsm_report {
        say!("  {}  the GRU agent's Moore machine, scores and diff-IG pictures", r.display());
    }
    Ok(())
}
