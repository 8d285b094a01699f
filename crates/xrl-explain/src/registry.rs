//! The one place method names are read: `grad`, `gradcam:conv3`, `smoothgrad:guided`, … become [`Method`]s with
//! their settings ([`MethodOptions`]); [`METHOD_HELP`] is the list `--help` and every "use …" error print.

use crate::{
    Budget, ExplainError, Fill, GradCam, Gradient, GradientKind, GuidedGradCam, IntegratedGradients, Method, Occlusion,
    Perturbation, Rule, Score, SmoothGrad, SmoothKind,
};
use serde::{Deserialize, Serialize};

macro_rules! method_names {
    () => {
        "grad, grad-x-input, guided, deconv, gradcam:LAYER, guided-gradcam:LAYER, ig, smoothgrad:BASE, \
         smoothgrad2:BASE, vargrad:BASE (BASE: grad, grad-x-input, guided or deconv), occlusion, perturbation, \
         attention (the mask of a --torso ife network)"
    };
}

/// Every method name the registry reads (the "use …" of its errors).
pub const METHOD_HELP: &str = method_names!();

/// `--methods`' help: the names, and which layer a layer name means.
pub const METHODS_OPTION_HELP: &str = concat!(
    "Comma-separated methods: ",
    method_names!(),
    ". Layers: `convN` is convolution N's output (before its ReLU, as Captum's LayerGradCam on the Conv2d), \
     `convN.relu` its ReLU's; `fcN`, `fcN.relu` likewise; `core` the recurrent core's output. Default: grad, guided, \
     gradcam on the last convolution (for CNNs) and ig."
);

/// What a method name says, before its settings are applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MethodName {
    Gradient(GradientKind),
    /// Grad-CAM on a layer; `guided`: guided Grad-CAM.
    GradCam {
        layer: String,
        guided: bool,
    },
    Ig,
    Smooth(GradientKind, SmoothKind),
    Occlusion,
    Perturbation,
    /// The network's attention mask (an IFE torso's).
    Attention,
}

fn base_kind(s: &str) -> Option<GradientKind> {
    Some(match s {
        "grad" => GradientKind::Vanilla,
        "grad-x-input" => GradientKind::TimesInput,
        "guided" => GradientKind::Guided,
        "deconv" => GradientKind::Deconv,
        _ => return None,
    })
}

impl std::str::FromStr for MethodName {
    type Err = ExplainError;

    fn from_str(s: &str) -> Result<Self, ExplainError> {
        let (name, arg) = s.split_once(':').map_or((s, None), |(a, b)| (a, Some(b)));
        let smooth = match name {
            "smoothgrad" => Some(SmoothKind::Mean),
            "smoothgrad2" => Some(SmoothKind::Squared),
            "vargrad" => Some(SmoothKind::Variance),
            _ => None,
        };
        let method = match (name, arg) {
            ("gradcam" | "guided-gradcam", Some(layer)) if !layer.is_empty() => {
                Some(MethodName::GradCam { layer: layer.into(), guided: name == "guided-gradcam" })
            }
            ("ig", None) => Some(MethodName::Ig),
            ("occlusion", None) => Some(MethodName::Occlusion),
            ("perturbation", None) => Some(MethodName::Perturbation),
            ("attention", None) => Some(MethodName::Attention),
            _ => match smooth {
                Some(kind) => base_kind(arg.unwrap_or("grad")).map(|base| MethodName::Smooth(base, kind)),
                None if arg.is_none() => base_kind(name).map(MethodName::Gradient),
                None => None,
            },
        };
        method.ok_or_else(|| ExplainError::Invalid(format!("unknown method `{s}`; use {METHOD_HELP}")))
    }
}

/// Parses a comma-separated list of method names (spaces around names are ignored; a name given twice is refused).
pub fn parse_list(list: &str) -> Result<Vec<MethodName>, ExplainError> {
    let names: Vec<&str> = list.split(',').map(str::trim).collect();
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            return Err(ExplainError::Invalid(format!("method `{n}` is listed twice; list each method once")));
        }
    }
    names.into_iter().map(str::parse).collect()
}

/// Perturbation saliency's score as a user names it; `target` uses each sample's target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScoreName {
    Policy,
    Value,
    Target,
}

