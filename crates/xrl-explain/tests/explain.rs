//! Attribution methods against independent references: analytic toy networks (Captum's), finite differences,
//! completeness, and invariances.

mod common;
use common::{Call, chosen};

use xrl::burn::tensor::activation::relu;
use xrl::burn::tensor::{Distribution, Tensor};
use xrl::nn::{self, HeadKind, Heads, Net, NetSpec, Pass, Torso};
use xrl_explain::{Budget, Gradient, GradientKind, IntegratedGradients, Model, Rule, SmoothGrad, SmoothKind, Target};

fn heads_q(q: Tensor<2>) -> Heads {
    Heads { q: Some(q), advantage: None, value: None, logits: None, probe: None, state: None }
}

/// Captum's two-ReLU toy: f(x₁, x₂) = ReLU(ReLU(x₁) − 1 − ReLU(x₂)).
fn toy(x: Tensor<2>, _: &Pass) -> Heads {
    let [b, _] = x.dims();
    let x1 = x.clone().slice([0..b, 0..1]);
    let x2 = x.slice([0..b, 1..2]);
    heads_q(relu(relu(x1).sub_scalar(1.0) - relu(x2)))
}

#[test]
fn integrated_gradients_on_captums_toy_network() {
    // At (3, 1) from a zero baseline the attributions are [1.5, −0.5] (f(x) − f(0) = 1).
    for rule in [Rule::GaussLegendre, Rule::RiemannMiddle, Rule::RiemannTrapezoid] {
        let ig = IntegratedGradients { steps: 2000, rule, ..IntegratedGradients::new() };
        let a = ig.call(&toy, &[3.0, 1.0], &[2], &Target::Q(0));
        assert!((a.maps[0] - 1.5).abs() < 2e-3 && (a.maps[1] + 0.5).abs() < 2e-3, "{rule:?}: {:?}", a.maps);
        assert!(a.delta.unwrap()[0].abs() < 2e-3);
    }
}

fn random_net(seed: u64, head: HeadKind) -> Net {
    let d = xrl_nn::device::for_tests().autodiff();
    let _rng = common::seeded(&d, seed);
    Net::new(&NetSpec::new(vec![6], 3, Torso::Mlp { hidden: vec![16, 16] }, head), &d).unwrap()
}

fn inputs(n: usize, seed: u64) -> Vec<f32> {
    let d = xrl_nn::device::for_tests();
    let _rng = common::seeded(&d, seed);
    nn::to_vec(Tensor::<2>::random([n, 6], Distribution::Uniform(-1.0, 1.0), &d))
}

/// f64-free finite differences in f32 with a step that keeps ReLU kinks away in practice.
fn target_at(net: &Net, x: &[f32], a: usize) -> f32 {
    nn::to_vec(net.scores(nn::batch(x, 6, &xrl_nn::device::for_tests())))[a]
}

#[test]
fn gradient_matches_finite_differences_and_times_input_multiplies() {
    let net = random_net(1, HeadKind::Q);
    let x = inputs(4, 2);
    let g = Gradient::new(GradientKind::Vanilla).call(&net, &x, &[6], &Target::Q(1));
    let gx = Gradient::new(GradientKind::TimesInput).call(&net, &x, &[6], &Target::Q(1));
    for s in 0..4 {
        let xs = &x[s * 6..(s + 1) * 6];
        for j in 0..6 {
            let eps = 1e-3;
            let (mut up, mut down) = (xs.to_vec(), xs.to_vec());
            up[j] += eps;
            down[j] -= eps;
            let fd = (target_at(&net, &up, 1) - target_at(&net, &down, 1)) / (2.0 * eps);
            let got = g.map(s)[j];
            assert!((fd - got).abs() < 2e-3 * (1.0 + got.abs()), "sample {s} input {j}: fd {fd} vs {got}");
            assert!((gx.map(s)[j] - got * xs[j]).abs() < 1e-6);
        }
    }
}

