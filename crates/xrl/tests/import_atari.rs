//! Atari networks trained elsewhere give PyTorch's outputs on real preprocessed Atari observations (fixtures:
//! `fixtures/make_atari_import_fixtures.py`; weights by a periodic formula, files gzipped). No ALE needed.

use base64::Engine;
use serde_json::Value;
use std::io::Read;
use std::path::PathBuf;
use xrl::burn::tensor::Device;
use xrl::import::{Arch, Format, Rename, import, import_renamed};
use xrl::nn::{self, Net, Pass};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// The gzipped fixture, unpacked to a temporary file with its own extension.
struct Unpacked(PathBuf);

impl Drop for Unpacked {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn unpack(name: &str) -> Unpacked {
    let mut bytes = vec![];
    flate2::read::GzDecoder::new(std::fs::File::open(fixture(name)).unwrap()).read_to_end(&mut bytes).unwrap();
    let out = std::env::temp_dir().join(format!("xrl-{}-{}", std::process::id(), name.trim_end_matches(".gz")));
    std::fs::write(&out, bytes).unwrap();
    Unpacked(out)
}

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("atari_import.json")).unwrap()).unwrap()
}

fn frames(v: &Value) -> Vec<f32> {
    let z = base64::engine::general_purpose::STANDARD.decode(v["frames"].as_str().unwrap()).unwrap();
    let mut raw = vec![];
    flate2::read::ZlibDecoder::new(&z[..]).read_to_end(&mut raw).unwrap();
    assert_eq!(raw.len(), 3 * 4 * 84 * 84);
    raw.into_iter().map(f32::from).collect()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().cloned().unwrap_or_else(|| vec![r.clone()]))
        .map(|f| f.as_f64().unwrap() as f32)
        .collect()
}

fn close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "{what}[{i}]: {g} vs PyTorch {w}");
    }
}

fn outputs(net: &Net, obs: &[f32]) -> (Vec<f32>, Option<Vec<f32>>) {
    let h = net.forward(nn::batch(obs, 4 * 84 * 84, &Device::flex()), &Pass::default());
    let main = h.q.or(h.logits).expect("Q values or logits");
    (nn::to_vec(main), h.value.map(nn::to_vec))
}

#[test]
fn cleanrl_and_sb3_atari_networks_match_pytorch() {
    let v = reference();
    let obs = frames(&v);
    let d = Device::flex();
    let f = unpack("nature_dqn_atari.pt.gz");
    let net = import(&f.0, Format::Pytorch, Arch::NatureDqn, None, &[4, 84, 84], 6, &d).unwrap();
    close("nature-dqn Q", &outputs(&net, &obs).0, &floats(&v["nature_dqn"]));

    let f = unpack("sb3_cnn_dqn.zip.gz");
    let net = import(&f.0, Format::Sb3, Arch::Sb3CnnDqn, None, &[4, 84, 84], 6, &d).unwrap();
    close("sb3-cnn-dqn Q", &outputs(&net, &obs).0, &floats(&v["sb3_dqn"]));

    for (file, arch, format, key) in [
        ("cleanrl_ppo_atari.pt.gz", Arch::CleanrlPpoAtari, Format::Pytorch, "cleanrl_ppo"),
        ("sb3_cnn_ppo.zip.gz", Arch::Sb3CnnActorCritic, Format::Sb3, "sb3_ppo"),
    ] {
        let f = unpack(file);
        let net = import(&f.0, format, arch, None, &[4, 84, 84], 6, &d).unwrap();
        let (logits, value) = outputs(&net, &obs);
        close(&format!("{key} logits"), &logits, &floats(&v[key]["logits"]));
        close(&format!("{key} value"), &value.unwrap(), &floats(&v[key]["value"]));
    }
}

#[test]
fn renamed_layers_load_with_a_rename_and_are_refused_without() {
    let v = reference();
    let d = Device::flex();
    let f = unpack("cleanrl_ppo_atari_trunk.pt.gz");
    let err =
        import(&f.0, Format::Pytorch, Arch::CleanrlPpoAtari, None, &[4, 84, 84], 6, &d).err().unwrap().to_string();
    assert!(err.contains("trunk."), "the error should name the unread tensors: {err}");
    let rename: Rename = "trunk.=network.".parse().unwrap();
    let net =
        import_renamed(&f.0, Format::Pytorch, Arch::CleanrlPpoAtari, None, &[rename], &[4, 84, 84], 6, &d).unwrap();
    close("renamed logits", &outputs(&net, &frames(&v)).0, &floats(&v["cleanrl_ppo"]["logits"]));
    assert!("=x".parse::<Rename>().is_err() && "nothing".parse::<Rename>().is_err());
}
