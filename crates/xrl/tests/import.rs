//! Weights trained in PyTorch reproduce PyTorch's Q values (fixtures: `fixtures/make_import_fixtures.py`).

use serde_json::Value;
use std::path::PathBuf;
use xrl::burn::tensor::Device;
use xrl::import::{Arch, Format, import};
use xrl::nn::{self, Net};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn reference(key: &str) -> (Vec<f32>, Vec<f32>) {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(fixture("import_reference.json")).unwrap()).unwrap();
    let floats = |x: &Value| x.as_array().unwrap().iter().map(|f| f.as_f64().unwrap() as f32).collect::<Vec<_>>();
    (floats(&v[key]["obs"]), floats(&v[key]["q"]))
}

fn assert_q(net: &Net, key: &str) {
    let (obs, want) = reference(key);
    let len: usize = net.spec().obs_shape.iter().product();
    let got = nn::to_vec(net.scores(nn::batch(&obs, len, &Device::flex())));
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "{key} q[{i}]: {g} vs PyTorch {w}");
    }
}

#[test]
fn minatar_network_from_a_pytorch_state_dict_and_from_safetensors() {
    let d = Device::flex();
    let net = import(&fixture("minatar_dqn.pt"), Format::Pytorch, Arch::MinatarDqn, None, &[4, 10, 10], 6, &d).unwrap();
    assert_q(&net, "minatar_dqn");
    let net =
        import(&fixture("minatar_dqn.safetensors"), Format::Safetensors, Arch::MinatarDqn, None, &[4, 10, 10], 6, &d)
            .unwrap();
    assert_q(&net, "minatar_dqn");
}

#[test]
fn cleanrl_mlp_plain_and_nested_under_a_key() {
    let d = Device::flex();
    let net = import(&fixture("mlp_dqn.cleanrl_model"), Format::Pytorch, Arch::MlpDqn, None, &[4], 2, &d).unwrap();
    assert_q(&net, "mlp_dqn");
    let net =
        import(&fixture("mlp_dqn_nested.pt"), Format::Pytorch, Arch::MlpDqn, Some("state_dict"), &[4], 2, &d).unwrap();
    assert_q(&net, "mlp_dqn");
    // Without the key the nested file holds no tensors of the network: an error, not an empty model.
    let err = import(&fixture("mlp_dqn_nested.pt"), Format::Pytorch, Arch::MlpDqn, None, &[4], 2, &d).err().unwrap();
    assert!(err.to_string().contains("no tensors") || err.to_string().contains("cannot read"), "{err}");
}

#[test]
fn stable_baselines3_zip() {
    let d = Device::flex();
    let net = import(&fixture("sb3_dqn_cartpole.zip"), Format::Sb3, Arch::Sb3MlpDqn, None, &[4], 2, &d).unwrap();
    assert_q(&net, "sb3_dqn");
}

#[test]
fn files_that_do_not_fit_are_errors_that_name_the_tensors() {
    let d = Device::flex();
    // A pickled whole module (`torch.save(model)`) is read for its tensors: the same Q values.
    let net = import(&fixture("whole_module.pt"), Format::Pytorch, Arch::MlpDqn, None, &[4], 2, &d).unwrap();
    assert_q(&net, "mlp_dqn");
    // The right file for the wrong architecture names what is missing or mis-shaped.
    let err =
        import(&fixture("mlp_dqn.cleanrl_model"), Format::Pytorch, Arch::Sb3MlpDqn, None, &[4], 2, &d).err().unwrap();
    assert!(err.to_string().contains("no tensors"), "{err}");
    let err =
        import(&fixture("mlp_dqn.cleanrl_model"), Format::Pytorch, Arch::MlpDqn, None, &[4], 3, &d).err().unwrap();
    assert!(err.to_string().contains("out.weight") || err.to_string().contains("mis-shaped"), "{err}");
    // An environment the architecture cannot see.
    let err = import(&fixture("minatar_dqn.pt"), Format::Pytorch, Arch::MinatarDqn, None, &[4], 6, &d).err().unwrap();
    assert!(err.to_string().contains("does not fit this environment"), "{err}");
    // Not a zip.
    let err = import(&fixture("minatar_dqn.pt"), Format::Sb3, Arch::Sb3MlpDqn, None, &[4], 2, &d).err().unwrap();
    assert!(err.to_string().contains("policy.pth") || err.to_string().contains("zip"), "{err}");
}