#[test]
fn completeness_improves_with_steps_for_every_rule() {
    let net = random_net(3, HeadKind::Dueling);
    let x = inputs(3, 4);
    for rule in
        [Rule::RiemannLeft, Rule::RiemannRight, Rule::RiemannMiddle, Rule::RiemannTrapezoid, Rule::GaussLegendre]
    {
        let delta = |steps| {
            let ig = IntegratedGradients { steps, rule, ..IntegratedGradients::new() };
            let d = ig.call(&net, &x, &[6], &Target::Q(2)).delta.unwrap();
            d.iter().map(|v| v.abs()).sum::<f32>()
        };
        let (coarse, fine) = (delta(4), delta(256));
        assert!(fine < coarse || fine < 1e-5, "{rule:?}: |δ| {coarse} with 4 steps, {fine} with 256");
        assert!(fine < 5e-3, "{rule:?}: |δ| {fine} with 256 steps");
    }
}

#[test]
fn chunking_does_not_change_the_result() {
    let net = random_net(5, HeadKind::ActorCritic);
    let x = inputs(5, 6);
    let run = |rows| {
        let ig = IntegratedGradients { steps: 20, budget: Budget::rows(rows), ..IntegratedGradients::new() };
        ig.call(&net, &x, &[6], &Target::LogProb(0))
    };
    let (small, large) = (run(7), run(10_000));
    for (a, b) in small.maps.iter().zip(&large.maps) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
}

#[test]
fn smoothgrad_without_noise_is_its_base_method() {
    let net = random_net(7, HeadKind::Q);
    let x = inputs(2, 8);
    let base = Gradient::new(GradientKind::Vanilla);
    let plain = base.call_each(&net, &x, &[6], &chosen(vec![0, 2]));
    let sg = SmoothGrad { samples: 5, sigma: 0.0, seed: 1, ..SmoothGrad::new(base) };
    assert_eq!(sg.call_each(&net, &x, &[6], &chosen(vec![0, 2])).maps, plain.maps);
    // VarGrad of noiseless copies is zero; with noise it is not.
    let var = SmoothGrad { kind: SmoothKind::Variance, ..sg.clone() };
    assert!(var.call(&net, &x, &[6], &Target::Q(0)).maps.iter().all(|v| v.abs() < 1e-10));
    let noisy = SmoothGrad { sigma: 0.3, ..sg };
    assert_ne!(noisy.call(&net, &x, &[6], &Target::Q(0)).maps, plain.maps);
}

#[test]
fn an_input_the_model_never_reads_gets_exactly_zero() {
    // The model reads only input 0 of two.
    let model = |x: Tensor<2>, _: &Pass| {
        let [b, _] = x.dims();
        heads_q(relu(x.slice([0..b, 0..1])).mul_scalar(2.0))
    };
    for method in [GradientKind::Vanilla, GradientKind::TimesInput, GradientKind::Guided, GradientKind::Deconv] {
        let a = Gradient::new(method).call(&model, &[0.7, 0.4, -0.2, 0.9], &[2], &Target::Q(0));
        assert_eq!((a.map(0)[1], a.map(1)[1]), (0.0, 0.0), "{method:?}");
    }
    let ig = IntegratedGradients::new().call(&model, &[0.7, 0.4], &[2], &Target::Q(0));
    assert_eq!(ig.maps[1], 0.0);
    assert!((ig.maps[0] - 1.4).abs() < 1e-5, "{:?}", ig.maps);
}

#[test]
fn dueling_value_attribution_is_the_same_whatever_the_action() {
    // V does not depend on the action: the Value target has one map; Q targets differ by action.
    let net = random_net(9, HeadKind::Dueling);
    let x = inputs(1, 10);
    let v = Gradient::new(GradientKind::Vanilla).call(&net, &x, &[6], &Target::Value);
    let q0 = Gradient::new(GradientKind::Vanilla).call(&net, &x, &[6], &Target::Q(0));
    let q1 = Gradient::new(GradientKind::Vanilla).call(&net, &x, &[6], &Target::Q(1));
    let a0 = Gradient::new(GradientKind::Vanilla).call(&net, &x, &[6], &Target::Advantage(0));
    let a1 = Gradient::new(GradientKind::Vanilla).call(&net, &x, &[6], &Target::Advantage(1));
    // Q(a) = V + A(a) − mean A, so ∂Q0 − ∂Q1 = ∂A0 − ∂A1 exactly, and V's map is shared by both.
    for j in 0..6 {
        let lhs = q0.maps[j] - q1.maps[j];
        let rhs = a0.maps[j] - a1.maps[j];
        assert!((lhs - rhs).abs() < 1e-5);
    }
    assert!(v.maps.iter().any(|g| *g != 0.0));
}

