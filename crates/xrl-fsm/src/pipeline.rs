//! From a trained GRU policy to a minimised Moore machine (Koul et al. 2019, the `koulanurag/mmn` pipeline), in
//! the order it runs:
//!
//! 1. **bottleneck data**: episodes of the continuous policy with the seed's exploration schedule, recording the
//!    torso's features c_t and the GRU's states h_t; a share of the samples is kept apart as the test set (the
//!    seed's "test set" was the unique rows of its training set);
//! 2. **bottleneck training**, the observation QBN on c, the hidden-state QBN on h: Adam, MSE reconstruction,
//!    batches of 32, gradient norm clipped to 5; after every epoch the QBN is inserted alone into the policy and
//!    scored, the best-scoring one kept; stop on a NaN loss, a zero test loss, or 50 epochs without a better test loss;
//! 3. **fine-tuning** of the whole MMN (both QBNs inserted) towards the continuous policy's action distribution
//!    (MSE between the softmaxes over its recorded episodes, truncated backpropagation through time, Adam, gradient
//!    norm 0.5), stopped once the MMN scores what the policy does;
//! 4. **extraction**: greedy MMN episodes recorded as traces of (observation code, state code, action), the
//!    machine they describe, and its minimisation.
//!
//! Every stage writes its own files into the output directory and is skipped when they are there, so a killed
//! `xrl fsm` resumes where it stopped. Hyper-parameters are in [`FsmConfig`], defaulting to the seed's.

use crate::FsmError;
use crate::machine::{MooreMachine, Step, Trace};
use crate::mmn::{Acting, Mmn, play_episode, score};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use xrl::nn::qbn::{Qbn, QbnSpec, Quantiser};
use xrl::nn::{Net, batch, clip_grad_norm, to_vec};
use xrl::run::{RunCard, RunDir};
use xrl_env::Env;

/// The pipeline's settings; [`FsmConfig::new`] gives the seed's defaults for the two code widths.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsmConfig {
    /// B_h: bits of the hidden-state code (the seed's `--bhx_size`; 64 for its Atari and CartPole results).
    pub hx_bits: usize,
    /// B_f: bits of the observation code (`--ox_size`; 100 for Atari, 64 for CartPole).
    pub ox_bits: usize,
    pub quantiser: Quantiser,
    /// Seed of every random choice of the pipeline (exploration, shuffling, the bottlenecks' initial weights) and
    /// of the environment's episodes.
    pub seed: u64,
    /// Episodes of bottleneck data (`--bn_episodes`).
    pub data_episodes: usize,
    /// Steps an episode is cut at while recording data and fine-tuning (`--generate_max_steps`).
    pub max_steps: usize,
    /// The exploration ε of every other data episode (the others are greedy).
    pub data_epsilon: f64,
    /// Share of the bottleneck samples kept apart as the test set.
    pub test_fraction: f64,
    /// Bottleneck training: Adam's learning rate, batch size, most epochs, gradient-norm clip, epochs without a
    /// better test loss before stopping, and episodes the inserted network is scored on after each epoch.
    pub qbn_lr: f64,
    pub qbn_batch: usize,
    pub qbn_epochs: usize,
    pub qbn_clip: f32,
    pub patience: usize,
    pub score_episodes: usize,
    /// Fine-tuning: most epochs (0: none), learning rate, gradient-norm clip, steps of truncated backpropagation,
    /// and the policy's episodes it imitates (in batches of `finetune_batch`).
    pub finetune_epochs: usize,
    pub finetune_lr: f64,
    pub finetune_clip: f32,
    pub bptt: usize,
    pub finetune_episodes: usize,
    pub finetune_batch: usize,
    /// Extraction: greedy MMN episodes recorded, each cut at `extract_max_steps`.
    pub extract_episodes: usize,
    pub extract_max_steps: usize,
}

impl FsmConfig {
    /// The seed's settings for codes of `hx_bits` and `ox_bits`.
    pub fn new(hx_bits: usize, ox_bits: usize) -> Self {
        FsmConfig {
            hx_bits,
            ox_bits,
            quantiser: Quantiser::Ternary,
            seed: 0,
            data_episodes: 20,
            max_steps: 1000,
            data_epsilon: 0.3,
            test_fraction: 0.2,
            qbn_lr: 1e-4,
            qbn_batch: 32,
            qbn_epochs: 400,
            qbn_clip: 5.0,
            patience: 50,
            score_episodes: 1,
            finetune_epochs: 400,
            finetune_lr: 1e-4,
            finetune_clip: 0.5,
            bptt: 100,
            finetune_episodes: 15,
            finetune_batch: 5,
            extract_episodes: 10,
            extract_max_steps: 10_000,
        }
    }

