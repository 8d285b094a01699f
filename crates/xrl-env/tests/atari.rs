//! Step-for-step parity with ale-py 0.12.1 and Gymnasium 1.4.0 on recorded action sequences
//! (fixtures/atari_parity.json, made by fixtures/make_atari_fixtures.py). Needs `--features atari` and the setup.
#![cfg(feature = "atari")]

use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use xrl_env::atari::{AtariConfig, AtariEnv, AtariPreprocessing, PreprocessConfig, config_for};
use xrl_env::{Action, Env};

#[allow(clippy::large_enum_variant)] // two test-local values
enum Game {
    Raw(AtariEnv),
    Pre(AtariPreprocessing),
}

impl Game {
    fn env(&mut self) -> &mut dyn Env {
        match self {
            Game::Raw(e) => e,
            Game::Pre(e) => e,
        }
    }
    fn screen(&self) -> Vec<u8> {
        match self {
            Game::Raw(e) => e.screen_rgb(),
            Game::Pre(e) => e.inner().screen_rgb(),
        }
    }
    fn lives(&mut self) -> i64 {
        match self {
            Game::Raw(e) => e.lives() as i64,
            Game::Pre(e) => e.inner_mut().lives() as i64,
        }
    }
}

fn make(game: &str, kind: &str) -> Game {
    let v5 = config_for(&format!("ALE/{game}-v5")).unwrap();
    let v4 = config_for(&format!("{game}NoFrameskip-v4")).unwrap();
    match kind {
        "v5" => Game::Raw(AtariEnv::new("v5", v5).unwrap()),
        "NoFrameskip-v4" => Game::Raw(AtariEnv::new("v4", v4).unwrap()),
        "v5-truncated" => {
            Game::Raw(AtariEnv::new("v5", AtariConfig { max_num_frames_per_episode: Some(400), ..v5 }).unwrap())
        }
        "AtariPreprocessing" => {
            Game::Pre(AtariPreprocessing::new(AtariEnv::new("v4", v4).unwrap(), PreprocessConfig::default()).unwrap())
        }
        "AtariPreprocessing-v5-life" => Game::Pre(
            AtariPreprocessing::new(
                AtariEnv::new("v5", AtariConfig { frameskip: 1, ..v5 }).unwrap(),
                PreprocessConfig { terminal_on_life_loss: true, ..PreprocessConfig::default() },
            )
            .unwrap(),
        ),
        other => panic!("unknown fixture kind {other}"),
    }
}

fn chain(prev: &[u8], screen: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(screen);
    h.finalize().to_vec()
}

