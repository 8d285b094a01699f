//! `xrl explain`: play a run's agent, explain the frames with the chosen methods, write pictures, a GIF, the raw
//! maps and `summary.json`.

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;
use xrl::burn::tensor::Device;
use xrl::nn::{Pass, batch, to_vec};
use xrl::rollout::{NetPolicy, Policy};
use xrl::run::RunDir;
use xrl_explain::{
    AtState, Baseline, Budget, Fill, GradCam, Gradient, GradientKind, GuidedGradCam, IntegratedGradients, Model,
    Occlusion, Perturbation, Rule, Score, SmoothGrad, SmoothKind, Target, Unrolled,
};
use xrl_render::heatmap::{self, Colormap, Sign};

#[derive(Args)]
pub struct ExplainArgs {
    /// A run directory made by `xrl train` or `xrl import`.
    #[arg(long)]
    pub(crate) run: PathBuf,
    /// Comma-separated methods: grad, grad-x-input, guided, deconv, gradcam:LAYER, guided-gradcam:LAYER, ig,
    /// smoothgrad:BASE, smoothgrad2:BASE, vargrad:BASE (BASE: grad, grad-x-input, guided or deconv), occlusion,
    /// perturbation. Layers: conv1, conv2, …, fc1, … (see the run's network). Default: grad, guided,
    /// gradcam on the last convolution (for CNNs) and ig.
    #[arg(long)]
    pub(crate) methods: Option<String>,
    /// The scalar explained: chosen, q:A, max-q, value, advantage:A, logit:A, log-prob:A, contrast:A:B.
    #[arg(long, default_value = "chosen")]
    pub(crate) target: String,
    /// Seed of the episode played (its reset) and of SmoothGrad's noise.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Frames of the episode to explain, `A..B` (B excluded).
    #[arg(long, default_value = "0..20")]
    pub(crate) frames: String,
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
    /// Integrated gradients: points on the path from the baseline.
    #[arg(long, default_value_t = 50)]
    pub(crate) ig_steps: usize,
    /// Integrated gradients: the quadrature — left, right, middle, trapezoid, captum-trapezoid (Captum's
    /// `riemann_trapezoid`, whose weights sum to (n−1)/n) or gauss-legendre.
    #[arg(long, default_value = "gauss-legendre")]
    pub(crate) ig_rule: String,
    /// Integrated gradients: the baseline — `zeros`, `blur[:SIGMA]` (the frame blurred, σ 5 pixels unless given),
    /// `frame:N` (frame N of the same episode) or a `.npy` file (one observation, or one per explained frame).
    #[arg(long, default_value = "zeros")]
    pub(crate) ig_baseline: String,
    /// SmoothGrad, SmoothGrad², VarGrad: noisy copies per frame.
    #[arg(long, default_value_t = 25)]
    pub(crate) noise_samples: usize,
    /// Noise standard deviation as a fraction of each frame's value range (PAIR saliency's 0.15), or in input
    /// units with --noise-absolute (Captum NoiseTunnel's `stdevs`).
    #[arg(long, default_value_t = 0.15)]
    pub(crate) noise_sigma: f32,
    /// --noise-sigma is in input units, not a fraction of the frame's range.
    #[arg(long)]
    pub(crate) noise_absolute: bool,
    /// Occlusion: window side in pixels over all channels (default 8 on 84×84 frames, 3 on smaller ones).
    #[arg(long)]
    pub(crate) occlusion_window: Option<usize>,
    /// Occlusion: stride in pixels (default 4 on 84×84 frames, 1 on smaller ones).
    #[arg(long)]
    pub(crate) occlusion_stride: Option<usize>,
    /// Occlusion: what fills a window — a number, `mean` (the frame's mean) or `blur[:SIGMA]` (σ 3 pixels unless
    /// given).
    #[arg(long, default_value = "0")]
    pub(crate) occlusion_fill: String,
    /// Recurrent runs (a2c --core): 0 explains each frame at the state h(t−1) the agent held (fixed across path
    /// points, noise samples and perturbations); K ≥ 1 attributes through the last K frames, unrolled from the
    /// recorded state before the first of them (maps then cover K frames, oldest first).
    #[arg(long, default_value_t = 0)]
    pub(crate) unroll: usize,
    /// Perturbation saliency's score: `policy` (½‖Δlogits‖², Greydanus et al.'s actor score; all Q values for a
    /// Q network), `value` (½ΔV², the critic score) or `target` (½Δ² of --target). Default: `policy` for
    /// actor-critic runs, `target` otherwise.
    #[arg(long)]
    pub(crate) perturbation_score: Option<String>,
}

