//! `xrl diff-ig`: differential integrated gradients at a Moore machine's decision points (or between two given
//! trajectory steps).

use crate::train::DeviceArg;
use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::PathBuf;
use xrl_fsm::decisions::{self, DecisionPoint, Sample};
use xrl_fsm::diff_ig::{Bits, DiffIgConfig, PerBit, Quadrature};
use xrl_fsm::pipeline::FsmDir;

#[derive(Args)]
pub struct DiffIgArgs {
    /// The directory `xrl fsm` wrote (its machine, bottlenecks and policy are used).
    #[arg(long)]
    fsm: PathBuf,
    /// The output directory (new or empty): diff_ig.json, and per point point-K.png (the seed's picture) and
    /// point-K-bits.png (signed, one panel per differing bit).
    #[arg(long)]
    out: PathBuf,
    /// Decision points to explain, the most visited states first (not with --trajectory).
    #[arg(long, allow_negative_numbers = true, default_value_t = 4, conflicts_with = "trajectory")]
    points: usize,
    /// Instead of decision points: a trajectory (the `trajectory.safetensors` every `xrl explain` writes) and two of
    /// its steps.
    #[arg(long, requires_all = ["input", "baseline"])]
    trajectory: Option<PathBuf>,
    /// With --trajectory: the step of the input frame.
    #[arg(long, allow_negative_numbers = true, requires = "trajectory")]
    input: Option<usize>,
    /// With --trajectory: the step of the baseline frame.
    #[arg(long, allow_negative_numbers = true, requires = "trajectory")]
    baseline: Option<usize>,
    /// Which code is attributed: `observation` (the seed's) or `hidden` (the state code after one step from the
    /// input's state).
    #[arg(long, default_value = "observation")]
    bits: String,
    /// Which bits also get a map of their own: `largest` (the --max-bits differing bits whose value changed most:
    /// the per-bit panels), `differing` (every differing bit), `all` (as the seed computed) or `none` (only the
    /// masked, unmasked and all-bit maps: one gradient per path point).
    #[arg(long, default_value = "largest")]
    per_bit: String,
    /// Path points of the integral.
    #[arg(long, allow_negative_numbers = true, default_value_t = 50)]
    steps: usize,
    /// `gauss-legendre`, or `seed` (the seed's steps + 1 equally weighted points, both ends included).
    #[arg(long, default_value = "gauss-legendre")]
    quadrature: String,
    /// Rows (path point × bit) per backward pass: lower it if memory is short.
    #[arg(long, allow_negative_numbers = true, default_value_t = 2048)]
    chunk: usize,
    /// Explain each point this many times and report the median time (for timing: the maps are the same each
    /// time; `bench/diff_ig.py` uses it).
    #[arg(long, allow_negative_numbers = true, default_value_t = 1)]
    repeat: usize,
    /// Most bit panels per point in point-K-bits.png (and bits mapped with `--per-bit largest`).
    #[arg(long, allow_negative_numbers = true, default_value_t = 12)]
    max_bits: usize,
    #[command(flatten)]
    device: DeviceArg,
}

