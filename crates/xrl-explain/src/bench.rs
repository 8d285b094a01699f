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
    /// On `device` (the command passes the CPU: the reference runs on PyTorch's CPU path).
    pub fn new(name: &str, frames: usize, device: &Device) -> Self {
        let (_, spec) = xrl::bench::nets::specs().into_iter().find(|(n, _)| *n == name).expect("known network");
        let device = device.clone().autodiff();
        device.seed(0);
        let net = Net::new(&spec, &device).expect("valid spec").frozen();
        let len: usize = spec.obs_shape.iter().product();
        let x = to_vec(Tensor::<2>::random(
            [frames, len],
            Distribution::Uniform(0.0, 1.0),
            &device.clone().without_autodiff(),
        ));
        let targets = (0..frames).map(|i| Target::Action(i % spec.actions)).collect();
        let last_conv = format!("conv{}", net.conv_geometries().len());
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
        let ms_per_frame = timed_calls(&f, inputs.count(), runs);
        MethodTiming { net: self.name.clone(), method: method.into(), ms_per_frame }
    }
}

/// Milliseconds per frame of each call of `f` (over `frames` frames), after a warm-up: at least `runs` calls and
/// at least 0.3 s of them — five calls of a 2 ms method are 10 ms, which one hiccup of this machine decides.
fn timed_calls(f: &dyn Fn(), frames: usize, runs: usize) -> Vec<f64> {
    warm_up(f);
    let (start, mut ms) = (Instant::now(), vec![]);
    while ms.len() < runs || start.elapsed().as_secs_f64() < 0.3 {
        let t = Instant::now();
        f();
        ms.push(t.elapsed().as_secs_f64() * 1e3 / frames as f64);
    }
    ms
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

/// The Captum side of `xrl bench explain`, answering one method at a time (`bench/explain.py --serve`), so that
/// each of our methods is timed right before its reference: this machine's speed drifts by tens of percent
/// between minutes, which a whole run of each side after the other turns into ratios.
pub struct Reference {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Reference {
    /// Starts `python script --serve`.
    pub fn start(
        python: &std::path::Path,
        script: &std::path::Path,
        frames: usize,
        runs: usize,
    ) -> Result<Self, String> {
        use std::process::{Command, Stdio};
        let cannot = |e: &dyn std::fmt::Display| {
            format!("cannot run {} ({e}); pass --python PATH to a Python with torch and captum", python.display())
        };
        let mut child = Command::new(python)
            .arg(script)
            .args(["--serve", "--frames", &frames.to_string(), "--runs", &runs.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| cannot(&e))?;
        let stdin = child.stdin.take().ok_or_else(|| cannot(&"no stdin"))?;
        let stdout = std::io::BufReader::new(child.stdout.take().ok_or_else(|| cannot(&"no stdout"))?);
        Ok(Reference { child, stdin, stdout })
    }

    /// Milliseconds per frame of each run of the reference `method` (a [`METHODS`] name, or
    /// `perturbation_original`) on `net`.
    pub fn time(&mut self, net: &str, method: &str) -> Result<Vec<f64>, String> {
        use std::io::{BufRead, Write};
        let stopped = |e: std::io::Error| format!("the reference stopped ({e}); see its error above");
        writeln!(self.stdin, "{net} {method}").and_then(|_| self.stdin.flush()).map_err(stopped)?;
        let mut line = String::new();
        self.stdout.read_line(&mut line).map_err(stopped)?;
        let runs: Vec<f64> = serde_json::from_str(&line)
            .map_err(|_| format!("the reference answered {line:?} for {net} {method}; see its error above"))?;
        Ok(runs)
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The reference a timed method is compared with: Captum's method of the same name, or for `perturbation` the
/// original code's procedure in PyTorch.
pub fn reference_name(method: &str) -> &str {
    if method == "perturbation" { "perturbation_original" } else { method }
}

/// One (network, method) row of [`interleaved`]: our median and the reference's, one per round.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub net: String,
    pub method: String,
    pub ours: Vec<f64>,
    pub theirs: Vec<f64>,
}

/// The networks the benchmark explains.
pub const NETS: [&str; 2] = ["minatar-cnn", "nature-cnn"];

/// `rounds` rounds over [`NETS`] × [`METHODS`] on `device`, each of our methods timed right before its reference
/// (when there is one); `on_round(round, net)` reports progress.
pub fn interleaved(
    device: &Device,
    mut reference: Option<&mut Reference>,
    frames: usize,
    runs: usize,
    rounds: usize,
    mut on_round: impl FnMut(usize, &str),
) -> Result<Vec<Row>, String> {
    if frames == 0 || runs == 0 || rounds == 0 {
        return Err("--frames, --runs and --rounds must be at least 1".into());
    }
    let mut rows: Vec<Row> = NETS
        .iter()
        .flat_map(|&net| {
            METHODS.iter().map(move |&m| Row { net: net.into(), method: m.into(), ours: vec![], theirs: vec![] })
        })
        .collect();
    // Each side's idle threads keep spinning for a while after its last call (PyTorch's OpenMP threads for up to
    // about 200 ms): with a reference, let them settle before the other side's clock starts.
    let settle = |on: bool| {
        if on {
            std::thread::sleep(std::time::Duration::from_millis(300))
        }
    };
    for r in 1..=rounds {
        let mut row = rows.iter_mut();
        for net in NETS {
            on_round(r, net);
            let setup = Setup::new(net, frames, device);
            for method in METHODS {
                let row = row.next().expect("a row per network and method");
                settle(reference.is_some());
                row.ours.push(setup.time(method, runs).median());
                if let Some(p) = reference.as_deref_mut() {
                    settle(true);
                    row.theirs.push(median(&p.time(net, reference_name(method))?));
                }
            }
        }
    }
    Ok(rows)
}

/// The evaluation measures `xrl bench evaluate` times beside Quantus and Captum (`bench/evaluate.py`).
pub const TESTS: [&str; 6] =
    ["faithfulness-correlation", "pixel-flipping", "infidelity", "sensitivity-max", "mprt", "road"];

impl Setup {
    /// Milliseconds per frame of each call of the evaluation measure `test` (one of [`TESTS`]) on the signed
    /// gradient's maps (computed once, as the reference does; sensitivity-max computes them in each call, as
    /// Captum's does), with the same number of forward passes per frame as `bench/evaluate.py`: 100 subsets of a
    /// tenth of the cells, one cell a step, 100 perturbations, 10 copies.
    pub fn time_test(&self, test: &str, runs: usize) -> MethodTiming {
        use crate::evaluate::Subject;
        use crate::evaluate::deletion::DeletionConfig;
        use crate::evaluate::faithfulness::FaithfulnessConfig;
        let spec = self.net.spec();
        let inputs = Inputs::new(&self.x, &spec.obs_shape).expect("finite frames");
        let subject = Subject::new(&self.net, inputs, &self.targets).expect("targets fit");
        let grad = crate::Gradient::new(crate::GradientKind::Vanilla);
        let maps = subject.maps(&grad).expect("a valid call");
        let faith = FaithfulnessConfig::default();
        let mprt = crate::evaluate::randomisation::Randomisation {
            measures: vec![crate::evaluate::similarity::Measure::SpearmanAbs],
            independent: false,
            ..Default::default()
        };
        let deletion = DeletionConfig { cells_per_step: Some(1), ..DeletionConfig::for_frame(subject.frame()) };
        let f = || match test {
            "faithfulness-correlation" => drop(faith.correlation(&subject, &maps).expect("valid")),
            "pixel-flipping" => drop(deletion.saliency_curve(&subject, &maps, false).expect("valid")),
            "infidelity" => drop(faith.infidelity(&subject, &maps).expect("valid")),
            // Captum's sensitivity_max explains the unperturbed inputs inside every call too (11 maps a frame, not
            // 10), so ours computes them here rather than reusing `maps` as the suite does.
            "sensitivity-max" => {
                let own = subject.maps(&grad).expect("a valid call");
                drop(faith.max_sensitivity(&subject, &grad, &own).expect("valid"))
            }
            // Cascading only, Spearman of |map| only: what Quantus' MPRT computes.
            "mprt" => drop(mprt.run(&subject, &grad).expect("valid")),
            other => panic!("unknown test {other}"),
        };
        let ms_per_frame = timed_calls(&f, inputs.count(), runs);
        MethodTiming { net: self.name.clone(), method: test.into(), ms_per_frame }
    }
}

/// The ROAD agreement fixture (`tests/fixtures/make_quantus_captum_eval_fixture.py`): its network, frames, maps and
/// greedy labels, which `bench/evaluate.py` reads too.
const ROAD_FIXTURE: &str = include_str!("../tests/fixtures/eval_quantus_captum.json");

/// The name of the network the ROAD fixture's ROAD is timed on, in the benchmark's rows.
pub const ROAD_NET: &str = "fixture-mlp";

/// ROAD as the agreement test compares it with Quantus: the fixture's MLP (1×10×10 → FC 16 → ReLU → 3), its 8
/// frames, |maps| ranked, each frame's greedy action as its label, percentages 1, 3, …, 99, noise 0.
pub struct RoadSetup {
    net: Net,
    x: Vec<f32>,
    greedy: Vec<Target>,
    maps: crate::Attribution,
}

impl RoadSetup {
    pub fn new(device: &Device) -> Result<Self, String> {
        let bad = |what: &str| format!("the ROAD fixture is damaged ({what}): regenerate it with its script");
        let fx: serde_json::Value = serde_json::from_str(ROAD_FIXTURE).map_err(|e| bad(&e.to_string()))?;
        let floats = |v: &serde_json::Value| -> Result<Vec<f32>, String> {
            let a = v.as_array().ok_or_else(|| bad("not a list"))?;
            a.iter().map(|x| x.as_f64().map(|x| x as f32).ok_or_else(|| bad("not a number"))).collect()
        };
        let spec =
            xrl_nn::NetSpec::new(vec![1, 10, 10], 3, xrl_nn::Torso::Mlp { hidden: vec![16] }, xrl_nn::HeadKind::Q);
        let fresh = Net::new(&spec, &device.clone().autodiff()).map_err(|e| bad(&e))?;
        let mut weights = std::collections::HashMap::new();
        for name in ["torso.fc.0.weight", "torso.fc.0.bias", "head.out.weight", "head.out.bias"] {
            weights.insert(name.to_string(), floats(&fx["weights"][name])?);
        }
        let net = crate::evaluate::randomisation::with_tensors(&fresh, &weights).map_err(|e| bad(&e.to_string()))?;
        let x = floats(&fx["obs"])?;
        let greedy = fx["road"]["greedy"]
            .as_array()
            .ok_or_else(|| bad("no greedy labels"))?
            .iter()
            .map(|a| a.as_u64().map(|a| Target::Action(a as usize)).ok_or_else(|| bad("a label")))
            .collect::<Result<Vec<_>, _>>()?;
        let maps = crate::Attribution {
            method: "fixture".into(),
            maps: floats(&fx["maps"])?.iter().map(|v| v.abs()).collect(),
            shape: vec![1, 10, 10],
            resolution: crate::Resolution::Input,
            delta: None,
            seconds: 0.0,
        };
        Ok(RoadSetup { net: net.frozen(), x, greedy, maps })
    }

    /// The fixture's ROAD: percentages 1, 3, …, 99, noise 0 (Quantus's settings in the fixture script).
    fn config() -> crate::evaluate::deletion::AgreementConfig {
        use crate::evaluate::deletion::{AgreementConfig, Replacement};
        AgreementConfig {
            percents: (1..100).step_by(2).collect(),
            ks: vec![],
            replacement: Replacement::Imputed { noise: 0.0 },
        }
    }

    /// Milliseconds per frame of each ROAD curve.
    pub fn time(&self, runs: usize) -> MethodTiming {
        let inputs = Inputs::new(&self.x, &[1, 10, 10]).expect("finite frames");
        let subject = crate::evaluate::Subject::new(&self.net, inputs, &self.greedy).expect("targets fit");
        let road = Self::config();
        let f = || drop(road.road_curve(&subject, &self.maps, 0).expect("valid"));
        MethodTiming {
            net: ROAD_NET.into(),
            method: "road".into(),
            ms_per_frame: timed_calls(&f, inputs.count(), runs),
        }
    }

    /// The ROAD curve itself (what the agreement test checks against Quantus).
    pub fn curve(&self) -> Vec<f64> {
        let inputs = Inputs::new(&self.x, &[1, 10, 10]).expect("finite frames");
        let subject = crate::evaluate::Subject::new(&self.net, inputs, &self.greedy).expect("targets fit");
        Self::config().road_curve(&subject, &self.maps, 0).expect("valid")
    }
}

/// `rounds` rounds over [`TESTS`] on the MinAtar CNN (ROAD on [`RoadSetup`]), each of ours timed right before its
/// reference.
pub fn evaluate_interleaved(
    device: &Device,
    mut reference: Option<&mut Reference>,
    frames: usize,
    runs: usize,
    rounds: usize,
    mut on_round: impl FnMut(usize),
) -> Result<Vec<Row>, String> {
    if frames == 0 || runs == 0 || rounds == 0 {
        return Err("--frames, --runs and --rounds must be at least 1".into());
    }
    let net_of = |test: &str| if test == "road" { ROAD_NET } else { "minatar-cnn" };
    let mut rows: Vec<Row> = TESTS
        .iter()
        .map(|t| Row { net: net_of(t).into(), method: t.to_string(), ours: vec![], theirs: vec![] })
        .collect();
    let setup = Setup::new("minatar-cnn", frames, device);
    let road = RoadSetup::new(device)?;
    for r in 1..=rounds {
        on_round(r);
        for (row, test) in rows.iter_mut().zip(TESTS) {
            if reference.is_some() {
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
            let ours = if test == "road" { road.time(runs) } else { setup.time_test(test, runs) };
            row.ours.push(ours.median());
            if let Some(p) = reference.as_deref_mut() {
                std::thread::sleep(std::time::Duration::from_millis(300));
                row.theirs.push(median(&p.time(net_of(test), test)?));
            }
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    /// Every timed method runs through the registry on the MinAtar CNN (a name the registry does not read, or a
    /// layer the network lacks, would panic here rather than in `xrl bench explain`).
    /// The benchmark's ROAD is the one the agreement test checks against Quantus: the same curve as the fixture's.
    #[test]
    fn the_timed_road_is_the_fixtures() {
        let road = super::RoadSetup::new(&xrl_nn::device::for_tests()).unwrap();
        let fx: serde_json::Value = serde_json::from_str(super::ROAD_FIXTURE).unwrap();
        let curve = road.curve();
        assert_eq!(curve.len(), 50);
        for (k, ours) in curve.iter().enumerate() {
            let theirs = fx["road"]["values"][(2 * k + 1).to_string()].as_f64().unwrap();
            assert!((ours - theirs).abs() < 1e-4, "{}%: {ours} vs Quantus {theirs}", 2 * k + 1);
        }
        assert!(road.time(1).median() > 0.0);
    }

    #[test]
    fn every_timed_method_runs() {
        let setup = super::Setup::new("minatar-cnn", 2, &xrl_nn::device::for_tests());
        for method in super::METHODS {
            let t = setup.time(method, 1);
            assert!(!t.ms_per_frame.is_empty() && t.median() > 0.0, "{method}");
        }
    }
}
