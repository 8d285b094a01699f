//! The explanation job: load a run's agent, get the inputs (play an episode and record its trajectory, read a
//! saved trajectory, or take observations the user gives), explain them with every method of the registry, write
//! pictures, a video, the raw maps and a typed [`Summary`] (`summary.json`, read back by `xrl report`).

use crate::registry::{BaselineName, MethodName, MethodOptions};
use crate::{AtState, Attribution, ExplainError, Inputs, Method, Model, Target, TargetSpec, Unrolled};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use xrl::run::RunDir;
use xrl::trajectory::Trajectory;
use xrl_nn::{HeadKind, Pass, batch, to_vec};
use xrl_render::RgbImage;
use xrl_render::heatmap::{self, Colormap, Sign};

/// What is explained.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// Play the run's agent greedily from `reset(seed)` and explain frames `frames` of the episode (recorded into
    /// `trajectory.safetensors` beside the pictures).
    Play { seed: u64, frames: Range<usize> },
    /// A trajectory saved by an earlier job; `frames` of it (all when `None`).
    Trajectory { path: PathBuf, frames: Option<Range<usize>> },
    /// Observations the user gives, `[N, …observation shape]` flat, with no episode around them.
    Inputs { values: Vec<f32>, shape: Vec<usize> },
}

/// The target of each explained input.
#[derive(Clone, Debug, PartialEq)]
pub enum Targets {
    /// The same for every input, or each input's greedy action (`chosen`).
    Spec(TargetSpec),
    /// One action per input: the score (Q or logit) of that action ([`Target::Action`]).
    Actions(Vec<usize>),
}

/// How the pictures are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// One picture per frame: the frame, then each method's overlay, each panel labelled.
    Grid,
    /// One picture per frame and method.
    Overlay,
    /// Actor-critic: the first method's map for the target in green and for the value in red (seed 003).
    Composite,
    /// The same maps added to the frame's blue and red channels (Greydanus et al.).
    Greydanus,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Video {
    Gif,
    Mp4,
}

/// Everything one explanation needs.
#[derive(Clone, Debug)]
pub struct Job {
    pub run: PathBuf,
    /// Where the network runs (`xrl_nn::device::parse`).
    pub device: Device,
    pub source: Source,
    /// Empty: grad, guided, Grad-CAM on the last convolution (CNNs) and ig.
    pub methods: Vec<MethodName>,
    pub options: MethodOptions,
    pub targets: Targets,
    pub baseline: BaselineName,
    /// Recurrent runs: 0 explains each frame at its recorded state; k ≥ 1 through the last k frames.
    pub unroll: usize,
    pub out: PathBuf,
    pub layout: Layout,
    pub video: Option<Video>,
    pub save_maps: bool,
    /// Write maps with non-finite values instead of refusing them.
    pub allow_nonfinite: bool,
    /// The method options the caller set (their command-line names, `registry::METHOD_OPTION_USERS`): one that no
    /// chosen method reads is refused rather than ignored.
    pub options_given: Vec<&'static str>,
}

pub const SUMMARY_VERSION: u32 = 2;

/// `summary.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub version: u32,
    pub run: String,
    pub env: String,
    pub checkpoint_step: usize,
    /// `play seed S`, `trajectory PATH` or `inputs`.
    pub source: String,
    /// The target as given (`chosen`, `q:2`, or `per-input actions`).
    pub target: String,
    pub action_names: Vec<String>,
    pub methods: Vec<MethodSummary>,
    pub options: MethodOptions,
    pub baseline: BaselineName,
    pub unroll: usize,
    pub frames: Vec<FrameSummary>,
    /// Things the user should know about the result (a range cut short by the episode's end, …).
    pub notes: Vec<String>,
    pub files: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodSummary {
    pub name: String,
    /// Milliseconds per explained input, after a warm-up call.
    pub ms_per_frame: f64,
    /// One map's shape.
    pub map_shape: Vec<usize>,
    pub resolution: crate::Resolution,
    /// With `attention` among the methods: per frame, Spearman's ρ between the attention mask and this method's
    /// |map| summed into the mask's cells (a map whose grid does not tile the mask's has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_spearman: Option<Vec<f64>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameSummary {
    /// The frame's index in the episode (or in the given inputs).
    pub frame: usize,
    /// The greedy action, and its name.
    pub action: usize,
    pub action_name: String,
    /// The explained target.
    pub target: String,
    pub q: Option<Vec<f32>>,
    pub value: Option<f32>,
    pub policy: Option<Vec<f32>>,
    pub ig_delta: Option<f32>,
    /// Over several frames (unrolled, or a DRQN's stack): each method's share of |attribution| on each frame,
    /// oldest first.
    pub attribution_by_frame: Option<BTreeMap<String, Vec<f32>>>,
}

