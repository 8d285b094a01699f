//! `xrl train` and `xrl play`.

use anyhow::{Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use xrl::new_run::{AgentKind, NewRun};
use xrl::nn::CoreKind;
use xrl::rollout::{self, NetPolicy};
use xrl::run::RunDir;

/// `--device`, for the commands that build or load networks.
#[derive(Args, Clone)]
pub struct DeviceArg {
    /// Where the networks run: `cpu` (burn's Flex backend, with xrl's fast products), `ndarray` (burn's NdArray
    /// CPU backend) or `cuda[:N]` (GPU N, default 0). `ndarray` and `cuda` need xrl built with the cargo feature of
    /// that name, e.g. `cargo install --path crates/xrl-cli --features cuda`.
    #[arg(long = "device", default_value = "cpu", value_parser = xrl_nn::device::parse)]
    pub device: xrl::burn::tensor::Device,
}

#[derive(Args)]
pub struct TrainArgs {
    /// Environment id (see `xrl envs`).
    #[arg(long = "env", required_unless_present = "resume")]
    id: Option<String>,
    /// The agent: `dqn` (with --double, --dueling, --n-step), `drqn` (--frames, --core-size; DQN options apply
    /// too), `a2c`, `a3c` (--workers), `ppo` (CleanRL's PPO; gymnax's MinAtar settings on MinAtar) or `rainbow`
    /// (Revisiting Rainbow's MinAtar configuration; --no-per, --no-noisy, --no-c51, --no-double, --no-dueling,
    /// --n-step).
    #[arg(long, default_value = "dqn", conflicts_with = "resume")]
    agent: String,
    /// Double DQN targets.
    #[arg(long, conflicts_with = "resume")]
    double: bool,
    /// Dueling head (V and A exposed separately).
    #[arg(long, conflicts_with = "resume")]
    dueling: bool,
    /// n-step returns (DQN: 1 by default; Rainbow: 3).
    #[arg(long, allow_negative_numbers = true, conflicts_with = "resume")]
    n_step: Option<usize>,
    /// Rainbow: uniform replay instead of prioritised.
    #[arg(long, conflicts_with = "resume")]
    no_per: bool,
    /// Rainbow: plain layers instead of noisy ones (ε-greedy only).
    #[arg(long, conflicts_with = "resume")]
    no_noisy: bool,
    /// Rainbow: scalar Q values (Huber loss) instead of C51's distributions.
    #[arg(long, conflicts_with = "resume")]
    no_c51: bool,
    /// Rainbow: targets from the target network's own argmax.
    #[arg(long, conflicts_with = "resume")]
    no_double: bool,
    /// Rainbow: a plain Q head instead of a dueling one.
    #[arg(long, conflicts_with = "resume")]
    no_dueling: bool,
    /// A3C: worker threads (default: one per core).
    #[arg(long, allow_negative_numbers = true, conflicts_with = "resume")]
    workers: Option<usize>,
    /// A2C: a recurrent core after the torso, `lstm` or `gru` (state carried per environment copy, zeroed at
    /// episode ends, backpropagated through each rollout).
    #[arg(long, conflicts_with = "resume")]
    core: Option<String>,
    /// DRQN and recurrent A2C: units of the LSTM or GRU (default 128).
    #[arg(long, allow_negative_numbers = true, conflicts_with = "resume")]
    core_size: Option<usize>,
    /// The torso: `default` (the agent's), `mmn` (A2C: Koul et al. 2019's, for `xrl fsm`: FC 16 → ELU → FC 8 →
    /// ReLU6, or the MinAtar CNN ending in ReLU6) or `ife` (Rainbow, PPO, A2C: the IFE seed's interpretable
    /// feature extractor — non-overlapping convolutions, soft attention over their cells, residual blocks —
    /// whose attention mask `xrl explain --methods attention` shows).
    #[arg(long, conflicts_with = "resume")]
    torso: Option<String>,
    /// DRQN: frames the LSTM runs over (default 4, seed 002's).
    #[arg(long, allow_negative_numbers = true, conflicts_with = "resume")]
    frames: Option<usize>,
    /// Environment steps (frames) to train for; with --resume, the run's new total (recorded in run.toml).
    #[arg(long, allow_negative_numbers = true, required_unless_present = "resume")]
    steps: Option<usize>,
    /// The optimiser's learning rate (default: the agent's published one); with --resume, the rate from now on
    /// (recorded in run.toml; the optimiser's moments carry on).
    #[arg(long, allow_hyphen_values = true)]
    lr: Option<f64>,
    /// Seed of everything random in the run (recorded in run.toml).
    #[arg(long, allow_negative_numbers = true, default_value_t = 0, conflicts_with = "resume")]
    seed: u64,
    /// The run directory to create.
    #[arg(long, required_unless_present = "resume")]
    out: Option<PathBuf>,
    /// Steps between checkpoints (default: a twentieth of the run, at least 1,000).
    #[arg(long, allow_negative_numbers = true, conflicts_with = "resume")]
    checkpoint_every: Option<usize>,
    /// MinAtar: probability that the previous action repeats [default: 0.1].
    #[arg(long, allow_hyphen_values = true, conflicts_with = "resume")]
    sticky: Option<f64>,
    /// MinAtar: turn off difficulty ramping.
    #[arg(long, conflicts_with = "resume")]
    no_ramping: bool,
    /// Atari: the preprocessed frame, `gymnasium` (84×84, default), `koul80` (the finite-state seed's 80×80) or
    /// `bilinear84` (seed 002's).
    #[arg(long, value_parser = xrl_env::AtariFrame::parse, conflicts_with = "resume")]
    atari_frame: Option<xrl_env::AtariFrame>,
    /// Atari: frames per observation (default 4; 1 with a recurrent core, which remembers).
    #[arg(long, allow_negative_numbers = true, conflicts_with = "resume")]
    frame_stack: Option<usize>,
    /// Continue the run in this directory from its last checkpoint.
    #[arg(long, conflicts_with_all = ["id", "out"])]
    resume: Option<PathBuf>,
    /// No progress bar (a summary line per checkpoint instead).
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    device: DeviceArg,
}

impl TrainArgs {
    /// The demo's training: A2C on MinAtar Breakout, 1M frames, seed 0, one checkpoint at the end — parsed like
    /// the command line, so every other option keeps the CLI's default.
    pub(crate) fn demo(out: &std::path::Path) -> Self {
        #[derive(clap::Parser)]
        struct Demo {
            #[command(flatten)]
            args: TrainArgs,
        }
        let out = out.to_string_lossy();
        let argv = ["xrl-demo", "--env", "MinAtar/Breakout-v0", "--agent", "a2c", "--steps", "1000000", "--seed", "0"];
        <Demo as clap::Parser>::parse_from(argv.into_iter().chain(["--checkpoint-every", "1000000", "--out", &out]))
            .args
    }
}

pub fn train(a: TrainArgs) -> Result<()> {
    if a.lr.is_some_and(|lr| !(lr > 0.0 && lr.is_finite())) {
        bail!("--lr must be a positive number, e.g. 2.5e-4");
    }
    let dir = match &a.resume {
        Some(dir) => RunDir::new(dir),
        None => {
            let (Some(id), Some(steps), Some(out)) = (&a.id, a.steps, &a.out) else {
                bail!("--env, --steps and --out are required for a new run (or pass --resume DIR)");
            };
            let core = match a.core.as_deref() {
                None => None,
                Some("lstm") => Some(CoreKind::Lstm),
                Some("gru") => Some(CoreKind::Gru),
                Some(other) => bail!("unknown --core `{other}`; use lstm or gru"),
            };
            let card = NewRun {
                env: id.clone(),
                agent: a.agent.parse::<AgentKind>()?,
                steps,
                seed: a.seed,
                checkpoint_every: a.checkpoint_every,
                lr: a.lr,
                sticky: a.sticky,
                difficulty_ramping: !a.no_ramping,
                double: a.double,
                dueling: a.dueling,
                n_step: a.n_step,
                rainbow_off: xrl::new_run::RainbowOff {
                    per: a.no_per,
                    noisy: a.no_noisy,
                    c51: a.no_c51,
                    double: a.no_double,
                    dueling: a.no_dueling,
                },
                workers: a.workers,
                core,
                core_size: a.core_size,
                frames: a.frames,
                atari_frame: a.atari_frame.unwrap_or_default(),
                frame_stack: a.frame_stack,
                mmn_torso: match a.torso.as_deref() {
                    None | Some("default") | Some("ife") => false,
                    Some("mmn") => true,
                    Some(other) => bail!("unknown --torso `{other}`; use default, mmn or ife"),
                },
                ife_torso: a.torso.as_deref() == Some("ife"),
            }
            .card()?;
            let dir = RunDir::new(out);
            dir.create(&card)?;
            dir
        }
    };
    // The card as this command will train it (a resume's --steps is recorded once the run passes its checks).
    let mut card = dir.read_card()?;
    card.total_steps = a.steps.unwrap_or(card.total_steps);
    for w in card.warnings() {
        tell!("warning: {w}");
    }
    let bar = if a.quiet { ProgressBar::hidden() } else { ProgressBar::new(card.total_steps as u64) };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise}, eta {eta}]")
            .expect("valid template"),
    );
    let quiet = a.quiet;
    let (lr, steps) = if a.resume.is_some() { (a.lr, a.steps) } else { (None, None) };
    let state = xrl::train::resume(&dir, &a.device.device, lr, steps, |p| {
        for note in &p.notes {
            bar.suspend(|| tell!("note: {note}"));
        }
        bar.set_position(p.step as u64);
        bar.set_message(format!(
            "{:.0} steps/s  episodes {}  recent return {:.2}",
            p.steps_per_sec, p.episodes, p.recent_return
        ));
        if quiet && p.last_checkpoint == Some(p.step) {
            tell!(
                "step {} episodes {} recent return {:.2} ({:.0} steps/s)",
                p.step,
                p.episodes,
                p.recent_return,
                p.steps_per_sec
            );
        }
    })?;
    bar.finish_and_clear();
    say!(
        "trained {} to step {} ({} episodes); wrote {}, {} and {}",
        card.env.id,
        state.step,
        state.episodes,
        dir.card_path().display(),
        dir.metrics_path().display(),
        dir.checkpoints().display()
    );
    Ok(())
}