/// A one-conv network on 1×4×4 inputs, by hand: conv 2×2/2 with unit weights (block sums), ReLU → A (2×2),
/// q = Σ v·A with v = [[1, 2], [3, −1]]. Layer `conv1` is probed like a Net's.
fn one_conv(x: Tensor<2>, pass: &Pass) -> Heads {
    use xrl::burn::tensor::module::conv2d;
    use xrl::burn::tensor::ops::ConvOptions;
    let d = x.device();
    let [b, _] = x.dims();
    let w = Tensor::<1>::from_floats([1.0, 1.0, 1.0, 1.0], &d).reshape([1, 1, 2, 2]);
    let pre = conv2d(x.reshape([b, 1, 4, 4]), w, None, ConvOptions::new([2, 2], [0, 0], [1, 1], 1));
    let a = xrl_nn::relu::relu_with(pre, pass.relu);
    let (a, probe) = if pass.probe.as_deref() == Some("conv1") {
        let leaf = a.is_autodiff().then(|| a.zeros_like().require_grad());
        let out = match &leaf {
            Some(l) => a.clone() + l.clone(),
            None => a.clone(),
        };
        (out, Some(xrl::nn::Probe { name: "conv1".into(), activation: a, leaf }))
    } else {
        (a, None)
    };
    let v = Tensor::<1>::from_floats([1.0, 2.0, 3.0, -1.0], &d).reshape([1, 1, 2, 2]);
    let q = (a * v).reshape([b, 4]).sum_dim(1);
    Heads { probe, ..heads_q(q) }
}

const X: [f32; 16] = [1.0, 2.0, 0.0, 1.0, 0.0, 1.0, 3.0, -5.0, 2.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 2.0];

#[test]
fn grad_cam_guided_backprop_and_occlusion_on_a_one_conv_network_by_hand() {
    use xrl_explain::{Fill, GradCam, GuidedGradCam, Occlusion};
    // Block sums: TL 4, TR −1, BL 4, BR 4 → A = [4, 0, 4, 4]; q = 4 + 0 + 12 − 4 = 12.
    // Grad-CAM: α = mean(v) = 1.25 → ReLU(1.25·A) = [5, 0, 5, 5].
    let cam = GradCam::new("conv1").call(&one_conv, &X, &[16], &Target::Q(0));
    assert_eq!((cam.shape[0], cam.shape[1]), (2, 2));
    assert_eq!(cam.maps, vec![5.0, 0.0, 5.0, 5.0]);
    // Guided backprop: relu(v)·[A > 0] = [1, 0, 3, 0], spread over each block by the unit conv.
    let block = |tl: f32, tr: f32, bl: f32, br: f32| -> Vec<f32> {
        (0..16)
            .map(|i| match ((i / 4) / 2, (i % 4) / 2) {
                (0, 0) => tl,
                (0, 1) => tr,
                (1, 0) => bl,
                _ => br,
            })
            .collect()
    };
    let guided = Gradient::new(GradientKind::Guided).call(&one_conv, &X, &[16], &Target::Q(0));
    assert_eq!(guided.maps, block(1.0, 0.0, 3.0, 0.0));
    // Plain gradient: v·[A > 0] = [1, 0, 3, −1].
    assert_eq!(
        Gradient::new(GradientKind::Vanilla).call(&one_conv, &X, &[16], &Target::Q(0)).maps,
        block(1.0, 0.0, 3.0, -1.0)
    );
    // Guided Grad-CAM: guided × nearest-upsampled CAM = [5, 0, 15, 0].
    let ggc = GuidedGradCam { cam: GradCam::new("conv1") }.call(&one_conv, &X, &[1, 4, 4], &Target::Q(0));
    assert_eq!(ggc.maps, block(5.0, 0.0, 15.0, 0.0));
    // Occlusion, 2×2 windows at stride 2, zeros: the drop of q per block is [4, 0, 12, −4].
    let occ = Occlusion { window: [1, 2, 2], stride: [1, 2, 2], fill: Fill::Constant(0.0), budget: Budget::default() };
    assert_eq!(occ.call(&one_conv, &X, &[1, 4, 4], &Target::Q(0)).maps, block(4.0, 0.0, 12.0, -4.0));
    // Overlapping windows average the drops of the windows covering each element.
    let overlapping = Occlusion { stride: [1, 1, 1], ..occ };
    let m = overlapping.call(&one_conv, &X, &[1, 4, 4], &Target::Q(0)).maps;
    assert_eq!(m[0], 4.0, "the corner is covered by one window only");
    // Blur fill: a window over everything credits each element with q(x) − q(blur(x)); σ 0 changes nothing.
    let whole = Occlusion { window: [1, 4, 4], stride: [1, 4, 4], fill: Fill::Blur(1.0), budget: Budget::default() };
    let blurred = xrl_explain::blur(&X, 1, 4, 4, 1.0);
    let q_of = |x: &[f32]| {
        let h = one_conv(xrl::nn::batch(x, 16, &xrl_nn::device::for_tests()), &Pass::default());
        xrl::nn::to_vec(h.q.unwrap())[0]
    };
    let drop = q_of(&X) - q_of(&blurred);
    assert!(drop.abs() > 0.1, "the blur must change q for this test to mean anything");
    for v in whole.call(&one_conv, &X, &[1, 4, 4], &Target::Q(0)).maps {
        assert!((v - drop).abs() < 1e-5, "{v} vs {drop}");
    }
    let none = Occlusion { fill: Fill::Blur(0.0), ..whole };
    assert!(none.call(&one_conv, &X, &[1, 4, 4], &Target::Q(0)).maps.iter().all(|&v| v == 0.0));
}

