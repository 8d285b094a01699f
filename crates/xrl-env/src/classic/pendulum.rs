//! Pendulum-v1: swing a torque-limited pendulum up and hold it there. Never terminates; truncated at 200 steps.

use super::{Canvas, Dynamics, Input};
use crate::{ActionSpace, EnvSpec, GameRng, ObsSpace};
use std::f64::consts::PI;

pub struct Pendulum;

const MAX_SPEED: f64 = 8.0;
const MAX_TORQUE: f64 = 2.0;
const DT: f64 = 0.05;
const G: f64 = 10.0;
const M: f64 = 1.0;
const L: f64 = 1.0;

/// Angle into [−π, π), as Gymnasium's `angle_normalize` (Python's floored modulo).
fn angle_normalize(x: f64) -> f64 {
    (x + PI).rem_euclid(2.0 * PI) - PI
}

impl Dynamics for Pendulum {
    const FIELDS: &'static [&'static str] = &["theta", "theta_dot"];
    const SCREEN: (u32, u32) = (500, 500);

    fn spec() -> EnvSpec {
        EnvSpec {
            id: "Pendulum-v1".into(),
            observation: ObsSpace::Box { shape: vec![3], low: vec![-1.0, -1.0, -8.0], high: vec![1.0, 1.0, 8.0] },
            action: ActionSpace::Continuous { dim: 1, low: vec![-2.0], high: vec![2.0] },
            max_episode_steps: Some(200),
            reward_threshold: None,
        }
    }

    fn reset_state(rng: &mut GameRng) -> Vec<f64> {
        vec![rng.uniform_range(-PI, PI), rng.uniform_range(-1.0, 1.0)]
    }

    fn step(s: &mut [f64], a: Input) -> (f64, bool) {
        let Input::Value(u) = a else { unreachable!("Pendulum is continuous") };
        let (th, thdot) = (s[0], s[1]);
        // The torque stays float32 as in Gymnasium with NumPy 2 (a Python float times a float32 stays float32).
        let u = u.clamp(-MAX_TORQUE as f32, MAX_TORQUE as f32);
        let torque_cost = (0.001f32 * (u * u)) as f64;
        let torque_acc = ((3.0 / (M * L * L)) as f32 * u) as f64;
        let cost = angle_normalize(th).powi(2) + 0.1 * (thdot * thdot) + torque_cost;
        let new_thdot = (thdot + (3.0 * G / (2.0 * L) * th.sin() + torque_acc) * DT).clamp(-MAX_SPEED, MAX_SPEED);
        s[0] = th + new_thdot * DT;
        s[1] = new_thdot;
        (-cost, false)
    }

    fn is_terminal(_: &[f64]) -> bool {
        false
    }

    fn observe(s: &[f64], out: &mut [f32]) {
        out[0] = s[0].cos() as f32;
        out[1] = s[0].sin() as f32;
        out[2] = s[1] as f32;
    }

    fn draw(s: &[f64], c: &mut Canvas) {
        let (w, h) = Self::SCREEN;
        let bound = 2.2;
        let scale = w as f64 / (2.0 * bound);
        let centre = (w as f32 / 2.0, h as f32 / 2.0);
        let rod_w = (0.2 * scale) as f32;
        c.bar(centre, (s[0] + PI / 2.0) as f32, (L * scale) as f32, rod_w, (204, 77, 77));
        let tip = (
            centre.0 + (L * scale * (s[0] + PI / 2.0).cos()) as f32,
            centre.1 + (L * scale * (s[0] + PI / 2.0).sin()) as f32,
        );
        c.circle(centre, rod_w / 2.0, (204, 77, 77));
        c.circle(tip, rod_w / 2.0, (204, 77, 77));
        c.circle(centre, 0.05 * scale as f32, (0, 0, 0));
    }
}