/// The settings of every method, parsed from the command line.
struct MethodOptions {
    seed: u64,
    ig: IntegratedGradients,
    noise_samples: usize,
    noise_sigma: f32,
    noise_absolute: bool,
    occlusion_window: Option<usize>,
    occlusion_stride: Option<usize>,
    occlusion_fill: Fill,
    perturbation_score: Option<ScoreChoice>,
}

/// `--perturbation-score`; `target` becomes `Score::Target` once the explained target is known.
#[derive(Clone, Copy, PartialEq)]
enum ScoreChoice {
    Policy,
    Value,
    Target,
}

fn parse_score(s: &str) -> Result<ScoreChoice> {
    Ok(match s {
        "policy" => ScoreChoice::Policy,
        "value" => ScoreChoice::Value,
        "target" => ScoreChoice::Target,
        _ => bail!("unknown --perturbation-score `{s}`; use policy, value or target"),
    })
}

enum BaselineChoice {
    Zeros,
    Blur(f32),
    Frame(usize),
    File(PathBuf),
}

fn parse_rule(s: &str) -> Result<Rule> {
    Ok(match s {
        "left" => Rule::RiemannLeft,
        "right" => Rule::RiemannRight,
        "middle" => Rule::RiemannMiddle,
        "trapezoid" => Rule::RiemannTrapezoid,
        "captum-trapezoid" => Rule::CaptumTrapezoid,
        "gauss-legendre" => Rule::GaussLegendre,
        _ => bail!("unknown --ig-rule `{s}`; use left, right, middle, trapezoid, captum-trapezoid or gauss-legendre"),
    })
}

/// `NAME` or `NAME:SIGMA` with a default σ.
fn sigma_of(s: &str, name: &str, default: f32) -> Option<Result<f32>> {
    let rest = s.strip_prefix(name)?;
    if rest.is_empty() {
        return Some(Ok(default));
    }
    let sigma = rest.strip_prefix(':')?;
    Some(sigma.parse::<f32>().ok().filter(|v| *v > 0.0).with_context(|| format!("`{s}`: σ must be a positive number")))
}

fn parse_baseline(s: &str) -> Result<BaselineChoice> {
    if s == "zeros" {
        return Ok(BaselineChoice::Zeros);
    }
    if let Some(sigma) = sigma_of(s, "blur", 5.0) {
        return Ok(BaselineChoice::Blur(sigma?));
    }
    if let Some(n) = s.strip_prefix("frame:") {
        return Ok(BaselineChoice::Frame(n.parse().with_context(|| format!("`{s}`: N must be a frame number"))?));
    }
    if s.ends_with(".npy") {
        return Ok(BaselineChoice::File(PathBuf::from(s)));
    }
    bail!("unknown --ig-baseline `{s}`; use zeros, blur[:SIGMA], frame:N or a .npy file")
}

fn parse_fill(s: &str) -> Result<Fill> {
    if s == "mean" {
        return Ok(Fill::Mean);
    }
    if let Some(sigma) = sigma_of(s, "blur", 3.0) {
        return Ok(Fill::Blur(sigma?));
    }
    match s.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(Fill::Constant(v)),
        _ => bail!("unknown --occlusion-fill `{s}`; use a number, mean or blur[:SIGMA]"),
    }
}

enum Method {
    Grad(GradientKind),
    Cam(String, bool),
    Ig,
    Smooth(GradientKind, SmoothKind),
    Occlusion,
    Perturbation,
}

fn parse_base(s: Option<&str>) -> Option<GradientKind> {
    Some(match s {
        Some("grad") | None => GradientKind::Vanilla,
        Some("grad-x-input") => GradientKind::TimesInput,
        Some("guided") => GradientKind::Guided,
        Some("deconv") => GradientKind::Deconv,
        _ => return None,
    })
}

