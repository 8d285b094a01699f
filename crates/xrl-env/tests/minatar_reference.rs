//! MinAtar against Python `minatar` 1.0.15, observation for observation.
//!
//! The fixtures (`fixtures/make_fixtures.py`) record seeded reference runs: the agent's action, the reward, the
//! terminal flag and every set cell of the C×10×10 observation at each step, with resets after terminal steps. We
//! replay them with the numpy-compatible random stream, so sticky actions and spawns draw the same numbers.
//! Each game has a random-policy run (sticky 0.1) and a scripted run (no stickiness) that reaches rarer rules:
//! Breakout's brick refills, Freeway's crossings, long Asterix and Seaquest episodes with ramping.

use serde_json::Value;
use xrl_env::{Action, MakeOptions, RngKind, make_with};

fn set_cells(obs: &[f32]) -> Vec<usize> {
    obs.iter().enumerate().filter(|(_, v)| **v > 0.5).map(|(i, _)| i).collect()
}

fn cells(v: &Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect()
}

fn replay(id: &str, fixture: &str) {
    let mut lines = fixture.lines().map(|l| serde_json::from_str::<Value>(l).unwrap());
    let head = lines.next().unwrap();
    let sticky_action_prob = head["sticky"].as_f64().unwrap();
    let options = MakeOptions { rng: RngKind::Numpy, sticky_action_prob, ..MakeOptions::default() };
    let mut env = make_with(id, &options).unwrap();
    assert_eq!(env.spec().observation.shape()[0], head["channels"].as_u64().unwrap() as usize);
    let obs = env.reset(Some(head["seed"].as_u64().unwrap()));
    assert_eq!(set_cells(obs), cells(&head["reset"]), "{id}: first observation");
    let (mut steps, mut episodes) = (0, 0);
    for (t, line) in lines.enumerate() {
        let a = line["a"].as_u64().unwrap() as usize;
        let s = env.step(&Action::Discrete(a)).unwrap();
        assert_eq!(set_cells(s.obs), cells(&line["on"]), "{id} step {t}: observation differs");
        assert_eq!(s.reward, line["r"].as_f64().unwrap(), "{id} step {t}: reward");
        assert_eq!(s.terminated, line["t"].as_bool().unwrap(), "{id} step {t}: terminal");
        assert!(!s.truncated, "MinAtar never truncates");
        if s.terminated {
            episodes += 1;
            let obs = env.reset(None);
            assert_eq!(set_cells(obs), cells(&line["reset"]), "{id} step {t}: observation after reset");
        }
        steps += 1;
    }
    assert!(steps >= 2000, "{id}: only {steps} steps in the fixture");
    if head["policy"] == "random" {
        assert!(episodes >= 1, "{id}: the fixture should cross an episode boundary");
    }
}

#[test]
fn asterix_matches_reference() {
    replay("MinAtar/Asterix-v0", include_str!("fixtures/minatar_asterix.jsonl"));
    replay("MinAtar/Asterix-v0", include_str!("fixtures/minatar_asterix_skilled.jsonl"));
}

#[test]
fn breakout_matches_reference() {
    replay("MinAtar/Breakout-v0", include_str!("fixtures/minatar_breakout.jsonl"));
    replay("MinAtar/Breakout-v0", include_str!("fixtures/minatar_breakout_skilled.jsonl"));
}

#[test]
fn freeway_matches_reference() {
    replay("MinAtar/Freeway-v0", include_str!("fixtures/minatar_freeway.jsonl"));
    replay("MinAtar/Freeway-v0", include_str!("fixtures/minatar_freeway_skilled.jsonl"));
}

#[test]
fn seaquest_matches_reference() {
    replay("MinAtar/Seaquest-v0", include_str!("fixtures/minatar_seaquest.jsonl"));
    replay("MinAtar/Seaquest-v0", include_str!("fixtures/minatar_seaquest_skilled.jsonl"));
}

#[test]
fn space_invaders_matches_reference() {
    replay("MinAtar/SpaceInvaders-v0", include_str!("fixtures/minatar_space_invaders.jsonl"));
    replay("MinAtar/SpaceInvaders-v0", include_str!("fixtures/minatar_space_invaders_skilled.jsonl"));
}
