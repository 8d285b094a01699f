//! MinAtar's five games (Young & Tian 2019), written from their published rules (`shared/research/MINATAR.md`).
//!
//! Observations are 10×10 indicator planes, channels first (C×10×10), as f32 0/1. Ids: `MinAtar/<Game>-v0` takes all
//! six actions (no-op, left, up, right, down, fire: the published setting), `MinAtar/<Game>-v1` the game's minimal
//! set. Sticky actions (default 0.1) act on the *executed* action and persist across unseeded resets, as in the
//! reference; a seeded reset restores the just-built state, so equal seeds give equal episodes. There is no
//! truncation: Freeway's 2,500-step limit ends the episode as a termination, as in the reference.
//!
//! With [`RngKind::Numpy`] the sticky draw and the game draw from one numpy-compatible `RandomState`, in the
//! reference's order, so an episode can be compared observation for observation with Python `minatar`.

mod asterix;
mod breakout;
mod freeway;
mod seaquest;
mod space_invaders;

pub use asterix::Asterix;
pub use breakout::Breakout;
pub use freeway::Freeway;
pub use seaquest::Seaquest;
pub use space_invaders::SpaceInvaders;

use crate::{Action, ActionSpace, Env, EnvError, EnvSpec, GameRng, MakeOptions, ObsSpace, RgbImage, RngKind, Step};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// The six action symbols every game shares, index → meaning.
pub const ACTION_MEANINGS: [&str; 6] = ["no-op", "left", "up", "right", "down", "fire"];
pub(crate) const NOOP: usize = 0;
pub(crate) const LEFT: usize = 1;
pub(crate) const UP: usize = 2;
pub(crate) const RIGHT: usize = 3;
pub(crate) const DOWN: usize = 4;
pub(crate) const FIRE: usize = 5;

/// Grid side.
pub const N: i32 = 10;

/// One MinAtar game: its state is the serde document users read and edit.
pub trait Game: Clone + Send + Serialize + DeserializeOwned + 'static {
    const NAME: &'static str;
    const CHANNELS: &'static [&'static str];
    /// The minimal action set, as indices into [`ACTION_MEANINGS`].
    const MINIMAL_ACTIONS: &'static [usize];
    /// A fresh game; `reset` is always called before the first step.
    fn new() -> Self;
    fn reset(&mut self, rng: &mut GameRng);
    /// One step with a full-set action (0..6); returns (reward, terminal).
    fn act(&mut self, a: usize, rng: &mut GameRng, ramping: bool) -> (f64, bool);
    /// Marks the observation planes; `grid` starts all zero.
    fn draw(&self, grid: &mut Grid);
    /// Checks what serde cannot (relations between fields); the message names the field.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The observation planes of one game, C×10×10.
pub struct Grid<'a> {
    out: &'a mut [f32],
}

impl Grid<'_> {
    /// Marks channel `c` at row `y`, column `x`; cells outside the grid are ignored.
    #[inline]
    pub fn set(&mut self, c: usize, y: i32, x: i32) {
        if (0..N).contains(&y) && (0..N).contains(&x) {
            self.out[c * 100 + (y * N + x) as usize] = 1.0;
        }
    }
}

/// The ids of the five games, both versions.
pub fn ids() -> Vec<String> {
    let names = [Asterix::NAME, Breakout::NAME, Freeway::NAME, Seaquest::NAME, SpaceInvaders::NAME];
    names.iter().flat_map(|n| [format!("MinAtar/{n}-v0"), format!("MinAtar/{n}-v1")]).collect()
}

pub(crate) fn make(id: &str, options: &MakeOptions) -> Result<Option<Box<dyn Env>>, EnvError> {
    let Some(rest) = id.strip_prefix("MinAtar/") else {
        return Ok(None);
    };
    let (name, minimal) = match (rest.strip_suffix("-v0"), rest.strip_suffix("-v1")) {
        (Some(n), _) => (n, false),
        (_, Some(n)) => (n, true),
        _ => return Ok(None),
    };
    if !(0.0..=1.0).contains(&options.sticky_action_prob) {
        return Err(EnvError::InvalidOption {
            id: id.to_string(),
            message: format!("sticky action probability must be in [0, 1], got {}", options.sticky_action_prob),
        });
    }
    fn boxed<G: Game>(minimal: bool, o: &MakeOptions) -> Box<dyn Env> {
        Box::new(MinAtar::<G>::new(minimal, o))
    }
    Ok(Some(match name {
        "Asterix" => boxed::<Asterix>(minimal, options),
        "Breakout" => boxed::<Breakout>(minimal, options),
        "Freeway" => boxed::<Freeway>(minimal, options),
        "Seaquest" => boxed::<Seaquest>(minimal, options),
        "SpaceInvaders" => boxed::<SpaceInvaders>(minimal, options),
        _ => return Ok(None),
    }))
}