fn parse_method(s: &str) -> Result<Method> {
    let (name, arg) = s.split_once(':').map_or((s, None), |(a, b)| (a, Some(b)));
    let smooth = match name {
        "smoothgrad" => Some(SmoothKind::Mean),
        "smoothgrad2" => Some(SmoothKind::Squared),
        "vargrad" => Some(SmoothKind::Variance),
        _ => None,
    };
    let method = match (name, arg) {
        ("gradcam", Some(l)) => Some(Method::Cam(l.into(), false)),
        ("guided-gradcam", Some(l)) => Some(Method::Cam(l.into(), true)),
        ("ig", None) => Some(Method::Ig),
        ("occlusion", None) => Some(Method::Occlusion),
        ("perturbation", None) => Some(Method::Perturbation),
        _ => match smooth {
            Some(kind) => parse_base(arg).map(|base| Method::Smooth(base, kind)),
            None if arg.is_none() => parse_base(Some(name)).map(Method::Grad),
            None => None,
        },
    };
    method.with_context(|| {
        format!(
            "unknown method `{s}`; use grad, grad-x-input, guided, deconv, gradcam:LAYER, guided-gradcam:LAYER, ig, \
             smoothgrad:BASE, smoothgrad2:BASE, vargrad:BASE (BASE: grad, grad-x-input, guided, deconv), occlusion \
             or perturbation"
        )
    })
}

fn parse_target(s: &str, actions: &[usize], n: usize) -> Result<Target> {
    let parts: Vec<&str> = s.split(':').collect();
    let num = |i: usize| -> Result<usize> {
        let a: usize = parts.get(i).context("missing action index")?.parse().context("action must be a number")?;
        if a >= n {
            bail!("action {a} is out of range: the agent has {n} actions");
        }
        Ok(a)
    };
    Ok(match parts[0] {
        "chosen" => Target::Chosen(actions.to_vec()),
        "q" => Target::Q(num(1)?),
        "max-q" => Target::MaxQ,
        "value" => Target::Value,
        "advantage" => Target::Advantage(num(1)?),
        "logit" => Target::Logit(num(1)?),
        "log-prob" => Target::LogProb(num(1)?),
        "contrast" => Target::Contrast(num(1)?, num(2)?),
        _ => {
            bail!("unknown target `{s}`; use chosen, q:A, max-q, value, advantage:A, logit:A, log-prob:A, contrast:A:B")
        }
    })
}