    pub fn validate(&self) -> Result<(), FsmError> {
        let bad = |m: String| Err(FsmError::Invalid(m));
        let counts = [
            ("--hx", self.hx_bits, 4096),
            ("--ox", self.ox_bits, 4096),
            ("--data-episodes", self.data_episodes, 100_000),
            ("--max-steps", self.max_steps, 10_000_000),
            ("--qbn-batch", self.qbn_batch, 1 << 20),
            ("--qbn-epochs", self.qbn_epochs, 1_000_000),
            ("--patience", self.patience, 1_000_000),
            ("--score-episodes", self.score_episodes, 10_000),
            ("--bptt", self.bptt, 1_000_000),
            ("--finetune-episodes", self.finetune_episodes, 100_000),
            ("--finetune-batch", self.finetune_batch, 10_000),
            ("--extract-episodes", self.extract_episodes, 100_000),
            ("--extract-max-steps", self.extract_max_steps, 10_000_000),
        ];
        for (name, v, max) in counts {
            if !(1..=max).contains(&v) {
                return bad(format!("{name} must be between 1 and {max}, got {v}"));
            }
        }
        if self.finetune_epochs > 1_000_000 {
            return bad(format!(
                "--finetune-epochs must be at most 1000000 (0: no fine-tuning), got {}",
                self.finetune_epochs
            ));
        }
        for (name, v) in [("--data-epsilon", self.data_epsilon), ("--test-fraction", self.test_fraction)] {
            if !(0.0..1.0).contains(&v) {
                return bad(format!("{name} must be in [0, 1), got {v}"));
            }
        }
        for (name, v) in [("--qbn-lr", self.qbn_lr), ("--finetune-lr", self.finetune_lr)] {
            if !(v > 0.0 && v.is_finite()) {
                return bad(format!("{name} must be a positive number, e.g. 1e-4, got {v}"));
            }
        }
        for (name, v) in [("--qbn-clip", self.qbn_clip), ("--finetune-clip", self.finetune_clip)] {
            if !(v > 0.0 && v.is_finite()) {
                return bad(format!("{name} must be a positive gradient norm, got {v}"));
            }
        }
        Ok(())
    }

    fn qbn_spec(&self, input: usize, bits: usize, observations: bool, atari: bool) -> QbnSpec {
        let spec = match (observations, atari) {
            (true, _) => QbnSpec::observations(input, bits),
            (false, true) => QbnSpec::atari_hidden_states(input, bits),
            (false, false) => QbnSpec::hidden_states(input, bits),
        };
        QbnSpec { quantiser: self.quantiser, ..spec }
    }
}

/// The output directory's card: what the machine is extracted from, and how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsmCard {
    pub format: String,
    pub version: u32,
    pub xrl_version: String,
    /// The run directory (absolute).
    pub run: PathBuf,
    /// The run's checkpoint the policy was read from.
    pub checkpoint_step: usize,
    pub env: String,
    pub config: FsmConfig,
}

pub const FORMAT: &str = "xrl-fsm";
pub const VERSION: u32 = 1;

/// Samples of the continuous policy: features c and states h, row-major, train and test apart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BottleneckData {
    pub feature_len: usize,
    pub hidden_len: usize,
    pub train_features: Vec<f32>,
    pub test_features: Vec<f32>,
    pub train_hidden: Vec<f32>,
    pub test_hidden: Vec<f32>,
    /// Scores of the recorded (partly exploring) episodes.
    pub episode_scores: Vec<f64>,
    /// The continuous policy's mean greedy score over 5 episodes: the score the bottlenecks aim to keep.
    pub policy_score: f64,
}

/// One epoch of bottleneck training or fine-tuning.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Epoch {
    pub epoch: usize,
    pub train_loss: f64,
    /// Reconstruction MSE on the test set (bottlenecks) or the softmax MSE (fine-tuning).
    pub test_loss: f64,
    /// The inserted network's mean score.
    pub score: f64,
}

/// How a training stage went: every epoch, the one kept, and why it stopped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingLog {
    pub epochs: Vec<Epoch>,
    pub best_epoch: Option<usize>,
    pub best_score: f64,
    pub stopped: String,
    pub seconds: f64,
}

impl TrainingLog {
    fn new() -> Self {
        TrainingLog {
            epochs: vec![],
            best_epoch: None,
            best_score: f64::NEG_INFINITY,
            stopped: String::new(),
            seconds: 0.0,
        }
    }

    /// Closes the log (why it stopped, when no earlier reason was given; how long it took) and says so.
    fn finish(&mut self, epochs: usize, started: std::time::Instant, notes: Notes) {
        if self.stopped.is_empty() {
            self.stopped = format!("{epochs} epochs");
        }
        self.seconds = started.elapsed().as_secs_f64();
        notes(&format!(
            "  kept epoch {} (score {:.2}); stopped: {} ({:.1} s)",
            self.best_epoch.map_or("none".into(), |e| e.to_string()),
            self.best_score,
            self.stopped,
            self.seconds
        ));
    }
}

/// Everything extraction recorded: the traces, and the machines before and after minimisation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Extraction {
    pub traces: Vec<Trace>,
    pub episode_scores: Vec<f64>,
    pub machine: MooreMachine,
    pub minimised: MooreMachine,
    pub seconds: f64,
}

