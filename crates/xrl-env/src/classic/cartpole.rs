//! CartPole-v1: a pole hinged on a cart; push left or right to keep it up (Barto, Sutton & Anderson 1983).

use super::{Canvas, Dynamics, Input};
use crate::{ActionSpace, EnvSpec, GameRng, ObsSpace};

pub struct CartPole;

const GRAVITY: f64 = 9.8;
const MASS_CART: f64 = 1.0;
const MASS_POLE: f64 = 0.1;
const TOTAL_MASS: f64 = MASS_POLE + MASS_CART;
const LENGTH: f64 = 0.5; // half the pole's length
const POLEMASS_LENGTH: f64 = MASS_POLE * LENGTH;
const FORCE_MAG: f64 = 10.0;
const TAU: f64 = 0.02;
const THETA_THRESHOLD: f64 = 12.0 * 2.0 * std::f64::consts::PI / 360.0;
const X_THRESHOLD: f64 = 2.4;

impl Dynamics for CartPole {
    const FIELDS: &'static [&'static str] = &["x", "x_dot", "theta", "theta_dot"];
    const SCREEN: (u32, u32) = (600, 400);

    fn spec() -> EnvSpec {
        let th = (THETA_THRESHOLD * 2.0) as f32;
        EnvSpec {
            id: "CartPole-v1".into(),
            observation: ObsSpace::Box {
                shape: vec![4],
                low: vec![-4.8, f32::NEG_INFINITY, -th, f32::NEG_INFINITY],
                high: vec![4.8, f32::INFINITY, th, f32::INFINITY],
            },
            action: ActionSpace::discrete(&["push left", "push right"]),
            max_episode_steps: Some(500),
            reward_threshold: Some(475.0),
        }
    }

    fn reset_state(rng: &mut GameRng) -> Vec<f64> {
        (0..4).map(|_| rng.uniform_range(-0.05, 0.05)).collect()
    }

    fn step(s: &mut [f64], a: Input) -> (f64, bool) {
        let Input::Index(a) = a else { unreachable!("CartPole is discrete") };
        let [x, x_dot, theta, theta_dot] = [s[0], s[1], s[2], s[3]];
        let force = if a == 1 { FORCE_MAG } else { -FORCE_MAG };
        let (sin, cos) = (theta.sin(), theta.cos());
        let temp = (force + POLEMASS_LENGTH * (theta_dot * theta_dot) * sin) / TOTAL_MASS;
        let theta_acc = (GRAVITY * sin - cos * temp) / (LENGTH * (4.0 / 3.0 - MASS_POLE * (cos * cos) / TOTAL_MASS));
        let x_acc = temp - POLEMASS_LENGTH * theta_acc * cos / TOTAL_MASS;
        // Explicit Euler: positions move with the old velocities.
        s[0] = x + TAU * x_dot;
        s[1] = x_dot + TAU * x_acc;
        s[2] = theta + TAU * theta_dot;
        s[3] = theta_dot + TAU * theta_acc;
        // +1 on every step, the terminating one included.
        (1.0, Self::is_terminal(s))
    }

    fn is_terminal(s: &[f64]) -> bool {
        s[0] < -X_THRESHOLD || s[0] > X_THRESHOLD || s[2] < -THETA_THRESHOLD || s[2] > THETA_THRESHOLD
    }

    fn observe(s: &[f64], out: &mut [f32]) {
        for (o, v) in out.iter_mut().zip(s) {
            *o = *v as f32;
        }
    }

    fn draw(s: &[f64], c: &mut Canvas) {
        let (w, _) = Self::SCREEN;
        let scale = w as f64 / (2.0 * X_THRESHOLD);
        let (cart_w, cart_h, pole_w) = (50.0, 30.0, 10.0);
        let pole_len = (scale * 2.0 * LENGTH) as f32;
        let cart_y = 100.0;
        let cx = (s[0] * scale + w as f64 / 2.0) as f32;
        c.polyline(&[(0.0, cart_y), (w as f32, cart_y)], 1.0, (0, 0, 0));
        let (l, r, b, t) = (cx - cart_w / 2.0, cx + cart_w / 2.0, cart_y - cart_h / 2.0, cart_y + cart_h / 2.0);
        c.polygon(&[(l, b), (l, t), (r, t), (r, b)], (0, 0, 0));
        let axle = (cx, cart_y + cart_h / 4.0);
        let angle = std::f32::consts::FRAC_PI_2 - s[2] as f32;
        c.bar(axle, angle, pole_len, pole_w, (202, 152, 101));
        c.circle(axle, pole_w / 2.0, (129, 132, 203));
    }
}
