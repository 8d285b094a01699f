//! Acrobot-v1: two links, torque on the middle joint, swing the tip above a line (Sutton 1996; "book" dynamics).

use super::{Canvas, Dynamics, Input};
use crate::{ActionSpace, EnvSpec, GameRng, ObsSpace};
use std::f64::consts::PI;

pub struct Acrobot;

const DT: f64 = 0.2;
const L1: f64 = 1.0;
const L2: f64 = 1.0;
const M1: f64 = 1.0;
const M2: f64 = 1.0;
const LC1: f64 = 0.5;
const LC2: f64 = 0.5;
const MOI: f64 = 1.0;
const MAX_VEL_1: f64 = 4.0 * PI;
const MAX_VEL_2: f64 = 9.0 * PI;
const TORQUES: [f64; 3] = [-1.0, 0.0, 1.0];
const G: f64 = 9.8;

/// Time derivative of (θ1, θ2, θ̇1, θ̇2) under torque `a`, in Gymnasium's order of operations.
fn dsdt(s: [f64; 4], a: f64) -> [f64; 4] {
    let [theta1, theta2, dtheta1, dtheta2] = s;
    let (i1, i2) = (MOI, MOI);
    let d1 = M1 * LC1 * LC1 + M2 * (L1 * L1 + LC2 * LC2 + 2.0 * L1 * LC2 * theta2.cos()) + i1 + i2;
    let d2 = M2 * (LC2 * LC2 + L1 * LC2 * theta2.cos()) + i2;
    let phi2 = M2 * LC2 * G * (theta1 + theta2 - PI / 2.0).cos();
    let phi1 = -M2 * L1 * LC2 * (dtheta2 * dtheta2) * theta2.sin()
        - 2.0 * M2 * L1 * LC2 * dtheta2 * dtheta1 * theta2.sin()
        + (M1 * LC1 + M2 * L1) * G * (theta1 - PI / 2.0).cos()
        + phi2;
    let ddtheta2 = (a + d2 / d1 * phi1 - M2 * L1 * LC2 * (dtheta1 * dtheta1) * theta2.sin() - phi2)
        / (M2 * LC2 * LC2 + i2 - d2 * d2 / d1);
    let ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
    [dtheta1, dtheta2, ddtheta1, ddtheta2]
}

fn axpy(y: [f64; 4], h: f64, k: [f64; 4]) -> [f64; 4] {
    std::array::from_fn(|i| y[i] + h * k[i])
}

/// Wraps `x` into [lo, hi] by adding or subtracting the period, as Gymnasium's `wrap`.
fn wrap(mut x: f64, lo: f64, hi: f64) -> f64 {
    let diff = hi - lo;
    while x > hi {
        x -= diff;
    }
    while x < lo {
        x += diff;
    }
    x
}

impl Dynamics for Acrobot {
    const FIELDS: &'static [&'static str] = &["theta1", "theta2", "dtheta1", "dtheta2"];
    const SCREEN: (u32, u32) = (500, 500);

    fn spec() -> EnvSpec {
        let (v1, v2) = (MAX_VEL_1 as f32, MAX_VEL_2 as f32);
        EnvSpec {
            id: "Acrobot-v1".into(),
            observation: ObsSpace::Box {
                shape: vec![6],
                low: vec![-1.0, -1.0, -1.0, -1.0, -v1, -v2],
                high: vec![1.0, 1.0, 1.0, 1.0, v1, v2],
            },
            action: ActionSpace::discrete(&["torque -1", "torque 0", "torque +1"]),
            max_episode_steps: Some(500),
            reward_threshold: Some(-100.0),
        }
    }

    fn reset_state(rng: &mut GameRng) -> Vec<f64> {
        // Gymnasium draws the reset state as float32.
        (0..4).map(|_| rng.uniform_range(-0.1, 0.1) as f32 as f64).collect()
    }

    fn step(s: &mut [f64], a: Input) -> (f64, bool) {
        let Input::Index(a) = a else { unreachable!("Acrobot is discrete") };
        let torque = TORQUES[a];
        // One classic RK4 step of size DT (the torque is held constant).
        let y0 = [s[0], s[1], s[2], s[3]];
        let dt2 = DT / 2.0;
        let k1 = dsdt(y0, torque);
        let k2 = dsdt(axpy(y0, dt2, k1), torque);
        let k3 = dsdt(axpy(y0, dt2, k2), torque);
        let k4 = dsdt(axpy(y0, DT, k3), torque);
        let ns: [f64; 4] = std::array::from_fn(|i| y0[i] + DT / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]));
        s[0] = wrap(ns[0], -PI, PI);
        s[1] = wrap(ns[1], -PI, PI);
        s[2] = ns[2].clamp(-MAX_VEL_1, MAX_VEL_1);
        s[3] = ns[3].clamp(-MAX_VEL_2, MAX_VEL_2);
        let terminated = Self::is_terminal(s);
        (if terminated { 0.0 } else { -1.0 }, terminated)
    }

    fn is_terminal(s: &[f64]) -> bool {
        -s[0].cos() - (s[1] + s[0]).cos() > 1.0
    }

    fn observe(s: &[f64], out: &mut [f32]) {
        let v = [s[0].cos(), s[0].sin(), s[1].cos(), s[1].sin(), s[2], s[3]];
        for (o, x) in out.iter_mut().zip(v) {
            *o = x as f32;
        }
    }

    fn draw(s: &[f64], c: &mut Canvas) {
        let (w, h) = Self::SCREEN;
        let bound = L1 + L2 + 0.2;
        let scale = w as f64 / (2.0 * bound);
        let to_px = |x: f64, y: f64| ((x * scale + w as f64 / 2.0) as f32, (y * scale + h as f64 / 2.0) as f32);
        let goal = to_px(0.0, 1.0).1;
        c.polyline(&[(0.0, goal), (w as f32, goal)], 1.0, (0, 0, 0));
        let p1 = (L1 * s[0].sin(), -L1 * s[0].cos());
        let angles = [s[0] - PI / 2.0, s[0] + s[1] - PI / 2.0];
        let starts = [(0.0, 0.0), p1];
        for (start, angle) in starts.into_iter().zip(angles) {
            let origin = to_px(start.0, start.1);
            c.bar(origin, angle as f32, (L1 * scale) as f32, (0.2 * scale) as f32, (0, 204, 204));
            c.circle(origin, (0.1 * scale) as f32, (204, 204, 0));
        }
    }
}