impl Extraction {
    /// Both machines whole, and every trace's codes of the card's widths.
    pub fn check(&self, actions: usize, hx_bits: usize, ox_bits: usize) -> Result<(), String> {
        self.machine.validate(actions, hx_bits, ox_bits).map_err(|m| format!("the extracted machine: {m}"))?;
        self.minimised.validate(actions, hx_bits, ox_bits).map_err(|m| format!("the minimised machine: {m}"))?;
        if self
            .traces
            .iter()
            .flat_map(|t| &t.steps)
            .any(|s| s.obs.len() != ox_bits || s.next.len() != hx_bits || s.action >= actions)
        {
            return Err("a trace's codes or actions do not fit the machine's settings".into());
        }
        if self.episode_scores.len() != self.traces.len() {
            return Err(format!("{} traces but {} episode scores", self.traces.len(), self.episode_scores.len()));
        }
        Ok(())
    }

    /// Itself when [`Extraction::check`] passes; read from `path`, it is damaged otherwise.
    fn checked(self, path: &Path, actions: usize, config: &FsmConfig) -> Result<Self, FsmError> {
        self.check(actions, config.hx_bits, config.ox_bits).map_err(|m| FsmError::File {
            path: path.to_path_buf(),
            message: format!(
                "is damaged ({m}); remove it and rerun `xrl fsm` with the same settings to extract the machine again"
            ),
        })?;
        Ok(self)
    }
}

/// The files of an output directory.
#[derive(Clone, Debug)]
pub struct FsmDir {
    pub root: PathBuf,
}

impl FsmDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FsmDir { root: root.into() }
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
    pub fn card(&self) -> PathBuf {
        self.path("fsm.json")
    }

    pub fn read_card(&self) -> Result<FsmCard, FsmError> {
        if !self.card().is_file() {
            return Err(FsmError::Invalid(format!(
                "{} is not a directory `xrl fsm` wrote (it has no fsm.json); give the --out of an `xrl fsm` run",
                self.root.display()
            )));
        }
        let text = xrl_render::read_regular(self.card()).map_err(|e| file_err(&self.card(), e))?;
        let card: FsmCard = serde_json::from_slice(&text).map_err(|e| FsmError::File {
            path: self.card(),
            message: format!(
                "is not the card of an `xrl fsm` output ({e}); without it the files beside it cannot be matched to a \
                 run: choose a new --out"
            ),
        })?;
        if card.format != FORMAT || card.version > VERSION {
            return Err(FsmError::File {
                path: self.card(),
                message: format!(
                    "is format {} version {}; this xrl reads {FORMAT} up to version {VERSION}",
                    card.format, card.version
                ),
            });
        }
        Ok(card)
    }

    /// The policy's network and environment, as the card names them.
    pub fn policy(&self, card: &FsmCard, device: &Device) -> Result<(RunCard, Net), FsmError> {
        load_policy(&card.run, Some(card.checkpoint_step), device)
    }

    /// The MMN the machine was extracted from: the fine-tuned one when fine-tuning ran, else the policy with
    /// both trained bottlenecks inserted.
    pub fn mmn(&self, card: &FsmCard, device: &Device) -> Result<Mmn, FsmError> {
        let device = &device.clone().autodiff();
        let (_, net) = self.policy(card, device)?;
        let (ox_spec, hx_spec) = specs(&card.config, &net);
        let inserted = Mmn::new(
            net,
            Some(load_module(
                Qbn::new(&ox_spec, device).map_err(FsmError::Invalid)?,
                &self.stage_file("ox.safetensors")?,
            )?),
            Some(load_module(
                Qbn::new(&hx_spec, device).map_err(FsmError::Invalid)?,
                &self.stage_file("hx.safetensors")?,
            )?),
        )?;
        if card.config.finetune_epochs == 0 {
            return Ok(inserted);
        }
        load_module(inserted, &self.stage_file("mmn.safetensors")?)
    }

    /// The path of a stage's file, or the error that says the pipeline has not made it yet.
    fn stage_file(&self, name: &str) -> Result<PathBuf, FsmError> {
        let path = self.path(name);
        if path.exists() {
            return Ok(path);
        }
        Err(FsmError::File {
            path,
            message: format!(
                "missing: `xrl fsm` has not finished in {}; rerun the `xrl fsm` command that made it (its settings are \
                 in fsm.json) and it resumes where it stopped",
                self.root.display()
            ),
        })
    }

    /// The extraction, checked against the card (a machine whose indices or codes do not fit is damaged).
    pub fn extraction(&self) -> Result<Extraction, FsmError> {
        let path = self.stage_file("extraction.json")?;
        let ex: Extraction = read_json(&path)?;
        let card = self.read_card()?;
        ex.checked(&path, self.run_card(&card)?.net.actions, &card.config)
    }

    /// The card of the run the machine was extracted from (without loading its network).
    pub fn run_card(&self, card: &FsmCard) -> Result<RunCard, FsmError> {
        Ok(RunDir::new(&card.run).read_card()?)
    }
}

fn specs(config: &FsmConfig, net: &Net) -> (QbnSpec, QbnSpec) {
    let atari = net.spec().frame_shape().len() == 3 && net.spec().frame_shape()[1] == 80;
    (
        config.qbn_spec(net.feature_size(), config.ox_bits, true, atari),
        config.qbn_spec(net.hidden_size().unwrap_or(0), config.hx_bits, false, atari),
    )
}