pub fn explain(a: ExplainArgs) -> Result<()> {
    if !["grid", "overlay", "composite", "greydanus"].contains(&a.layout.as_str()) {
        bail!("unknown layout `{}`; use grid, overlay, composite or greydanus", a.layout);
    }
    if let Some(v) = &a.video
        && v != "gif"
        && v != "mp4"
    {
        bail!("unknown video format `{v}`; use gif or mp4");
    }
    if a.ig_steps == 0 || a.noise_samples == 0 {
        bail!("--ig-steps and --noise-samples must be at least 1");
    }
    if !(a.noise_sigma >= 0.0 && a.noise_sigma.is_finite()) {
        bail!("--noise-sigma must be a non-negative number, got {}", a.noise_sigma);
    }
    if a.occlusion_window == Some(0) || a.occlusion_stride == Some(0) {
        bail!("--occlusion-window and --occlusion-stride must be at least 1");
    }
    let options_baseline = parse_baseline(&a.ig_baseline)?;
    let mut options = MethodOptions {
        seed: a.seed,
        ig: IntegratedGradients { steps: a.ig_steps, rule: parse_rule(&a.ig_rule)?, ..IntegratedGradients::new() },
        noise_samples: a.noise_samples,
        noise_sigma: a.noise_sigma,
        noise_absolute: a.noise_absolute,
        occlusion_window: a.occlusion_window,
        occlusion_stride: a.occlusion_stride,
        occlusion_fill: parse_fill(&a.occlusion_fill)?,
        perturbation_score: a.perturbation_score.as_deref().map(parse_score).transpose()?,
    };
    let (from, to) = a
        .frames
        .split_once("..")
        .and_then(|(x, y)| Some((x.parse::<usize>().ok()?, y.parse::<usize>().ok()?)))
        .filter(|(x, y)| x < y)
        .with_context(|| format!("--frames must look like A..B with A < B, got `{}`", a.frames))?;

    let dir = RunDir::new(&a.run);
    let card = dir.read_card()?;
    let (state, net) = dir.load_latest_online(&card, &Device::flex().autodiff())?;
    let net = net.frozen();
    let last_conv = net.layer_names().into_iter().rfind(|l| l.starts_with("conv"));
    let default_methods = match &last_conv {
        Some(conv) => format!("grad,guided,gradcam:{conv},ig"),
        None => "grad,guided,ig".to_string(),
    };
    let method_list = a.methods.clone().unwrap_or(default_methods);
    let methods: Vec<(String, Method)> =
        method_list.split(',').map(|m| Ok((m.trim().to_string(), parse_method(m.trim())?))).collect::<Result<_>>()?;
    for (name, m) in &methods {
        if let Method::Cam(layer, _) = m
            && !net.layer_names().contains(layer)
        {
            bail!("{name}: the network has no layer `{layer}`; its layers are {}", net.layer_names().join(", "));
        }
    }
    let spec = net.spec().clone();
    let len: usize = spec.obs_shape.iter().product();

    // Networks whose core carries a state from step to step (not DRQN stacks) are explained at recorded states.
    let carries = spec.carries_state();
    if a.unroll > 0 && !carries {
        bail!(
            "--unroll needs a run whose network carries a recurrent state (a2c --core lstm|gru); a DRQN already \
             attributes through its stacked frames"
        );
    }
    let k = a.unroll.max(1);
    if from + 1 < k {
        bail!("--unroll {k} needs {k} frames before each explained one: start --frames at {} or later", k - 1);
    }

    // Play greedily and record every observation, and the state each action was taken from.
    let mut env = card.env.make()?;
    let mut policy = NetPolicy::new(net.clone(), 0.0, a.seed);
    env.reset(Some(a.seed));
    policy.reset();
    let (mut seen, mut states, mut pictures, mut actions) = (vec![], vec![], vec![], vec![]);
    // A baseline frame may lie outside the explained range: play until it too has been seen.
    let baseline_frame = match options_baseline {
        BaselineChoice::Frame(k) => Some(k),
        _ => None,
    };
    for t in 0..to.max(baseline_frame.map_or(0, |k| k + 1)) {
        seen.push(env.obs().to_vec());
        states.push(policy.state());
        let action = policy.act(env.obs());
        let xrl_env::Action::Discrete(index) = action else { bail!("continuous actions cannot be explained yet") };
        if (from..to).contains(&t) {
            pictures.push(env.render());
            actions.push(index);
        }
        if env.step(&action)?.done() {
            break;
        }
    }
    let n = actions.len();
    if n == 0 {
        bail!("the episode ended before frame {from}; choose an earlier --frames range");
    }
    let target = parse_target(&a.target, &actions, spec.actions)?;
    // What each explained frame's input is: its observation, or (unrolled) the last k observations, oldest first.
    let xlen = len * k;
    let obs: Vec<f32> = (from..from + n).flat_map(|t| seen[t + 1 - k..=t].concat()).collect();
    let model: Box<dyn Model + '_> = if carries {
        let rows: Vec<usize> = (from..from + n).map(|t| t + 1 - k).collect();
        let state = stack_states(&net, &states, &rows);
        if a.unroll > 0 {
            Box::new(Unrolled { net: &net, k, state: Some(state) })
        } else {
            Box::new(AtState { net: &net, state })
        }
    } else {
        Box::new(net.clone())
    };
    // Spatial layout: the last two axes of the observation; 1-D observations get no pictures.
    let spatial = (spec.obs_shape.len() >= 3).then(|| {
        let d = spec.obs_shape.len();
        [spec.obs_shape[d - 2], spec.obs_shape[d - 1]]
    });
    let chw = spatial.map(|[h, w]| [xlen / (h * w), h, w]);
    // The IG baseline, observation by observation of every explained input (an unrolled input holds k of them).
    let baseline: Option<Vec<f32>> = match &options_baseline {
        BaselineChoice::Zeros => None,
        BaselineChoice::Blur(sigma) => {
            let [_, h, w] = chw.context("a blurred baseline needs image observations")?;
            Some(obs.chunks(len).flat_map(|o| xrl_explain::blur(o, len / (h * w), h, w, *sigma)).collect())
        }
        BaselineChoice::Frame(f) => {
            let b = seen.get(*f).with_context(|| format!("the episode ended before baseline frame {f}"))?;
            Some(b.repeat(n * k))
        }
        BaselineChoice::File(path) => {
            let (shape, values) = xrl_render::read_npy(path)?;
            if values.len() == len {
                Some(values.repeat(n * k))
            } else if values.len() == n * len {
                Some(values.chunks(len).flat_map(|b| b.repeat(k)).collect())
            } else {
                bail!(
                    "{}: the baseline has shape {shape:?}; it must be one observation {:?} or one per explained \
                     frame [{n}, ...]",
                    path.display(),
                    spec.obs_shape
                );
            }
        }
    };
    if let Some(b) = baseline {
        options.ig.baseline = Baseline::Given(b);
    }

    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    let mut files = vec![];
    let mut timings = serde_json::Map::new();
    let mut frame_shares = serde_json::Map::new();
    let mut overlays: Vec<Vec<xrl::env::RgbImage>> = pictures.iter().map(|p| vec![p.clone()]).collect();
    let mut ig_delta = None;
    let mut first: Option<(Vec<f32>, usize, usize)> = None;
    let two_headed = a.layout == "composite" || a.layout == "greydanus";
    if two_headed && spec.head != xrl::nn::HeadKind::ActorCritic {
        bail!("the {} layout shows actor and critic: it needs an actor-critic run (a2c, a3c)", a.layout);
    }
    for (name, method) in &methods {
        let started = Instant::now();
        // (maps, map width, map height, per-sample length); intensities are summed |map| over leading axes.
        let MethodMaps { maps, w: mw, h: mh, delta } =
            run_method(method, model.as_ref(), &spec, &obs, xlen, chw, &target, &options)?;
        if two_headed && first.is_none() {
            first = Some((maps.clone(), mw, mh));
        }
        if delta.is_some() {
            ig_delta = delta;
        }
        timings.insert(name.clone(), json!(started.elapsed().as_secs_f64() * 1e3 / n as f64));
        let per = maps.len() / n;
        // Over several frames (unrolled, or a DRQN's stack): the share of |attribution| on each, oldest first.
        let ages = if k > 1 { k } else { spec.frames };
        if ages > 1 && (mw == 0 || per == ages * mw * mh) {
            let shares: Vec<Vec<f32>> = maps
                .chunks(per)
                .map(|m| {
                    let sums: Vec<f32> = m.chunks(per / ages).map(|c| c.iter().map(|v| v.abs()).sum()).collect();
                    let total: f32 = sums.iter().sum::<f32>().max(f32::MIN_POSITIVE);
                    sums.iter().map(|v| v / total).collect()
                })
                .collect();
            frame_shares.insert(name.clone(), json!(shares));
        }
        if a.save_maps {
            let mut shape = vec![n];
            if mw > 0 {
                // A network over stacked frames (DRQN) has one map per frame of the stack.
                let stacked = per / (mh * mw);
                if stacked > 1 {
                    shape.push(stacked);
                }
                shape.extend([mh, mw])
            } else {
                if k > 1 {
                    shape.push(k);
                }
                shape.extend(&spec.obs_shape)
            }
            let path = a.out.join(format!("{}.npy", name.replace(':', "_")));
            xrl_render::write_npy(&path, &shape, &maps)?;
            files.push(path);
        }
        if let Some([h, w]) = spatial {
            let (mw, mh) = if mw > 0 { (mw, mh) } else { (w, h) };
            for (f, norm) in heatmap::episode_intensities(&maps, per, mw * mh).iter().enumerate() {
                let norm = norm.clone();
                let heat = heatmap::colorize(&norm, mw as u32, mh as u32, Colormap::Inferno, Sign::Absolute);
                overlays[f].push(heatmap::overlay(&pictures[f], &heat, &norm, 0.8));
            }
        }
    }

    // Pictures and video.
    let mut video = vec![];
    if let (Some([h, w]), Some((actor, mw, mh)), true) = (spatial, &first, two_headed) {
        let method = &methods[0].1;
        let critic = run_method(method, model.as_ref(), &spec, &obs, xlen, chw, &Target::Value, &options)?.maps;
        let (mw, mh) = if *mw > 0 { (*mw, *mh) } else { (w, h) };
        let per = actor.len() / n;
        let (act, crit) =
            (heatmap::episode_intensities(actor, per, mw * mh), heatmap::episode_intensities(&critic, per, mw * mh));
        for f in 0..n {
            let img = if a.layout == "composite" {
                heatmap::actor_critic_composite(&pictures[f], &act[f], &crit[f], mw as u32, mh as u32)
            } else {
                heatmap::greydanus_additive(&pictures[f], &act[f], &crit[f], mw as u32, mh as u32, 1.0)
            };
            let path = a.out.join(format!("frame_{:04}.png", from + f));
            xrl_render::write_png(&path, &img)?;
            files.push(path);
            video.push(img);
        }
    } else if spatial.is_some() {
        for (f, row) in overlays.iter().enumerate() {
            if a.layout == "grid" {
                let img = heatmap::grid(std::slice::from_ref(row), 4);
                let path = a.out.join(format!("frame_{:04}.png", from + f));
                xrl_render::write_png(&path, &img)?;
                files.push(path);
                video.push(img);
            } else {
                // The video follows the first method.
                video.push(row[1].clone());
                for ((name, _), img) in methods.iter().zip(&row[1..]) {
                    let path = a.out.join(format!("frame_{:04}_{}.png", from + f, name.replace(':', "_")));
                    xrl_render::write_png(&path, img)?;
                    files.push(path);
                }
            }
        }
    }
    if let (Some(format), false) = (&a.video, video.is_empty()) {
        let path = a.out.join(format!("explain.{format}"));
        if format == "mp4" {
            xrl_render::write_mp4(&path, &video, 4.0)?;
        } else {
            xrl_render::write_gif(&path, &video, 4.0)?;
        }
        files.push(path);
    }

    // summary.json: per frame the action and the network's outputs; per method its time per frame.
    let heads = model.heads(batch(&obs, xlen, &Device::flex()), &Pass::default());
    let rows = |t: Option<xrl::burn::tensor::Tensor<2>>| {
        t.map(|t| {
            let [_, k] = t.dims();
            to_vec(t).chunks(k).map(|r| r.to_vec()).collect::<Vec<_>>()
        })
    };
    let softmax = |l: xrl::burn::tensor::Tensor<2>| xrl::burn::tensor::activation::softmax(l, 1);
    let (q, v, policy) = (rows(heads.q), rows(heads.value), rows(heads.logits.map(softmax)));
    let frames: Vec<_> = (0..n)
        .map(|f| {
            json!({
                "frame": from + f,
                "action": actions[f],
                "q": q.as_ref().map(|q| q[f].clone()),
                "value": v.as_ref().map(|v| v[f][0]),
                "policy": policy.as_ref().map(|p| p[f].clone()),
                "ig_delta": ig_delta.as_ref().map(|d| d[f]),
                "attribution_by_frame": (!frame_shares.is_empty()).then(|| {
                    frame_shares.iter().map(|(m, v)| (m.clone(), v[f].clone())).collect::<serde_json::Map<_, _>>()
                }),
            })
        })
        .collect();
    let summary_path = a.out.join("summary.json");
    files.push(summary_path.clone());
    let summary = json!({
        "run": a.run.display().to_string(),
        "env": card.env.id,
        "checkpoint_step": state.step,
        "target": a.target,
        "methods": methods.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        "options": {
            "seed": a.seed,
            "unroll": a.unroll,
            "ig_steps": a.ig_steps,
            "ig_rule": a.ig_rule,
            "ig_baseline": a.ig_baseline,
            "noise_samples": a.noise_samples,
            "noise_sigma": a.noise_sigma,
            "noise_absolute": a.noise_absolute,
            "occlusion_window": a.occlusion_window,
            "occlusion_stride": a.occlusion_stride,
            "occlusion_fill": a.occlusion_fill,
            "perturbation_score": a.perturbation_score,
        },
        "ms_per_frame": timings,
        "frames": frames,
        "files": files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
    });
    xrl::run::write_bytes(&summary_path, serde_json::to_string_pretty(&summary)?.as_bytes())?;
    println!("explained {n} frames with {} methods; wrote {} files to {}", methods.len(), files.len(), a.out.display());
    Ok(())
}