#[test]
fn nearest_upsampling_follows_pytorch() {
    // PyTorch: F.interpolate(t, size=5, mode="nearest") on [0, 1] gives [0, 0, 0, 1, 1] (source ⌊i·2/5⌋).
    let up = xrl_explain::upsample_nearest(&[0.0, 1.0], 1, 2, 1, 5);
    assert_eq!(up, vec![0.0, 0.0, 0.0, 1.0, 1.0]);
}

#[test]
fn perturbation_saliency_by_hand_and_batching_invariance() {
    use xrl_explain::{Perturbation, Score, blur};
    // The model reads one pixel: logits = 3·x[0, 4, 4].
    let model = |x: Tensor<2>, _: &Pass| {
        let [b, _] = x.dims();
        Heads {
            logits: Some(x.slice([0..b, 44..45]).mul_scalar(3.0)),
            ..heads_q(Tensor::zeros([b, 1], &xrl_nn::device::for_tests()))
        }
    };
    let d = xrl_nn::device::for_tests();
    let _rng = common::seeded(&d, 11);
    let x = nn::to_vec(Tensor::<2>::random([1, 100], Distribution::Uniform(0.0, 1.0), &d));
    let p = Perturbation { stride: 3, ..Perturbation::new(Score::Actor) };
    // The raw grid scores (`maps`); the registry's call returns the interpolated map.
    let out = p.maps(&model, &x, [1, 10, 10], &[Target::Action(0)]);
    assert_eq!((out.gh, out.gw), (4, 4), "grid 0, 3, 6, 9 covers the frame exactly");
    let b = blur(&x, 1, 10, 10, 3.0)[44];
    for (k, s) in out.grid.iter().enumerate() {
        let (gy, gx) = ((k / 4 * 3) as f32, (k % 4 * 3) as f32);
        let m = (-((gy - 4.0).powi(2) + (gx - 4.0).powi(2)) / 50.0).exp();
        let want = 0.5 * (3.0 * m * (b - x[44])).powi(2);
        assert!((s - want).abs() < 1e-6 * (1.0 + want), "grid {k}: {s} vs {want}");
    }
    // The nearest grid point to the pixel scores highest; one forward at a time gives the same map.
    let best = out.grid.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
    assert_eq!(best, 5, "grid point (3, 3)");
    let one_by_one =
        Perturbation { budget: Budget::rows(1), ..p.clone() }.call(&model, &x, &[1, 10, 10], &Target::Action(0));
    assert_eq!(one_by_one.maps, out.maps);
    assert_eq!(p.call(&model, &x, &[1, 10, 10], &Target::Action(0)).shape, vec![10, 10]);
    // Three frames whose copies share chunks (7 rows per chunk, 17 rows per frame): each frame's map as alone.
    let three = nn::to_vec(Tensor::<2>::random([3, 100], Distribution::Uniform(0.0, 1.0), &d));
    let t = Target::Action(0);
    let shared = Perturbation { budget: Budget::rows(7), ..p.clone() }.call(&model, &three, &[1, 10, 10], &t);
    for i in 0..3 {
        let alone = p.call(&model, &three[i * 100..(i + 1) * 100], &[1, 10, 10], &t);
        assert_eq!(&shared.maps[i * 100..(i + 1) * 100], &alone.maps[..], "frame {i}");
    }
}

