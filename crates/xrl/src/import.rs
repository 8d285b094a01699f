//! Weights trained elsewhere, loaded into xrl's networks.
//!
//! Each architecture names the PyTorch layout it reads (CleanRL, the MinAtar paper's example, Stable-Baselines3)
//! and how those tensor names map onto a [`Net`]. PyTorch `Linear` weights are transposed on the way in (burn
//! stores them input-major); conv weights keep their layout. A file that holds no tensors, or whose tensors do not
//! fit the architecture, is an error naming the missing, unexpected or mis-shaped tensors — never an empty model.

use crate::nn::{HeadKind, Net, NetSpec, Torso};
use crate::run::{RunError, check_applied};
use burn::store::{ModuleSnapshot, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The file formats `xrl import` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// `torch.save(model.state_dict())` (`.pt`, `.pth`, `.cleanrl_model`), optionally nested under a key.
    Pytorch,
    /// A safetensors file with PyTorch's tensor names and layouts.
    Safetensors,
    /// A Stable-Baselines3 `.zip` save; its `policy.pth` is read.
    Sb3,
}

/// The architectures `xrl import` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// CleanRL `dqn_atari.py`: `network.{0,2,4}` convs, `network.7` FC 512, `network.9` Q; inputs divided by 255.
    NatureDqn,
    /// Wang et al. (2016)'s dueling Nature network in the common PyTorch layout: `features.{0,2,4}` convs, then two
    /// streams `advantage.{0,2}` (FC 512 → A) and `value.{0,2}` (FC 512 → 1); Q = V + A − mean(A); inputs ÷ 255.
    NatureDueling,
    /// The MinAtar paper's `examples/dqn.py`: `conv`, `fc_hidden`, `output`.
    MinatarDqn,
    /// CleanRL `dqn.py`: `network.{0,2,4}`, hidden 120-84.
    MlpDqn,
    /// Stable-Baselines3 `DQN("MlpPolicy")`: `q_net.q_net.{0,2,4}`, hidden 64-64.
    Sb3MlpDqn,
    /// CleanRL `ppo_atari.py`'s `Agent`: `network.{0,2,4}` convs, `network.7` FC 512, `actor`, `critic`; ÷ 255.
    CleanrlPpoAtari,
    /// Stable-Baselines3 `DQN("CnnPolicy")`: `q_net.features_extractor.cnn.{0,2,4}`, `…linear.0`, `q_net.q_net.0`.
    Sb3CnnDqn,
    /// Stable-Baselines3 `PPO("CnnPolicy")` and `A2C("CnnPolicy")` (shared features extractor):
    /// `features_extractor.cnn.{0,2,4}`, `features_extractor.linear.0`, `action_net`, `value_net`.
    Sb3CnnActorCritic,
}