/// A MinAtar game as an [`Env`]: sticky actions, action sets, observation buffer and rendering.
pub struct MinAtar<G: Game> {
    spec: EnvSpec,
    game: G,
    rng: GameRng,
    rng_kind: RngKind,
    sticky_action_prob: f64,
    ramping: bool,
    /// `Some(set)` for `-v1` ids: agent action index → full-set action.
    action_set: Option<&'static [usize]>,
    last_action: usize,
    obs: Vec<f32>,
    ended: bool,
}

/// The state document: the sticky action and the game.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc<G> {
    /// The last executed full-set action (what a sticky step repeats).
    last_action: usize,
    game: G,
}

impl<G: Game> MinAtar<G> {
    /// A new game, reset with seed 0.
    pub fn new(minimal: bool, options: &MakeOptions) -> Self {
        let action_set = minimal.then_some(G::MINIMAL_ACTIONS);
        let meanings: Vec<&str> = match action_set {
            Some(set) => set.iter().map(|&a| ACTION_MEANINGS[a]).collect(),
            None => ACTION_MEANINGS.to_vec(),
        };
        let spec = EnvSpec {
            id: format!("MinAtar/{}-v{}", G::NAME, u8::from(minimal)),
            observation: ObsSpace::Binary { shape: vec![G::CHANNELS.len(), N as usize, N as usize] },
            action: ActionSpace::discrete(&meanings),
            max_episode_steps: None,
            reward_threshold: None,
        };
        let mut env = MinAtar {
            obs: vec![0.0; spec.observation.len()],
            spec,
            game: G::new(),
            rng: GameRng::new(options.rng, 0),
            rng_kind: options.rng,
            sticky_action_prob: options.sticky_action_prob,
            ramping: options.difficulty_ramping,
            action_set,
            last_action: NOOP,
            ended: false,
        };
        env.reset(Some(0));
        env
    }

    fn refresh_obs(&mut self) {
        self.obs.fill(0.0);
        self.game.draw(&mut Grid { out: &mut self.obs });
    }
}

impl<G: Game> Env for MinAtar<G> {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn reset(&mut self, seed: Option<u64>) -> &[f32] {
        if let Some(seed) = seed {
            self.rng = GameRng::new(self.rng_kind, seed);
            self.last_action = NOOP;
        }
        self.game.reset(&mut self.rng);
        self.ended = false;
        self.refresh_obs();
        &self.obs
    }

    fn step(&mut self, action: &Action) -> Result<Step<'_>, EnvError> {
        if self.ended {
            return Err(EnvError::NeedsReset { id: self.spec.id.clone() });
        }
        let index = crate::discrete_action(&self.spec, action)?;
        let mut a = self.action_set.map_or(index, |set| set[index]);
        // The reference draws for stickiness on every step, whatever the probability.
        if self.rng.uniform() < self.sticky_action_prob {
            a = self.last_action;
        }
        self.last_action = a;
        let (reward, terminated) = self.game.act(a, &mut self.rng, self.ramping);
        self.ended = terminated;
        self.refresh_obs();
        Ok(Step { obs: &self.obs, reward, terminated, truncated: false })
    }

    fn obs(&self) -> &[f32] {
        &self.obs
    }

    fn render(&self) -> RgbImage {
        render_planes(&self.obs, G::CHANNELS.len(), 32)
    }

    fn state(&self) -> serde_json::Value {
        serde_json::to_value(Doc { last_action: self.last_action, game: self.game.clone() })
            .expect("game state serialises")
    }

    fn set_state(&mut self, doc: &serde_json::Value) -> Result<(), EnvError> {
        let id = &self.spec.id;
        let doc: Doc<G> = serde_path_to_error::deserialize(doc).map_err(|e| {
            let path = e.path().to_string();
            EnvError::state(id, format!("field `{path}`: {}", e.into_inner()))
        })?;
        if doc.last_action >= ACTION_MEANINGS.len() {
            return Err(EnvError::state(id, format!("field `last_action`: must be 0..=5, got {}", doc.last_action)));
        }
        doc.game.validate().map_err(|m| EnvError::state(id, m))?;
        self.game = doc.game;
        self.last_action = doc.last_action;
        self.ended = false;
        self.refresh_obs();
        Ok(())
    }
}

