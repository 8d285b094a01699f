//! `xrl evaluate`: parses the options into an [`xrl_explain::evaluate::suite::EvaluateJob`], runs it and prints a
//! table; the tests are the library's.

use crate::explain::{MethodArgs, parse_range};
use anyhow::{Result, bail};
use clap::Args;
use std::path::PathBuf;
use xrl_explain::evaluate::suite::{self, EvaluateJob};
use xrl_explain::job::Source;
use xrl_explain::registry;

#[derive(Args)]
pub struct EvaluateArgs {
    /// A run directory made by `xrl train` or `xrl import` (feed-forward or recurrent agents; a recurrent one is
    /// evaluated at the states it held while playing, recorded in the episode or trajectory).
    #[arg(long)]
    run: PathBuf,
    #[arg(long, help = xrl_explain::registry::METHODS_OPTION_HELP)]
    methods: Option<String>,
    /// The scalar each map explains and the curves follow: chosen (each frame's greedy action), q:A, max-q, value,
    /// advantage:A, logit:A, … (as `xrl explain --target`).
    #[arg(long, default_value = "chosen")]
    target: String,
    /// Evaluate the frames of a trajectory saved by `xrl explain` (`trajectory.safetensors`) instead of playing.
    #[arg(long, conflicts_with = "inputs")]
    trajectory: Option<PathBuf>,
    /// Evaluate these observations: a `.npy` of shape [N, …observation shape].
    #[arg(long)]
    inputs: Option<PathBuf>,
    /// Frames of the episode, `A..B` (B excluded); default 0..100 when playing, all of a trajectory.
    #[arg(long)]
    frames: Option<String>,
    /// Seed of the episode played and of every random choice of the tests (random orders, subsets, noise, the
    /// random-map control); recorded in evaluate.json.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0)]
    seed: u64,
    /// The directory to write evaluate.json and the plots into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Where the network runs: cpu (default), or ndarray / cuda[:N] in a binary built with that cargo feature.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Action agreement removes cells by ROAD's noisy linear imputation (Rong et al. 2022; σ 0.01) instead of
    /// zeroing them (on MinAtar, zero is "the object is gone").
    #[arg(long)]
    road: bool,
    #[command(flatten)]
    method: MethodArgs,
}

pub fn evaluate(a: &EvaluateArgs) -> Result<()> {
    let (options, given) = a.method.options(a.seed)?;
    let frames = a.frames.as_deref().map(parse_range).transpose()?;
    let source = match (&a.inputs, &a.trajectory) {
        (Some(path), _) => {
            if frames.is_some() {
                bail!("--frames picks frames of an episode; with --inputs every given observation is evaluated");
            }
            let (shape, values) = xrl_render::read_npy(path)?;
            Source::Inputs { values, shape }
        }
        (None, Some(path)) => Source::Trajectory { path: path.clone(), frames },
        (None, None) => Source::Play { seed: a.seed, frames: frames.unwrap_or(0..100) },
    };
    let methods = a.methods.as_deref().map(registry::parse_list).transpose()?.unwrap_or_default();
    let job = EvaluateJob {
        run: a.run.clone(),
        device: xrl::nn::device::parse(&a.device).map_err(anyhow::Error::msg)?,
        source,
        methods,
        options,
        options_given: given,
        target: a.target.parse()?,
        config: None,
        road_imputation: a.road,
        seed: a.seed,
        out: a.out.clone(),
    };
    let r = suite::run(&job)?;
    for note in &r.notes {
        tell!("note: {note}");
    }
    say!(
        "{} frames of {} (checkpoint step {}), target {}; deletion AUC lower is better, insertion AUC, faithfulness \
         correlation and AUM higher, infidelity and max sensitivity lower:",
        r.frames.len(),
        r.env,
        r.checkpoint_step,
        r.target
    );
    say!(
        "{:<24} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "method",
        "deletion",
        "insertion",
        "faithful",
        "infidel.",
        "max-sens",
        "AIM k=1",
        "AUM k=1"
    );
    for m in r.methods.iter().chain([&r.random_map]) {
        say!(
            "{:<24} {:>9.4} {:>9.4} {:>9.3} {:>9.3e} {:>9.3} {:>9.2} {:>9.2}",
            m.method,
            m.deletion.deletion.auc.mean,
            m.deletion.insertion.auc.mean,
            m.faithfulness_correlation.mean,
            m.infidelity.mean,
            m.max_sensitivity.mean,
            m.agreement.top_k.first().copied().unwrap_or(f64::NAN),
            m.agreement.bottom_k.first().copied().unwrap_or(f64::NAN)
        );
    }
    if let Some(first) = r.methods.iter().find_map(|m| m.randomisation.as_ref()) {
        say!(
            "model-parameter randomisation, cascading from the output down: Spearman of |map| with the original after \
             each layer is re-initialised (1: the map ignores the weights; a sound map falls), SSIM last:"
        );
        let head: String = first.layers.iter().map(|l| format!("{:>16}", format!("+{l}"))).collect();
        say!("{:<24} {head} {:>10}", "method", "SSIM all");
        let score = |v: &xrl_explain::evaluate::randomisation::Variant, m: &str| {
            v.scores.iter().find(|s| s.measure.name() == m).map_or(f64::NAN, |s| s.mean)
        };
        for m in &r.methods {
            let Some(rr) = &m.randomisation else { continue };
            let row: String = rr.cascading.iter().map(|v| format!("{:>16.3}", score(v, "spearman-abs"))).collect();
            let ssim = rr.cascading.last().map(|v| score(v, "ssim")).filter(|s| s.is_finite());
            let ssim = ssim.map_or("–".to_string(), |s| format!("{s:.3}"));
            say!("{:<24} {row} {ssim:>10}", m.method);
        }
        let control =
            first.random_maps.iter().find(|s| s.measure.name() == "spearman-abs").map_or(f64::NAN, |s| s.mean);
        say!("{:<24} {control:>16.3}  (random maps against the original)", "random-map");
    }
    if let Some(c) = &r.random_map.counterfactual {
        let kinds: Vec<&str> = c.kinds.iter().map(|k| k.kind.as_str()).collect();
        say!("object interventions: Spearman ρ of the map's mass on an object with the agent's response (p):");
        say!("{:<24} {}", "method", kinds.iter().map(|k| format!("{k:>18}")).collect::<String>());
        for m in r.methods.iter().chain([&r.random_map]) {
            let Some(c) = &m.counterfactual else { continue };
            let row: String =
                c.kinds.iter().map(|k| format!("{:>18}", format!("{:.2} ({:.2})", k.spearman, k.p_value))).collect();
            say!("{:<24} {row}", m.method);
        }
    }
    say!("wrote {} files to {}", r.files.len(), a.out.display());
    Ok(())
}