impl std::str::FromStr for ScoreName {
    type Err = ExplainError;
    fn from_str(s: &str) -> Result<Self, ExplainError> {
        Ok(match s {
            "policy" => ScoreName::Policy,
            "value" => ScoreName::Value,
            "target" => ScoreName::Target,
            _ => {
                return Err(ExplainError::Invalid(format!(
                    "unknown --perturbation-score `{s}`; use policy, value or target"
                )));
            }
        })
    }
}

/// The settings of every method, with their defaults (Captum's for IG, PAIR saliency's for SmoothGrad, Greydanus
/// et al.'s for perturbation; frame-size dependent ones resolved by [`MethodOptions::build`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodOptions {
    /// SmoothGrad's noise seed.
    pub seed: u64,
    pub ig_steps: usize,
    pub ig_rule: Rule,
    pub noise_samples: usize,
    /// A fraction of each input's value range, or input units when `noise_absolute`.
    pub noise_sigma: f32,
    pub noise_absolute: bool,
    /// Occlusion window side; `None`: 8 on frames of 84 pixels or more, else 3.
    pub occlusion_window: Option<usize>,
    /// `None`: 4 on frames of 84 pixels or more, else 1.
    pub occlusion_stride: Option<usize>,
    pub occlusion_fill: Fill,
    /// `None`: `policy` for actor-critic networks, `target` otherwise.
    pub perturbation_score: Option<ScoreName>,
    /// Grad-CAM's final ReLU (the paper's; Captum's `LayerGradCam` leaves it off unless `relu_attributions`).
    pub gradcam_relu: bool,
    #[serde(skip)]
    pub budget: Budget,
}

impl Default for MethodOptions {
    fn default() -> Self {
        MethodOptions {
            seed: 0,
            ig_steps: 50,
            ig_rule: Rule::GaussLegendre,
            noise_samples: 25,
            noise_sigma: 0.15,
            noise_absolute: false,
            occlusion_window: None,
            occlusion_stride: None,
            occlusion_fill: Fill::Constant(0.0),
            perturbation_score: None,
            gradcam_relu: true,
            budget: Budget::default(),
        }
    }
}

/// The most path points, noise samples (per frame) a method may take: each is a pass through the network.
pub const MAX_SAMPLES: usize = 10_000;

/// The command-line names of the method options, each with the methods that read it.
pub const METHOD_OPTION_USERS: [(&str, &str); 12] = [
    ("--ig-steps", "ig"),
    ("--ig-rule", "ig"),
    ("--ig-baseline", "ig"),
    ("--noise-samples", "smoothgrad, smoothgrad2 and vargrad"),
    ("--noise-sigma", "smoothgrad, smoothgrad2 and vargrad"),
    ("--noise-absolute", "smoothgrad, smoothgrad2 and vargrad"),
    ("--occlusion-window", "occlusion"),
    ("--occlusion-stride", "occlusion"),
    ("--occlusion-fill", "occlusion"),
    ("--gradcam-no-relu", "gradcam and guided-gradcam"),
    ("--perturbation-score", "perturbation"),
    // Given with --inputs or --trajectory, where no episode is played.
    ("--seed", "smoothgrad, smoothgrad2 and vargrad (no episode is played from given inputs or a trajectory)"),
];

impl MethodOptions {
    /// Every setting in its domain: counts of passes from 1 to [`MAX_SAMPLES`], σ positive, windows and strides
    /// of at least one pixel.
    pub fn validate(&self) -> Result<(), ExplainError> {
        let bad = |m: String| Err(ExplainError::Invalid(m));
        for (name, v) in [("--ig-steps", self.ig_steps), ("--noise-samples", self.noise_samples)] {
            if v == 0 || v > MAX_SAMPLES {
                return bad(format!("{name} must be between 1 and {MAX_SAMPLES} (passes per frame), got {v}"));
            }
        }
        if !(self.noise_sigma > 0.0 && self.noise_sigma.is_finite()) {
            return bad(format!(
                "--noise-sigma must be a positive number (a fraction of the frame's range, 0.15 by default), got {}",
                self.noise_sigma
            ));
        }
        for (name, v) in [("--occlusion-window", self.occlusion_window), ("--occlusion-stride", self.occlusion_stride)]
        {
            if v == Some(0) {
                return bad(format!("{name} must be at least 1 pixel"));
            }
        }
        if let Fill::Constant(v) = self.occlusion_fill
            && !v.is_finite()
        {
            return bad(format!("--occlusion-fill must be a finite number, `mean` or `blur[:SIGMA]`, got {v}"));
        }
        Ok(())
    }