/// Runs one method on all frames: (maps, map width, map height) — width and height 0 when the maps have the
/// observation's layout — and IG's per-frame convergence delta.
#[allow(clippy::too_many_arguments)]
fn run_method(
    method: &Method,
    net: &dyn Model,
    spec: &xrl::nn::NetSpec,
    obs: &[f32],
    len: usize,
    chw: Option<[usize; 3]>,
    target: &Target,
    o: &MethodOptions,
) -> Result<MethodMaps> {
    let budget = Budget::default();
    let mut ig_delta = None;
    let (maps, mw, mh) = match method {
        Method::Grad(kind) => (Gradient { kind: *kind, budget }.attribute(net, obs, len, target).maps, 0, 0),
        Method::Cam(layer, false) => {
            let c = GradCam::new(layer).attribute(net, obs, len, target);
            (c.maps, c.w, c.h)
        }
        Method::Cam(layer, true) => {
            let shape = chw.context("guided Grad-CAM needs image observations")?;
            (GuidedGradCam { cam: GradCam::new(layer) }.attribute(net, obs, shape, target).maps, 0, 0)
        }
        Method::Ig => {
            let r = IntegratedGradients { budget, ..o.ig.clone() }.attribute(net, obs, len, target);
            ig_delta = r.delta;
            (r.maps, 0, 0)
        }
        Method::Smooth(base, kind) => {
            let sg = SmoothGrad {
                base: Gradient { kind: *base, budget },
                samples: o.noise_samples,
                sigma: o.noise_sigma,
                absolute: o.noise_absolute,
                kind: *kind,
                seed: o.seed,
            };
            (sg.attribute(net, obs, len, target).maps, 0, 0)
        }
        Method::Occlusion => {
            let [c, h, w] = chw.context("occlusion needs image observations")?;
            let (win, stride) = if h >= 84 { (8, 4) } else { (3, 1) };
            let (win, stride) = (o.occlusion_window.unwrap_or(win), o.occlusion_stride.unwrap_or(stride));
            let occ = Occlusion { window: [c, win, win], stride: [c, stride, stride], fill: o.occlusion_fill, budget };
            (occ.attribute(net, obs, [c, h, w], target).maps, 0, 0)
        }
        Method::Perturbation => {
            let [c, h, w] = chw.context("perturbation saliency needs image observations")?;
            let default =
                if spec.head == xrl::nn::HeadKind::ActorCritic { ScoreChoice::Policy } else { ScoreChoice::Target };
            let score = match o.perturbation_score.unwrap_or(default) {
                ScoreChoice::Policy => Score::Actor,
                ScoreChoice::Value if spec.head == xrl::nn::HeadKind::Q => {
                    bail!("--perturbation-score value needs a value head (dueling or actor-critic)")
                }
                ScoreChoice::Value => Score::Critic,
                ScoreChoice::Target => Score::Target(target.clone()),
            };
            let stride = if h >= 84 { 5 } else { 1 };
            let p = Perturbation {
                stride,
                budget,
                mask_sigma: if h >= 84 { 5.0 } else { 1.0 },
                ..Perturbation::new(score)
            };
            (p.attribute(net, obs, [c, h, w]).maps, w, h)
        }
    };
    Ok(MethodMaps { maps, w: mw, h: mh, delta: ig_delta })
}