impl Summary {
    /// Reads `summary.json`, with an error that says how to make one.
    pub fn read(path: &Path) -> Result<Self, ExplainError> {
        read_versioned(path, "summary", "xrl explain", SUMMARY_VERSION, |s: &Summary| s.version)
    }
}

/// Reads a typed result file (`summary.json`, `evaluate.json`) that `command` writes, refusing another `version`
/// with the command that rewrites it.
pub(crate) fn read_versioned<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &str,
    command: &str,
    version: u32,
    version_of: impl Fn(&T) -> u32,
) -> Result<T, ExplainError> {
    if path.exists() {
        xrl_render::check_input(path)?;
    }
    let text = xrl_render::read_regular_string(path).map_err(|e| {
        ExplainError::Invalid(format!(
            "cannot read {} ({e}); is it a directory written by `{command}`?",
            path.display()
        ))
    })?;
    let value: T = serde_json::from_str(&text).map_err(|e| {
        ExplainError::Invalid(format!(
            "{} is not a{} {what} this xrl reads ({e}); run `{command}` again to rewrite it",
            path.display(),
            if what.starts_with(['a', 'e', 'i', 'o', 'u']) { "n" } else { "" }
        ))
    })?;
    if version_of(&value) != version {
        return Err(ExplainError::Invalid(format!(
            "{} is a version {} {what}; this xrl reads version {version}: run `{command}` again",
            path.display(),
            version_of(&value)
        )));
    }
    Ok(value)
}

/// The inputs of a job, with what is known about each.
struct Prepared {
    /// Observations `[N, obs]` (flat), one per explained frame.
    obs: Vec<f32>,
    /// Frame numbers.
    frames: Vec<usize>,
    pictures: Vec<RgbImage>,
    /// The recorded trajectory the frames are steps of (for recurrent models: their states).
    trajectory: Option<Trajectory>,
    notes: Vec<String>,
    source: String,
}

/// The methods a job without `--methods` runs: gradient, guided backprop, Grad-CAM on the last convolution (CNNs)
/// and integrated gradients.
pub fn default_methods(net: &xrl_nn::Net) -> Vec<MethodName> {
    let last_conv = net.layer_names().into_iter().rfind(|l| l.starts_with("conv") && !l.ends_with(".relu"));
    let mut m =
        vec![MethodName::Gradient(crate::GradientKind::Vanilla), MethodName::Gradient(crate::GradientKind::Guided)];
    m.extend(last_conv.map(|layer| MethodName::GradCam { layer, guided: false }));
    m.push(MethodName::Ig);
    m
}