pub fn diff_ig(a: DiffIgArgs) -> Result<()> {
    let bits = match a.bits.as_str() {
        "observation" => Bits::Observation,
        "hidden" => Bits::Hidden,
        other => bail!("unknown --bits `{other}`; use observation or hidden"),
    };
    let quadrature = match a.quadrature.as_str() {
        "gauss-legendre" => Quadrature::GaussLegendre,
        "seed" => Quadrature::SeedMean,
        other => bail!("unknown --quadrature `{other}`; use gauss-legendre or seed"),
    };
    let per_bit = match a.per_bit.as_str() {
        "none" => PerBit::None,
        "largest" => PerBit::Largest(a.max_bits),
        "differing" => PerBit::Differing,
        "all" => PerBit::All,
        other => bail!("unknown --per-bit `{other}`; use largest, differing, all or none"),
    };
    let config = DiffIgConfig { bits, per_bit, quadrature, steps: a.steps, chunk: a.chunk };
    if !(1..=1000).contains(&a.points) {
        bail!("--points must be between 1 and 1000, got {}", a.points);
    }
    if !(1..=1000).contains(&a.repeat) {
        bail!("--repeat must be between 1 and 1000, got {}", a.repeat);
    }
    // Refused before any work: settings, then the output directory.
    config.validate()?;
    xrl_render::check_dir_free(&a.out)?;
    let dir = FsmDir::new(&a.fsm);
    let card = dir.read_card()?;
    let mmn = dir.mmn(&card, &a.device.device)?;
    let run_card = dir.run_card(&card)?;
    let mut env = run_card.env.make()?;
    let shape = env.spec().observation.shape().to_vec();
    let names = decisions::feature_names(&card.env, shape.iter().product());
    let points: Vec<DecisionPoint> = match (&a.trajectory, a.input, a.baseline) {
        (Some(path), Some(i), Some(b)) => {
            let t = xrl::trajectory::Trajectory::load(path)?;
            if t.env != card.env {
                bail!(
                    "{} is a trajectory of {}, but the machine is of {}; record one of {}",
                    path.display(),
                    t.env,
                    card.env,
                    card.env
                );
            }
            for (what, s) in [("--input", i), ("--baseline", b)] {
                if s >= t.len() {
                    bail!(
                        "{what} {s} is past the trajectory's last step ({}); choose a step below {}",
                        t.len().saturating_sub(1),
                        t.len()
                    );
                }
            }
            let mut sample = |s: usize| -> Result<Sample> {
                let mut frame = None;
                if let Some(state) = t.states.get(s) {
                    env.set_state(state).with_context(|| format!("step {s} of {}", path.display()))?;
                    frame = Some(env.render());
                }
                let hidden = t.hidden.as_ref().map(|h| {
                    let n = h.len() / t.len();
                    h[s * n..(s + 1) * n].to_vec()
                });
                Ok(Sample {
                    episode: 0,
                    t: s,
                    class: 0,
                    next: 0,
                    obs: t.observation(s).to_vec(),
                    hidden: hidden.unwrap_or_default(),
                    frame,
                })
            };
            let (input, baseline) = (sample(i)?, sample(b)?);
            vec![DecisionPoint { state: 0, visits: 0, input, baseline }]
        }
        _ => {
            let extraction = dir.extraction()?;
            let p = decisions::decision_points(&extraction, &mmn, env.as_mut(), &card.config, a.points)?;
            if p.is_empty() {
                bail!(
                    "the minimised machine has no decision point (no state whose observations lead to different next \
                     states); give two steps with --trajectory, --input and --baseline"
                );
            }
            p
        }
    };
    let _claim = xrl_render::claim_dir(&a.out)?;
    let mut summary = vec![];
    for (k, p) in points.iter().enumerate() {
        let mut times = vec![];
        let mut d = None;
        for _ in 0..a.repeat {
            let started = std::time::Instant::now();
            d = Some(decisions::explain_point(&mmn, p, &config)?);
            times.push(started.elapsed().as_secs_f64());
        }
        let d = d.expect("at least one repeat (checked above)");
        times.sort_by(f64::total_cmp);
        let secs = times[times.len() / 2];
        if let Some(t) = &a.trajectory {
            say!(
                "steps {} (input) and {} (baseline) of {}: {} of {} {} bits differ; completeness error {:.1e} (per-bit maps {:.1e}) ({secs:.2} s)",
                p.input.t,
                p.baseline.t,
                t.display(),
                d.differing.len(),
                d.input_code.len(),
                a.bits,
                d.completeness_error(),
                d.per_bit_completeness_error()
            );
        } else {
            match d.differing.len() {
                0 => say!(
                    "point {k}: state s{} — no {} bits differ between input (episode {} step {}) and baseline (episode {} step {}): nothing to attribute",
                    p.state,
                    a.bits,
                    p.input.episode,
                    p.input.t,
                    p.baseline.episode,
                    p.baseline.t
                ),
                n => say!(
                    "point {k}: state s{} (visited {}): input o{} → s{} (episode {} step {}), baseline o{} → s{} (episode {} step {}); {n} of {} bits differ; completeness error {:.1e} (per-bit maps {:.1e}) ({secs:.2} s)",
                    p.state,
                    p.visits,
                    p.input.class,
                    p.input.next,
                    p.input.episode,
                    p.input.t,
                    p.baseline.class,
                    p.baseline.next,
                    p.baseline.episode,
                    p.baseline.t,
                    d.input_code.len(),
                    d.completeness_error(),
                    d.per_bit_completeness_error()
                ),
            }
        }
        if let Some(img) = decisions::seed_picture(&d, p, &shape, &names) {
            let path = a.out.join(format!("point-{k}.png"));
            xrl_render::write_png(&path, &img)?;
            say!("wrote {}", path.display());
        }
        if let Some(img) = decisions::bit_panels(&d, p, &shape, &names, a.max_bits) {
            let path = a.out.join(format!("point-{k}-bits.png"));
            xrl_render::write_png(&path, &img)?;
            say!("wrote {}", path.display());
        }
        summary.push(serde_json::json!({ "point": p, "diff_ig": d, "seconds": secs, "all_seconds": times }));
    }
    let path = a.out.join("diff_ig.json");
    let body = serde_json::to_vec_pretty(&serde_json::json!({
        "config": config,
        "fsm": std::fs::canonicalize(&a.fsm)?,
        "machine": xrl_fsm::pipeline::fingerprint(&dir.extraction()?.minimised),
        "points": summary
    }))?;
    xrl::run::write_bytes(&path, &body)?;
    say!("wrote {}", path.display());
    Ok(())
}
