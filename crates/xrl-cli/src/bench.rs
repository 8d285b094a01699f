//! `xrl bench envs`: our environments beside the Python references, in one run, medians and ratios.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use xrl::bench::{self, Measurement, median};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Milliseconds per frame of each attribution method on the MinAtar and Nature CNNs, beside Captum running
    /// the same methods via `bench/explain.py`; prints a Markdown table.
    Explain {
        /// Python with torch and captum installed (a venv outside the repo). Without it only xrl is measured.
        #[arg(long)]
        python: Option<PathBuf>,
        #[arg(long, default_value = "bench/explain.py")]
        script: PathBuf,
        /// Frames explained per call.
        #[arg(long, default_value_t = 8)]
        frames: usize,
        /// Timed calls per method and round, at least (and at least 0.3 s of them).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// xrl and the reference take turns this many times; the table gives each side's median over the rounds
        /// and every round's ratio (this machine's speed drifts between minutes).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Milliseconds per frame of each evaluation measure (faithfulness correlation, pixel flipping, infidelity,
    /// max sensitivity, MPRT on the MinAtar CNN; ROAD on its agreement fixture's MLP), beside Quantus and Captum
    /// computing the same via `bench/evaluate.py`; prints a Markdown table.
    Evaluate {
        /// Python with torch, captum and quantus installed (a venv outside the repo). Without it only xrl is
        /// measured.
        #[arg(long)]
        python: Option<PathBuf>,
        #[arg(long, default_value = "bench/evaluate.py")]
        script: PathBuf,
        /// Frames per call.
        #[arg(long, default_value_t = 100)]
        frames: usize,
        /// Timed calls per measure and round, at least (and at least 0.3 s of them).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// xrl and the reference take turns this many times.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Training-step time (batch 32, Adam, Huber) and acting latency (batch 1) of the MinAtar CNN and the Nature
    /// CNN, beside PyTorch running the same networks via `bench/nets.py`; prints a Markdown table.
    Nets {
        /// Python with torch installed (a venv outside the repo). Without it only xrl is measured.
        #[arg(long)]
        python: Option<PathBuf>,
        #[arg(long, default_value = "bench/nets.py")]
        script: PathBuf,
        #[arg(long, default_value_t = 32)]
        batch: usize,
        /// Timed runs; each is the median of --iters repetitions (acting: 10× as many).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        #[arg(long, default_value_t = 50)]
        iters: usize,
    },
    /// Seconds per PPO update (GAE and every epoch's minibatch steps, no environment) of the MinAtar preset
    /// (MLP 256-256, 64 × 128 samples, 8 minibatches × 4 epochs) beside the same update in PyTorch
    /// (`bench/ppo.py`), alternating rounds; prints a Markdown table.
    Ppo {
        /// Python with torch installed (a venv outside the repo). Without it only xrl is measured.
        #[arg(long)]
        python: Option<PathBuf>,
        #[arg(long, default_value = "bench/ppo.py")]
        script: PathBuf,
        /// Timed updates per round and side (after a warm-up update).
        #[arg(long, default_value_t = 3)]
        updates: usize,
        /// xrl and PyTorch take turns this many times.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Seconds per Rainbow update of the MinAtar preset (conv 16 3×3 → dueling C51 noisy head, batch 32, n 3,
    /// double Q, prioritised replay; no environment) beside the same update in PyTorch (`bench/rainbow.py`: the
    /// same network, losses and sum-tree sampling in numpy), alternating rounds; prints a Markdown table.
    Rainbow {
        /// Python with torch and numpy installed (a venv outside the repo). Without it only xrl is measured.
        #[arg(long)]
        python: Option<PathBuf>,
        #[arg(long, default_value = "bench/rainbow.py")]
        script: PathBuf,
        /// Timed updates per round and side (after 10 warm-up updates on a replay of 5,000 random transitions).
        #[arg(long, default_value_t = 200)]
        updates: usize,
        /// xrl and PyTorch take turns this many times.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Atari throughput (build with `--features atari`): ALE's act loop, `ALE/<Game>-v5` steps, AtariPreprocessing +
    /// frame stack, and the u8 vector environment on 1 and N threads, beside ale-py and Gymnasium run by
    /// `bench/atari.py` in alternating rounds; prints a Markdown table of medians and ratios.
    #[cfg(feature = "atari")]
    Atari {
        /// Python with ale-py 0.12.1, gymnasium 1.4.0 and opencv installed. Without it only xrl is measured.
        #[arg(long)]
        python: Option<PathBuf>,
        #[arg(long, default_value = "bench/atari.py")]
        script: PathBuf,
        /// Game name as in the ids, e.g. Pong.
        #[arg(long, default_value = "Pong")]
        game: String,
        /// Emulator frames per raw measurement and side.
        #[arg(long, default_value_t = 40_000)]
        frames: usize,
        /// Agent steps per preprocessed measurement and side.
        #[arg(long, default_value_t = 5_000)]
        steps: usize,
        /// Copies in the vector environment.
        #[arg(long, default_value_t = 8)]
        copies: usize,
        /// Threads for the vector environment (0 = one per core).
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// xrl and Python take turns this many times.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Steps per second of each environment (observation included), single and vectorised, beside Gymnasium and
    /// Python minatar run by `bench/envs.py`; prints a Markdown table of medians and ratios.
    Envs {
        /// Python with gymnasium 1.4.0 and minatar 1.0.15 installed (a venv outside the repo). Without it only
        /// xrl is measured.
        #[arg(long)]
        python: Option<PathBuf>,
        /// The Python side of the benchmark.
        #[arg(long, default_value = "bench/envs.py")]
        script: PathBuf,
        /// Comma-separated ids (default: CartPole-v1, Acrobot-v1, MountainCar-v0 and the five MinAtar v0 games).
        #[arg(long, value_delimiter = ',')]
        envs: Vec<String>,
        /// Environment steps per timed run for xrl.
        #[arg(long, default_value_t = 1_000_000)]
        steps: usize,
        /// Environment steps per timed run for Python (it is much slower).
        #[arg(long, default_value_t = 20_000)]
        python_steps: usize,
        /// Timed runs per measurement; the median is reported.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Copies in the vector environment.
        #[arg(long, default_value_t = 8)]
        copies: usize,
        /// Also write every run's numbers as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

const DEFAULT_ENVS: [&str; 8] = [
    "CartPole-v1",
    "Acrobot-v1",
    "MountainCar-v0",
    "MinAtar/Asterix-v0",
    "MinAtar/Breakout-v0",
    "MinAtar/Freeway-v0",
    "MinAtar/Seaquest-v0",
    "MinAtar/SpaceInvaders-v0",
];

pub fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Explain { python, script, frames, runs, rounds } => explain(python, script, frames, runs, rounds),
        BenchCommand::Evaluate { python, script, frames, runs, rounds } => {
            evaluate(python, script, frames, runs, rounds)
        }
        BenchCommand::Nets { python, script, batch, runs, iters } => nets(python, script, batch, runs, iters),
        BenchCommand::Ppo { python, script, updates, rounds } => ppo(python, script, updates, rounds),
        BenchCommand::Rainbow { python, script, updates, rounds } => rainbow(python, script, updates, rounds),
        #[cfg(feature = "atari")]
        BenchCommand::Atari { python, script, game, frames, steps, copies, threads, rounds } => {
            atari(python, script, &game, frames, steps, copies, threads, rounds)
        }
        BenchCommand::Envs { python, script, envs, steps, python_steps, runs, copies, json } => {
            envs_bench(python, script, envs, steps, python_steps, runs, copies, json)
        }
    }
}

/// The median of the reference's runs for `reference[a][b]`, if the Python side measured it.
fn reference_median(reference: &Option<Value>, a: &str, b: &str) -> Option<f64> {
    let runs = reference.as_ref()?[a][b].as_array()?.iter().filter_map(Value::as_f64).collect::<Vec<_>>();
    Some(median(&runs))
}

/// The reference's figure and ours ÷ theirs, formatted with the given decimals ("–" without a reference).
fn compare(theirs: Option<f64>, ours: f64, decimals: usize, ratio_decimals: usize) -> (String, String) {
    match theirs {
        Some(t) => (format!("{t:.decimals$}"), format!("{:.ratio_decimals$}×", ours / t)),
        None => ("–".into(), "–".into()),
    }
}

fn run_python(py: &PathBuf, script: &PathBuf, args: &[String]) -> Result<Value> {
    tell!("python: {} {}", py.display(), script.display());
    let out = Command::new(py).arg(script).args(args).output().with_context(|| {
        format!("cannot run {}; pass --python PATH to a Python with the references installed", py.display())
    })?;
    if !out.status.success() {
        bail!("{} failed:\n{}", script.display(), String::from_utf8_lossy(&out.stderr));
    }
    serde_json::from_slice(&out.stdout).context("the Python benchmark did not print JSON")
}

/// The Python reference server (`script --serve`), when a Python is given.
fn start_reference(
    python: Option<&PathBuf>,
    script: &std::path::Path,
    frames: usize,
    runs: usize,
) -> Result<Option<xrl_explain::bench::Reference>> {
    python
        .map(|py| xrl_explain::bench::Reference::start(py, script, frames, runs))
        .transpose()
        .map_err(anyhow::Error::msg)
}

/// A table row's reference cells: the reference's median, the median of the rounds' ratios ours ÷ theirs, and
/// each round's ratio (`decimals` places), or dashes without a reference.
fn ratio_cells(ours: &[f64], theirs: &[f64], decimals: usize) -> (String, String, String) {
    if theirs.is_empty() {
        return ("–".into(), "–".into(), "–".into());
    }
    let ratios: Vec<f64> = ours.iter().zip(theirs).map(|(o, t)| o / t).collect();
    let each: Vec<String> = ratios.iter().map(|r| format!("{r:.decimals$}")).collect();
    (format!("{:.3}", median(theirs)), format!("{:.decimals$}×", median(&ratios)), each.join(", "))
}

fn explain(python: Option<PathBuf>, script: PathBuf, frames: usize, runs: usize, rounds: usize) -> Result<()> {
    use xrl_explain::bench::{NETS, interleaved};
    let mut reference = start_reference(python.as_ref(), &script, frames, runs)?;
    // On the CPU, like the Captum reference it is compared with (and where xrl's fast products run).
    let device = xrl_nn::device::parse("cpu").map_err(anyhow::Error::msg)?;
    let rows =
        interleaved(&device, reference.as_mut(), frames, runs, rounds, |r, net| tell!("round {r}/{rounds}: {net}"))
            .map_err(anyhow::Error::msg)?;
    drop(reference);
    let spread = |v: &[f64]| v.iter().fold((f64::INFINITY, 0f64), |(lo, hi), &r| (lo.min(r), hi.max(r)));
    say!("| network | method | xrl ms/frame | reference ms/frame | xrl ÷ reference | each round's ratio |");
    say!("|---|---|---:|---:|---:|---:|");
    for xrl_explain::bench::Row { net, method, ours, theirs } in &rows {
        let reference = if method == "perturbation" { "original procedure" } else { "Captum" };
        let (t, ratio, range) = ratio_cells(ours, theirs, 2);
        let method = if method == "perturbation" { format!("{method} ({reference})") } else { method.to_string() };
        say!("| {net} | {method} | {:.3} | {t} | {ratio} | {range} |", median(ours));
    }
    say!(
        "\nEach figure is the median of {rounds} rounds; a round times one xrl method on {frames} frames — at least \
         {runs} calls and 0.3 s of them, after 0.3 s of warm-up — then its reference the same way (Captum; for \
         `perturbation`, the original code's procedure in PyTorch, `perturbation_original`), and its ratio compares \
         the two medians."
    );
    // Our batched perturbation saliency against the original procedure and against PyTorch's forward passes alone
    // (one per perturbed frame, from the `perturbation_one_at_a_time` row of the same round).
    let find =
        |net: &str, method: &str| rows.iter().find(|r| r.net == net && r.method == method && !r.theirs.is_empty());
    for net in NETS {
        if let (Some(p), Some(one)) = (find(net, "perturbation"), find(net, "perturbation_one_at_a_time")) {
            let (ours, original, forwards) = (&p.ours, &p.theirs, &one.theirs);
            let times = |theirs: &[f64]| {
                let x: Vec<f64> = ours.iter().zip(theirs).map(|(o, t)| t / o).collect();
                let (lo, hi) = spread(&x);
                format!("{:.1}× (rounds {lo:.1}–{hi:.1}×)", median(&x))
            };
            say!(
                "\n{net}: batched perturbation saliency is {} faster than the original code's procedure in PyTorch \
                 and {} faster than its forward passes alone.",
                times(original),
                times(forwards)
            );
        }
    }
    Ok(())
}

fn evaluate(python: Option<PathBuf>, script: PathBuf, frames: usize, runs: usize, rounds: usize) -> Result<()> {
    use xrl_explain::bench::evaluate_interleaved;
    let mut reference = start_reference(python.as_ref(), &script, frames, runs)?;
    let device = xrl_nn::device::parse("cpu").map_err(anyhow::Error::msg)?;
    let rows = evaluate_interleaved(&device, reference.as_mut(), frames, runs, rounds, |r| tell!("round {r}/{rounds}"))
        .map_err(anyhow::Error::msg)?;
    drop(reference);
    say!("| measure | xrl ms/frame | reference | reference ms/frame | xrl ÷ reference | each round's ratio |");
    say!("|---|---:|---|---:|---:|---:|");
    for xrl_explain::bench::Row { method, ours, theirs, .. } in &rows {
        let quantus = ["faithfulness-correlation", "pixel-flipping", "mprt", "road"].contains(&method.as_str());
        let reference = if quantus { "Quantus" } else { "Captum" };
        let (t, ratio, each) = ratio_cells(ours, theirs, 3);
        say!("| {method} | {:.4} | {reference} | {t} | {ratio} | {each} |", median(ours));
    }
    say!(
        "\nMedians of {rounds} rounds on {frames} frames of the MinAtar CNN (random weights); a round times one of \
         xrl's measures — at least {runs} calls and 0.3 s of them, after 0.3 s of warm-up — then its reference the \
         same way, with the same number of forward passes per frame. ROAD (noise 0, percentages 1, 3, …, 99) runs \
         on the ROAD agreement fixture instead — its 1×10×10 MLP, 8 frames, |maps| and greedy labels \
         (crates/xrl-explain/tests/fixtures/eval_quantus_captum.json), on both sides."
    );
    Ok(())
}

fn nets(python: Option<PathBuf>, script: PathBuf, batch: usize, runs: usize, iters: usize) -> Result<()> {
    use xrl::bench::nets;
    if runs == 0 || iters == 0 || batch == 0 {
        bail!("--runs, --iters and --batch must be at least 1");
    }
    // On the CPU, like the PyTorch reference it is compared with (and where xrl's fast products run).
    let device = xrl_nn::device::parse("cpu").map_err(anyhow::Error::msg)?;
    let mut ours = vec![];
    for (name, spec) in nets::specs() {
        tell!("xrl: {name}");
        ours.push(nets::train_step(name, &spec, batch, runs, iters, &device));
        ours.push(nets::act(name, &spec, runs, iters * 10, &device));
    }
    let reference = match &python {
        Some(py) => Some(run_python(
            py,
            &script,
            &[
                "--batch".into(),
                batch.to_string(),
                "--runs".into(),
                runs.to_string(),
                "--iters".into(),
                iters.to_string(),
            ],
        )?),
        None => None,
    };
    say!("| network | measure | batch | xrl ms (median) | PyTorch ms (median) | xrl ÷ PyTorch |");
    say!("|---|---|---:|---:|---:|---:|");
    for t in &ours {
        let (p, ratio) = compare(reference_median(&reference, &t.net, &t.what), t.median(), 3, 2);
        say!("| {} | {} | {} | {:.3} | {p} | {ratio} |", t.net, t.what, t.batch, t.median());
    }
    Ok(())
}

fn ppo(python: Option<PathBuf>, script: PathBuf, updates: usize, rounds: usize) -> Result<()> {
    if !(1..=1_000).contains(&updates) || !(1..=100).contains(&rounds) {
        bail!("--updates must be between 1 and 1000 and --rounds between 1 and 100, got {updates} and {rounds}");
    }
    let device = xrl_nn::device::parse("cpu").map_err(anyhow::Error::msg)?;
    let config = xrl::agents::ppo::PpoConfig::minatar();
    let (mut ours, mut theirs, mut ratios) = (vec![], vec![], vec![]);
    for round in 0..rounds {
        tell!("round {}: xrl", round + 1);
        let t =
            xrl::bench::ppo_update_seconds(&config, &[4, 10, 10], 3, updates, &device).map_err(anyhow::Error::msg)?;
        let ours_round = median(&t);
        ours.push(ours_round);
        if let Some(py) = &python {
            tell!("round {}: PyTorch", round + 1);
            let args = ["--updates".to_string(), updates.to_string()];
            let v = run_python(py, &script, &args)?;
            let secs: Vec<f64> =
                v["seconds"].as_array().map(|a| a.iter().filter_map(Value::as_f64).collect()).unwrap_or_default();
            let theirs_round = median(&secs);
            theirs.push(theirs_round);
            ratios.push(format!("{:.2}", ours_round / theirs_round));
        }
    }
    say!(
        "| update (MinAtar preset: MLP 256-256, 8192 samples, 8 × 4 minibatch steps) | xrl s (median) | PyTorch s (median) | xrl ÷ PyTorch per round |"
    );
    say!("|---|---:|---:|---|");
    let theirs_cell = if theirs.is_empty() { "–".to_string() } else { format!("{:.3}", median(&theirs)) };
    say!(
        "| PPO update | {:.3} | {theirs_cell} | {} |",
        median(&ours),
        if ratios.is_empty() { "–".into() } else { ratios.join(", ") }
    );
    Ok(())
}

fn rainbow(python: Option<PathBuf>, script: PathBuf, updates: usize, rounds: usize) -> Result<()> {
    if !(1..=10_000).contains(&updates) || !(1..=100).contains(&rounds) {
        bail!("--updates must be between 1 and 10000 and --rounds between 1 and 100, got {updates} and {rounds}");
    }
    let device = xrl_nn::device::parse("cpu").map_err(anyhow::Error::msg)?;
    let config = xrl::agents::rainbow::RainbowConfig::minatar();
    let (mut ours, mut theirs, mut ratios) = (vec![], vec![], vec![]);
    for round in 0..rounds {
        tell!("round {}: xrl", round + 1);
        let t = xrl::bench::rainbow_update_seconds(&config, &[4, 10, 10], 6, updates, &device)
            .map_err(anyhow::Error::msg)?;
        let ours_round = median(&t);
        ours.push(ours_round);
        if let Some(py) = &python {
            tell!("round {}: PyTorch", round + 1);
            let args = [
                "--updates".to_string(),
                updates.to_string(),
                "--fill".into(),
                xrl::bench::RAINBOW_FILL.to_string(),
                "--warmup".into(),
                xrl::bench::RAINBOW_WARMUP.to_string(),
            ];
            let v = run_python(py, &script, &args)?;
            let secs: Vec<f64> =
                v["seconds"].as_array().map(|a| a.iter().filter_map(Value::as_f64).collect()).unwrap_or_default();
            if secs.is_empty() {
                bail!("{} printed no seconds", script.display());
            }
            let theirs_round = median(&secs);
            theirs.push(theirs_round);
            ratios.push(format!("{:.2}", ours_round / theirs_round));
        }
    }
    say!(
        "| update (MinAtar preset: conv 16 3×3, dueling C51 noisy head, batch 32, PER) | xrl ms (median) | PyTorch ms (median) | xrl ÷ PyTorch per round |"
    );
    say!("|---|---:|---:|---|");
    let theirs_cell = if theirs.is_empty() { "–".to_string() } else { format!("{:.3}", median(&theirs) * 1e3) };
    say!(
        "| Rainbow update | {:.3} | {theirs_cell} | {} |",
        median(&ours) * 1e3,
        if ratios.is_empty() { "–".into() } else { ratios.join(", ") }
    );
    Ok(())
}

#[cfg(feature = "atari")]
#[allow(clippy::too_many_arguments)]
fn atari(
    python: Option<PathBuf>,
    script: PathBuf,
    game: &str,
    frames: usize,
    steps: usize,
    copies: usize,
    threads: usize,
    rounds: usize,
) -> Result<()> {
    if frames < 4 || steps == 0 || copies == 0 || !(1..=100).contains(&rounds) {
        bail!("--frames must be at least 4, --steps and --copies at least 1, --rounds between 1 and 100");
    }
    let mut ours = vec![];
    let mut theirs: Vec<Value> = vec![];
    for r in 0..rounds {
        tell!("round {}: xrl", r + 1);
        ours.push(xrl::bench::atari::round(game, frames, steps, copies, threads)?);
        if let Some(py) = &python {
            tell!("round {}: ale-py + Gymnasium", r + 1);
            let args = ["--game", game, "--frames", &frames.to_string(), "--steps", &steps.to_string()];
            theirs.push(run_python(py, &script, &args.map(String::from))?);
        }
    }
    let med = |f: &dyn Fn(&xrl::bench::atari::Round) -> f64| median(&ours.iter().map(f).collect::<Vec<_>>());
    let ref_med = |key: &str| -> Option<f64> {
        let v: Vec<f64> = theirs.iter().filter_map(|t| t[key].as_f64()).collect();
        (!v.is_empty()).then(|| median(&v))
    };
    say!("| {game} ({rounds} alternating rounds, medians) | xrl | ale-py / Gymnasium | xrl ÷ reference |");
    say!("|---|---:|---:|---:|");
    for (what, key, ours_m) in [
        ("ALE act loop, frames/s", "act", med(&|r| r.act)),
        ("ALE/<Game>-v5 step (RGB observation), frames/s", "v5_step", med(&|r| r.v5_step)),
        ("AtariPreprocessing + stack of 4, steps/s", "preprocessed_stack", med(&|r| r.preprocessed_stack)),
    ] {
        let (t, ratio) = compare(ref_med(key), ours_m, 0, 2);
        say!("| {what} | {ours_m:.0} | {t} | {ratio} |");
    }
    let (one, many) = (med(&|r| r.vector_one), med(&|r| r.vector_many));
    say!(
        "| u8 vector env: 1 copy on 1 thread vs {copies} copies on {threads} threads, steps/s | {many:.0} | {one:.0} (1 copy) | {:.2}× |",
        many / one
    );
    // The replay's buffers are allocated whole at creation: their bytes over the capacity are what it holds.
    let replay = xrl::pixel_replay::PixelReplay::new(100_000, 84 * 84, 4, 3).map_err(anyhow::Error::msg)?;
    say!(
        "| pixel replay, 100,000 transitions of 4 × 84 × 84 (3-step), bytes per transition | {:.0} | – | – |",
        replay.bytes_per_transition()
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn envs_bench(
    python: Option<PathBuf>,
    script: PathBuf,
    envs: Vec<String>,
    steps: usize,
    python_steps: usize,
    runs: usize,
    copies: usize,
    json: Option<PathBuf>,
) -> Result<()> {
    if runs == 0 || steps == 0 || copies == 0 {
        bail!("--runs, --steps and --copies must be at least 1");
    }
    let ids: Vec<String> = if envs.is_empty() { DEFAULT_ENVS.iter().map(|s| s.to_string()).collect() } else { envs };
    for id in &ids {
        xrl_env::make(id)?; // fail early on an unknown id
    }

    let mut ours: Vec<Measurement> = vec![];
    for id in &ids {
        tell!("xrl: {id}");
        ours.push(bench::single(id, steps, runs)?);
        ours.push(bench::vector(id, copies, steps, runs)?);
    }

    let reference: Option<Value> = match &python {
        None => None,
        Some(py) => {
            tell!("python: {} {}", py.display(), script.display());
            let out = Command::new(py)
                .arg(&script)
                .args(["--envs", &ids.join(","), "--steps", &python_steps.to_string()])
                .args(["--runs", &runs.to_string(), "--copies", &copies.to_string()])
                .output()
                .with_context(|| {
                    format!("cannot run {}; pass --python PATH to a Python with gymnasium and minatar", py.display())
                })?;
            if !out.status.success() {
                bail!("{} failed:\n{}", script.display(), String::from_utf8_lossy(&out.stderr));
            }
            Some(serde_json::from_slice(&out.stdout).context("the Python benchmark did not print JSON")?)
        }
    };

    say!("| environment | mode | xrl steps/s (median) | Python steps/s (median) | ratio |");
    say!("|---|---|---:|---:|---:|");
    for m in &ours {
        let mode = if m.copies > 1 { format!("vector ×{}", m.copies) } else { m.mode.clone() };
        let (t, ratio) = compare(reference_median(&reference, &m.env, &m.mode), m.median(), 0, 0);
        say!("| {} | {mode} | {:.0} | {t} | {ratio} |", m.env, m.median());
    }
    if let Some(path) = json {
        let doc = serde_json::json!({ "xrl": ours, "python": reference });
        xrl_render::write_atomic(&path, |w| {
            serde_json::to_writer_pretty(w, &doc)
                .map_err(|e| xrl_render::RenderError::Encode { path: path.clone(), message: e.to_string() })
        })?;
    }
    Ok(())
}