/// Runs the job: explains every input with every method and writes the results into `job.out`.
pub fn run(job: &Job) -> Result<Summary, ExplainError> {
    xrl_render::check_dir_free(&job.out)?;
    let dir = RunDir::new(&job.run);
    let card = dir.read_card()?;
    let (state, net) = dir.load_latest_online(&card, &job.device.clone().autodiff())?;
    let index_note = dir.index_note();
    let net = net.frozen();
    let spec = net.spec().clone();
    job.options.validate()?;
    let carries = spec.carries_state();
    if job.unroll > 0 && !carries {
        return Err(ExplainError::Invalid(
            "--unroll needs a run whose network carries a recurrent state (a2c --core lstm|gru); a DRQN already \
             attributes through its stacked frames"
                .into(),
        ));
    }
    let k = job.unroll.max(1);
    let methods = if job.methods.is_empty() { default_methods(&net) } else { job.methods.clone() };
    MethodOptions::refuse_unused(&methods, &job.options_given)?;
    // A layer the network lacks is refused now, before the episode is played.
    for m in &methods {
        if let MethodName::GradCam { layer, .. } = m {
            crate::methods::check_layer(layer, &net.layer_names())?;
        }
    }
    let two_headed = matches!(job.layout, Layout::Composite | Layout::Greydanus);
    if two_headed && spec.head != HeadKind::ActorCritic {
        return Err(ExplainError::Invalid(format!(
            "the {:?} layout shows actor and critic: it needs an actor-critic run (a2c, a3c)",
            job.layout
        )));
    }
    let env = card.env.make()?;
    let action_names = match &env.spec().action {
        xrl_env::ActionSpace::Discrete { meanings, .. } => meanings.clone(),
        _ => (0..spec.actions).map(|a| a.to_string()).collect(),
    };
    let p = prepare(job, &card, &net, k)?;
    let n = p.frames.len();
    let len: usize = spec.obs_shape.iter().product();
    // What each explained input is: its observation, or (unrolled) the last k observations, oldest first.
    let xlen = len * k;
    let obs: Vec<f32> = match (&p.trajectory, k) {
        (Some(tr), k) if k > 1 => {
            p.frames.iter().flat_map(|&t| (t + 1 - k..=t).flat_map(|s| tr.observation(s).to_vec())).collect()
        }
        _ => p.obs.clone(),
    };
    let model: Box<dyn Model + '_> = match (&p.trajectory, carries) {
        (Some(tr), true) => {
            let rows: Vec<usize> = p.frames.iter().map(|&t| t + 1 - k).collect();
            let state = tr.recurrent_state(&rows, &net.device().without_autodiff()).expect("a recurrent trajectory");
            if job.unroll > 0 {
                Box::new(Unrolled { net: &net, k, state: Some(state) })
            } else {
                Box::new(AtState { net: &net, state })
            }
        }
        (None, true) => {
            return Err(ExplainError::Invalid(
                "a recurrent agent is explained at the states it held while playing: explain a played episode or a \
                 trajectory, not bare --inputs"
                    .into(),
            ));
        }
        _ => Box::new(net.clone()),
    };
    let mut input_shape = if k > 1 { vec![k] } else { vec![] };
    input_shape.extend(&spec.obs_shape);
    let inputs = Inputs::new(&obs, &input_shape)?;
    // The network's outputs for every input (the greedy action, and what the report shows).
    let heads = model.heads(batch(&obs, xlen, &net.device().without_autodiff()), &Pass::default());
    let rows_of = |t: Option<burn::tensor::Tensor<2>>| {
        t.map(|t| {
            let [_, k] = t.dims();
            to_vec(t).chunks(k).map(|r| r.to_vec()).collect::<Vec<_>>()
        })
    };
    let greedy = xrl_nn::argmax_rows(heads.q.clone().or(heads.logits.clone()).expect("Q values or logits"));
    let (q, v, policy) = (
        rows_of(heads.q),
        rows_of(heads.value),
        rows_of(heads.logits.map(|l| burn::tensor::activation::softmax(l, 1))),
    );
    let (targets, target_label) = match &job.targets {
        Targets::Spec(spec) => (spec.resolve(&greedy), target_name(spec)),
        Targets::Actions(a) if a.len() != n => {
            return Err(ExplainError::Invalid(format!(
                "{} target actions for {n} inputs: give one per input",
                a.len()
            )));
        }
        Targets::Actions(a) => (a.iter().map(|&a| Target::Action(a)).collect(), "per-input actions".into()),
    };
    let mut seen = std::collections::HashSet::new();
    for t in targets.iter().filter(|t| seen.insert(*t)) {
        t.check(&spec)?;
    }
    let baselines = baseline(job, &p, &inputs, len, k)?;
    let frame = inputs.image().map(|[_, h, w]| [h, w]);
    if frame.is_none() && job.video.is_some() {
        return Err(ExplainError::Invalid(format!(
            "--video shows pictures of frames, and {} has vector observations (no pictures are drawn for them): \
             leave --video out; the maps are in summary.json (and .npy files with --save-maps)",
            card.env.id
        )));
    }
    let built: Vec<Box<dyn Method>> = methods.iter().map(|m| job.options.build(m, frame, spec.head)).collect();

    // The directory is this job's alone: new or empty, and claimed against a second job writing into it (after
    // every check of the request, so a refused one leaves nothing behind).
    let _claim = xrl_render::claim_dir(&job.out)?;
    let mut files = vec![];
    let mut method_summaries = vec![];
    let mut frame_shares: BTreeMap<String, Vec<Vec<f32>>> = BTreeMap::new();
    let mut panels: Vec<Vec<RgbImage>> = p.pictures.iter().map(|pic| vec![label(pic, "input", "")]).collect();
    let mut ig_delta = None;
    let mut results: Vec<Attribution> = vec![];
    // A warm-up pass over all inputs (plain gradients: cheap for any model), so that the first method timed does not
    // pay for the first passes' setup (thread pools, buffers).
    crate::Gradient::new(crate::GradientKind::Vanilla).attribute(model.as_ref(), &inputs, &targets, None)?;
    for method in &built {
        let a = method.attribute(model.as_ref(), &inputs, &targets, baselines.as_deref())?;
        if !job.allow_nonfinite
            && let Some(i) = a.maps.iter().position(|v| !v.is_finite())
        {
            return Err(ExplainError::Invalid(format!(
                "{}: map value {i} (input {}) is {} — the network's outputs are not finite there (a diverged \
                 network?); pass --allow-nonfinite to write the maps anyway",
                a.method,
                i / a.map_len(),
                a.maps[i]
            )));
        }
        if a.delta.is_some() {
            ig_delta = a.delta.clone();
        }
        method_summaries.push(MethodSummary {
            name: a.method.clone(),
            ms_per_frame: a.seconds * 1e3 / n as f64,
            map_shape: a.shape.clone(),
            resolution: a.resolution.clone(),
            attention_spearman: None,
        });
        let per = a.map_len();
        // Over several frames (unrolled, or a DRQN's stack): the share of |attribution| on each, oldest first.
        let ages = if k > 1 { k } else { spec.frames };
        if ages > 1 && a.resolution == crate::Resolution::Input {
            let shares = a
                .maps
                .chunks(per)
                .map(|m| {
                    let sums: Vec<f32> = m.chunks(per / ages).map(|c| c.iter().map(|v| v.abs()).sum()).collect();
                    let total: f32 = sums.iter().sum::<f32>().max(f32::MIN_POSITIVE);
                    sums.iter().map(|v| v / total).collect()
                })
                .collect();
            frame_shares.insert(a.method.clone(), shares);
        }
        if job.save_maps {
            let mut shape = vec![n];
            shape.extend(&a.shape);
            let path = job.out.join(format!("{}.npy", a.method.replace(':', "_")));
            xrl_render::write_npy(&path, &shape, &a.maps)?;
            files.push(path);
        }
        if let Some([h, w]) = frame {
            let (mh, mw) = map_hw(&a, [h, w]);
            // An attention mask is a distribution over the cells, near uniform in scale (1/cells): it is shown min–max
            // per frame, as the IFE seed draws it; every other map on the episode's one scale.
            let norms = if a.method == crate::attention::LAYER {
                a.maps.chunks(per).map(crate::attention::min_max).collect()
            } else {
                heatmap::episode_intensities(&a.maps, per, mw * mh)
            };
            for (f, norm) in norms.iter().enumerate() {
                let heat = heatmap::colorize(norm, mw as u32, mh as u32, Colormap::Inferno, Sign::Absolute);
                let target = targets[f].to_string();
                let pic = heatmap::overlay(&p.pictures[f], &heat, norm, 0.8);
                panels[f].push(label(&pic, &a.method, &named(&target, &action_names)));
            }
        }
        results.push(a);
    }

    // The attention mask beside every other map, cell by cell.
    for (rho, summary) in crate::attention::spearman_with_mask(&results).into_iter().zip(method_summaries.iter_mut()) {
        summary.attention_spearman = rho;
    }

    // Pictures and video.
    let mut video = vec![];
    if let (Some(frame_hw), true, Some(first)) = (frame, two_headed, results.first()) {
        let critic = built[0].attribute(model.as_ref(), &inputs, &vec![Target::Value; n], baselines.as_deref())?;
        let (mh, mw) = map_hw(first, frame_hw);
        let per = first.map_len();
        let (act, crit) = (
            heatmap::episode_intensities(&first.maps, per, mw * mh),
            heatmap::episode_intensities(&critic.maps, per, mw * mh),
        );
        for f in 0..n {
            let img = if job.layout == Layout::Composite {
                heatmap::actor_critic_composite(&p.pictures[f], &act[f], &crit[f], mw as u32, mh as u32)
            } else {
                heatmap::greydanus_additive(&p.pictures[f], &act[f], &crit[f], mw as u32, mh as u32, 1.0)
            };
            let path = job.out.join(format!("frame_{:04}.png", p.frames[f]));
            xrl_render::write_png(&path, &img)?;
            files.push(path);
            video.push(img);
        }
    } else if frame.is_some() {
        let width = panels.first().and_then(|r| r.first()).map_or(160, |p| p.width());
        let key = xrl_render::plot::colour_scale(width, Colormap::Inferno, "0", "|map| max");
        for (f, row) in panels.iter().enumerate() {
            if job.layout == Layout::Grid {
                let img = heatmap::grid(std::slice::from_ref(row), 4);
                let img = with_key(&img, &key);
                let path = job.out.join(format!("frame_{:04}.png", p.frames[f]));
                xrl_render::write_png(&path, &img)?;
                files.push(path);
                video.push(img);
            } else {
                // The video follows the first method.
                video.push(row[1].clone());
                for (a, img) in results.iter().zip(&row[1..]) {
                    let path = job.out.join(format!("frame_{:04}_{}.png", p.frames[f], a.method.replace(':', "_")));
                    xrl_render::write_png(&path, img)?;
                    files.push(path);
                }
            }
        }
    }
    if let (Some(format), false) = (job.video, video.is_empty()) {
        let path = job.out.join(if format == Video::Mp4 { "explain.mp4" } else { "explain.gif" });
        if format == Video::Mp4 {
            xrl_render::write_mp4(&path, &video, 4.0)?;
        } else {
            xrl_render::write_gif(&path, &video, 4.0)?;
        }
        files.push(path);
    }
    if let (Some(tr), Source::Play { .. }) = (&p.trajectory, &job.source) {
        let path = job.out.join("trajectory.safetensors");
        tr.save(&path).map_err(|e| ExplainError::Invalid(e.to_string()))?;
        files.push(path);
    }

    let frames: Vec<FrameSummary> = (0..n)
        .map(|f| FrameSummary {
            frame: p.frames[f],
            action: greedy[f],
            action_name: action_names.get(greedy[f]).cloned().unwrap_or_default(),
            target: named(&targets[f].to_string(), &action_names),
            q: q.as_ref().map(|q| q[f].clone()),
            value: v.as_ref().map(|v| v[f][0]),
            policy: policy.as_ref().map(|p| p[f].clone()),
            ig_delta: ig_delta.as_ref().map(|d| d[f]),
            attribution_by_frame: (!frame_shares.is_empty())
                .then(|| frame_shares.iter().map(|(m, v)| (m.clone(), v[f].clone())).collect()),
        })
        .collect();
    let summary_path = job.out.join("summary.json");
    files.push(summary_path.clone());
    let summary = Summary {
        version: SUMMARY_VERSION,
        run: job.run.display().to_string(),
        env: card.env.id.clone(),
        checkpoint_step: state.step,
        source: p.source,
        target: target_label,
        action_names,
        methods: method_summaries,
        options: job.options.clone(),
        baseline: job.baseline.clone(),
        unroll: job.unroll,
        frames,
        notes: index_note.into_iter().chain(p.notes).collect(),
        files: files.iter().map(|p| p.display().to_string()).collect(),
    };
    let text = serde_json::to_string_pretty(&summary).expect("a summary serialises");
    xrl::run::write_bytes(&summary_path, text.as_bytes())?;
    Ok(summary)
}

