//! `xrl`: train deep-RL agents and show why they act. See `xrl --help` and the README.

// Tensors of a training step are allocated and freed every step; mimalloc reuses their memory (see Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `println!` that returns the write's error instead of panicking: a closed pipe (`xrl envs --json | head -1`) then
/// ends the command quietly (see `main`), and a full disk is an `error:` line.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
            .map_err(|e| anyhow::Error::new(e).context("cannot write to standard output"))?
    }};
}

/// `eprintln!` that never panics: a closed or full standard error (`2>&1 | head`, `2>/dev/full`) must not stop a
/// training run; what cannot be said is dropped.
macro_rules! tell {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

mod bench;
mod diff_ig;
mod evaluate;
mod explain;
mod fsm;
mod report;
mod train;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use xrl::rollout::{self, RandomPolicy};
use xrl_env::{ActionSpace, EnvSpec, MakeOptions, ObsSpace, RngKind};

#[derive(Parser)]
#[command(name = "xrl", version, about = "Train deep-RL agents and show why they act", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every environment id with its observation and action spaces.
    Envs {
        /// Print the specs as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Play episodes with a policy and print per-episode returns and lengths.
    Rollout {
        #[command(flatten)]
        env: EnvArgs,
        /// The policy to play (only `random` until agents land).
        #[arg(long, default_value = "random")]
        policy: String,
        /// Number of whole episodes.
        #[arg(long, allow_negative_numbers = true, default_value_t = 10)]
        episodes: usize,
        /// Seed of the environment and the policy; the same seed gives the same numbers.
        #[arg(long, allow_negative_numbers = true, default_value_t = 0)]
        seed: u64,
        /// Print a JSON object with arrays `returns` and `lengths`.
        #[arg(long)]
        json: bool,
        /// Play this action sequence instead of a policy (one action index per line; `#` comments allowed),
        /// resetting without a seed whenever an episode ends.
        #[arg(long, conflicts_with_all = ["policy", "episodes"])]
        actions: Option<PathBuf>,
        /// With --actions: write per step the reward, lives (Atari), terminated/truncated and the SHA-256 of the
        /// observation and (Atari) of the raw RGB screen, as JSON, to check parity with another implementation.
        #[arg(long, requires = "actions")]
        record: Option<PathBuf>,
    },
    /// Atari setup: `xrl atari setup` downloads ale-py 0.12.1's ALE source and ROMs from PyPI (needs python3).
    #[command(subcommand)]
    Atari(AtariCommand),
    /// Write an animated GIF (or an MP4) of a random rollout.
    Render {
        #[command(flatten)]
        env: EnvArgs,
        #[arg(long, allow_negative_numbers = true, default_value_t = 0)]
        seed: u64,
        /// Steps to play (the GIF has one more frame: the first observation).
        #[arg(long, allow_negative_numbers = true, default_value_t = 100)]
        steps: usize,
        /// Frames per second of the GIF.
        #[arg(long, allow_hyphen_values = true, default_value_t = 10.0)]
        fps: f32,
        /// Output file (.gif or .mp4).
        #[arg(long)]
        out: PathBuf,
    },
    /// Train an agent; writes a run directory (run.toml, checkpoints, metrics.csv) that resumes if killed.
    Train(train::TrainArgs),
    /// Evaluate a trained run: per-episode returns and lengths, optionally a GIF.
    Play(train::PlayArgs),
    /// Load weights trained elsewhere (PyTorch, safetensors, Stable-Baselines3) into a run directory.
    Import(train::ImportArgs),
    /// Play a run's agent and explain its frames: pictures, a GIF, raw maps (.npy) and summary.json.
    Explain(Box<explain::ExplainArgs>),
    /// Test the maps of each method against the network: deletion and insertion, action agreement, faithfulness
    /// correlation, infidelity and max sensitivity, beside a random-map control; writes evaluate.json and plots.
    Evaluate(Box<evaluate::EvaluateArgs>),
    /// Extract a Moore machine from a GRU policy (quantised bottleneck networks, Koul et al. 2019): every stage
    /// resumable; writes the machine as text, JSON, DOT and SVG. `xrl fsm play DIR` scores it.
    Fsm(Box<fsm::FsmArgs>),
    /// Differential integrated gradients (the Differential_IG seed) at a Moore machine's decision points: which
    /// pixels or features changed the observation bits the machine branches on.
    DiffIg(Box<diff_ig::DiffIgArgs>),
    /// Write a self-contained HTML report of a run and its explanations (viewable offline).
    Report(report::ReportArgs),
    /// The main job on the embedded default: an A2C agent on MinAtar Breakout, explained by every method, in a
    /// browsable HTML report.
    Demo(report::DemoArgs),
    /// Measure speed side by side with the Python references.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

#[derive(Subcommand)]
enum AtariCommand {
    /// Download ale-py 0.12.1's source distribution from PyPI, check its SHA-256, unpack ALE's C++ source and the
    /// ROMs (MD5 checked) into a cache directory; then build with `cargo build --release --features atari`.
    Setup {
        /// Where to unpack [default: $XRL_ALE_DIR, else ~/.cache/xrl/ale-0.12.1].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Use this ale_py-0.12.1.tar.gz instead of downloading it.
        #[arg(long)]
        sdist: Option<PathBuf>,
    },
}

/// The setup script, embedded so the command works from an installed binary.
const ATARI_SETUP: &str = include_str!("../../../scripts/atari-setup.py");

fn atari_setup(dir: Option<PathBuf>, sdist: Option<PathBuf>) -> Result<()> {
    let mut cmd = std::process::Command::new("python3");
    // `python3 -c SCRIPT ARGS…`: the arguments follow the script directly (argparse would reject a `--`).
    cmd.arg("-c").arg(ATARI_SETUP);
    if let Some(d) = dir {
        cmd.arg("--dir").arg(d);
    }
    if let Some(f) = sdist {
        cmd.arg("--sdist").arg(f);
    }
    let status = cmd.status().map_err(|e| {
        anyhow::anyhow!("cannot run python3 ({e}); install Python 3, or run scripts/atari-setup.py with your Python")
    })?;
    if !status.success() {
        bail!("the Atari setup failed (its message is above)");
    }
    Ok(())
}

/// Which environment, and its options.
#[derive(Args, Clone)]
struct EnvArgs {
    /// Environment id (see `xrl envs`), e.g. `MinAtar/Breakout-v0` or `CartPole-v1`.
    #[arg(long = "env")]
    id: String,
    /// MinAtar: probability that the previous action repeats [default: 0.1].
    #[arg(long, allow_hyphen_values = true)]
    sticky: Option<f64>,
    /// MinAtar: turn off difficulty ramping.
    #[arg(long)]
    no_ramping: bool,
    /// Random generator: `fast` (default) or `numpy` (draw-for-draw with Python minatar's RandomState).
    #[arg(long, default_value = "fast", value_parser = parse_rng)]
    rng: RngKind,
    /// Atari: Gymnasium's AtariPreprocessing (1–30 no-ops, frame skip 4 with max-pooling, grey 84×84 INTER_AREA)
    /// over the game with frameskip 1.
    #[arg(long)]
    atari_preprocessing: bool,
    /// Atari, with --atari-preprocessing: a lost life ends the episode.
    #[arg(long)]
    terminal_on_life_loss: bool,
    /// Atari: press FIRE after each reset (games that wait for it).
    #[arg(long)]
    fire_reset: bool,
    /// Atari: clip rewards to [−1, 1].
    #[arg(long)]
    clip_rewards: bool,
    /// Atari, with --atari-preprocessing: `gymnasium` (default), `koul80` (the finite-state and
    /// perturbation-saliency seeds' 80×80 frames) or `bilinear84` (seed 002's).
    #[arg(long, value_parser = xrl_env::AtariFrame::parse)]
    atari_frame: Option<xrl_env::AtariFrame>,
}

fn parse_rng(s: &str) -> Result<RngKind, String> {
    match s {
        "fast" => Ok(RngKind::Fast),
        "numpy" => Ok(RngKind::Numpy),
        _ => Err(format!("unknown generator `{s}`; use `fast` or `numpy`")),
    }
}

impl EnvArgs {
    /// Python's `RandomState` takes seeds below 2³²; a larger one could not be compared draw for draw.
    fn check_seed(&self, seed: u64) -> Result<()> {
        if self.rng == RngKind::Numpy && seed > u64::from(u32::MAX) {
            bail!("--rng numpy takes a --seed below 2^32 (as numpy's RandomState does), got {seed}");
        }
        Ok(())
    }

    fn make(&self) -> Result<Box<dyn xrl_env::Env>> {
        if !self.id.starts_with("MinAtar/") && (self.sticky.is_some() || self.no_ramping || self.rng != RngKind::Fast) {
            bail!("--sticky, --no-ramping and --rng are MinAtar options; {} has none of them: leave them out", self.id);
        }
        let atari = xrl_env::AtariOptions {
            preprocess: self.atari_preprocessing,
            terminal_on_life_loss: self.terminal_on_life_loss,
            fire_reset: self.fire_reset,
            clip_rewards: self.clip_rewards,
            frame: self.atari_frame.unwrap_or_default(),
        };
        if !xrl_env::is_atari_id(&self.id) && !atari.is_default() {
            bail!(
                "--atari-preprocessing, --terminal-on-life-loss, --fire-reset, --clip-rewards and --atari-frame are \
                 Atari options; \
                 {} is not an Atari game: leave them out",
                self.id
            );
        }
        let options = MakeOptions {
            sticky_action_prob: self.sticky.unwrap_or(MakeOptions::default().sticky_action_prob),
            difficulty_ramping: !self.no_ramping,
            rng: self.rng,
            atari,
            ..MakeOptions::default()
        };
        Ok(xrl_env::make_with(&self.id, &options)?)
    }
}

fn describe_obs(o: &ObsSpace) -> String {
    let shape = o.shape().iter().map(|d| d.to_string()).collect::<Vec<_>>().join("×");
    match o {
        ObsSpace::Binary { .. } => format!("binary {shape}"),
        ObsSpace::Box { .. } => format!("float {shape}"),
    }
}

fn describe_actions(a: &ActionSpace) -> String {
    match a {
        ActionSpace::Discrete { n, meanings } => format!("{n}: {}", meanings.join(", ")),
        ActionSpace::Continuous { dim, low, high } => {
            format!("continuous {dim} in [{}, {}]", low[0], high[0])
        }
    }
}

fn envs(json: bool) -> Result<()> {
    let mut specs: Vec<EnvSpec> = vec![];
    for (id, spec) in xrl_env::specs() {
        match spec {
            Ok(s) => specs.push(s),
            Err(e) => tell!("warning: {id} is left out: {e}"),
        }
    }
    if let Some(note) = xrl_env::atari_note() {
        tell!("note: {note}");
    }
    if json {
        say!("{}", serde_json::to_string_pretty(&specs)?);
        return Ok(());
    }
    say!("{:<26} {:<16} {:>6}  actions", "id", "observation", "limit");
    for s in specs {
        let limit = s.max_episode_steps.map_or("-".into(), |l| l.to_string());
        say!("{:<26} {:<16} {:>6}  {}", s.id, describe_obs(&s.observation), limit, describe_actions(&s.action));
    }
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Envs { json } => envs(json),
        Command::Rollout { env, policy, episodes, seed, json, actions: Some(file), record } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("cannot read the action file {}: {e}", file.display()))?;
            let actions = rollout::read_actions(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let _ = (policy, episodes); // clap refuses them beside --actions
            if let Some(out) = &record {
                let same = match (std::fs::canonicalize(&file), std::fs::canonicalize(out)) {
                    (Ok(a), Ok(b)) => a == b,
                    _ => false,
                };
                if same {
                    bail!("--record {} is the action file itself; write the record to another file", out.display());
                }
            }
            env.check_seed(seed)?;
            let mut e = env.make()?;
            let r = rollout::replay(e.as_mut(), seed, &actions)?;
            let (ret, ends) =
                (r.steps.iter().map(|s| s.reward).sum::<f64>(), r.steps.iter().filter(|s| s.reset_after).count());
            if let Some(out) = record {
                xrl_render::write_atomic(&out, |w| {
                    serde_json::to_writer_pretty(w, &r)
                        .map_err(|e| xrl_render::RenderError::Encode { path: out.clone(), message: e.to_string() })
                })?;
                say!("wrote {} ({} steps)", out.display(), r.steps.len());
            }
            if json {
                say!(
                    "{}",
                    serde_json::json!({"env": r.env, "seed": seed, "steps": r.steps.len(), "return": ret, "episode_ends": ends})
                );
            } else {
                say!("{}: {} actions, total reward {ret}, {ends} episode end(s)", r.env, r.steps.len());
            }
            Ok(())
        }
        Command::Rollout { env, policy, episodes, seed, json, actions: None, .. } => {
            if policy != "random" {
                bail!("unknown policy `{policy}`; the available policy is `random`");
            }
            env.check_seed(seed)?;
            let mut e = env.make()?;
            let mut p = RandomPolicy::new(&e.spec().action, seed ^ 0x9E37_79B9_7F4A_7C15);
            let r = rollout::play(e.as_mut(), &mut p, episodes, seed, |_| {})?;
            print_rollout(&r, json, &format!("mean length {:.1}", r.mean_length()))
        }
        Command::Atari(AtariCommand::Setup { dir, sdist }) => atari_setup(dir, sdist),
        Command::Render { env, seed, steps, fps, out } => {
            let ext = out.extension().and_then(|e| e.to_str());
            if ext != Some("gif") && ext != Some("mp4") {
                bail!("--out must name a .gif or .mp4 file, got {}", out.display());
            }
            if !(fps > 0.0 && fps <= 100.0) {
                bail!("--fps must be in (0, 100], got {fps}");
            }
            env.check_seed(seed)?;
            let mut e = env.make()?;
            let mut p = RandomPolicy::new(&e.spec().action, seed ^ 0x9E37_79B9_7F4A_7C15);
            let frames = rollout::frames(e.as_mut(), &mut p, steps, seed)?;
            if ext == Some("mp4") {
                xrl_render::write_mp4(&out, &frames, fps)?;
            } else {
                xrl_render::write_gif(&out, &frames, fps)?;
            }
            say!("wrote {} ({} frames)", out.display(), frames.len());
            Ok(())
        }
        Command::Train(a) => train::train(a),
        Command::Play(a) => train::play(a),
        Command::Import(a) => train::import(a),
        Command::Explain(a) => explain::explain(*a),
        Command::Evaluate(a) => evaluate::evaluate(&a),
        Command::Fsm(a) => fsm::fsm(*a),
        Command::DiffIg(a) => diff_ig::diff_ig(*a),
        Command::Report(a) => report::report(&a),
        Command::Demo(a) => report::demo(&a),
        Command::Bench(cmd) => bench::run(cmd),
    }
}