#[derive(Args)]
pub struct PlayArgs {
    /// A run directory made by `xrl train`.
    #[arg(long)]
    run: PathBuf,
    #[arg(long, allow_negative_numbers = true, default_value_t = 10)]
    episodes: usize,
    #[arg(long, allow_negative_numbers = true, default_value_t = 0)]
    seed: u64,
    /// Probability of a random action (0 = greedy).
    #[arg(long, allow_hyphen_values = true, default_value_t = 0.0)]
    epsilon: f64,
    /// Also write a GIF of the played episodes.
    #[arg(long)]
    gif: Option<PathBuf>,
    /// With --gif, for a `--torso ife` run: the attention mask over every frame, as the IFE seed's evaluation
    /// video (frame dimmed to 60 %, attended cells brightened), upsampled `nearest` (what the seed asked for) or
    /// `bilinear` (what its OpenCV call did).
    #[arg(long, value_name = "UPSAMPLING")]
    attention: Option<String>,
    /// Print a JSON object with arrays `returns` and `lengths`.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArg,
}

pub fn play(a: PlayArgs) -> Result<()> {
    if !(0.0..=1.0).contains(&a.epsilon) {
        bail!("--epsilon must be in [0, 1], got {}", a.epsilon);
    }
    if let Some(g) = &a.gif
        && g.extension().and_then(|e| e.to_str()) != Some("gif")
    {
        bail!("--gif must name a .gif file, got {}", g.display());
    }
    let dir = RunDir::new(&a.run);
    let card = dir.read_card()?;
    let (state, net) = dir.load_latest_online(&card, &a.device.device)?;
    if let Some(note) = dir.index_note() {
        tell!("note: {note}");
    }
    let attention = match &a.attention {
        None => None,
        Some(_) if a.gif.is_none() => bail!("--attention draws the mask on --gif's frames: give --gif FILE too"),
        Some(how) => {
            let how = xrl_explain::attention::parse_upsample(how)?;
            xrl_explain::attention::mask(&net, &vec![0.0; card.net.obs_shape.iter().product()])?;
            Some((net.clone(), how))
        }
    };
    let mut env = card.env.make()?;
    let mut policy = NetPolicy::new(net, a.epsilon, a.seed ^ 0x5EED);
    let mut frames = vec![];
    let record = a.gif.is_some();
    // Every frame of the GIF is held in memory until it is written: at most as many as `render` keeps.
    let mut cut = false;
    let r = rollout::play(env.as_mut(), &mut policy, a.episodes, a.seed, |e| {
        if record && frames.len() < rollout::MAX_FRAMES {
            let frame = e.render();
            frames.push(match &attention {
                Some((net, how)) => match xrl_explain::attention::mask(net, e.obs()) {
                    Ok((mask, hw)) => xrl_explain::attention::overlay(&frame, &mask, hw, *how),
                    Err(_) => frame,
                },
                None => frame,
            });
        } else if record {
            cut = true;
        }
    })?;
    if let Some(g) = &a.gif {
        xrl_render::write_gif(g, &frames, 15.0)?;
        if cut {
            tell!(
                "note: {} holds the first {} frames only (every frame is kept in memory); play fewer --episodes for \
                 a GIF of them all",
                g.display(),
                rollout::MAX_FRAMES
            );
        }
    }
    crate::print_rollout(&r, a.json, &format!("checkpoint at step {}, ε = {}", state.step, a.epsilon))?;
    if let (Some(g), false) = (&a.gif, a.json) {
        say!("wrote {}", g.display());
    }
    Ok(())
}

