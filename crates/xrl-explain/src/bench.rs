//! Explanation speed: milliseconds per frame for each attribution method, beside Captum (`bench/explain.py`);
//! `xrl bench explain` runs it.

use crate::{
    Budget, Fill, GradCam, Gradient, GradientKind, IntegratedGradients, Occlusion, Perturbation, Rule, Score,
    SmoothGrad, Target,
};
use burn::tensor::{Device, Distribution, Tensor};
use serde::Serialize;
use std::time::Instant;
use xrl::bench::median;
use xrl_nn::{Net, to_vec};

#[derive(Clone, Debug, Serialize)]
pub struct MethodTiming {
    pub net: String,
    pub method: String,
    /// Milliseconds per frame, one entry per run.
    pub ms_per_frame: Vec<f64>,
}

impl MethodTiming {
    pub fn median(&self) -> f64 {
        median(&self.ms_per_frame)
    }
}

/// The timed methods, in order: `perturbation_one_at_a_time` is perturbation saliency one perturbed frame per
/// pass, as the original code ran it (through the same convolutional shortcut as `perturbation`).
pub const METHODS: [&str; 8] = [
    "saliency",
    "guided_backprop",
    "grad_cam",
    "integrated_gradients",
    "smoothgrad",
    "occlusion",
    "perturbation",
    "perturbation_one_at_a_time",
];

/// One network (random weights, seed 0) and `frames` random frames to explain.
pub struct Setup {
    name: String,
    net: Net,
    x: Vec<f32>,
    len: usize,
    shape: [usize; 3],
    target: Target,
    last_conv: String,
}

impl Setup {
    pub fn new(name: &str, frames: usize) -> Self {
        let (_, spec) = xrl::bench::nets::specs().into_iter().find(|(n, _)| *n == name).expect("known network");
        let device = Device::flex().autodiff();
        device.seed(0);
        let net = Net::new(&spec, &device).expect("valid spec").frozen();
        let len: usize = spec.obs_shape.iter().product();
        let shape = [spec.obs_shape[0], spec.obs_shape[1], spec.obs_shape[2]];
        let x = to_vec(Tensor::<2>::random([frames, len], Distribution::Uniform(0.0, 1.0), &Device::flex()));
        let target = Target::Chosen((0..frames).map(|i| i % spec.actions).collect());
        let last_conv = format!("conv{}", net.layer_names().iter().filter(|l| l.starts_with("conv")).count());
        Setup { name: name.into(), net, x, len, shape, target, last_conv }
    }

    /// Milliseconds per frame of each call of `method` (one of [`METHODS`]) — at least `runs` calls and at
    /// least 0.3 s of them — after a warm-up.
    pub fn time(&self, method: &str, runs: usize) -> MethodTiming {
        let (net, x, len, shape, target) = (&self.net, &self.x[..], self.len, self.shape, &self.target);
        let budget = Budget::default();
        let big = shape[1] >= 84;
        let f: Box<dyn Fn()> = match method {
            "saliency" => Box::new(|| {
                Gradient::new(GradientKind::Vanilla).attribute(net, x, len, target);
            }),
            "guided_backprop" => Box::new(|| {
                Gradient::new(GradientKind::Guided).attribute(net, x, len, target);
            }),
            "grad_cam" => Box::new(|| {
                GradCam::new(&self.last_conv).attribute(net, x, len, target);
            }),
            "integrated_gradients" => Box::new(move || {
                let ig =
                    IntegratedGradients { steps: 50, rule: Rule::GaussLegendre, budget, ..IntegratedGradients::new() };
                ig.attribute(net, x, len, target);
            }),
            "smoothgrad" => Box::new(move || {
                SmoothGrad::new(Gradient { kind: GradientKind::Vanilla, budget }).attribute(net, x, len, target);
            }),
            "occlusion" => Box::new(move || {
                let (window, stride) =
                    if big { ([shape[0], 8, 8], [shape[0], 4, 4]) } else { ([shape[0], 3, 3], [shape[0], 1, 1]) };
                Occlusion { window, stride, fill: Fill::Constant(0.0), budget }.attribute(net, x, shape, target);
            }),
            "perturbation" | "perturbation_one_at_a_time" => {
                let budget = if method == "perturbation" { budget } else { Budget::rows(1) };
                Box::new(move || {
                    let stride = if big { 5 } else { 1 };
                    Perturbation { stride, budget, ..Perturbation::new(Score::Actor) }.attribute(net, x, shape);
                })
            }
            other => panic!("unknown method {other}"),
        };
        warm_up(&*f);
        let frames = x.len() / len;
        // At least `runs` calls and at least 0.3 s of them: five calls of a 2 ms method are 10 ms, which one
        // hiccup of this machine decides.
        let (start, mut ms) = (Instant::now(), vec![]);
        while ms.len() < runs || start.elapsed().as_secs_f64() < 0.3 {
            let t = Instant::now();
            f();
            ms.push(t.elapsed().as_secs_f64() * 1e3 / frames as f64);
        }
        MethodTiming { net: self.name.clone(), method: method.into(), ms_per_frame: ms }
    }
}

/// Calls `f` for at least 0.3 s (once at least) before it is timed: short calls timed straight after the
/// machine idled ran up to twice as slow as in a loop (threads asleep, clocks down), which made the ratios of
/// quick methods (saliency on 8 frames: 3 ms a call) depend on what ran before. `bench/explain.py` does the same.
fn warm_up(f: &dyn Fn()) {
    let start = Instant::now();
    f();
    while start.elapsed().as_secs_f64() < 0.3 {
        f();
    }
}