/// The Nature CNN with 5 actions on raw pixels (input scale 1/255), as the shortcut tests run it.
fn nature_on_pixels(head: HeadKind) -> NetSpec {
    NetSpec { input_scale: 1.0 / 255.0, ..NetSpec::new(vec![4, 84, 84], 5, Torso::NatureCnn, head) }
}

/// A plain convolutional `Net` takes the shortcut (its convolutions recomputed only where each mask reaches); the
/// same network behind a closure sends every perturbed frame through the whole network. Same scores: the Nature
/// CNN (Q values, raw pixels scaled by 1/255), its dueling two-stream variant scored on V, and an actor-critic
/// one scored on a log-probability, at strides that put grid points on the frames' edges.
#[test]
fn perturbation_shortcut_through_convolutions_matches_whole_passes() {
    use xrl_explain::{Perturbation, Score};
    let d = xrl_nn::device::for_tests();
    let _rng = common::seeded(&d, 21);
    let nature = nature_on_pixels(HeadKind::Q);
    let dueling = NetSpec { head: HeadKind::Dueling, ..nature.clone() }.with_streams();
    let actor_critic = NetSpec { head: HeadKind::ActorCritic, ..nature.clone() };
    let log_prob = Target::LogProb(2);
    let any = Target::Action(0);
    for (spec, score, target, stride) in [
        (nature, Score::Actor, any.clone(), 9),
        (dueling, Score::Critic, any, 13),
        (actor_critic, Score::Target, log_prob, 11),
    ] {
        let net = Net::new(&spec, &d).unwrap();
        let len: usize = spec.obs_shape.iter().product();
        let x = nn::to_vec(Tensor::<2>::random([2, len], Distribution::Uniform(0.0, 255.0), &d));
        let shape = [spec.obs_shape[0], spec.obs_shape[1], spec.obs_shape[2]];
        let p = Perturbation { stride, ..Perturbation::new(score) };
        let targets = [target.clone(), target];
        let fast = p.maps(&net, &x, shape, &targets);
        let whole = p.maps(&common::Whole(&net), &x, shape, &targets);
        let top = whole.grid.iter().cloned().fold(0.0f32, f32::max);
        assert!(top > 0.0, "{:?}: the perturbations change the output", spec.head);
        // A score is ½‖Δ‖² of an output change Δ; the changes agree to 0.1% of the largest (rounding: the two
        // paths sum in different orders, and a log-probability's change is a difference of values near 1).
        for (k, (a, b)) in fast.grid.iter().zip(&whole.grid).enumerate() {
            assert!((a.sqrt() - b.sqrt()).abs() <= 1e-3 * top.sqrt(), "{:?} grid {k}: {a} vs {b}", spec.head);
        }
    }
}

/// Integrated gradients and SmoothGrad's mean through a convolutional `Net` start at the first convolution's
/// output and take its backward once per sample; the same network behind a closure takes every path point and
/// noisy copy through the whole network. Same maps (to rounding), for the Nature CNN on raw pixels (input scale
/// 1/255) and the MinAtar CNN, a zero and a given baseline, plain and guided SmoothGrad.
#[test]
fn first_convolution_shortcut_matches_whole_passes() {
    let d = xrl_nn::device::for_tests();
    let _rng = common::seeded(&d, 22);
    let nature = nature_on_pixels(HeadKind::Q);
    let minatar = NetSpec::new(vec![4, 10, 10], 3, Torso::MinatarCnn, HeadKind::ActorCritic);
    for (spec, scale, target) in [(nature, 255.0, Target::Q(3)), (minatar, 1.0, Target::LogProb(1))] {
        let net = Net::new(&spec, &d).unwrap();
        let whole = common::Whole(&net);
        let len: usize = spec.obs_shape.iter().product();
        let x = nn::to_vec(Tensor::<2>::random([2, len], Distribution::Uniform(0.0, scale), &d));
        let b = nn::to_vec(Tensor::<2>::random([2, len], Distribution::Uniform(0.0, scale), &d));
        let close = |a: &[f32], w: &[f32], what: &str| {
            let top = w.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(top > 0.0, "{what}: a map of zeros proves nothing");
            for (j, (a, w)) in a.iter().zip(w).enumerate() {
                assert!((a - w).abs() <= 1e-4 * top, "{what} {:?}, value {j}: {a} vs {w} (top {top})", spec.torso);
            }
        };
        for (baseline, rule) in [(None, Rule::GaussLegendre), (Some(b.clone()), Rule::RiemannTrapezoid)] {
            let ig = IntegratedGradients { steps: 12, rule, ..IntegratedGradients::new() };
            let (fast, slow) = match &baseline {
                None => (ig.call(&net, &x, &[len], &target), ig.call(&whole, &x, &[len], &target)),
                Some(b) => (ig.call_from(&net, &x, &[len], &target, b), ig.call_from(&whole, &x, &[len], &target, b)),
            };
            close(&fast.maps, &slow.maps, &format!("IG {rule:?}"));
            close(&fast.delta.unwrap(), &slow.delta.unwrap(), "IG delta");
        }
        for kind in [GradientKind::Vanilla, GradientKind::Guided] {
            let sg = SmoothGrad { samples: 4, seed: 5, ..SmoothGrad::new(Gradient::new(kind)) };
            close(&sg.call(&net, &x, &[len], &target).maps, &sg.call(&whole, &x, &[len], &target).maps, "SmoothGrad");
        }
    }
}

