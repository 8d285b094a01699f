//! MountainCar-v0: an under-powered car in a valley must rock itself up to the flag (Moore 1990).

use super::{Canvas, Dynamics, Input};
use crate::{ActionSpace, EnvSpec, GameRng, ObsSpace};

pub struct MountainCar;

const MIN_POSITION: f64 = -1.2;
const MAX_POSITION: f64 = 0.6;
const MAX_SPEED: f64 = 0.07;
const GOAL_POSITION: f64 = 0.5;
const GOAL_VELOCITY: f64 = 0.0;
const FORCE: f64 = 0.001;
const GRAVITY: f64 = 0.0025;

fn height(x: f64) -> f64 {
    (3.0 * x).sin() * 0.45 + 0.55
}

impl Dynamics for MountainCar {
    const FIELDS: &'static [&'static str] = &["position", "velocity"];
    const SCREEN: (u32, u32) = (600, 400);

    fn spec() -> EnvSpec {
        EnvSpec {
            id: "MountainCar-v0".into(),
            observation: ObsSpace::Box {
                shape: vec![2],
                low: vec![MIN_POSITION as f32, -MAX_SPEED as f32],
                high: vec![MAX_POSITION as f32, MAX_SPEED as f32],
            },
            action: ActionSpace::discrete(&["push left", "no push", "push right"]),
            max_episode_steps: Some(200),
            reward_threshold: Some(-110.0),
        }
    }

    fn reset_state(rng: &mut GameRng) -> Vec<f64> {
        vec![rng.uniform_range(-0.6, -0.4), 0.0]
    }

    fn step(s: &mut [f64], a: Input) -> (f64, bool) {
        let Input::Index(a) = a else { unreachable!("MountainCar is discrete") };
        let (mut position, mut velocity) = (s[0], s[1]);
        velocity += (a as f64 - 1.0) * FORCE + (3.0 * position).cos() * (-GRAVITY);
        velocity = velocity.clamp(-MAX_SPEED, MAX_SPEED);
        position += velocity;
        position = position.clamp(MIN_POSITION, MAX_POSITION);
        if position == MIN_POSITION && velocity < 0.0 {
            velocity = 0.0; // the left wall is inelastic
        }
        s[0] = position;
        s[1] = velocity;
        (-1.0, Self::is_terminal(s))
    }

    fn is_terminal(s: &[f64]) -> bool {
        s[0] >= GOAL_POSITION && s[1] >= GOAL_VELOCITY
    }

    fn observe(s: &[f64], out: &mut [f32]) {
        out[0] = s[0] as f32;
        out[1] = s[1] as f32;
    }

    fn draw(s: &[f64], c: &mut Canvas) {
        let (w, _) = Self::SCREEN;
        let scale = w as f64 / (MAX_POSITION - MIN_POSITION);
        let px = |x: f64| (((x - MIN_POSITION) * scale) as f32, (height(x) * scale) as f32);
        let curve: Vec<_> =
            (0..=100).map(|i| px(MIN_POSITION + (MAX_POSITION - MIN_POSITION) * i as f64 / 100.0)).collect();
        c.polyline(&curve, 2.0, (0, 0, 0));
        // Car: a body rotated to the slope, lifted by its clearance, with two wheels.
        let angle = (3.0 * s[0]).cos().atan2(1.0 / 1.35) as f32; // slope angle of the track (dh/dx = 1.35·cos 3x)
        let (cw, ch, clearance) = (40.0f32, 20.0f32, 10.0f32);
        let base = px(s[0]);
        let (sa, ca) = angle.sin_cos();
        let lift =
            |dx: f32, dy: f32| (base.0 + dx * ca - (dy + clearance) * sa, base.1 + dx * sa + (dy + clearance) * ca);
        let body = [lift(-cw / 2.0, 0.0), lift(-cw / 2.0, ch), lift(cw / 2.0, ch), lift(cw / 2.0, 0.0)];
        c.polygon(&body, (0, 0, 0));
        for dx in [-cw / 4.0, cw / 4.0] {
            c.circle(lift(dx, 0.0), ch / 2.5, (128, 128, 128));
        }
        let flag = px(GOAL_POSITION);
        c.polyline(&[flag, (flag.0, flag.1 + 50.0)], 2.0, (0, 0, 0));
        c.polygon(&[(flag.0, flag.1 + 50.0), (flag.0, flag.1 + 40.0), (flag.0 + 25.0, flag.1 + 45.0)], (204, 204, 0));
    }
}