impl Arch {
    pub const ALL: [Arch; 8] = [
        Arch::NatureDqn,
        Arch::NatureDueling,
        Arch::MinatarDqn,
        Arch::MlpDqn,
        Arch::Sb3MlpDqn,
        Arch::CleanrlPpoAtari,
        Arch::Sb3CnnDqn,
        Arch::Sb3CnnActorCritic,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Arch::NatureDqn => "nature-dqn",
            Arch::NatureDueling => "nature-dueling",
            Arch::MinatarDqn => "minatar-dqn",
            Arch::MlpDqn => "mlp-dqn",
            Arch::Sb3MlpDqn => "sb3-mlp-dqn",
            Arch::CleanrlPpoAtari => "cleanrl-ppo-atari",
            Arch::Sb3CnnDqn => "sb3-cnn-dqn",
            Arch::Sb3CnnActorCritic => "sb3-cnn-actor-critic",
        }
    }

    /// Whether the network is a policy with a value (imported runs then play by the policy's argmax).
    pub fn actor_critic(self) -> bool {
        matches!(self, Arch::CleanrlPpoAtari | Arch::Sb3CnnActorCritic)
    }

    /// Tensor-name prefixes in the file that are not read (SB3's target network, its aliases of the shared
    /// features extractor).
    fn ignored(self) -> &'static [&'static str] {
        match self {
            Arch::Sb3MlpDqn | Arch::Sb3CnnDqn => &["q_net_target."],
            Arch::Sb3CnnActorCritic => &["pi_features_extractor.", "vf_features_extractor."],
            _ => &[],
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Arch::ALL.into_iter().find(|a| a.name() == s).ok_or_else(|| {
            let names: Vec<_> = Arch::ALL.iter().map(|a| a.name()).collect();
            format!("unknown architecture `{s}`; known: {}", names.join(", "))
        })
    }

    /// The network for observations of `obs_shape` and `actions` actions.
    pub fn spec(self, obs_shape: &[usize], actions: usize) -> NetSpec {
        let (torso, input_scale) = match self {
            Arch::NatureDqn
            | Arch::NatureDueling
            | Arch::CleanrlPpoAtari
            | Arch::Sb3CnnDqn
            | Arch::Sb3CnnActorCritic => (Torso::NatureCnn, 1.0 / 255.0),
            Arch::MinatarDqn => (Torso::MinatarCnn, 1.0),
            Arch::MlpDqn => (Torso::Mlp { hidden: vec![120, 84] }, 1.0),
            Arch::Sb3MlpDqn => (Torso::Mlp { hidden: vec![64, 64] }, 1.0),
        };
        let spec = match self {
            Arch::NatureDueling => NetSpec::new(obs_shape.to_vec(), actions, torso, HeadKind::Dueling).with_streams(),
            Arch::CleanrlPpoAtari | Arch::Sb3CnnActorCritic => {
                NetSpec::new(obs_shape.to_vec(), actions, torso, HeadKind::ActorCritic)
            }
            _ => NetSpec::new(obs_shape.to_vec(), actions, torso, HeadKind::Q),
        };
        NetSpec { input_scale, ..spec }
    }

    /// (PyTorch name prefix, xrl name prefix) per layer.
    fn renames(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Arch::NatureDqn => vec![
                ("network.0.", "torso.convs.0."),
                ("network.2.", "torso.convs.1."),
                ("network.4.", "torso.convs.2."),
                ("network.7.", "torso.fc.0."),
                ("network.9.", "head.out."),
            ],
            Arch::NatureDueling => vec![
                ("features.0.", "torso.convs.0."),
                ("features.2.", "torso.convs.1."),
                ("features.4.", "torso.convs.2."),
                ("advantage.0.", "torso.fc.0."),
                ("advantage.2.", "head.out."),
                ("value.0.", "head.value_fc.0."),
                ("value.2.", "head.value."),
            ],
            Arch::MinatarDqn => {
                vec![("conv.", "torso.convs.0."), ("fc_hidden.", "torso.fc.0."), ("output.", "head.out.")]
            }
            Arch::MlpDqn => {
                vec![("network.0.", "torso.fc.0."), ("network.2.", "torso.fc.1."), ("network.4.", "head.out.")]
            }
            Arch::Sb3MlpDqn => {
                vec![
                    ("q_net.q_net.0.", "torso.fc.0."),
                    ("q_net.q_net.2.", "torso.fc.1."),
                    ("q_net.q_net.4.", "head.out."),
                ]
            }
            Arch::CleanrlPpoAtari => vec![
                ("network.0.", "torso.convs.0."),
                ("network.2.", "torso.convs.1."),
                ("network.4.", "torso.convs.2."),
                ("network.7.", "torso.fc.0."),
                ("actor.", "head.out."),
                ("critic.", "head.value."),
            ],
            Arch::Sb3CnnDqn => vec![
                ("q_net.features_extractor.cnn.0.", "torso.convs.0."),
                ("q_net.features_extractor.cnn.2.", "torso.convs.1."),
                ("q_net.features_extractor.cnn.4.", "torso.convs.2."),
                ("q_net.features_extractor.linear.0.", "torso.fc.0."),
                ("q_net.q_net.0.", "head.out."),
            ],
            Arch::Sb3CnnActorCritic => vec![
                ("features_extractor.cnn.0.", "torso.convs.0."),
                ("features_extractor.cnn.2.", "torso.convs.1."),
                ("features_extractor.cnn.4.", "torso.convs.2."),
                ("features_extractor.linear.0.", "torso.fc.0."),
                ("action_net.", "head.out."),
                ("value_net.", "head.value."),
            ],
        }
    }
}

/// A tensor-name prefix to rename before the architecture's own names are applied (`--rename trunk.=features.`):
/// checkpoints often nest or rename the layers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rename {
    pub from: String,
    pub to: String,
}

impl std::str::FromStr for Rename {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('=') {
            Some((from, to)) if !from.is_empty() => Ok(Rename { from: from.into(), to: to.into() }),
            _ => Err(format!("--rename takes FROM=TO (a tensor-name prefix and its replacement), got `{s}`")),
        }
    }
}