pub(crate) fn target_name(spec: &TargetSpec) -> String {
    match spec {
        TargetSpec::Chosen => "chosen".into(),
        TargetSpec::Fixed(t) => t.to_string(),
    }
}

/// `action:2` → `action:2 (right)`.
fn named(target: &str, names: &[String]) -> String {
    let action = target.rsplit(':').next().and_then(|a| a.parse::<usize>().ok());
    match action.and_then(|a| names.get(a)) {
        Some(name) if target.contains(':') && !target.starts_with("contrast") => format!("{target} ({name})"),
        _ => target.to_string(),
    }
}

/// A map's `[h, w]`: its own for layer- and grid-resolution maps, the frame's otherwise.
fn map_hw(a: &Attribution, frame: [usize; 2]) -> (usize, usize) {
    match a.resolution {
        crate::Resolution::Input => (frame[0], frame[1]),
        _ => (a.shape[0], a.shape[1]),
    }
}

/// A panel with its method and target written above it (two lines, so every panel of a row is the same height).
fn label(pic: &RgbImage, method: &str, target: &str) -> RgbImage {
    xrl_render::plot::captioned(pic, &[method.to_string(), target.to_string()])
}

/// The grid with its colour key under it, left-aligned.
fn with_key(grid: &RgbImage, key: &RgbImage) -> RgbImage {
    let (w, h) = grid.dimensions();
    let mut out = RgbImage::from_pixel(w, h + key.height() + 4, xrl_render::Rgb([24, 24, 24]));
    xrl_render::imageops::replace(&mut out, grid, 0, 0);
    xrl_render::imageops::replace(&mut out, key, 4, h as i64);
    out
}