fn hex16(h: &[u8]) -> String {
    h[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn frame(b64: &str) -> Vec<u8> {
    let z = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
    let mut out = vec![];
    flate2::read::ZlibDecoder::new(&z[..]).read_to_end(&mut out).unwrap();
    out
}

fn check_case(case: &Value) -> (usize, usize) {
    let (game, kind) = (case["game"].as_str().unwrap(), case["kind"].as_str().unwrap());
    let what = format!("{game} {kind}");
    let mut g = make(game, kind);
    let seed = case["seed"].as_u64().unwrap();
    let obs0 = g.env().reset(Some(seed)).to_vec();
    let mut hc = chain(&[], &g.screen());
    assert_eq!(hex16(&hc), case["first"].as_str().unwrap(), "{what}: first screen");
    assert_eq!(g.lives(), case["first_lives"].as_i64().unwrap(), "{what}: first lives");
    let rewards: BTreeMap<usize, f64> = case["rewards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e[0].as_u64().unwrap() as usize, e[1].as_f64().unwrap()))
        .collect();
    let mut lives_after: BTreeMap<(usize, bool), i64> = BTreeMap::new();
    for e in case["lives"].as_array().unwrap() {
        lives_after.insert((e[0].as_u64().unwrap() as usize, e.get(2).is_some()), e[1].as_i64().unwrap());
    }
    let set =
        |k: &str| -> Vec<usize> { case[k].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect() };
    let (terms, truncs) = (set("terminated"), set("truncated"));
    let chains = case["chain"].as_object().unwrap();
    let frames = case["frames"].as_object().unwrap();
    let mut max_diff = 0u8;
    let mut compare = |ours: &[f32], theirs: &str, at: &str| {
        let theirs = frame(theirs);
        assert_eq!(ours.len(), theirs.len(), "{what} {at}: frame size");
        for (&a, &b) in ours.iter().zip(&theirs) {
            let d = (a as i32 - b as i32).unsigned_abs() as u8;
            max_diff = max_diff.max(d);
        }
    };
    if let Some(f) = frames.get("reset0") {
        compare(&obs0, f.as_str().unwrap(), "reset");
    }
    let mut lives = g.lives();
    let mut checked = 0;
    for (t, c) in case["actions"].as_str().unwrap().chars().enumerate() {
        let a = c.to_digit(19).unwrap() as usize;
        let s = g.env().step(&Action::Discrete(a)).unwrap();
        let (r, term, trunc, obs) = (s.reward, s.terminated, s.truncated, s.obs.to_vec());
        hc = chain(&hc, &g.screen());
        assert_eq!(r, rewards.get(&t).copied().unwrap_or(0.0), "{what} step {t}: reward");
        let now = g.lives();
        if now != lives {
            assert_eq!(lives_after.get(&(t, false)), Some(&now), "{what} step {t}: lives");
            lives = now;
        } else {
            assert!(!lives_after.contains_key(&(t, false)), "{what} step {t}: lives should change");
        }
        assert_eq!(term, terms.contains(&t), "{what} step {t}: terminated");
        assert_eq!(trunc, truncs.contains(&t), "{what} step {t}: truncated");
        if let Some(h) = chains.get(&t.to_string()) {
            assert_eq!(hex16(&hc), h.as_str().unwrap(), "{what}: the screens differ at or before step {t}");
            checked += 1;
        }
        if let Some(f) = frames.get(&t.to_string()) {
            compare(&obs, f.as_str().unwrap(), &format!("step {t}"));
        }
        if term || trunc {
            g.env().reset(None);
            lives = g.lives();
            assert_eq!(lives_after.get(&(t, true)), Some(&lives), "{what} step {t}: lives after reset");
        }
    }
    assert!(max_diff <= 1, "{what}: a preprocessed frame differs from Gymnasium's by {max_diff} grey levels");
    (checked, max_diff as usize)
}

fn cases() -> Vec<Value> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/atari_parity.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["cases"].as_array().unwrap().clone()
}

#[test]
fn raw_screens_rewards_lives_and_flags_match_ale_py() {
    for case in cases().iter().filter(|c| !c["kind"].as_str().unwrap().starts_with("AtariPreprocessing")) {
        let (checked, _) = check_case(case);
        assert!(checked > 20);
    }
}

#[test]
fn preprocessing_matches_gymnasium_within_one_grey_level() {
    let mut worst = 0;
    for case in cases().iter().filter(|c| c["kind"].as_str().unwrap().starts_with("AtariPreprocessing")) {
        worst = worst.max(check_case(case).1);
    }
    eprintln!("largest grey-level difference from Gymnasium: {worst}");
}

/// PIL's BILINEAR (scipy's imresize, the seeds' resize) on a fixed image, within 1 grey level
/// (fixtures/make_resize_fixture.py).
#[test]
fn bilinear_resize_matches_pil() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/resize_bilinear.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let bytes = |k: &str| v[k].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u8).collect::<Vec<_>>();
    let (h, w) = (v["h"].as_u64().unwrap() as usize, v["w"].as_u64().unwrap() as usize);
    let src = bytes("src");
    for size in [80usize, 84] {
        let mut out = vec![0u8; size * size];
        xrl_env::atari::resize_bilinear(&src, h, w, size, size, &mut out);
        let want = bytes(&format!("pil_{size}"));
        let worst = out.iter().zip(&want).map(|(&a, &b)| (a as i32 - b as i32).abs()).max().unwrap();
        assert!(worst <= 1, "{size}×{size}: PIL differs by {worst} grey levels");
    }
}

/// The RGB observation is the raw screen (what the hash chain checks) as three planes: value for value, at every
/// step of a Breakout game with colour everywhere.
#[test]
fn the_rgb_observation_is_the_screen_in_planes() {
    let mut env = AtariEnv::new("v5", config_for("ALE/Breakout-v5").unwrap()).unwrap();
    env.reset(Some(3));
    for t in 0..300 {
        let s = env.step(&Action::Discrete(t % 4)).unwrap();
        let (obs, ended) = (s.obs.to_vec(), s.terminated || s.truncated);
        let screen = env.screen_rgb();
        let n = screen.len() / 3;
        assert_eq!(obs.len(), screen.len());
        for (i, px) in screen.chunks_exact(3).enumerate() {
            for c in 0..3 {
                assert_eq!(obs[c * n + i], px[c] as f32, "step {t}, pixel {i}, channel {c}");
            }
        }
        if ended {
            env.reset(None);
        }
    }
}