/// Occlusion through a convolutional `Net` recomputes only what each window reaches; behind a closure every
/// occluded copy goes through the whole network. Same maps, for windows over all channels and over some, constant,
/// mean and blurred fills, windows clipped at the far edges.
#[test]
fn occlusion_shortcut_through_convolutions_matches_whole_passes() {
    use xrl_explain::{Fill, Occlusion};
    let d = xrl_nn::device::for_tests();
    let _rng = common::seeded(&d, 23);
    let spec = nature_on_pixels(HeadKind::Dueling);
    let net = Net::new(&spec, &d).unwrap();
    let whole = common::Whole(&net);
    let x = nn::to_vec(Tensor::<2>::random([2, 4 * 84 * 84], Distribution::Uniform(0.0, 255.0), &d));
    for (window, stride, fill) in [
        ([4, 8, 8], [4, 4, 4], Fill::Constant(0.0)),
        ([2, 9, 9], [2, 10, 10], Fill::Mean),
        ([4, 20, 15], [4, 16, 13], Fill::Blur(2.0)),
    ] {
        let occ = Occlusion { window, stride, fill, budget: Budget::default() };
        let (fast, slow) =
            (occ.call(&net, &x, &[4, 84, 84], &Target::Value), occ.call(&whole, &x, &[4, 84, 84], &Target::Value));
        let top = slow.maps.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(top > 0.0, "{window:?}: occluding changes V");
        for (j, (a, b)) in fast.maps.iter().zip(&slow.maps).enumerate() {
            assert!((a - b).abs() <= 1e-3 * top, "{window:?} value {j}: {a} vs {b} (largest {top})");
        }
    }
}

