//! `xrl explain`: parses the options into an [`xrl_explain::job::Job`] and runs it; everything else is the
//! library's.

use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::PathBuf;
use xrl_explain::job::{Job, Layout, Source, Targets, Video};
use xrl_explain::registry::{self, MethodOptions};

#[derive(Args)]
pub struct ExplainArgs {
    /// A run directory made by `xrl train` or `xrl import`.
    #[arg(long)]
    pub(crate) run: PathBuf,
    #[arg(long, help = xrl_explain::registry::METHODS_OPTION_HELP)]
    pub(crate) methods: Option<String>,
    /// The scalar explained: chosen (each input's greedy action), action:A (Q or logit of A), q:A, max-q, value,
    /// advantage:A, logit:A, log-prob:A, contrast:A:B [default: chosen].
    #[arg(long)]
    pub(crate) target: Option<String>,
    /// One action per input (a `.npy` of N integers, or a text file with one action index per line): each input
    /// explains the score (Q or logit) of its own action. Overrides --target.
    #[arg(long)]
    pub(crate) targets: Option<PathBuf>,
    /// Explain these observations instead of playing: a `.npy` of shape [N, …observation shape].
    #[arg(long, conflicts_with = "trajectory")]
    pub(crate) inputs: Option<PathBuf>,
    /// Explain a trajectory saved by an earlier `xrl explain` (`trajectory.safetensors`) instead of playing;
    /// --frames then picks frames of it (all by default).
    #[arg(long)]
    pub(crate) trajectory: Option<PathBuf>,
    /// Where the network runs: cpu (default), or ndarray / cuda[:N] in a binary built with that cargo feature.
    #[arg(long, default_value = "cpu")]
    pub(crate) device: String,
    /// Write maps even where they are not finite (a diverged network); by default that is an error.
    #[arg(long)]
    pub(crate) allow_nonfinite: bool,
    /// Seed of the episode played (its reset) and of SmoothGrad's noise [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) seed: Option<u64>,
    /// Frames of the episode to explain, `A..B` (B excluded); default 0..20 when playing, all of a trajectory.
    #[arg(long)]
    pub(crate) frames: Option<String>,
    /// The directory to write the pictures, video, maps and summary.json into (created if missing).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// `grid` (one picture per frame: the frame, then each method's overlay), `overlay` (one picture per frame and
    /// method), `composite` (actor-critic networks: the first method's map for the target in green and for the
    /// value in red over the frame's luminance, as seed 003) or `greydanus` (the same maps added to the frame's
    /// blue and red channels, as Greydanus et al.; use with `--methods perturbation`).
    #[arg(long, default_value = "grid")]
    pub(crate) layout: String,
    /// Also write a video of the pictures: `gif` or `mp4` (H.264).
    #[arg(long)]
    pub(crate) video: Option<String>,
    /// Also write each method's raw maps as `.npy` (readable by NumPy).
    #[arg(long)]
    pub(crate) save_maps: bool,
    /// Integrated gradients: the baseline — `zeros`, `blur[:SIGMA]` (the frame blurred, σ 5 pixels unless given),
    /// `frame:N` (frame N of the same episode) or a `.npy` file (one observation, or one per explained frame).
    /// [default: zeros]
    #[arg(long)]
    pub(crate) ig_baseline: Option<String>,
    /// Recurrent runs (a2c --core): 0 explains each frame at the state h(t−1) the agent held (fixed across path
    /// points, noise samples and perturbations); K ≥ 1 attributes through the last K frames, unrolled from the
    /// recorded state before the first of them (maps then cover K frames, oldest first).
    #[arg(long, allow_negative_numbers = true, default_value_t = 0)]
    pub(crate) unroll: usize,
    #[command(flatten)]
    pub(crate) method: MethodArgs,
}

