//! `xrl fsm` (extract a Moore machine from a GRU policy) and `xrl fsm play` (score it).

use crate::train::DeviceArg;
use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use xrl_fsm::pipeline::{self, FsmConfig, FsmDir};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct FsmArgs {
    #[command(subcommand)]
    command: Option<FsmCommand>,
    #[command(flatten)]
    build: BuildArgs,
}

#[derive(Subcommand)]
enum FsmCommand {
    /// Score the policy, its Moore machine network and the minimised machine playing alone on the same episodes;
    /// writes scores.json, classes.png (sample frames per observation class) and machine-episode.gif.
    Play(PlayArgs),
}

#[derive(Args)]
struct BuildArgs {
    /// The run of a GRU policy (`xrl train --agent a2c --core gru --torso mmn`); its latest checkpoint is used.
    #[arg(long, required = true)]
    run: Option<PathBuf>,
    /// Bits of the hidden-state code (B_h; the seed's CartPole and Atari results use 64).
    #[arg(long = "hx", allow_negative_numbers = true, required = true)]
    hx: Option<usize>,
    /// Bits of the observation code (B_f; 64 for CartPole, 100 for Atari in the seed).
    #[arg(long = "ox", allow_negative_numbers = true, required = true)]
    ox: Option<usize>,
    /// The output directory: new or empty, or one an earlier `xrl fsm` with the same options left (it resumes:
    /// every finished stage is kept).
    #[arg(long, required = true)]
    out: Option<PathBuf>,
    /// Seed of every random choice (exploration, shuffling, initial weights, episodes).
    #[arg(long, allow_negative_numbers = true, default_value_t = 0)]
    seed: u64,
    /// `ternary` codes {−1, 0, 1} (the seed's) or `binary` {−1, 1}.
    #[arg(long, default_value = "ternary")]
    quantiser: String,
    /// Episodes of bottleneck data.
    #[arg(long, allow_negative_numbers = true, default_value_t = 20)]
    data_episodes: usize,
    /// Steps an episode is cut at while recording data, scoring and fine-tuning.
    #[arg(long, allow_negative_numbers = true, default_value_t = 1000)]
    max_steps: usize,
    /// Most epochs of each bottleneck's training (it stops earlier after --patience epochs without a better test
    /// loss).
    #[arg(long, allow_negative_numbers = true, default_value_t = 400)]
    qbn_epochs: usize,
    /// Epochs without improvement before a training stage stops.
    #[arg(long, allow_negative_numbers = true, default_value_t = 50)]
    patience: usize,
    /// Episodes each training epoch's network is scored on (the seed's 1).
    #[arg(long, allow_negative_numbers = true, default_value_t = 1)]
    score_episodes: usize,
    /// Most epochs of fine-tuning the whole MMN (0: none; it stops as soon as the MMN scores the policy's score).
    #[arg(long, allow_negative_numbers = true, default_value_t = 400)]
    finetune_epochs: usize,
    /// Greedy MMN episodes recorded to build the machine.
    #[arg(long, allow_negative_numbers = true, default_value_t = 10)]
    extract_episodes: usize,
    #[command(flatten)]
    device: DeviceArg,
}

#[derive(Args)]
struct PlayArgs {
    /// The directory `xrl fsm` wrote.
    dir: PathBuf,
    /// Episodes each of the three plays.
    #[arg(long, allow_negative_numbers = true, default_value_t = 100)]
    episodes: usize,
    /// Episode e is reset with seed + e.
    #[arg(long, allow_negative_numbers = true, default_value_t = 1_000_000)]
    seed: u64,
    /// Steps an episode is cut at.
    #[arg(long, allow_negative_numbers = true, default_value_t = 10_000)]
    max_steps: usize,
    /// Frames of the annotated video of the machine's first episode (0: none).
    #[arg(long, allow_negative_numbers = true, default_value_t = 300)]
    video_frames: usize,
    #[command(flatten)]
    device: DeviceArg,
}

pub fn fsm(a: FsmArgs) -> Result<()> {
    match a.command {
        Some(FsmCommand::Play(p)) => play(p),
        None => build(a.build),
    }
}

fn build(b: BuildArgs) -> Result<()> {
    let (Some(run), Some(hx), Some(ox), Some(out)) = (b.run, b.hx, b.ox, b.out) else {
        bail!("--run, --hx, --ox and --out are all needed to extract a machine");
    };
    let quantiser = match b.quantiser.as_str() {
        "ternary" => xrl::nn::qbn::Quantiser::Ternary,
        "binary" => xrl::nn::qbn::Quantiser::Binary,
        other => bail!("unknown --quantiser `{other}`; use ternary or binary"),
    };
    let config = FsmConfig {
        seed: b.seed,
        quantiser,
        data_episodes: b.data_episodes,
        max_steps: b.max_steps,
        qbn_epochs: b.qbn_epochs,
        patience: b.patience,
        score_episodes: b.score_episodes,
        finetune_epochs: b.finetune_epochs,
        extract_episodes: b.extract_episodes,
        ..FsmConfig::new(hx, ox)
    };
    let started = std::time::Instant::now();
    let extraction = pipeline::run(&run, &out, &config, &b.device.device, &mut |note| tell!("{note}"))?;
    let dir = FsmDir::new(&out);
    let card = dir.read_card()?;
    let run_card = dir.run_card(&card)?;
    let env = run_card.env.make()?;
    let names = xrl_fsm::play::action_names(env.as_ref());
    let written = xrl_fsm::play::write_machine_files(&dir, &extraction, &names)?;
    let (m, min) = (&extraction.machine, &extraction.minimised);
    say!(
        "extracted {} states and {} observation classes from {} episodes (MMN mean score {:.2}); minimised: {} states, {} \
         observation classes ({:.1} s)",
        m.states(),
        m.observations(),
        extraction.traces.len(),
        pipeline::mean(&extraction.episode_scores),
        min.states(),
        min.observations(),
        started.elapsed().as_secs_f64()
    );
    for p in written {
        say!("wrote {}", p.display());
    }
    say!("score it: xrl fsm play {} --episodes 100", out.display());
    Ok(())
}

fn play(p: PlayArgs) -> Result<()> {
    let dir = FsmDir::new(&p.dir);
    let (r, written) = xrl_fsm::play::play(&dir, p.episodes, p.seed, p.max_steps, p.video_frames, &p.device.device)?;
    say!("{} episodes of {} (seeds {}…):", r.episodes, r.env, r.seed);
    say!("  policy (no bottlenecks)   mean score {:.2}", r.policy_mean);
    say!("  Moore machine network     mean score {:.2}", r.mmn_mean);
    say!(
        "  minimised machine alone   mean score {:.2} ({} states, {} observation classes; {} of {} steps saw an unseen \
         code, {} took the nearest recorded transition)",
        r.machine_mean,
        r.states,
        r.observation_classes,
        r.machine.unseen_codes,
        r.machine.steps,
        r.machine.unrecorded_transitions
    );
    for p in written {
        say!("wrote {}", p.display());
    }
    Ok(())
}