/// Prints a rollout as JSON (`returns`, `lengths`) or as one line per episode and a summary with `detail`.
fn print_rollout(r: &rollout::Rollout, json: bool, detail: &str) -> Result<()> {
    if json {
        say!("{}", serde_json::to_string(r)?);
        return Ok(());
    }
    for (i, (ret, len)) in r.returns.iter().zip(&r.lengths).enumerate() {
        say!("episode {i:>4}  return {ret:>10.3}  length {len:>6}");
    }
    say!("mean return {:.3} over {} episodes ({detail})", r.mean_return(), r.returns.len());
    Ok(())
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version go to standard output like every other answer: a failed write is an error there too.
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) => {
            use std::io::Write as _;
            match write!(std::io::stdout().lock(), "{}", e.render()) {
                Err(w) if w.kind() != std::io::ErrorKind::BrokenPipe => {
                    tell!("error: cannot write to standard output: {w}");
                    std::process::exit(1);
                }
                _ => std::process::exit(0),
            }
        }
        Err(e) => e.exit(),
    };
    if let Err(e) = run(cli) {
        // Whoever read the output has gone (`| head`): nothing is wrong, and nobody is left to tell.
        let closed = e
            .chain()
            .any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe));
        if closed {
            std::process::exit(0);
        }
        // `{:#}` prints the whole chain on one line: what failed, then why.
        tell!("error: {e:#}");
        std::process::exit(1);
    }
}
