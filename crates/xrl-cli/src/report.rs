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
}

pub fn demo(a: &DemoArgs) -> Result<()> {
    let run = a.out.join("run");
    let _claim = xrl_render::claim_dir(&a.out)?;
    if a.train {
        say!("training A2C on MinAtar/Breakout-v0 for 1M frames (seed 0) into {} …", run.display());
        crate::train::train(crate::train::TrainArgs::demo(&run))?;
    } else {
        let dir = RunDir::new(&run);
        xrl::run::write_bytes(&dir.card_path(), embedded::RUN_TOML)?;
        xrl::run::write_bytes(&dir.metrics_path(), embedded::METRICS)?;
        xrl::run::write_bytes(&dir.curve_path(), embedded::CURVE)?;
        let mut state = xrl::run::TrainerState {
            step: embedded::STEP,
            stem: format!("step-{:010}", embedded::STEP),
            ..xrl::run::TrainerState::fresh(0)
        };
        dir.save_checkpoint(&mut state, &[("online.safetensors", embedded::WEIGHTS.to_vec())])?;
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
    say!("wrote:");
    say!("  {}  the run (run.toml, checkpoint, metrics.csv, learning_curve.png)", run.display());
    say!("  {}  one picture per frame, explain.gif, summary.json", explain_dir.display());
    say!("  {}  evaluate.json and the deletion, insertion and agreement plots", evaluate_dir.display());
    say!("  {}  the report — open it in a browser (it works offline)", report.display());
    Ok(())
}