#[derive(Args)]
pub struct ImportArgs {
    /// The weights file.
    file: PathBuf,
    /// `pytorch` (a state dict: .pt, .pth, .cleanrl_model), `safetensors` (PyTorch names) or `sb3` (a
    /// Stable-Baselines3 .zip).
    #[arg(long)]
    format: String,
    /// `nature-dqn` (CleanRL Atari DQN), `nature-dueling` (Wang et al.'s two streams: `features.{0,2,4}`,
    /// `advantage.{0,2}`, `value.{0,2}`), `cleanrl-ppo-atari` (CleanRL's PPO Agent), `sb3-cnn-dqn` and
    /// `sb3-cnn-actor-critic` (Stable-Baselines3 CnnPolicy of DQN, and of PPO or A2C), `minatar-dqn` (MinAtar
    /// paper), `mlp-dqn` (CleanRL CartPole) or `sb3-mlp-dqn` (Stable-Baselines3 MlpPolicy).
    #[arg(long)]
    arch: String,
    /// The environment the weights act in (see `xrl envs`).
    #[arg(long = "env")]
    id: String,
    /// The run directory to create.
    #[arg(long)]
    out: PathBuf,
    /// A checkpoint that nests its state dict under a key (e.g. `state_dict` or `model`).
    #[arg(long)]
    key: Option<String>,
    /// Rename a tensor-name prefix before reading (repeatable, applied in order), for checkpoints whose layers are
    /// named differently, e.g. `--rename trunk.=features.` or `--rename module.=` (DataParallel's prefix).
    #[arg(long = "rename", value_name = "FROM=TO")]
    renames: Vec<xrl::import::Rename>,
    #[command(flatten)]
    device: DeviceArg,
}

pub fn import(a: ImportArgs) -> Result<()> {
    use xrl::import::{Arch, Format};
    let format = Format::parse(&a.format).map_err(anyhow::Error::msg)?;
    let arch = Arch::parse(&a.arch).map_err(anyhow::Error::msg)?;
    let dir = RunDir::new(&a.out);
    xrl::import::import_run(&dir, &a.file, format, arch, a.key.as_deref(), &a.renames, &a.id, &a.device.device)?;
    say!(
        "imported {} ({}, {}) into {}; try `xrl play --run {}`",
        a.file.display(),
        a.format,
        arch.name(),
        a.out.display(),
        a.out.display()
    );
    Ok(())
}
