//! Random play in our MinAtar (default fast random stream) matches Python `minatar` 1.0.15 in distribution:
//! mean return and mean episode length within two standard errors of the difference (reference: 3,000 episodes
//! from `fixtures/make_fixtures.py`; ours: 10,000, cheap in Rust, which keeps our share of the error small).

use serde_json::Value;
use xrl_env::{Action, make};

/// Plays `episodes` uniformly random episodes; returns (returns, lengths).
fn random_play(id: &str, episodes: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    use rand::{Rng, SeedableRng};
    let mut env = make(id).unwrap();
    let mut policy = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed ^ 0xA5A5);
    env.reset(Some(seed));
    let (mut rets, mut lens) = (vec![], vec![]);
    for _ in 0..episodes {
        let (mut ret, mut len) = (0.0, 0.0);
        loop {
            let s = env.step(&Action::Discrete(policy.random_range(0..6))).unwrap();
            ret += s.reward;
            len += 1.0;
            if s.terminated {
                break;
            }
        }
        rets.push(ret);
        lens.push(len);
        env.reset(None);
    }
    (rets, lens)
}

fn mean_se(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

#[test]
fn random_policy_statistics_match_the_reference() {
    let fx: Value = serde_json::from_str(include_str!("fixtures/minatar_random_stats.json")).unwrap();
    assert!(fx["episodes"].as_u64().unwrap() >= 1000);
    let games = [
        ("asterix", "Asterix"),
        ("breakout", "Breakout"),
        ("freeway", "Freeway"),
        ("seaquest", "Seaquest"),
        ("space_invaders", "SpaceInvaders"),
    ];
    let mut report = vec![];
    for (key, name) in games {
        let refs = &fx["games"][key];
        let (rets, lens) = random_play(&format!("MinAtar/{name}-v0"), 10_000, 2024);
        for (what, xs) in [("return", &rets), ("length", &lens)] {
            let (m, se) = mean_se(xs);
            let (rm, rse) =
                (refs[format!("mean_{what}")].as_f64().unwrap(), refs[format!("se_{what}")].as_f64().unwrap());
            let tol = 2.0 * (se * se + rse * rse).sqrt();
            let ok = (m - rm).abs() <= tol || (tol == 0.0 && m == rm);
            report.push(format!(
                "{name} {what}: ours {m:.3} ± {se:.3}, reference {rm:.3} ± {rse:.3} {}",
                if ok { "ok" } else { "MISMATCH" }
            ));
        }
    }
    let text = report.join("\n");
    println!("{text}");
    assert!(!text.contains("MISMATCH"), "{text}");
}
