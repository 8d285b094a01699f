//! Agreement with Captum 0.8 on the same weights and inputs (fixtures: `fixtures/make_captum_fixtures.py`): the
//! MinAtar Q-network of `fixtures/minatar_dqn.pt`, three observations, targets [0, 3, 5]; the Nature CNN and the
//! two-stream dueling Nature network with formula weights (`fixtures/make_captum_nature_fixture.py`).

mod common;
use common::{Call, chosen};

use serde_json::Value;
use std::path::PathBuf;
use xrl::import::{Arch, Format, import};
use xrl::nn::Net;
use xrl_explain::{
    Budget, Fill, GradCam, Gradient, GradientKind, GuidedGradCam, Inputs, IntegratedGradients, Occlusion, Rule,
    SmoothGrad, SmoothKind, Target,
};

fn fixture() -> (Value, Net) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let v = serde_json::from_str(&std::fs::read_to_string(dir.join("captum_minatar.json")).unwrap()).unwrap();
    let net = import(
        &dir.join("../../../xrl/tests/fixtures/minatar_dqn.pt"),
        Format::Pytorch,
        Arch::MinatarDqn,
        None,
        &[4, 10, 10],
        6,
        &xrl_nn::device::for_tests().autodiff(),
    )
    .unwrap();
    (v, net)
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

/// Within 1e-4 relative to the map's largest magnitude.
fn assert_close(name: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-4 * scale, "{name}[{i}]: xrl {g} vs Captum {w} (scale {scale})");
    }
}

fn setup() -> (Value, Net, Vec<f32>, Vec<Target>) {
    let (v, net) = fixture();
    let obs = floats(&v["obs"]);
    let targets: Vec<usize> = v["targets"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap() as usize).collect();
    (v, net, obs, chosen(targets))
}

#[test]
fn q_values_match() {
    let (v, net, obs, _) = setup();
    let q = xrl::nn::to_vec(net.scores(xrl::nn::batch(&obs, 400, &xrl_nn::device::for_tests())));
    assert_close("q", &q, &floats(&v["q"]));
}

#[test]
fn gradient_methods_match_captum() {
    let (v, net, obs, t) = setup();
    for (kind, key) in [
        (GradientKind::Vanilla, "saliency"),
        (GradientKind::TimesInput, "input_x_gradient"),
        (GradientKind::Guided, "guided_backprop"),
        (GradientKind::Deconv, "deconvolution"),
    ] {
        let a = Gradient::new(kind).call_each(&net, &obs, &[400], &t);
        assert_close(key, &a.maps, &floats(&v[key]));
    }
}

#[test]
fn grad_cam_and_guided_grad_cam_match_captum() {
    let (v, net, obs, t) = setup();
    let cam = GradCam::new("conv1.relu").call_each(&net, &obs, &[400], &t);
    assert_eq!((cam.shape[0], cam.shape[1]), (8, 8));
    assert_close("layer_grad_cam", &cam.maps, &floats(&v["layer_grad_cam"]));
    let g = GuidedGradCam { cam: GradCam::new("conv1.relu") }.call_each(&net, &obs, &[4, 10, 10], &t);
    assert_close("guided_grad_cam", &g.maps, &floats(&v["guided_grad_cam"]));
    // On the convolution's output before its ReLU, as Captum's LayerGradCam on the Conv2d module: without and with
    // the final ReLU, and guided. (The two layers' maps differ: the test would not pass reading the wrong one.)
    let pre = GradCam { relu: false, ..GradCam::new("conv1") }.call_each(&net, &obs, &[400], &t);
    assert_close("layer_grad_cam_conv_module", &pre.maps, &floats(&v["layer_grad_cam_conv_module"]));
    assert_ne!(pre.maps, GradCam { relu: false, ..GradCam::new("conv1.relu") }.call_each(&net, &obs, &[400], &t).maps);
    let pre = GradCam::new("conv1").call_each(&net, &obs, &[400], &t);
    assert_close("layer_grad_cam_conv_module_relu", &pre.maps, &floats(&v["layer_grad_cam_conv_module_relu"]));
    let g = GuidedGradCam { cam: GradCam::new("conv1") }.call_each(&net, &obs, &[4, 10, 10], &t);
    assert_close("guided_grad_cam_conv_module", &g.maps, &floats(&v["guided_grad_cam_conv_module"]));
}