    /// Refuses options (by their command-line names, as in [`METHOD_OPTION_USERS`]) that none of `methods`
    /// reads: a setting given for a method that does not run would otherwise be silently ignored.
    pub fn refuse_unused(methods: &[MethodName], given: &[&str]) -> Result<(), ExplainError> {
        for option in given {
            let Some((_, users)) = METHOD_OPTION_USERS.iter().find(|(name, _)| name == option) else { continue };
            let used = methods.iter().any(|m| match *option {
                o if o.starts_with("--ig-") => matches!(m, MethodName::Ig),
                o if o.starts_with("--noise-") || o == "--seed" => matches!(m, MethodName::Smooth(..)),
                o if o.starts_with("--occlusion-") => matches!(m, MethodName::Occlusion),
                "--gradcam-no-relu" => matches!(m, MethodName::GradCam { .. }),
                _ => matches!(m, MethodName::Perturbation),
            });
            if !used {
                return Err(ExplainError::Invalid(format!(
                    "{option} is an option of {users}, and none of them is among the methods; add one to --methods \
                     or leave {option} out"
                )));
            }
        }
        Ok(())
    }

    /// The method a name stands for, for inputs whose last two axes are `frame` (`[H, W]`; `None` for vectors)
    /// explained by a network with `head`.
    pub fn build(&self, name: &MethodName, frame: Option<[usize; 2]>, head: xrl_nn::HeadKind) -> Box<dyn Method> {
        let budget = self.budget;
        let big = frame.is_some_and(|[h, w]| h.max(w) >= 84);
        let cam = |layer: &str| GradCam { layer: layer.into(), relu: self.gradcam_relu, budget };
        match name {
            MethodName::Gradient(kind) => Box::new(Gradient { kind: *kind, budget }),
            MethodName::GradCam { layer, guided: false } => Box::new(cam(layer)),
            MethodName::GradCam { layer, guided: true } => Box::new(GuidedGradCam { cam: cam(layer) }),
            MethodName::Ig => Box::new(IntegratedGradients { steps: self.ig_steps, rule: self.ig_rule, budget }),
            MethodName::Smooth(base, kind) => Box::new(SmoothGrad {
                base: Gradient { kind: *base, budget },
                samples: self.noise_samples,
                sigma: self.noise_sigma,
                absolute: self.noise_absolute,
                kind: *kind,
                seed: self.seed,
            }),
            MethodName::Occlusion => {
                let (win, stride) = if big { (8, 4) } else { (3, 1) };
                let (win, stride) = (self.occlusion_window.unwrap_or(win), self.occlusion_stride.unwrap_or(stride));
                // Windows over all channels: the channel count is the input's, read when the method runs.
                Box::new(Occlusion {
                    window: [usize::MAX, win, win],
                    stride: [usize::MAX, stride, stride],
                    fill: self.occlusion_fill,
                    budget,
                })
            }
            MethodName::Attention => Box::new(crate::attention::Attention { budget }),
            MethodName::Perturbation => {
                let default = if head == xrl_nn::HeadKind::ActorCritic { ScoreName::Policy } else { ScoreName::Target };
                let score = match self.perturbation_score.unwrap_or(default) {
                    ScoreName::Policy => Score::Actor,
                    ScoreName::Value => Score::Critic,
                    ScoreName::Target => Score::Target,
                };
                Box::new(Perturbation {
                    stride: if big { 5 } else { 1 },
                    mask_sigma: if big { 5.0 } else { 1.0 },
                    budget,
                    ..Perturbation::new(score)
                })
            }
        }
    }
}