#[test]
fn recurrent_steps_are_explained_at_their_recorded_state() {
    use xrl::nn::{Core, CoreKind, RecurrentState};
    use xrl_explain::AtState;
    let d = xrl_nn::device::for_tests().autodiff();
    let _rng = common::seeded(&d, 12);
    let spec = NetSpec::new(vec![6], 3, Torso::Mlp { hidden: vec![8] }, HeadKind::ActorCritic)
        .with_core(Core { kind: CoreKind::Lstm, hidden: 5 });
    let net = Net::new(&spec, &d).unwrap().frozen();
    let x = inputs(2, 13);
    let plain = xrl_nn::device::for_tests();
    let hidden = Tensor::<2>::random([2, 5], Distribution::Uniform(-1.0, 1.0), &plain);
    let cell = Tensor::<2>::random([2, 5], Distribution::Uniform(-1.0, 1.0), &plain);
    let state = RecurrentState { hidden: hidden.clone(), cell: Some(cell.clone()) };
    let model = AtState { net: &net, state: state.clone() };
    let g = Gradient::new(GradientKind::Vanilla).call(&model, &x, &[6], &Target::Value);
    // By hand: the gradient of V at each sample's own state.
    for s in 0..2 {
        let xs = Tensor::<1>::from_floats(&x[s * 6..(s + 1) * 6], &d).reshape([1, 6]).require_grad();
        let st = RecurrentState {
            hidden: Tensor::from_data(hidden.clone().narrow(0, s, 1).to_data(), &d),
            cell: Some(Tensor::from_data(cell.clone().narrow(0, s, 1).to_data(), &d)),
        };
        let v = net.forward(xs.clone(), &Pass { state: Some(st), ..Pass::default() }).value.unwrap().sum();
        let want = nn::to_vec(xs.grad(&v.backward()).unwrap());
        for (a, b) in g.map(s).iter().zip(&want) {
            assert!((a - b).abs() < 1e-6, "sample {s}: {a} vs {b}");
        }
    }
    // The state matters, and IG holds it fixed along the path (completeness at that state).
    let zero_state = Gradient::new(GradientKind::Vanilla).call(&net, &x, &[6], &Target::Value);
    assert_ne!(zero_state.maps, g.maps);
    let ig = IntegratedGradients { steps: 64, ..IntegratedGradients::new() }.call(&model, &x, &[6], &Target::Value);
    assert!(ig.delta.unwrap().iter().all(|d| d.abs() < 1e-3));
    // SmoothGrad's noisy copies keep their sample's state.
    let sg = SmoothGrad { samples: 3, sigma: 0.0, ..SmoothGrad::new(Gradient::new(GradientKind::Vanilla)) };
    let smooth = sg.call(&model, &x, &[6], &Target::Value);
    for (a, b) in smooth.maps.iter().zip(&g.maps) {
        assert!((a - b).abs() < 1e-6);
    }
}

#[test]
fn unrolling_attributes_through_the_last_k_frames() {
    use xrl::nn::{Core, CoreKind, RecurrentState};
    use xrl_explain::Unrolled;
    let d = xrl_nn::device::for_tests().autodiff();
    let _rng = common::seeded(&d, 14);
    let spec = NetSpec::new(vec![6], 3, Torso::Mlp { hidden: vec![8] }, HeadKind::ActorCritic)
        .with_core(Core { kind: CoreKind::Gru, hidden: 5 });
    let net = Net::new(&spec, &d).unwrap().frozen();
    let frames = inputs(3, 15); // three consecutive frames of one sequence, oldest first
    let model = Unrolled { net: &net, k: 3, state: None };
    let g = Gradient::new(GradientKind::Vanilla).call(&model, &frames, &[18], &Target::Value);
    // The last step's value equals the step-by-step run; every frame gets credit, the oldest the least directly.
    let mut state: Option<RecurrentState> = None;
    let mut v = 0.0;
    for t in 0..3 {
        let h = net.forward(
            nn::batch(&frames[t * 6..(t + 1) * 6], 6, &xrl_nn::device::for_tests()),
            &Pass { state, ..Pass::default() },
        );
        v = nn::to_vec(h.value.unwrap())[0];
        state = h.state;
    }
    let heads = model.heads(nn::batch(&frames, 18, &xrl_nn::device::for_tests()), &Pass::default());
    assert!((nn::to_vec(heads.value.unwrap())[0] - v).abs() < 1e-5);
    assert_eq!(g.maps.len(), 18);
    for t in 0..3 {
        assert!(g.maps[t * 6..(t + 1) * 6].iter().any(|x| *x != 0.0), "frame {t} gets attribution");
    }
    let ig =
        IntegratedGradients { steps: 64, ..IntegratedGradients::new() }.call(&model, &frames, &[18], &Target::Value);
    assert!(ig.delta.unwrap()[0].abs() < 1e-3);
}

