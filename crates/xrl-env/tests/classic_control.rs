//! Classic control against Gymnasium 1.4.0, step for step (fixture: `fixtures/make_fixtures.py`).

use serde_json::Value;
use xrl_env::classic::{Acrobot, CartPole, Classic, Dynamics, MountainCar, Pendulum};
use xrl_env::wrappers::TimeLimit;
use xrl_env::{Action, Env};

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/classic_control.json")).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn replay<D: Dynamics>(id: &str) -> usize {
    let fx = fixture();
    let mut checked = 0;
    for ep in fx["episodes"].as_array().unwrap().iter().filter(|e| e["env"] == id) {
        let mut raw = Classic::<D>::new();
        raw.set_raw_state(&floats(&ep["initial_state"]));
        let limit = raw.spec().max_episode_steps.unwrap();
        let mut env = TimeLimit::new(Box::new(raw), limit);
        let actions = ep["actions"].as_array().unwrap();
        let steps = ep["steps"].as_array().unwrap();
        for (t, (a, want)) in actions.iter().zip(steps).enumerate() {
            let action = match a {
                Value::Array(v) => Action::Continuous(v.iter().map(|x| x.as_f64().unwrap() as f32).collect()),
                v => Action::Discrete(v.as_u64().unwrap() as usize),
            };
            let s = env.step(&action).unwrap_or_else(|e| panic!("{id} step {t}: {e}"));
            let (obs, reward, term, trunc) = (s.obs.to_vec(), s.reward, s.terminated, s.truncated);
            for (i, (got, exp)) in obs.iter().zip(floats(&want["obs"])).enumerate() {
                assert!((*got as f64 - exp).abs() <= 1e-6, "{id} step {t} obs[{i}]: {got} vs {exp}");
            }
            let state = env.state();
            for (name, exp) in D::FIELDS.iter().zip(floats(&want["state"])) {
                let got = state[name].as_f64().unwrap();
                assert!((got - exp).abs() <= 1e-6, "{id} step {t} {name}: {got} vs {exp}");
            }
            assert!((reward - want["reward"].as_f64().unwrap()).abs() <= 1e-6, "{id} step {t} reward");
            assert_eq!(term, want["terminated"].as_bool().unwrap(), "{id} step {t} terminated");
            assert_eq!(trunc, want["truncated"].as_bool().unwrap(), "{id} step {t} truncated");
            checked += 1;
        }
        // The episode ended exactly where Gymnasium's did, and a further step is refused.
        assert!(env.step(&Action::Discrete(0)).is_err(), "{id}: stepping a finished episode must fail");
    }
    assert!(checked > 0, "no fixture episodes for {id}");
    checked
}

#[test]
fn cartpole_matches_gymnasium() {
    // A PD-controlled episode reaches the 500-step limit, so truncation is covered too.
    assert!(replay::<CartPole>("CartPole-v1") >= 500);
}

#[test]
fn acrobot_matches_gymnasium() {
    replay::<Acrobot>("Acrobot-v1");
}

#[test]
fn mountain_car_matches_gymnasium() {
    replay::<MountainCar>("MountainCar-v0");
}

#[test]
fn pendulum_matches_gymnasium() {
    assert_eq!(replay::<Pendulum>("Pendulum-v1"), 4 * 200);
}