/// The colour of channel `c` of `n`: matplotlib's "cubehelix" map, as the reference's renderer uses, but sampled
/// over [0.25, 0.95] rather than evenly from 0, so that channel 0 (the player in every game) is not near-black on
/// the black background.
pub fn channel_colour(c: usize, n: usize) -> [u8; 3] {
    let x = 0.25 + 0.7 * c as f64 / (n.max(2) - 1) as f64;
    let (s, r, h) = (0.5, -1.5, 1.0);
    let amp = h * x * (1.0 - x) / 2.0;
    let phi = 2.0 * std::f64::consts::PI * (s / 3.0 + r * x);
    let (cp, sp) = (phi.cos(), phi.sin());
    let f = |p0: f64, p1: f64| ((x + amp * (p0 * cp + p1 * sp)).clamp(0.0, 1.0) * 255.0).round() as u8;
    [f(-0.14861, 1.78277), f(-0.29227, -0.90649), f(1.97294, 0.0)]
}

/// Renders C×10×10 planes as an RGB picture: black background with faint cell borders, each cell the colour of
/// its highest active channel (as the reference's renderer), `scale` pixels per cell.
pub fn render_planes(planes: &[f32], channels: usize, scale: u32) -> RgbImage {
    let palette: Vec<[u8; 3]> = (0..channels).map(|c| channel_colour(c, channels)).collect();
    let side = N as u32 * scale;
    RgbImage::from_fn(side, side, |px, py| {
        let (x, y) = ((px / scale) as usize, (py / scale) as usize);
        let top = (0..channels).rev().find(|&c| planes[c * 100 + y * 10 + x] > 0.5);
        let border = scale >= 8 && (px % scale == 0 || py % scale == 0);
        image::Rgb(match top {
            Some(c) => palette[c],
            None if border => [40, 40, 40],
            None => [0, 0, 0],
        })
    })
}

/// Serde helpers for the state documents.
pub(crate) mod doc {
    use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error};

    /// A grid coordinate, 0..=9.
    pub fn coord<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
        in_range(d, 0, 9)
    }

    pub fn in_range<'de, D: Deserializer<'de>>(d: D, lo: i64, hi: i64) -> Result<i32, D::Error> {
        let v = i64::deserialize(d)?;
        if (lo..=hi).contains(&v) {
            Ok(v as i32)
        } else {
            Err(D::Error::custom(format!("must be in {lo}..={hi}, got {v}")))
        }
    }

    pub fn non_negative<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
        in_range(d, 0, i32::MAX as i64)
    }

    /// A set of cells of the 10×10 grid, written as a list of `[row, column]` pairs.
    pub mod cells {
        use super::*;
        pub type Cells = [[bool; 10]; 10];

        pub fn serialize<S: Serializer>(cells: &Cells, s: S) -> Result<S::Ok, S::Error> {
            let list: Vec<[usize; 2]> =
                (0..10).flat_map(|y| (0..10).map(move |x| [y, x])).filter(|&[y, x]| cells[y][x]).collect();
            list.serialize(s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Cells, D::Error> {
            let list = Vec::<[i64; 2]>::deserialize(d)?;
            let mut cells = [[false; 10]; 10];
            for [y, x] in list {
                if !(0..10).contains(&y) || !(0..10).contains(&x) {
                    return Err(D::Error::custom(format!("cell [{y}, {x}] is outside the 10×10 grid")));
                }
                cells[y as usize][x as usize] = true;
            }
            Ok(cells)
        }
    }
}