/// The methods' settings, shared by `explain` and `evaluate`; each at its default unless given (and refused when
/// no chosen method reads it).
#[derive(Args)]
pub struct MethodArgs {
    /// Integrated gradients: points on the path from the baseline [default: 50].
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) ig_steps: Option<usize>,
    /// Integrated gradients: the quadrature — left, right, middle, trapezoid, captum-trapezoid (Captum's
    /// `riemann_trapezoid`, whose weights sum to (n−1)/n) or gauss-legendre.
    /// [default: gauss-legendre]
    #[arg(long)]
    pub(crate) ig_rule: Option<String>,
    /// SmoothGrad, SmoothGrad², VarGrad: noisy copies per frame.
    /// [default: 25]
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) noise_samples: Option<usize>,
    /// Noise standard deviation as a fraction of each frame's value range (PAIR saliency's 0.15), or in input
    /// units with --noise-absolute (Captum NoiseTunnel's `stdevs`).
    /// [default: 0.15]
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) noise_sigma: Option<f32>,
    /// --noise-sigma is in input units, not a fraction of the frame's range.
    #[arg(long)]
    pub(crate) noise_absolute: bool,
    /// Occlusion: window side in pixels over all channels (default 8 on 84×84 frames, 3 on smaller ones).
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) occlusion_window: Option<usize>,
    /// Occlusion: stride in pixels (default 4 on 84×84 frames, 1 on smaller ones).
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) occlusion_stride: Option<usize>,
    /// Occlusion: what fills a window — a number, `mean` (the frame's mean) or `blur[:SIGMA]` (σ 3 pixels unless
    /// given).
    /// [default: 0]
    #[arg(long)]
    pub(crate) occlusion_fill: Option<String>,
    /// Grad-CAM without its final ReLU (Captum's LayerGradCam default; the paper applies it).
    #[arg(long)]
    pub(crate) gradcam_no_relu: bool,
    /// Perturbation saliency's score: `policy` (½‖Δlogits‖², Greydanus et al.'s actor score; all Q values for a
    /// Q network), `value` (½ΔV², the critic score) or `target` (½Δ² of --target). Default: `policy` for
    /// actor-critic runs, `target` otherwise.
    #[arg(long)]
    pub(crate) perturbation_score: Option<String>,
}

impl MethodArgs {
    /// The options, and which of them were given (by their command-line names).
    pub(crate) fn options(&self, seed: u64) -> Result<(MethodOptions, Vec<&'static str>)> {
        let d = MethodOptions::default();
        let options = MethodOptions {
            seed,
            ig_steps: self.ig_steps.unwrap_or(d.ig_steps),
            ig_rule: self.ig_rule.as_deref().map(registry::parse_rule).transpose()?.unwrap_or(d.ig_rule),
            noise_samples: self.noise_samples.unwrap_or(d.noise_samples),
            noise_sigma: self.noise_sigma.unwrap_or(d.noise_sigma),
            noise_absolute: self.noise_absolute,
            occlusion_window: self.occlusion_window,
            occlusion_stride: self.occlusion_stride,
            occlusion_fill: self
                .occlusion_fill
                .as_deref()
                .map(registry::parse_fill)
                .transpose()?
                .unwrap_or(d.occlusion_fill),
            perturbation_score: self.perturbation_score.as_deref().map(str::parse).transpose()?,
            gradcam_relu: !self.gradcam_no_relu,
            ..d
        };
        let set = [
            ("--ig-steps", self.ig_steps.is_some()),
            ("--ig-rule", self.ig_rule.is_some()),
            ("--noise-samples", self.noise_samples.is_some()),
            ("--noise-sigma", self.noise_sigma.is_some()),
            ("--noise-absolute", self.noise_absolute),
            ("--occlusion-window", self.occlusion_window.is_some()),
            ("--occlusion-stride", self.occlusion_stride.is_some()),
            ("--occlusion-fill", self.occlusion_fill.is_some()),
            ("--gradcam-no-relu", self.gradcam_no_relu),
            ("--perturbation-score", self.perturbation_score.is_some()),
        ];
        Ok((options, set.into_iter().filter(|(_, set)| *set).map(|(name, _)| name).collect()))
    }
}

