#![allow(dead_code)] // each test binary uses its own subset of these helpers
//! The tests' shorthand for the one calling convention: a method called on flat inputs of a given shape with one
//! target for every sample (or one each), no baseline unless given.

use xrl_explain::{Attribution, Inputs, Method, Model, Target};

pub trait Call {
    fn call(&self, model: &dyn Model, x: &[f32], shape: &[usize], target: &Target) -> Attribution;
    fn call_each(&self, model: &dyn Model, x: &[f32], shape: &[usize], targets: &[Target]) -> Attribution;
    fn call_from(&self, model: &dyn Model, x: &[f32], shape: &[usize], target: &Target, base: &[f32]) -> Attribution;
}

impl<M: Method> Call for M {
    fn call(&self, model: &dyn Model, x: &[f32], shape: &[usize], target: &Target) -> Attribution {
        let n = x.len() / shape.iter().product::<usize>();
        self.call_each(model, x, shape, &vec![target.clone(); n])
    }

    fn call_each(&self, model: &dyn Model, x: &[f32], shape: &[usize], targets: &[Target]) -> Attribution {
        self.attribute(model, &Inputs::new(x, shape).unwrap(), targets, None).unwrap()
    }

    fn call_from(&self, model: &dyn Model, x: &[f32], shape: &[usize], target: &Target, base: &[f32]) -> Attribution {
        let n = x.len() / shape.iter().product::<usize>();
        self.attribute(model, &Inputs::new(x, shape).unwrap(), &vec![target.clone(); n], Some(base)).unwrap()
    }
}

/// Per-sample greedy-action targets.
pub fn chosen(actions: Vec<usize>) -> Vec<Target> {
    actions.into_iter().map(Target::Action).collect()
}

thread_local!(static HELD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });

/// Seeds burn's generator for this test and holds it until the guard drops: the generator is process-wide and the
/// tests run on parallel threads, so without the lock a test's random weights and frames depend on which other
/// tests draw at the same time (and the comparisons' rounding with them). A thread that holds it already (a test
/// calling a helper that seeds again) just reseeds.
pub fn seeded(device: &xrl::burn::tensor::Device, seed: u64) -> Seeded {
    static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = (!HELD.get()).then(|| {
        let g = RNG.lock().unwrap_or_else(|e| e.into_inner());
        HELD.set(true);
        g
    });
    device.seed(seed);
    Seeded(guard)
}

pub struct Seeded(Option<std::sync::MutexGuard<'static, ()>>);

impl Drop for Seeded {
    fn drop(&mut self) {
        if self.0.take().is_some() {
            HELD.set(false);
        }
    }
}

/// A network behind a plain model: every row goes through it whole (no convolutional shortcut), on its own device.
pub struct Whole<'a>(pub &'a xrl::nn::Net);

impl Model for Whole<'_> {
    fn heads(&self, x: xrl::burn::tensor::Tensor<2>, pass: &xrl::nn::Pass) -> xrl::nn::Heads {
        self.0.forward(x, pass)
    }

    fn device(&self) -> xrl::burn::tensor::Device {
        self.0.device()
    }
}

/// A network with weights set by name: `values(name, shape)` gives each tensor's values (row-major in burn's
/// layout: Linear weights `[in, out]`).
pub fn net_with(spec: &xrl::nn::NetSpec, values: impl Fn(&str, &[usize]) -> Vec<f32>) -> xrl::nn::Net {
    let device = xrl::burn::tensor::Device::flex();
    let net = xrl::nn::Net::new(spec, &device).unwrap();
    let mut bytes = xrl::run::weights_bytes(&net).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    for (name, t) in header.as_object().unwrap().iter().filter(|(k, _)| *k != "__metadata__") {
        assert_eq!(t["dtype"], "F32");
        let shape: Vec<usize> = t["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        let [start, end] = [0, 1].map(|i| t["data_offsets"][i].as_u64().unwrap() as usize + 8 + header_len);
        let v = values(name, &shape);
        assert_eq!(v.len() * 4, end - start, "{name}");
        for (k, x) in v.iter().enumerate() {
            bytes[start + 4 * k..start + 4 * k + 4].copy_from_slice(&x.to_le_bytes());
        }
    }
    xrl::run::load_weights(spec, std::path::Path::new("test"), bytes, &device).unwrap()
}

/// A hand-made map over 1×3×3 frames: `cells` (position, value) set in each of `frames` frames, the rest 0.
pub fn map_at(cells: &[(usize, f32)], frames: usize) -> xrl_explain::Attribution {
    let mut maps = vec![0.0; 9 * frames];
    for i in 0..frames {
        for &(j, v) in cells {
            maps[i * 9 + j] = v;
        }
    }
    xrl_explain::Attribution {
        method: "hand".into(),
        maps,
        shape: vec![1, 3, 3],
        resolution: xrl_explain::Resolution::Input,
        delta: None,
        seconds: 0.0,
    }
}