#[test]
fn integrated_gradients_match_captum_for_every_method() {
    let (v, net, obs, t) = setup();
    for (rule, key) in [
        (Rule::RiemannLeft, "riemann_left"),
        (Rule::RiemannRight, "riemann_right"),
        (Rule::RiemannMiddle, "riemann_middle"),
        (Rule::CaptumTrapezoid, "riemann_trapezoid"),
        (Rule::GaussLegendre, "gausslegendre"),
    ] {
        let ig = IntegratedGradients { steps: 20, rule, budget: Budget::rows(25) };
        let a = ig.call_each(&net, &obs, &[400], &t);
        assert_close(&format!("ig_{key}"), &a.maps, &floats(&v[format!("ig_{key}")]));
        let want_delta = floats(&v[format!("ig_{key}_delta")]);
        for (d, w) in a.delta.unwrap().iter().zip(&want_delta) {
            assert!((d - w).abs() < 1e-3, "ig_{key} delta: {d} vs Captum {w}");
        }
    }
}

#[test]
fn occlusion_matches_captum() {
    let (v, net, obs, t) = setup();
    let occ = Occlusion { window: [1, 3, 3], stride: [1, 2, 2], fill: Fill::Constant(0.0), budget: Budget::default() };
    let a = occ.call_each(&net, &obs, &[4, 10, 10], &t);
    assert_close("occlusion", &a.maps, &floats(&v["occlusion"]));
}

#[test]
fn perturbation_blur_matches_scipy() {
    let (v, _, _, _) = setup();
    let x = floats(&v["blur_input"]);
    let got = xrl_explain::blur(&x, 2, 12, 9, 3.0);
    assert_close("blur_sigma3", &got, &floats(&v["blur_sigma3"]));
}

/// A PyTorch-named safetensors file whose tensors are filled by the formula of
/// `fixtures/make_captum_nature_fixture.py` (tensor k of the state dict, in order), imported as `arch`.
fn formula_net(arch: Arch, tensors: &[(&str, Vec<usize>)]) -> Net {
    let mut header = serde_json::Map::new();
    let mut data: Vec<u8> = vec![];
    for (k, (name, shape)) in tensors.iter().enumerate() {
        let n: usize = shape.iter().product();
        let fan_in: usize = if shape.len() > 1 { shape[1..].iter().product() } else { 256 };
        let start = data.len();
        for i in 0..n as i64 {
            let v = (((i * 7919 + k as i64 * 104_729) % 2001 - 1000) as f64 / 1000.0 / (fan_in as f64).sqrt()) as f32;
            data.extend_from_slice(&v.to_le_bytes());
        }
        header.insert(
            name.to_string(),
            serde_json::json!({ "dtype": "F32", "shape": shape, "data_offsets": [start, data.len()] }),
        );
    }
    let header = serde_json::to_vec(&header).unwrap();
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(&header);
    file.extend_from_slice(&data);
    let path = std::env::temp_dir().join(format!("xrl-{}-{}.safetensors", arch.name(), std::process::id()));
    std::fs::write(&path, file).unwrap();
    let net = import(&path, Format::Safetensors, arch, None, &[4, 84, 84], 6, &xrl_nn::device::for_tests().autodiff())
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    net.frozen()
}

/// The Nature CNN in CleanRL's layout (inputs ÷ 255).
fn nature_net() -> Net {
    formula_net(
        Arch::NatureDqn,
        &[
            ("network.0.weight", vec![32, 4, 8, 8]),
            ("network.0.bias", vec![32]),
            ("network.2.weight", vec![64, 32, 4, 4]),
            ("network.2.bias", vec![64]),
            ("network.4.weight", vec![64, 64, 3, 3]),
            ("network.4.bias", vec![64]),
            ("network.7.weight", vec![512, 3136]),
            ("network.7.bias", vec![512]),
            ("network.9.weight", vec![6, 512]),
            ("network.9.bias", vec![6]),
        ],
    )
}

fn nature_frame() -> Vec<f32> {
    (0..4 * 84 * 84).map(|i| ((i * 37) % 256) as f32).collect()
}

fn json_fixture(name: &str) -> Value {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap()
}

#[test]
fn nature_cnn_matches_captum() {
    let v = json_fixture("captum_nature.json");
    let net = nature_net();
    let x = nature_frame();
    let t = Target::Q(4);
    let q = xrl::nn::to_vec(net.scores(xrl::nn::batch(&x, 28224, &xrl_nn::device::for_tests())));
    assert_close("q", &q, &floats(&v["q"]));
    let g = Gradient::new(GradientKind::Vanilla).call(&net, &x, &[28224], &t);
    assert_close("saliency", &g.maps, &floats(&v["saliency"]));
    let g = Gradient::new(GradientKind::Guided).call(&net, &x, &[28224], &t);
    assert_close("guided_backprop", &g.maps, &floats(&v["guided_backprop"]));
    let cam = GradCam::new("conv3.relu").call(&net, &x, &[28224], &t);
    assert_eq!((cam.shape[0], cam.shape[1]), (7, 7));
    assert_close("layer_grad_cam_conv3", &cam.maps, &floats(&v["layer_grad_cam_conv3"]));
    let cam = GradCam { relu: false, ..GradCam::new("conv3") }.call(&net, &x, &[28224], &t);
    assert_close("layer_grad_cam_conv3_module", &cam.maps, &floats(&v["layer_grad_cam_conv3_module"]));
    let ig = IntegratedGradients { steps: 16, rule: Rule::GaussLegendre, budget: Budget::rows(8) };
    assert_close("ig_gausslegendre", &ig.call(&net, &x, &[28224], &t).maps, &floats(&v["ig_gausslegendre"]));
}