/// The network of a run's checkpoint (`step`, or the latest), off the autodiff device.
pub fn load_policy(run: &Path, step: Option<usize>, device: &Device) -> Result<(RunCard, Net), FsmError> {
    let dir = RunDir::new(run);
    let card = dir.read_card()?;
    let (state, net) = dir.load_latest_online(&card, device)?;
    if let Some(step) = step
        && state.step != step
    {
        return Err(FsmError::Invalid(format!(
            "{} is now at step {}, but this output was made from its checkpoint at step {step}; choose a new --out \
             to extract a machine from the newer checkpoint",
            run.display(),
            state.step
        )));
    }
    Ok((card, net))
}

/// Progress notes for the user (stage started, epoch summaries).
pub type Notes<'a> = &'a mut dyn FnMut(&str);

/// Runs every stage whose files are missing from `out` (its card written first, or checked against this run and
/// config when it is there), and returns the extraction.
pub fn run(run: &Path, out: &Path, config: &FsmConfig, device: &Device, notes: Notes) -> Result<Extraction, FsmError> {
    config.validate()?;
    let dir = FsmDir::new(out);
    let ad = device.clone().autodiff();
    let (run_card, net) = load_policy(run, None, &ad)?;
    let step = RunDir::new(run).latest()?.map(|s| s.step).unwrap_or(0);
    Mmn::new(net.clone(), None, None)?;
    let card = FsmCard {
        format: FORMAT.into(),
        version: VERSION,
        xrl_version: env!("CARGO_PKG_VERSION").into(),
        // Absolute, so that the card names the run from wherever it is read.
        run: std::fs::canonicalize(run).unwrap_or_else(|_| run.to_path_buf()),
        checkpoint_step: step,
        env: run_card.env.id.clone(),
        config: config.clone(),
    };
    let _claim = claim(&dir, &card)?;
    let mut env = run_card.env.make().map_err(|e| FsmError::Invalid(e.to_string()))?;
    let env = env.as_mut();

    let data: BottleneckData = stage(&dir.path("data.json"), notes, "recording bottleneck data", |notes| {
        bottleneck_data(&net, env, config, notes)
    })?;
    let (ox_spec, hx_spec) = specs(config, &net);
    let ox = train_stage(&dir, "ox", &ox_spec, &net, env, &data, config, device, notes)?.valid();
    let hx = train_stage(&dir, "hx", &hx_spec, &net, env, &data, config, device, notes)?.valid();
    let inserted = Mmn::new(net.clone(), Some(ox), Some(hx))?;
    let mmn = if config.finetune_epochs == 0 {
        inserted
    } else {
        let path = dir.path("mmn.safetensors");
        if path.exists() {
            notes("fine-tuned MMN: kept from mmn.safetensors");
            load_module(inserted, &path)?
        } else {
            notes("fine-tuning the MMN towards the policy's action distribution");
            let (tuned, log) = finetune(inserted, &net, env, config, data.policy_score, device, notes)?;
            write_json(&dir.path("mmn.json"), &log)?;
            save_module(&tuned, &path)?;
            tuned
        }
    };
    let path = dir.path("extraction.json");
    let ex =
        stage(&path, notes, "extracting and minimising the Moore machine", |notes| extract(&mmn, env, config, notes))?;
    ex.checked(&path, run_card.net.actions, config)
}

/// Claims `out` for this job: a new or empty directory, or one holding this very card (an earlier run of the same
/// job, resumed). A card of another run or config is refused: its files would not describe this machine.
fn claim(dir: &FsmDir, card: &FsmCard) -> Result<xrl_render::DirClaim, FsmError> {
    let out = |e: xrl_render::RenderError| FsmError::Invalid(e.to_string());
    if dir.card().exists() {
        let there = dir.read_card()?;
        let same_run = std::fs::canonicalize(&there.run).unwrap_or(there.run.clone()) == card.run;
        let refuse = |why: String| {
            Err(FsmError::File {
                path: dir.card(),
                message: format!("{why}; rerun with the settings it records to resume it, or choose a new --out"),
            })
        };
        if !same_run {
            return refuse(format!("was made from the run {}, not {}", there.run.display(), card.run.display()));
        }
        if there.checkpoint_step != card.checkpoint_step {
            return refuse(format!(
                "was made from the run's checkpoint at step {}, and the run is now at step {}",
                there.checkpoint_step, card.checkpoint_step
            ));
        }
        if there.config != card.config {
            let (a, b) = (serde_json::to_value(&there.config), serde_json::to_value(&card.config));
            let differ: Vec<String> = match (a, b) {
                (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) => a
                    .iter()
                    .filter(|(k, v)| b.get(*k) != Some(v))
                    .map(|(k, v)| format!("{k} {v} there, {} now", b.get(k).map_or("–".into(), |x| x.to_string())))
                    .collect(),
                _ => vec![],
            };
            return refuse(format!("was made with other settings ({})", differ.join("; ")));
        }
        xrl_render::claim_own_dir(&dir.root).map_err(out)
    } else {
        let claim = xrl_render::claim_dir(&dir.root).map_err(out)?;
        write_json(&dir.card(), card)?;
        Ok(claim)
    }
}

