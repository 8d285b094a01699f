//! Gymnasium 1.4.0's classic-control tasks, from its constants and equations
//! (`shared/research/CLASSIC_CONTROL.md`). Internal state is f64, observations f32, as in Gymnasium.
//!
//! Each task is a [`Dynamics`] (constants, reset distribution, one step, observation, picture); [`Classic`] turns
//! one into an [`Env`]. The time limit is added by [`crate::make`], as `gym.make` does.

mod acrobot;
mod cartpole;
mod draw;
mod mountain_car;
mod pendulum;

pub use acrobot::Acrobot;
pub use cartpole::CartPole;
pub use mountain_car::MountainCar;
pub use pendulum::Pendulum;

use crate::{Action, ActionSpace, Env, EnvError, EnvSpec, GameRng, RgbImage, RngKind, Step};
use draw::Canvas;
use serde_json::{Map, Value};

pub const IDS: [&str; 4] = ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "Pendulum-v1"];

pub(crate) fn make(id: &str) -> Option<Box<dyn Env>> {
    Some(match id {
        "CartPole-v1" => Box::new(Classic::<CartPole>::new()),
        "Acrobot-v1" => Box::new(Classic::<Acrobot>::new()),
        "MountainCar-v0" => Box::new(Classic::<MountainCar>::new()),
        "Pendulum-v1" => Box::new(Classic::<Pendulum>::new()),
        _ => return None,
    })
}

/// The action as the dynamics see it, already validated.
#[derive(Clone, Copy, Debug)]
pub enum Input {
    Index(usize),
    Value(f32),
}

/// One classic-control task.
pub trait Dynamics: Send + 'static {
    /// Names of the internal state variables, in order; they are the keys of the state document.
    const FIELDS: &'static [&'static str];
    fn spec() -> EnvSpec;
    fn reset_state(rng: &mut GameRng) -> Vec<f64>;
    /// Advances `s` by one step; returns (reward, terminated).
    fn step(s: &mut [f64], a: Input) -> (f64, bool);
    fn observe(s: &[f64], out: &mut [f32]);
    fn is_terminal(s: &[f64]) -> bool;
    /// Canvas size in pixels and the drawing.
    const SCREEN: (u32, u32);
    fn draw(s: &[f64], canvas: &mut Canvas);
}

/// A classic-control environment built from its [`Dynamics`].
pub struct Classic<D: Dynamics> {
    spec: EnvSpec,
    rng: GameRng,
    state: Vec<f64>,
    obs: Vec<f32>,
    ended: bool,
    _d: std::marker::PhantomData<D>,
}

impl<D: Dynamics> Default for Classic<D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<D: Dynamics> Classic<D> {
    /// A new environment, already reset with seed 0 (call `reset(Some(seed))` to choose the seed).
    pub fn new() -> Self {
        let spec = D::spec();
        let mut env = Classic {
            obs: vec![0.0; spec.observation.len()],
            spec,
            rng: GameRng::new(RngKind::Fast, 0),
            state: vec![0.0; D::FIELDS.len()],
            ended: false,
            _d: std::marker::PhantomData,
        };
        env.reset(Some(0));
        env
    }

    /// The internal f64 state, in the order of [`Dynamics::FIELDS`].
    pub fn raw_state(&self) -> &[f64] {
        &self.state
    }

    /// Sets the internal state directly (used to replay reference trajectories).
    pub fn set_raw_state(&mut self, s: &[f64]) {
        self.state.copy_from_slice(s);
        self.ended = false;
        D::observe(&self.state, &mut self.obs);
    }

    fn input(&self, action: &Action) -> Result<Input, EnvError> {
        match (&self.spec.action, action) {
            (ActionSpace::Discrete { .. }, _) => crate::discrete_action(&self.spec, action).map(Input::Index),
            (ActionSpace::Continuous { dim, .. }, Action::Continuous(v)) => {
                if v.len() != *dim {
                    return Err(EnvError::ActionShape { id: self.spec.id.clone(), expected: *dim, got: v.len() });
                }
                match v[0] {
                    x if x.is_finite() => Ok(Input::Value(x)),
                    x => Err(EnvError::ActionNotFinite { id: self.spec.id.clone(), value: x }),
                }
            }
            (ActionSpace::Continuous { .. }, Action::Discrete(_)) => {
                Err(EnvError::ActionKind { id: self.spec.id.clone(), expected: "continuous", got: "discrete" })
            }
        }
    }
}

impl<D: Dynamics> Env for Classic<D> {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn reset(&mut self, seed: Option<u64>) -> &[f32] {
        if let Some(seed) = seed {
            self.rng = GameRng::new(RngKind::Fast, seed);
        }
        self.state = D::reset_state(&mut self.rng);
        self.ended = false;
        D::observe(&self.state, &mut self.obs);
        &self.obs
    }

    fn step(&mut self, action: &Action) -> Result<Step<'_>, EnvError> {
        if self.ended {
            return Err(EnvError::NeedsReset { id: self.spec.id.clone() });
        }
        let input = self.input(action)?;
        let (reward, terminated) = D::step(&mut self.state, input);
        self.ended = terminated;
        D::observe(&self.state, &mut self.obs);
        Ok(Step { obs: &self.obs, reward, terminated, truncated: false })
    }

    fn obs(&self) -> &[f32] {
        &self.obs
    }

    fn render(&self) -> RgbImage {
        let mut canvas = Canvas::new(D::SCREEN.0, D::SCREEN.1);
        D::draw(&self.state, &mut canvas);
        canvas.into_image()
    }

    fn state(&self) -> Value {
        let mut m = Map::new();
        for (k, v) in D::FIELDS.iter().zip(&self.state) {
            m.insert(k.to_string(), Value::from(*v));
        }
        Value::Object(m)
    }

    fn set_state(&mut self, doc: &Value) -> Result<(), EnvError> {
        let id = &self.spec.id;
        let obj = doc.as_object().ok_or_else(|| {
            EnvError::state(id, format!("expected an object with the fields {}", D::FIELDS.join(", ")))
        })?;
        if let Some(k) = obj.keys().find(|k| !D::FIELDS.contains(&k.as_str())) {
            return Err(EnvError::state(id, format!("unknown field `{k}`, expected {}", D::FIELDS.join(", "))));
        }
        let mut s = Vec::with_capacity(D::FIELDS.len());
        for f in D::FIELDS {
            let v = obj.get(*f).ok_or_else(|| EnvError::state(id, format!("missing field `{f}`")))?;
            match v.as_f64() {
                Some(x) if x.is_finite() => s.push(x),
                _ => {
                    return Err(EnvError::state(id, format!("field `{f}` must be a finite number, got {v}")));
                }
            }
        }
        self.set_raw_state(&s);
        self.ended = D::is_terminal(&self.state);
        Ok(())
    }
}