/// Wang et al.'s two-stream dueling network (`features`, `advantage`, `value`), imported as `nature-dueling`.
#[test]
fn nature_dueling_matches_captum() {
    let v = json_fixture("captum_nature_dueling.json");
    let net = formula_net(
        Arch::NatureDueling,
        &[
            ("features.0.weight", vec![32, 4, 8, 8]),
            ("features.0.bias", vec![32]),
            ("features.2.weight", vec![64, 32, 4, 4]),
            ("features.2.bias", vec![64]),
            ("features.4.weight", vec![64, 64, 3, 3]),
            ("features.4.bias", vec![64]),
            ("advantage.0.weight", vec![512, 3136]),
            ("advantage.0.bias", vec![512]),
            ("advantage.2.weight", vec![6, 512]),
            ("advantage.2.bias", vec![6]),
            ("value.0.weight", vec![512, 3136]),
            ("value.0.bias", vec![512]),
            ("value.2.weight", vec![1, 512]),
            ("value.2.bias", vec![1]),
        ],
    );
    assert!(net.layer_names().contains(&"value_fc1".to_string()));
    let x = nature_frame();
    let h = net.forward(xrl::nn::batch(&x, 28224, &xrl_nn::device::for_tests()), &xrl::nn::Pass::default());
    assert_close("q", &xrl::nn::to_vec(h.q.unwrap()), &floats(&v["q"]));
    assert_close("value", &xrl::nn::to_vec(h.value.unwrap()), &floats(&v["value"]));
    assert_close("advantage", &xrl::nn::to_vec(h.advantage.unwrap()), &floats(&v["advantage"]));
    let g = Gradient::new(GradientKind::Vanilla).call(&net, &x, &[28224], &Target::Q(1));
    assert_close("q1_saliency", &g.maps, &floats(&v["q1_saliency"]));
    let g = Gradient::new(GradientKind::Vanilla).call(&net, &x, &[28224], &Target::Value);
    assert_close("value_saliency", &g.maps, &floats(&v["value_saliency"]));
    let g = Gradient::new(GradientKind::Guided).call(&net, &x, &[28224], &Target::Advantage(2));
    assert_close("advantage2_guided_backprop", &g.maps, &floats(&v["advantage2_guided_backprop"]));
    let cam = GradCam::new("conv3.relu").call(&net, &x, &[28224], &Target::Value);
    assert_close("value_layer_grad_cam_conv3", &cam.maps, &floats(&v["value_layer_grad_cam_conv3"]));
    let ig = IntegratedGradients { steps: 16, rule: Rule::RiemannMiddle, budget: Budget::rows(8) };
    let a = ig.call(&net, &x, &[28224], &Target::Value);
    assert_close("value_ig_riemann_middle", &a.maps, &floats(&v["value_ig_riemann_middle"]));
}

/// Captum's NoiseTunnel replayed with its own normal draws (recorded by the fixture script): SmoothGrad,
/// SmoothGrad² and VarGrad around Saliency, SmoothGrad around GuidedBackprop.
#[test]
fn noise_tunnel_matches_captum() {
    let (_, net, obs, t) = setup();
    let v = json_fixture("captum_noise_tunnel.json");
    let draws = floats(&v["standard_normal_draws"]);
    let samples = v["samples"].as_u64().unwrap() as usize;
    let sigma = v["stdev"].as_f64().unwrap() as f32;
    for (base, kind, key) in [
        (GradientKind::Vanilla, SmoothKind::Mean, "saliency_smoothgrad"),
        (GradientKind::Vanilla, SmoothKind::Squared, "saliency_smoothgrad_sq"),
        (GradientKind::Vanilla, SmoothKind::Variance, "saliency_vargrad"),
        (GradientKind::Guided, SmoothKind::Mean, "guided_backprop_smoothgrad"),
    ] {
        let sg = SmoothGrad { samples, sigma, absolute: true, kind, ..SmoothGrad::new(Gradient::new(base)) };
        let a = sg.attribute_with_noise(&net, &Inputs::new(&obs, &[400]).unwrap(), &t, &draws).unwrap();
        assert_close(key, &a.maps, &floats(&v[key]));
    }
}