/// A stage's result: read from `path` when an earlier run wrote it, else computed and written.
fn stage<T: Serialize + for<'de> Deserialize<'de>>(
    path: &Path,
    notes: Notes,
    what: &str,
    compute: impl FnOnce(Notes) -> Result<T, FsmError>,
) -> Result<T, FsmError> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if path.exists() {
        notes(&format!("{what}: kept from {name}"));
        return read_json(path);
    }
    notes(what);
    let value = compute(notes)?;
    write_json(path, &value)?;
    Ok(value)
}

/// Step 1: the continuous policy's features and states over `data_episodes` episodes. Every other episode
/// explores (ε = `data_epsilon`) during its first k·2% of `max_steps` steps, k uniform in 0..=50 (the seed's
/// schedule, so that the data holds states off the greedy path); the samples are shuffled and `test_fraction` of
/// them kept apart.
pub fn bottleneck_data(
    net: &Net,
    env: &mut dyn Env,
    config: &FsmConfig,
    notes: Notes,
) -> Result<BottleneckData, FsmError> {
    let policy = Mmn::new(net.clone(), None, None)?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(config.seed ^ 0xDA7A);
    let (mut features, mut hidden, mut scores) = (vec![], vec![], vec![]);
    for e in 0..config.data_episodes {
        let epsilon = if e % 2 == 1 { config.data_epsilon } else { 0.0 };
        let until = rng.random_range(0..=50usize) * config.max_steps / 50;
        let acting = Acting::Explore { epsilon, until };
        let seed = (e == 0).then_some(config.seed);
        let ep = play_episode(&policy, env, seed, config.max_steps, acting, &mut rng, |r| {
            features.push(r.features.clone());
            hidden.push(r.raw_hidden.clone());
        })?;
        scores.push(ep.score);
    }
    let policy_scores = score(&policy, env, 5, config.seed.wrapping_add(1), config.max_steps)?;
    let policy_score = mean(&policy_scores);
    notes(&format!(
        "{} samples from {} episodes (mean score {:.2}); the policy scores {policy_score:.2} greedily",
        features.len(),
        scores.len(),
        mean(&scores)
    ));
    let mut order: Vec<usize> = (0..features.len()).collect();
    order.shuffle(&mut rng);
    let test = ((features.len() as f64 * config.test_fraction).round() as usize).min(features.len().saturating_sub(1));
    let pick = |rows: &[Vec<f32>], idx: &[usize]| idx.iter().flat_map(|&i| rows[i].clone()).collect::<Vec<f32>>();
    let (test_idx, train_idx) = order.split_at(test);
    Ok(BottleneckData {
        feature_len: net.feature_size(),
        hidden_len: net.hidden_size().unwrap_or(0),
        train_features: pick(&features, train_idx),
        test_features: pick(&features, test_idx),
        train_hidden: pick(&hidden, train_idx),
        test_hidden: pick(&hidden, test_idx),
        episode_scores: scores,
        policy_score,
    })
}

#[allow(clippy::too_many_arguments)]
fn train_stage(
    dir: &FsmDir,
    name: &str,
    spec: &QbnSpec,
    net: &Net,
    env: &mut dyn Env,
    data: &BottleneckData,
    config: &FsmConfig,
    device: &Device,
    notes: Notes,
) -> Result<Qbn, FsmError> {
    let path = dir.path(&format!("{name}.safetensors"));
    let what = if name == "ox" { "observation" } else { "hidden-state" };
    if path.exists() {
        notes(&format!("{what} bottleneck: kept from {name}.safetensors"));
        return load_module(Qbn::new(spec, &device.clone().autodiff()).map_err(FsmError::Invalid)?, &path);
    }
    notes(&format!("training the {what} bottleneck ({} bits)", spec.code));
    let observations = name == "ox";
    let (train, test) = if observations {
        (&data.train_features, &data.test_features)
    } else {
        (&data.train_hidden, &data.test_hidden)
    };
    let (q, log) = train_qbn(spec, observations, train, test, net, env, config, data.policy_score, device, notes)?;
    write_json(&dir.path(&format!("{name}.json")), &log)?;
    save_module(&q, &path)?;
    Ok(q)
}