fn invalid(path: &Path, message: impl ToString) -> RunError {
    RunError::File { path: path.to_path_buf(), message: message.to_string() }
}

/// Loads `file` into a fresh network of `arch` for the given observation shape and action count.
pub fn import(
    file: &Path,
    format: Format,
    arch: Arch,
    key: Option<&str>,
    obs_shape: &[usize],
    actions: usize,
    device: &Device,
) -> Result<Net, RunError> {
    import_renamed(file, format, arch, key, &[], obs_shape, actions, device)
}

/// [`import`], with tensor-name prefixes renamed first (`renames`, in order).
#[allow(clippy::too_many_arguments)]
pub fn import_renamed(
    file: &Path,
    format: Format,
    arch: Arch,
    key: Option<&str>,
    renames: &[Rename],
    obs_shape: &[usize],
    actions: usize,
    device: &Device,
) -> Result<Net, RunError> {
    xrl_render::check_input(file).map_err(|e| RunError::Invalid(e.to_string()))?;
    if key.is_some() && format == Format::Sb3 {
        return Err(RunError::Invalid(
            "--key picks a state dict nested in a PyTorch file; an SB3 zip's policy is found without it: leave --key \
             out"
            .into(),
        ));
    }
    // A shape mismatch while loading usually means weights for another environment, not a damaged file.
    let env_hint = |e: String| {
        if e.contains("hape mismatch") {
            format!(
                "{e}. The weights do not fit the network for this --env, which takes observations {obs_shape:?} and \
                 {actions} actions: are they for another environment?"
            )
        } else {
            e
        }
    };
    let spec = arch.spec(obs_shape, actions);
    spec.validate().map_err(|e| RunError::Invalid(format!("{} does not fit this environment: {e}", arch.name())))?;
    let mut net = Net::new(&spec, device).map_err(RunError::Invalid)?;
    let result = match format {
        Format::Pytorch | Format::Sb3 => {
            let (source, _tmp) = match format {
                Format::Sb3 => {
                    let tmp = extract_sb3_policy(file)?;
                    (tmp.0.clone(), Some(tmp))
                }
                _ => (file.to_path_buf(), None),
            };
            let mut store = PytorchStore::from_file(&source).map_indices_contiguous(false).allow_partial(true);
            for r in renames {
                store = store.with_key_remapping(format!("^{}", regex_escape(&r.from)), r.to.clone());
            }
            for (from, to) in arch.renames() {
                store = store.with_key_remapping(format!("^{}", regex_escape(from)), to.to_string());
            }
            if let Some(k) = key {
                store = store.with_top_level_key(k);
            }
            net.load_from(&mut store).map_err(|e| {
                let e = e.to_string();
                if e.contains("hape mismatch") {
                    return invalid(file, env_hint(format!("cannot load the PyTorch weights ({e})")));
                }
                invalid(
                    file,
                    format!(
                        "cannot read PyTorch weights ({e}); give a `torch.save(model.state_dict())` file (.pt, .pth), \
                         or --format safetensors / sb3 for those files"
                    ),
                )
            })?
        }
        Format::Safetensors => {
            let mut store = SafetensorsStore::from_file(file)
                .with_from_adapter(PyTorchToBurnAdapter)
                .map_indices_contiguous(false)
                .allow_partial(true);
            for r in renames {
                store = store.with_key_remapping(format!("^{}", regex_escape(&r.from)), r.to.clone());
            }
            for (from, to) in arch.renames() {
                store = store.with_key_remapping(format!("^{}", regex_escape(from)), to.to_string());
            }
            net.load_from(&mut store).map_err(|e| {
                let e = e.to_string();
                if e.contains("hape mismatch") {
                    return invalid(file, env_hint(format!("cannot load the safetensors weights ({e})")));
                }
                invalid(
                    file,
                    format!(
                        "cannot read safetensors weights ({e}); is it a safetensors file? A `torch.save` file is \
                         --format pytorch"
                    ),
                )
            })?
        }
    };
    // SB3 also saves its target network; only the online one is read.
    check_applied(&result, file, &format!("the {} architecture", arch.name()), arch.ignored()).map_err(|e| {
        RunError::Invalid(format!(
            "{e}. If the architecture is right, the weights may be for another environment: --env gives observations \
             {obs_shape:?} and {actions} actions here"
        ))
    })?;
    refuse_nonfinite(&net, file)?;
    Ok(net)
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Pytorch, Format::Safetensors, Format::Sb3];

    pub fn name(self) -> &'static str {
        match self {
            Format::Pytorch => "pytorch",
            Format::Safetensors => "safetensors",
            Format::Sb3 => "sb3",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| format!("unknown format `{s}`; use pytorch, safetensors or sb3"))
    }
}