/// Plays, reads or takes the inputs.
fn prepare(job: &Job, card: &xrl::run::RunCard, net: &xrl_nn::Net, k: usize) -> Result<Prepared, ExplainError> {
    let spec = net.spec();
    let len: usize = spec.obs_shape.iter().product();
    let mut notes = vec![];
    let (trajectory, range, source) = match &job.source {
        Source::Inputs { values, shape } => {
            if shape.len() < 2 || shape[1..] != spec.obs_shape[..] {
                return Err(ExplainError::Invalid(format!(
                    "the inputs have shape {shape:?}; this run's agent takes [N, {}]",
                    spec.obs_shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
                )));
            }
            Inputs::new(values, &spec.obs_shape)?;
            let n = values.len() / len;
            let pictures =
                (0..n).map(|i| observation_picture(&values[i * len..(i + 1) * len], &spec.obs_shape)).collect();
            return Ok(Prepared {
                obs: values.clone(),
                frames: (0..n).collect(),
                pictures,
                trajectory: None,
                notes,
                source: "inputs".into(),
            });
        }
        Source::Play { seed, frames } => {
            if frames.start >= frames.end {
                return Err(ExplainError::Invalid(format!(
                    "--frames {}..{} is empty; give A..B with A < B",
                    frames.start, frames.end
                )));
            }
            let mut env = card.env.make()?;
            let mut steps = frames.end;
            if let BaselineName::Frame(f) = job.baseline {
                steps = steps.max(f + 1);
            }
            let tr = Trajectory::record(env.as_mut(), &card.env.id, net, *seed, steps)
                .map_err(|e| ExplainError::Invalid(e.to_string()))?;
            (tr, frames.clone(), format!("play seed {seed}"))
        }
        Source::Trajectory { path, frames } => {
            let tr = Trajectory::load(path).map_err(|e| ExplainError::Invalid(e.to_string()))?;
            if tr.env != card.env.id || tr.obs_shape != spec.obs_shape {
                return Err(ExplainError::Invalid(format!(
                    "{} was recorded in {} with observations {:?}; the run plays {} with {:?}: explain it with the \
                     run that recorded it",
                    path.display(),
                    tr.env,
                    tr.obs_shape,
                    card.env.id,
                    spec.obs_shape
                )));
            }
            let range = frames.clone().unwrap_or(0..tr.len());
            (tr, range, format!("trajectory {}", path.display()))
        }
    };
    if range.start + 1 < k {
        return Err(ExplainError::Invalid(format!(
            "--unroll {k} attributes through {k} frames, the explained one and the {} before it: start --frames at \
             {} or later (or lower --unroll)",
            k - 1,
            k - 1
        )));
    }
    let rows: Vec<usize> = frames_within(&range, trajectory.len(), &mut notes)?.collect();
    let obs: Vec<f32> = rows.iter().flat_map(|&t| trajectory.observation(t).to_vec()).collect();
    let mut env = card.env.make()?;
    env.reset(Some(trajectory.seed));
    let pictures = rows
        .iter()
        .map(|&t| match trajectory.states.get(t) {
            Some(doc) if env.set_state(doc).is_ok() => Ok(env.render()),
            _ => Ok(observation_picture(trajectory.observation(t), &spec.obs_shape)),
        })
        .collect::<Result<Vec<_>, ExplainError>>()?;
    Ok(Prepared { obs, frames: rows, pictures, trajectory: Some(trajectory), notes, source })
}

