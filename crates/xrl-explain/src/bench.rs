//! Explanation speed: milliseconds per frame for each attribution method, beside Captum (`bench/explain.py`);
//! `xrl bench explain` runs it.

use crate::registry::{MethodName, MethodOptions};
use crate::{Budget, Inputs, Target};
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

/// The timed methods, in order, by their reference's name (`bench/explain.py`): `perturbation_one_at_a_time` is
/// perturbation saliency one perturbed frame per pass, as the original code ran it (through the same convolutional
/// shortcut as `perturbation`).
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

/// The registry's name for a timed method (`LAST`: the last convolution, after its ReLU as Captum's reference
/// reads it) and whether it runs one row per pass.
fn registry_name(method: &str) -> Option<(&'static str, bool)> {
    Some(match method {
        "saliency" => ("grad", false),
        "guided_backprop" => ("guided", false),
        "grad_cam" => ("gradcam:LAST.relu", false),
        "integrated_gradients" => ("ig", false),
        "smoothgrad" => ("smoothgrad:grad", false),
        "occlusion" => ("occlusion", false),
        "perturbation" => ("perturbation", false),
        "perturbation_one_at_a_time" => ("perturbation", true),
        _ => return None,
    })
}

/// One network (random weights, seed 0) and `frames` random frames to explain.
pub struct Setup {
    name: String,
    net: Net,
    x: Vec<f32>,
    targets: Vec<Target>,
    last_conv: String,
}

impl Setup {
    /// On burn's Flex CPU backend, as the reference runs on PyTorch's CPU path.
    pub fn new(name: &str, frames: usize) -> Self {
        let (_, spec) = xrl::bench::nets::specs().into_iter().find(|(n, _)| *n == name).expect("known network");
        let device = Device::flex().autodiff();
        device.seed(0);
        let net = Net::new(&spec, &device).expect("valid spec").frozen();
        let len: usize = spec.obs_shape.iter().product();
        let x = to_vec(Tensor::<2>::random([frames, len], Distribution::Uniform(0.0, 1.0), &Device::flex()));
        let targets = (0..frames).map(|i| Target::Action(i % spec.actions)).collect();
        let last_conv = format!("conv{}", net.layer_names().iter().filter(|l| l.starts_with("conv")).count());
        Setup { name: name.into(), net, x, targets, last_conv }
    }

    /// Milliseconds per frame of each call of `method` (one of [`METHODS`]) — at least `runs` calls and at
    /// least 0.3 s of them — after a warm-up. Methods come from the registry with their default settings.
    pub fn time(&self, method: &str, runs: usize) -> MethodTiming {
        let (name, one_row) = registry_name(method).unwrap_or_else(|| panic!("unknown method {method}"));
        let name: MethodName = name.replace("LAST", &self.last_conv).parse().expect("a registry name");
        let budget = if one_row { Budget::rows(1) } else { Budget::default() };
        let spec = self.net.spec();
        let d = spec.obs_shape.len();
        let frame = [spec.obs_shape[d - 2], spec.obs_shape[d - 1]];
        let m = MethodOptions { budget, ..MethodOptions::default() }.build(&name, Some(frame), spec.head);
        let inputs = Inputs::new(&self.x, &spec.obs_shape).expect("finite frames");
        let f = || {
            m.attribute(&self.net, &inputs, &self.targets, None).expect("a valid call");
        };
        warm_up(&f);
        let frames = inputs.count();
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