/// Every method of the registry, called once with a different target for each input (targets of several kinds
/// and actions in one batch), gives each input the map a call with that target alone gives it.
#[test]
fn per_sample_targets_in_one_call_equal_one_call_per_target() {
    use xrl_explain::registry::{MethodOptions, parse_list};
    use xrl_explain::{Inputs, Method};
    let d = xrl_nn::device::for_tests().autodiff();
    let _rng = common::seeded(&d, 17);
    let spec = NetSpec::new(vec![4, 10, 10], 4, Torso::MinatarCnn, HeadKind::Dueling);
    let net = Net::new(&spec, &d).unwrap().frozen();
    let x = nn::to_vec(Tensor::<2>::random([5, 400], Distribution::Uniform(0.0, 1.0), &d.clone().without_autodiff()));
    let targets = [Target::Q(0), Target::Value, Target::Advantage(2), Target::Action(1), Target::Action(3)];
    let names = "grad,grad-x-input,guided,gradcam:conv1,gradcam:conv1.relu,guided-gradcam:conv1,ig,smoothgrad:guided,\
                 vargrad:grad,occlusion,perturbation";
    let options = MethodOptions {
        ig_steps: 8,
        noise_samples: 3,
        perturbation_score: Some(xrl_explain::registry::ScoreName::Target),
        ..MethodOptions::default()
    };
    for name in parse_list(names).unwrap() {
        let m: Box<dyn Method> = options.build(&name, Some([10, 10]), HeadKind::Dueling);
        let all = m.attribute(&net, &Inputs::new(&x, &[4, 10, 10]).unwrap(), &targets, None).unwrap();
        assert_eq!(all.count(), 5);
        let top = all.maps.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        assert!(top > 0.0, "{}: a map of zeros proves nothing", m.name());
        // One call per target over the same batch: SmoothGrad's noise follows a row's place in the batch.
        let inputs = Inputs::new(&x, &[4, 10, 10]).unwrap();
        for (i, t) in targets.iter().enumerate() {
            let alone = m.attribute(&net, &inputs, &vec![t.clone(); 5], None).unwrap();
            for (j, (a, b)) in all.map(i).iter().zip(alone.map(i)).enumerate() {
                assert!((a - b).abs() <= 1e-5 * (1.0 + top), "{} input {i} ({t}) value {j}: {a} vs {b}", m.name());
            }
            if let (Some(da), Some(db)) = (&all.delta, &alone.delta) {
                assert!((da[i] - db[i]).abs() < 1e-5, "{}: delta {i}", m.name());
            }
        }
    }
}

/// Targets are checked against the network's heads and actions before any pass, with errors that say what the
/// network has; so are the inputs' shape and values, and Grad-CAM's layer.
#[test]
fn bad_calls_are_errors_that_say_what_fits() {
    use xrl_explain::{GradCam, Inputs, Method};
    let d = xrl_nn::device::for_tests().autodiff();
    let q_net = Net::new(&NetSpec::new(vec![4, 10, 10], 3, Torso::MinatarCnn, HeadKind::Q), &d).unwrap();
    let ac_net = Net::new(&NetSpec::new(vec![4, 10, 10], 3, Torso::MinatarCnn, HeadKind::ActorCritic), &d).unwrap();
    let x = vec![0.5f32; 400];
    let inputs = Inputs::new(&x, &[4, 10, 10]).unwrap();
    let grad = Gradient::new(GradientKind::Vanilla);
    let err = |net: &Net, m: &dyn Method, t: Target| m.attribute(net, &inputs, &[t], None).unwrap_err().to_string();
    assert!(err(&q_net, &grad, Target::Value).contains("Q values only"));
    assert!(err(&q_net, &grad, Target::Logit(0)).contains("does not fit"));
    assert!(err(&ac_net, &grad, Target::MaxQ).contains("policy logits and V"));
    assert!(err(&ac_net, &grad, Target::Logit(3)).contains("out of range; the network has 3 actions"));
    assert!(err(&ac_net, &grad, Target::Contrast(1, 1)).contains("with itself"));
    assert!(err(&q_net, &GradCam::new("conv9"), Target::Q(0)).contains("its layers are conv1, conv1.relu, fc1"));
    let e = grad.attribute(&q_net, &inputs, &[Target::Q(0), Target::Q(1)], None).unwrap_err().to_string();
    assert!(e.contains("2 targets for 1 inputs"), "{e}");
    let nan = vec![f32::NAN; 400];
    assert!(Inputs::new(&nan, &[4, 10, 10]).unwrap_err().to_string().contains("NaN"));
    assert!(Inputs::new(&x[..399], &[4, 10, 10]).unwrap_err().to_string().contains("whole samples"));
    let wrong = Inputs::new(&x[..100], &[100]).unwrap();
    let e = grad.attribute(&q_net, &wrong, &[Target::Q(0)], None).unwrap_err().to_string();
    assert!(e.contains("do not fit the network"), "{e}");
    let e = IntegratedGradients::new().attribute(&q_net, &inputs, &[Target::Q(0)], Some(&[1.0; 3])).unwrap_err();
    assert!(e.to_string().contains("the baseline has 3 values"), "{e}");
}