/// The frames of `range` an episode of `len` frames has: refused when it starts past the end, cut (with a note
/// in `notes`) when it runs past it.
pub(crate) fn frames_within(
    range: &Range<usize>,
    len: usize,
    notes: &mut Vec<String>,
) -> Result<Range<usize>, ExplainError> {
    if range.start >= len {
        return Err(ExplainError::Invalid(format!(
            "the episode has {len} frames, so frame {} does not exist; choose --frames within 0..{len}",
            range.start
        )));
    }
    let end = range.end.min(len);
    if end < range.end {
        notes.push(format!(
            "--frames {}..{} was cut to {}..{end}: the episode ended after {len} frames",
            range.start, range.end, range.start
        ));
    }
    Ok(range.start..end)
}

/// A picture of an observation with no game to render it: the mean over its channels in grey, each cell
/// enlarged to at least 160 pixels across (1-D observations: one row).
fn observation_picture(obs: &[f32], shape: &[usize]) -> RgbImage {
    let d = shape.len();
    let (h, w) = if d >= 2 { (shape[d - 2], shape[d - 1]) } else { (1, obs.len()) };
    let c = obs.len() / (h * w).max(1);
    let (lo, hi) = obs.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let scale = if hi > lo { 255.0 / (hi - lo) } else { 0.0 };
    // Whole cells at least 160 pixels wide: MinAtar's 10 × 10 at 16, Atari's 84 × 84 at 2 (labels fit).
    let cell = 160usize.div_ceil(w.max(1)) as u32;
    RgbImage::from_fn(w as u32 * cell, h as u32 * cell, |x, y| {
        let (i, j) = ((y / cell) as usize, (x / cell) as usize);
        let mean = (0..c).map(|ch| obs[ch * h * w + i * w + j]).sum::<f32>() / c as f32;
        let g = ((mean - lo) * scale).round() as u8;
        xrl_render::Rgb([g, g, g])
    })
}