/// Imports `file` into a new run directory `dir` for the environment `env_id`: a run card (marked imported, so it
/// can be played and explained, not resumed) and one checkpoint holding the weights. Refuses a directory that
/// already holds a run.
#[allow(clippy::too_many_arguments)]
pub fn import_run(
    dir: &crate::run::RunDir,
    file: &Path,
    format: Format,
    arch: Arch,
    key: Option<&str>,
    renames: &[Rename],
    env_id: &str,
    device: &Device,
) -> Result<crate::run::RunCard, RunError> {
    use crate::run::{AgentCard, EnvCard, ImportCard, RunCard, TrainerState};
    // Atari weights act on the frames they were trained on: AtariPreprocessing + a stack of 4 (as xrl's own runs).
    let env_card = EnvCard::for_training(env_id, 0);
    let env = env_card.make().map_err(|e| RunError::Invalid(e.to_string()))?;
    let Some(actions) = env.spec().action.n() else {
        return Err(RunError::Invalid(format!(
            "{env_id} has continuous actions; the imported Q-networks need discrete ones"
        )));
    };
    let obs_shape = env.spec().observation.shape().to_vec();
    let net = import_renamed(file, format, arch, key, renames, &obs_shape, actions, device)?;
    let spec = net.spec().clone();
    let agent = if arch.actor_critic() {
        AgentCard::Ppo(crate::agents::ppo::PpoConfig {
            torso: spec.torso.clone(),
            ..crate::agents::ppo::PpoConfig::default()
        })
    } else {
        AgentCard::Dqn(crate::agents::dqn::DqnConfig {
            torso: spec.torso.clone(),
            ..crate::agents::dqn::DqnConfig::for_env(&obs_shape)
        })
    };
    let card = RunCard {
        xrl_version: env!("CARGO_PKG_VERSION").to_string(),
        seed: 0,
        total_steps: 0,
        checkpoint_every: 1,
        env: env_card,
        net: spec,
        agent,
        imported: Some(ImportCard {
            file: file.display().to_string(),
            format,
            arch,
            key: key.map(str::to_string),
            renames: renames.to_vec(),
        }),
    };
    dir.create(&card)?;
    let mut state = TrainerState { stem: "step-0000000000".into(), ..TrainerState::fresh(0) };
    dir.save_checkpoint(&mut state, &[("online.safetensors", crate::run::weights_bytes(&net)?)])?;
    Ok(card)
}

/// Weights with a NaN or an infinity are refused: such a network's outputs, and so every explanation of it, are
/// meaningless.
pub fn refuse_nonfinite(net: &Net, file: &Path) -> Result<(), RunError> {
    match net.first_nonfinite() {
        None => Ok(()),
        Some((tensor, index, value)) => Err(invalid(
            file,
            format!(
                "parameter tensor {tensor} (in the network's order) holds {value} at value {index}: the weights are                  not finite numbers; export them again from a network that trained without diverging"
            ),
        )),
    }
}

fn regex_escape(s: &str) -> String {
    s.replace('.', "\\.")
}

/// A temporary copy of a Stable-Baselines3 zip's `policy.pth`, removed when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn extract_sb3_policy(file: &Path) -> Result<TempFile, RunError> {
    let f = std::fs::File::open(file).map_err(|e| invalid(file, format!("cannot open: {e}")))?;
    let mut zip =
        zip::ZipArchive::new(f).map_err(|e| invalid(file, format!("not a Stable-Baselines3 zip file ({e})")))?;
    let mut entry = zip
        .by_name("policy.pth")
        .map_err(|_| invalid(file, "this zip has no policy.pth; is it a Stable-Baselines3 save?"))?;
    let tmp = TempFile(std::env::temp_dir().join(format!("xrl-sb3-policy-{}-{}.pth", std::process::id(), unique())));
    let mut out = std::fs::File::create(&tmp.0).map_err(|e| invalid(&tmp.0, e))?;
    std::io::copy(&mut entry, &mut out).map_err(|e| invalid(file, format!("cannot extract policy.pth: {e}")))?;
    Ok(tmp)
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