/// Step 2: one bottleneck trained to reconstruct `train` (rows of `spec.input`), scored after every epoch inserted
/// alone into `net` (`observations`: between torso and core; else after the core). Returns the best-scoring epoch's
/// bottleneck (the later one on ties, whose reconstruction is better) and the log.
#[allow(clippy::too_many_arguments)]
pub fn train_qbn(
    spec: &QbnSpec,
    observations: bool,
    train: &[f32],
    test: &[f32],
    net: &Net,
    env: &mut dyn Env,
    config: &FsmConfig,
    target_score: f64,
    device: &Device,
    notes: Notes,
) -> Result<(Qbn, TrainingLog), FsmError> {
    let started = std::time::Instant::now();
    let width = spec.input;
    if train.is_empty() || !train.len().is_multiple_of(width) || !test.len().is_multiple_of(width) {
        return Err(FsmError::Invalid(format!(
            "bottleneck data of {} and {} values do not split into rows of {width}; record the data again (remove \
             data.json)",
            train.len(),
            test.len()
        )));
    }
    let ad = device.clone().autodiff();
    ad.seed(config.seed ^ if observations { 0x0B5 } else { 0x41D });
    let mut q = Qbn::new(spec, &ad).map_err(FsmError::Invalid)?;
    let mut adam = AdamConfig::new().init();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(config.seed ^ if observations { 0x0B51 } else { 0x41D1 });
    let rows = train.len() / width;
    let test_x = (!test.is_empty()).then(|| batch(test, width, device));
    let mut log = TrainingLog::new();
    let (mut best, mut best_test, mut since_better) = (q.valid(), f64::INFINITY, 0);
    let insert =
        |q: Qbn| if observations { Mmn::new(net.clone(), Some(q), None) } else { Mmn::new(net.clone(), None, Some(q)) };
    for epoch in 0..config.qbn_epochs {
        let mut order: Vec<usize> = (0..rows).collect();
        order.shuffle(&mut rng);
        let mut total = 0.0;
        for chunk in order.chunks(config.qbn_batch) {
            let x: Vec<f32> = chunk.iter().flat_map(|&r| train[r * width..(r + 1) * width].iter().copied()).collect();
            let x = batch(&x, width, &ad);
            let loss = (q.forward(x.clone()).1 - x).powi_scalar(2).mean();
            let value = to_vec(loss.clone())[0] as f64;
            if !value.is_finite() {
                log.stopped = format!("the training loss became {value} at epoch {epoch}");
                break;
            }
            total += value * chunk.len() as f64;
            let mut grads = GradientsParams::from_grads(loss.backward(), &q);
            clip_grad_norm(&q, &mut grads, config.qbn_clip);
            q = adam.step(config.qbn_lr, q, grads);
        }
        if !log.stopped.is_empty() {
            break;
        }
        let plain = q.valid();
        let test_loss = match &test_x {
            Some(x) => to_vec((plain.forward(x.clone()).1 - x.clone()).powi_scalar(2).mean())[0] as f64,
            None => total / rows as f64,
        };
        let mmn = insert(plain.clone())?;
        let scores =
            score(&mmn, env, config.score_episodes, config.seed.wrapping_add(100 + epoch as u64), config.max_steps)?;
        let s = mean(&scores);
        log.epochs.push(Epoch { epoch, train_loss: total / rows as f64, test_loss, score: s });
        if s >= log.best_score {
            (log.best_score, log.best_epoch, best) = (s, Some(epoch), plain);
        }
        if epoch % 10 == 0 {
            notes(&format!(
                "  epoch {epoch}: train MSE {:.5}, test MSE {test_loss:.5}, inserted score {s:.2} (policy {target_score:.2})",
                total / rows as f64
            ));
        }
        if test_loss < best_test {
            (best_test, since_better) = (test_loss, 0);
        } else {
            since_better += 1;
        }
        if test_loss == 0.0 {
            log.stopped = format!("the test loss reached 0 at epoch {epoch}");
            break;
        }
        if since_better >= config.patience {
            log.stopped = format!("no better test loss for {} epochs (epoch {epoch})", config.patience);
            break;
        }
    }
    log.finish(config.qbn_epochs, started, notes);
    if log.best_epoch.is_none() {
        return Err(FsmError::Invalid(format!(
            "the bottleneck did not finish one epoch ({}); try a smaller --qbn-lr",
            log.stopped
        )));
    }
    Ok((best, log))
}