pub(crate) fn parse_range(s: &str) -> Result<std::ops::Range<usize>> {
    s.split_once("..")
        .and_then(|(x, y)| Some(x.parse::<usize>().ok()?..y.parse::<usize>().ok()?))
        .filter(|r| r.start < r.end)
        .with_context(|| format!("--frames must look like A..B with A < B, got `{s}`"))
}

/// `--targets`: a `.npy` of action indices, or a text file with one per line.
fn read_actions(path: &PathBuf) -> Result<Vec<usize>> {
    let as_action = |v: f32, i: usize| -> Result<usize> {
        if v < 0.0 || v.fract() != 0.0 || !v.is_finite() {
            bail!("{}: entry {i} is {v}, not an action index (0, 1, …)", path.display());
        }
        Ok(v as usize)
    };
    if path.extension().is_some_and(|e| e == "npy") {
        let (_, values) = xrl_render::read_npy(path)?;
        return values.iter().enumerate().map(|(i, &v)| as_action(v, i)).collect();
    }
    xrl_render::check_input(path)?;
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, l)| {
            l.parse().with_context(|| format!("{}: line {} (`{l}`) is not an action index", path.display(), i + 1))
        })
        .collect()
}

pub fn explain(a: ExplainArgs) -> Result<()> {
    let layout = match a.layout.as_str() {
        "grid" => Layout::Grid,
        "overlay" => Layout::Overlay,
        "composite" => Layout::Composite,
        "greydanus" => Layout::Greydanus,
        other => bail!("unknown layout `{other}`; use grid, overlay, composite or greydanus"),
    };
    let video = match a.video.as_deref() {
        None => None,
        Some("gif") => Some(Video::Gif),
        Some("mp4") => Some(Video::Mp4),
        Some(v) => bail!("unknown video format `{v}`; use gif or mp4"),
    };
    let seed = a.seed.unwrap_or(0);
    let (options, mut options_given) = a.method.options(seed)?;
    // Without an episode to play, the seed only draws SmoothGrad's noise.
    if a.seed.is_some() && (a.inputs.is_some() || a.trajectory.is_some()) {
        options_given.push("--seed");
    }
    if a.ig_baseline.is_some() {
        options_given.push("--ig-baseline");
    }
    let frames = a.frames.as_deref().map(parse_range).transpose()?;
    let source = match (&a.inputs, &a.trajectory) {
        (Some(path), _) => {
            if frames.is_some() {
                bail!("--frames picks frames of an episode; with --inputs every given observation is explained");
            }
            let (shape, values) = xrl_render::read_npy(path)?;
            Source::Inputs { values, shape }
        }
        (None, Some(path)) => Source::Trajectory { path: path.clone(), frames },
        (None, None) => Source::Play { seed, frames: frames.unwrap_or(0..20) },
    };
    let targets = match (&a.targets, &a.target) {
        (Some(_), Some(t)) => {
            bail!("--targets gives each input its own action, so --target {t} would be ignored: give one of them")
        }
        (Some(path), None) => Targets::Actions(read_actions(path)?),
        (None, t) => Targets::Spec(t.as_deref().unwrap_or("chosen").parse()?),
    };
    let job = Job {
        run: a.run.clone(),
        device: xrl::nn::device::parse(&a.device).map_err(anyhow::Error::msg)?,
        source,
        methods: a.methods.as_deref().map(registry::parse_list).transpose()?.unwrap_or_default(),
        options,
        targets,
        baseline: a.ig_baseline.as_deref().unwrap_or("zeros").parse()?,
        unroll: a.unroll,
        out: a.out.clone(),
        layout,
        video,
        save_maps: a.save_maps,
        allow_nonfinite: a.allow_nonfinite,
        options_given,
    };
    let summary = xrl_explain::job::run(&job)?;
    for note in &summary.notes {
        tell!("note: {note}");
    }
    say!(
        "explained {} frames with {} methods; wrote {} files to {}",
        summary.frames.len(),
        summary.methods.len(),
        summary.files.len(),
        a.out.display()
    );
    Ok(())
}