/// One method's maps for all frames: `w`, `h` are the map's own resolution (Grad-CAM, perturbation) or 0 when the
/// maps have the observation's layout; `delta` is IG's convergence delta per frame.
struct MethodMaps {
    maps: Vec<f32>,
    w: usize,
    h: usize,
    delta: Option<Vec<f32>>,
}

/// The recorded states of `rows` as one `[rows, hidden]` state (LSTMs also stack their cells); a step with no
/// state yet (an episode's first) contributes zeros.
fn stack_states(
    net: &xrl::nn::Net,
    states: &[Option<xrl::nn::RecurrentState>],
    rows: &[usize],
) -> xrl::nn::RecurrentState {
    let device = Device::flex();
    let core = net.spec().core.expect("a recurrent network");
    let lstm = core.kind == xrl::nn::CoreKind::Lstm;
    let zeros = || xrl::burn::tensor::Tensor::<2>::zeros([1, core.hidden], &device);
    let (mut hidden, mut cell) = (vec![], vec![]);
    // The policy acted on the plain CPU device: its states are already there.
    for &t in rows {
        let s = states[t].clone();
        hidden.push(s.as_ref().map_or_else(zeros, |s| s.hidden.clone()));
        if lstm {
            cell.push(s.and_then(|s| s.cell).unwrap_or_else(zeros));
        }
    }
    xrl::nn::RecurrentState {
        hidden: xrl::burn::tensor::Tensor::cat(hidden, 0),
        cell: lstm.then(|| xrl::burn::tensor::Tensor::cat(cell, 0)),
    }
}