/// Step 3: the whole MMN trained towards the policy's action distribution on `finetune_episodes` greedy
/// episodes of the policy: the loss is the MSE between the MMN's and the policy's softmaxes (the seed's; its
/// cross-entropy is only logged), over batches of `finetune_batch` episodes run side by side from the start state,
/// backpropagated every `bptt` steps. Scored before every epoch; the best is kept, and training stops once it
/// scores `target_score`, the loss is 0, or `patience` epochs bring no better score.
pub fn finetune(
    mmn: Mmn,
    policy: &Net,
    env: &mut dyn Env,
    config: &FsmConfig,
    target_score: f64,
    device: &Device,
    notes: Notes,
) -> Result<(Mmn, TrainingLog), FsmError> {
    let started = std::time::Instant::now();
    let continuous = Mmn::new(policy.clone(), None, None)?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(config.seed ^ 0xF17E);
    // The policy's episodes: observations and softmax probabilities per step.
    type Rows = Vec<Vec<f32>>;
    let mut episodes: Vec<(Rows, Rows)> = vec![];
    for e in 0..config.finetune_episodes {
        let (mut obs, mut probs) = (vec![], vec![]);
        let seed = Some(config.seed.wrapping_add(10_000 + e as u64));
        play_episode(&continuous, env, seed, config.max_steps, Acting::Greedy, &mut rng, |r| {
            obs.push(r.obs.clone());
            probs.push(softmax(&r.logits));
        })?;
        episodes.push((obs, probs));
    }
    let obs_len = episodes[0].0[0].len();
    let actions = policy.spec().actions;
    let ad = device.clone().autodiff();
    let mut model = mmn.train();
    let mut adam = AdamConfig::new().init();
    let mut log = TrainingLog::new();
    let mut best = model.valid();
    let mut since_better = 0;
    for epoch in 0..config.finetune_epochs {
        let plain = model.valid();
        let s = mean(&score(
            &plain,
            env,
            config.score_episodes,
            config.seed.wrapping_add(20_000 + epoch as u64),
            config.max_steps,
        )?);
        if s >= log.best_score {
            if s > log.best_score {
                since_better = 0;
            }
            (log.best_score, log.best_epoch, best) = (s, Some(epoch), plain);
        } else {
            since_better += 1;
        }
        if s >= target_score {
            log.stopped = format!("the MMN scored {s:.2}, the policy's {target_score:.2}, before epoch {epoch}");
            break;
        }
        if since_better >= config.patience {
            log.stopped = format!("no better score for {} epochs (epoch {epoch})", config.patience);
            break;
        }
        let (mut total, mut count) = (0.0, 0usize);
        for group in episodes.chunks(config.finetune_batch) {
            let b = group.len();
            let longest = group.iter().map(|(o, _)| o.len()).max().unwrap_or(0);
            let (mut hidden, _) = model.initial(b);
            let mut t0 = 0;
            while t0 < longest {
                let t1 = (t0 + config.bptt).min(longest);
                let mut losses = vec![];
                for t in t0..t1 {
                    // Episodes that ended are padded with their last observation and masked out of the loss.
                    let (mut x, mut target, mut mask) = (vec![], vec![], vec![]);
                    for (o, p) in group {
                        let i = t.min(o.len() - 1);
                        x.extend_from_slice(&o[i]);
                        target.extend_from_slice(&p[i]);
                        mask.push(if t < o.len() { 1.0f32 } else { 0.0 });
                    }
                    let step = model.step(batch(&x, obs_len, &ad), hidden);
                    hidden = step.hidden;
                    let p = burn::tensor::activation::softmax(step.logits, 1);
                    let err = (p - batch(&target, actions, &ad)).powi_scalar(2).sum_dim(1) * batch(&mask, 1, &ad);
                    count += mask.iter().filter(|&&m| m > 0.0).count();
                    losses.push(err.sum());
                }
                let loss = Tensor::cat(losses, 0).sum().div_scalar((b * (t1 - t0) * actions) as f64);
                total += to_vec(loss.clone())[0] as f64 * (b * (t1 - t0)) as f64;
                let mut grads = GradientsParams::from_grads(loss.backward(), &model);
                clip_grad_norm(&model, &mut grads, config.finetune_clip);
                model = adam.step(config.finetune_lr, model, grads);
                hidden = hidden.detach();
                t0 = t1;
            }
        }
        let mse = total / count.max(1) as f64;
        log.epochs.push(Epoch { epoch, train_loss: mse, test_loss: mse, score: s });
        if epoch % 5 == 0 {
            notes(&format!("  epoch {epoch}: softmax MSE {mse:.6}, score {s:.2} (policy {target_score:.2})"));
        }
        if mse == 0.0 {
            log.stopped = format!("the softmax MSE reached 0 at epoch {epoch}");
            break;
        }
    }
    log.finish(config.finetune_epochs, started, notes);
    Ok((best, log))
}

/// Step 4: `extract_episodes` greedy MMN episodes as traces, the machine they describe, and its minimisation.
pub fn extract(mmn: &Mmn, env: &mut dyn Env, config: &FsmConfig, notes: Notes) -> Result<Extraction, FsmError> {
    let started = std::time::Instant::now();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(config.seed);
    let (mut traces, mut scores) = (vec![], vec![]);
    for e in 0..config.extract_episodes {
        let mut steps = vec![];
        let seed = extraction_seed(config, e);
        let ep = play_episode(mmn, env, Some(seed), config.extract_max_steps, Acting::Greedy, &mut rng, |r| {
            steps.push(Step {
                obs: r.obs_code.clone().unwrap_or_default(),
                next: r.state_code.clone().unwrap_or_default(),
                action: r.greedy,
            });
        })?;
        let (start, start_action) =
            ep.start.ok_or_else(|| FsmError::Invalid("an MMN without a hidden bottleneck".into()))?;
        traces.push(Trace { start, start_action, steps });
        scores.push(ep.score);
    }
    let machine = MooreMachine::from_traces(&traces)?;
    let minimised = machine.minimise();
    notes(&format!(
        "{} episodes (mean score {:.2}): {} states and {} observation classes, minimised to {} and {}",
        scores.len(),
        mean(&scores),
        machine.states(),
        machine.observations(),
        minimised.states(),
        minimised.observations()
    ));
    Ok(Extraction { traces, episode_scores: scores, machine, minimised, seconds: started.elapsed().as_secs_f64() })
}

/// A fingerprint of a machine (FNV-1a over its JSON): what a diff-IG result records, so that a report can tell
/// whether the machine beside it is still the one it explained.
pub fn fingerprint(m: &MooreMachine) -> String {
    let bytes = serde_json::to_vec(m).unwrap_or_default();
    let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3));
    format!("{h:016x}")
}

/// The environment seed of extraction episode `e` (each episode reset with its own, so that any one can be replayed).
pub fn extraction_seed(config: &FsmConfig, e: usize) -> u64 {
    config.seed.wrapping_add(30_000 + e as u64)
}