/// The accepted `--ig-rule` names.
pub fn parse_rule(s: &str) -> Result<Rule, ExplainError> {
    Ok(match s {
        "left" => Rule::RiemannLeft,
        "right" => Rule::RiemannRight,
        "middle" => Rule::RiemannMiddle,
        "trapezoid" => Rule::RiemannTrapezoid,
        "captum-trapezoid" => Rule::CaptumTrapezoid,
        "gauss-legendre" => Rule::GaussLegendre,
        _ => {
            return Err(ExplainError::Invalid(format!(
                "unknown --ig-rule `{s}`; use left, right, middle, trapezoid, captum-trapezoid or gauss-legendre"
            )));
        }
    })
}

/// `NAME` or `NAME:SIGMA` with a default σ.
fn sigma_of(s: &str, name: &str, default: f32) -> Option<Result<f32, ExplainError>> {
    let rest = s.strip_prefix(name)?;
    if rest.is_empty() {
        return Some(Ok(default));
    }
    let sigma = rest.strip_prefix(':')?;
    Some(
        sigma
            .parse::<f32>()
            .ok()
            .filter(|v| *v > 0.0 && v.is_finite())
            .ok_or_else(|| ExplainError::Invalid(format!("`{s}`: σ must be a positive number"))),
    )
}

/// The accepted `--occlusion-fill` values: a number, `mean` or `blur[:SIGMA]` (σ 3 pixels unless given).
pub fn parse_fill(s: &str) -> Result<Fill, ExplainError> {
    if s == "mean" {
        return Ok(Fill::Mean);
    }
    if let Some(sigma) = sigma_of(s, "blur", 3.0) {
        return Ok(Fill::Blur(sigma?));
    }
    match s.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(Fill::Constant(v)),
        _ => Err(ExplainError::Invalid(format!("unknown --occlusion-fill `{s}`; use a number, mean or blur[:SIGMA]"))),
    }
}

/// A baseline as a user names it (`--ig-baseline`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaselineName {
    Zeros,
    /// Each input blurred with this σ in pixels.
    Blur(f32),
    /// Frame N of the played episode.
    Frame(usize),
    /// A `.npy` file: one observation, or one per explained input.
    File(std::path::PathBuf),
}

impl std::str::FromStr for BaselineName {
    type Err = ExplainError;
    fn from_str(s: &str) -> Result<Self, ExplainError> {
        if s == "zeros" {
            return Ok(BaselineName::Zeros);
        }
        if let Some(sigma) = sigma_of(s, "blur", 5.0) {
            return Ok(BaselineName::Blur(sigma?));
        }
        if let Some(n) = s.strip_prefix("frame:") {
            return n
                .parse()
                .map(BaselineName::Frame)
                .map_err(|_| ExplainError::Invalid(format!("`{s}`: N must be a frame number")));
        }
        if s.ends_with(".npy") {
            return Ok(BaselineName::File(s.into()));
        }
        Err(ExplainError::Invalid(format!(
            "unknown --ig-baseline `{s}`; use zeros, blur[:SIGMA], frame:N or a .npy file"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_to_methods_and_back() {
        let o = MethodOptions::default();
        for name in [
            "grad",
            "grad-x-input",
            "guided",
            "deconv",
            "gradcam:conv3",
            "gradcam:conv3.relu",
            "guided-gradcam:conv1",
            "ig",
            "smoothgrad:guided",
            "smoothgrad2:grad",
            "vargrad:deconv",
            "occlusion",
            "perturbation",
        ] {
            let m = o.build(&name.parse().unwrap(), Some([10, 10]), xrl_nn::HeadKind::Q);
            assert_eq!(m.name(), name);
        }
        assert_eq!(
            "smoothgrad".parse::<MethodName>().unwrap(),
            MethodName::Smooth(GradientKind::Vanilla, SmoothKind::Mean)
        );
        for bad in ["gradcam", "gradcam:", "ig:2", "saliency", "smoothgrad:ig"] {
            let e = bad.parse::<MethodName>().unwrap_err().to_string();
            assert!(e.contains(&format!("`{bad}`")) && e.contains(METHOD_HELP), "{e}");
        }
        assert!(parse_list("grad, ig,grad").unwrap_err().to_string().contains("twice"));
        assert_eq!(parse_list("grad, ig").unwrap(), vec![MethodName::Gradient(GradientKind::Vanilla), MethodName::Ig]);
    }
}
