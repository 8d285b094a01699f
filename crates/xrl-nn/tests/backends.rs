//! The same networks on burn's Flex backend (xrl's fast products) and on another burn backend (burn's generic
//! operations only) agree: forward, input gradients with plain and guided ReLUs, and a probe's gradient, with the
//! same weights copied across. The other backends: NdArray with the `ndarray` feature
//! (`cargo test -p xrl-nn --features ndarray`), and the device `XRL_TEST_DEVICE` names when it is not Flex
//! (`XRL_TEST_DEVICE=cuda cargo test -p xrl-nn --features cuda`, scripts/gpu-check.sh).
#![cfg(any(feature = "ndarray", feature = "cuda"))]

use burn::module::Module;
use burn::tensor::Device;
use xrl_nn::relu::ReluMode;
use xrl_nn::{HeadKind, Net, NetSpec, Pass, Torso, batch, to_vec};

/// Within 1e-5, absolute plus relative to the reference value.
fn assert_close(what: &str, flex: &[f32], other: &[f32]) {
    assert_eq!(flex.len(), other.len(), "{what}: length");
    for (i, (a, b)) in flex.iter().zip(other).enumerate() {
        assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{what}[{i}]: Flex {a} vs {b}");
    }
    assert!(flex.iter().any(|v| *v != 0.0), "{what}: all zeros, nothing compared");
}

/// The devices to compare with Flex: NdArray (with its feature) and the tests' device when it is another.
fn other_devices() -> Vec<Device> {
    let mut out = vec![];
    #[cfg(feature = "ndarray")]
    out.push(xrl_nn::device::parse("ndarray").unwrap());
    let tests = xrl_nn::device::for_tests();
    if !xrl_nn::fast::on_flex(&tests) && !out.contains(&tests) {
        out.push(tests);
    }
    out
}

/// Observations in [0, 1) that differ between samples and positions.
fn observations(rows: usize, len: usize) -> Vec<f32> {
    (0..rows * len).map(|i| ((i * 7919) % 251) as f32 / 251.0).collect()
}

/// The input gradient of the summed Q values with `relu`, and the gradient at `probe` (when named).
fn gradients(net: &Net, obs: &[f32], len: usize, device: &Device, relu: ReluMode, probe: Option<&str>) -> Vec<f32> {
    let x = batch(obs, len, device).require_grad();
    let pass = Pass { relu, probe: probe.map(String::from), ..Pass::default() };
    let h = net.forward(x.clone(), &pass);
    let grads = h.q.expect("Q head").sum().backward();
    match probe {
        None => to_vec(x.grad(&grads).expect("an input gradient")),
        Some(_) => to_vec(h.probe.and_then(|p| p.leaf).and_then(|l| l.grad(&grads)).expect("a probe gradient")),
    }
}

#[test]
fn minatar_and_nature_cnns_agree_on_flex_and_other_backends() {
    let flex = Device::flex();
    let cases = [
        (NetSpec::new(vec![4, 10, 10], 6, Torso::MinatarCnn, HeadKind::Dueling), "conv1"),
        (NetSpec::new(vec![4, 84, 84], 6, Torso::NatureCnn, HeadKind::Q), "conv3"),
        // The seeds' single 80 × 80 frame (other geometries through the same kernels).
        (NetSpec::new(vec![1, 80, 80], 4, Torso::NatureCnn, HeadKind::Q), "conv2"),
    ];
    for other in other_devices() {
        for (spec, probe) in &cases {
            let name = format!("{:?} on {other:?}", spec.torso);
            flex.seed(11);
            let on_flex = Net::new(spec, &flex.clone().autodiff()).unwrap();
            // `fork` copies every parameter onto the other device as a new leaf that takes gradients.
            let on_other = on_flex.clone().fork(&other.clone().autodiff());
            assert!(xrl_nn::fast::on_flex(&on_flex.device()) && !xrl_nn::fast::on_flex(&on_other.device()));
            let len: usize = spec.obs_shape.iter().product();
            // Two rows: the few-row products of Nature's big fc1 weight on Flex.
            let obs = observations(2, len);
            let scores = |net: &Net, d: &Device| to_vec(net.scores(batch(&obs, len, d)));
            assert_close(&format!("{name}: Q"), &scores(&on_flex, &flex), &scores(&on_other, &other));
            let (f, o) = (flex.clone().autodiff(), other.clone().autodiff());
            for relu in [ReluMode::Normal, ReluMode::Guided] {
                assert_close(
                    &format!("{name}: {relu:?} dQ/dx"),
                    &gradients(&on_flex, &obs, len, &f, relu, None),
                    &gradients(&on_other, &obs, len, &o, relu, None),
                );
            }
            assert_close(
                &format!("{name}: dQ/d{probe}"),
                &gradients(&on_flex, &obs, len, &f, ReluMode::Normal, Some(probe)),
                &gradients(&on_other, &obs, len, &o, ReluMode::Normal, Some(probe)),
            );
        }
    }
}

/// Acting (one row, no autodiff) elsewhere takes burn's `Linear` and matches Flex's row-streaming product.
#[test]
fn acting_agrees_without_autodiff() {
    let flex = Device::flex();
    flex.seed(5);
    let spec = NetSpec::new(vec![4, 10, 10], 3, Torso::MinatarCnn, HeadKind::Q);
    let on_flex = Net::new(&spec, &flex).unwrap();
    let obs = observations(1, 400);
    let q = |net: &Net, d: &Device| to_vec(net.scores(batch(&obs, 400, d)));
    for other in other_devices() {
        let on_other = on_flex.clone().to_device(&other);
        assert_close(&format!("one-row Q on {other:?}"), &q(&on_flex, &flex), &q(&on_other, &other));
    }
}