/// How a machine did playing alone.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MachinePlay {
    pub scores: Vec<f64>,
    pub steps: usize,
    /// Steps whose observation code was never seen in extraction (classified by the nearest code).
    pub unseen_codes: usize,
    /// Steps whose state had no recorded transition on the observation's class (the nearest recorded one taken).
    pub unrecorded_transitions: usize,
}

/// One step of a machine playing alone, for videos and walk-throughs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MachineStep {
    pub state: usize,
    pub class: usize,
    pub next: usize,
    pub action: usize,
    pub distance: usize,
    pub recorded: bool,
}

/// Plays `machine` alone: each observation through the torso and the observation encoder only, classified, and
/// the machine's transition taken; the action is the new state's. Episode e resets with `seed + e`.
/// `on_step` sees the environment before each step and the step.
pub fn play_machine(
    machine: &MooreMachine,
    mmn: &Mmn,
    env: &mut dyn Env,
    episodes: usize,
    seed: u64,
    max_steps: usize,
    mut on_step: impl FnMut(usize, &dyn Env, &MachineStep),
) -> Result<MachinePlay, FsmError> {
    let mmn = mmn.valid();
    let pool = xrl::nn::acting_pool();
    let mut out = MachinePlay::default();
    for e in 0..episodes {
        env.reset(Some(seed.wrapping_add(e as u64)));
        let (mut state, mut total, mut t) = (machine.start, 0.0, 0);
        while t < max_steps {
            let obs = env.obs().to_vec();
            let code = pool
                .install(|| mmn.obs_code(&obs))
                .ok_or_else(|| FsmError::Invalid("the MMN has no observation bottleneck".into()))?;
            let Some(mv) = machine.transition(state, &code) else {
                return Err(FsmError::Invalid(format!(
                    "state s{state} has no transition at all; the machine cannot play from it"
                )));
            };
            out.unseen_codes += usize::from(machine.classify(&code).1 > 0);
            out.unrecorded_transitions += usize::from(!mv.recorded);
            let action = machine.actions[mv.next];
            on_step(
                e,
                &*env,
                &MachineStep {
                    state,
                    class: mv.class,
                    next: mv.next,
                    action,
                    distance: mv.distance,
                    recorded: mv.recorded,
                },
            );
            let s = env.step(&xrl_env::Action::Discrete(action)).map_err(|e| FsmError::Invalid(e.to_string()))?;
            total += s.reward;
            let done = s.done();
            state = mv.next;
            t += 1;
            if done {
                break;
            }
        }
        out.steps += t;
        out.scores.push(total);
    }
    Ok(out)
}

/// Scores of the MMN itself, episode e reset with `seed + e`.
pub fn play_mmn(
    mmn: &Mmn,
    env: &mut dyn Env,
    episodes: usize,
    seed: u64,
    max_steps: usize,
) -> Result<Vec<f64>, FsmError> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..episodes)
        .map(|e| {
            play_episode(mmn, env, Some(seed.wrapping_add(e as u64)), max_steps, Acting::Greedy, &mut rng, |_| {})
                .map(|ep| ep.score)
        })
        .collect()
}

pub fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn softmax(logits: &[f32]) -> Vec<f32> {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = logits.iter().map(|l| (l - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// A module's weights, written atomically as safetensors.
pub fn save_module<M: Module>(m: &M, path: &Path) -> Result<(), FsmError> {
    let mut store = SafetensorsStore::from_bytes(None);
    m.save_into(&mut store).map_err(|e| FsmError::Invalid(format!("cannot serialise weights: {e}")))?;
    let bytes = store.get_bytes().map_err(|e| FsmError::Invalid(format!("cannot serialise weights: {e}")))?;
    Ok(xrl::run::write_bytes(path, &bytes)?)
}

/// Weights from `path` into `m` (a fresh module of the right shape); every tensor must fit.
pub fn load_module<M: Module>(mut m: M, path: &Path) -> Result<M, FsmError> {
    let bytes = xrl_render::read_regular(path).map_err(|e| file_err(path, e))?;
    let mut store = SafetensorsStore::from_bytes(Some(bytes));
    let result = m.load_from(&mut store).map_err(|e| {
        file_err(path, format!("does not load ({e}): it is damaged; remove it and rerun `xrl fsm` to train it again"))
    })?;
    xrl::run::check_applied(&result, path, "this bottleneck", &[])?;
    Ok(m)
}

fn file_err(path: &Path, message: impl ToString) -> FsmError {
    FsmError::File { path: path.to_path_buf(), message: message.to_string() }
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), FsmError> {
    let text = serde_json::to_vec_pretty(value).map_err(|e| FsmError::Invalid(e.to_string()))?;
    Ok(xrl::run::write_bytes(path, &text)?)
}

pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, FsmError> {
    let text = xrl_render::read_regular(path).map_err(|e| file_err(path, e))?;
    serde_json::from_slice(&text).map_err(|e| {
        file_err(path, format!("cannot be read ({e}): it is damaged; remove it and rerun the command that wrote it"))
    })
}