/// The IG baseline of every input (one observation per frame it holds), or `None` for zeros.
fn baseline(job: &Job, p: &Prepared, inputs: &Inputs, len: usize, k: usize) -> Result<Option<Vec<f32>>, ExplainError> {
    let n = inputs.count();
    Ok(match &job.baseline {
        BaselineName::Zeros => None,
        BaselineName::Blur(sigma) => {
            let [_, h, w] = inputs
                .image()
                .ok_or_else(|| ExplainError::Invalid("a blurred baseline needs image observations".into()))?;
            Some(inputs.values.chunks(len).flat_map(|o| crate::blur(o, len / (h * w), h, w, *sigma)).collect())
        }
        BaselineName::Frame(f) => {
            let tr = p.trajectory.as_ref().ok_or_else(|| {
                ExplainError::Invalid(
                    "--ig-baseline frame:N needs an episode; give a .npy baseline with --inputs".into(),
                )
            })?;
            if *f >= tr.len() {
                return Err(ExplainError::Invalid(format!(
                    "--ig-baseline frame:{f}: the episode ended before frame {f} (it has {} frames); choose an earlier \
                     frame",
                    tr.len()
                )));
            }
            Some(tr.observation(*f).repeat(n * k))
        }
        BaselineName::File(path) => {
            let (shape, values) = xrl_render::read_npy(path)?;
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(ExplainError::Invalid(format!(
                    "{}: value {i} is {}; a baseline must hold finite numbers",
                    path.display(),
                    values[i]
                )));
            }
            if values.len() == len {
                Some(values.repeat(n * k))
            } else if values.len() == n * len {
                Some(values.chunks(len).flat_map(|b| b.repeat(k)).collect())
            } else {
                return Err(ExplainError::Invalid(format!(
                    "{}: the baseline has shape {shape:?}; it must be one observation ({len} values) or one per \
                     explained frame [{n}, …]",
                    path.display()
                )));
            }
        }
    })
}
