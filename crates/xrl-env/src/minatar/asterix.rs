//! Asterix: the player moves on rows 1–8; enemies and gold cross the screen, one per row. Gold +1, an enemy ends
//! the episode. Spawning and movement speed up over time when ramping is on. Fire is a no-op.

use super::doc::{coord, in_range, non_negative};
use super::{DOWN, Game, GameRng, Grid, LEFT, RIGHT, UP};
use serde::{Deserialize, Serialize};

const RAMP_INTERVAL: i32 = 100;
const INIT_SPAWN_SPEED: i32 = 10;
const INIT_MOVE_INTERVAL: i32 = 5;

/// An enemy or a piece of gold; slot i of [`Asterix::entities`] lives on row i + 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entity {
    #[serde(deserialize_with = "coord")]
    pub x: i32,
    /// Moving right (else left).
    pub right: bool,
    pub gold: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Asterix {
    #[serde(deserialize_with = "coord")]
    pub player_x: i32,
    #[serde(deserialize_with = "player_row")]
    pub player_y: i32,
    /// Eight slots, one per row 1..=8; `null` for an empty row.
    pub entities: [Option<Entity>; 8],
    #[serde(deserialize_with = "positive")]
    pub spawn_speed: i32,
    #[serde(deserialize_with = "non_negative")]
    pub spawn_timer: i32,
    #[serde(deserialize_with = "positive")]
    pub move_speed: i32,
    #[serde(deserialize_with = "non_negative")]
    pub move_timer: i32,
    #[serde(deserialize_with = "ramp_timer")]
    pub ramp_timer: i32,
    #[serde(deserialize_with = "non_negative")]
    pub ramp_index: i32,
}

fn player_row<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    in_range(d, 1, 8)
}
fn positive<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    in_range(d, 1, i32::MAX as i64)
}
fn ramp_timer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    in_range(d, -1, i32::MAX as i64)
}

impl Asterix {
    fn spawn(&mut self, rng: &mut GameRng) {
        let right = rng.uniform() < 0.5;
        let gold = rng.uniform() < 1.0 / 3.0;
        let free: Vec<usize> = (0..8).filter(|&i| self.entities[i].is_none()).collect();
        if !free.is_empty() {
            let slot = free[rng.below(free.len())];
            self.entities[slot] = Some(Entity { x: if right { 0 } else { 9 }, right, gold });
        }
    }

    /// Resolves contact between the player and whatever is on its cell: gold is collected, an enemy kills.
    fn collide(&mut self, reward: &mut f64, terminal: &mut bool) {
        let row = self.player_y - 1;
        if let Some(e) = &self.entities[row as usize]
            && e.x == self.player_x
        {
            if e.gold {
                self.entities[row as usize] = None;
                *reward += 1.0;
            } else {
                *terminal = true;
            }
        }
    }
}

impl Game for Asterix {
    const NAME: &'static str = "Asterix";
    const CHANNELS: &'static [&'static str] = &["player", "enemy", "trail", "gold"];
    const MINIMAL_ACTIONS: &'static [usize] = &[0, 1, 2, 3, 4];

    fn new() -> Self {
        Asterix {
            player_x: 5,
            player_y: 5,
            entities: Default::default(),
            spawn_speed: INIT_SPAWN_SPEED,
            spawn_timer: INIT_SPAWN_SPEED,
            move_speed: INIT_MOVE_INTERVAL,
            move_timer: INIT_MOVE_INTERVAL,
            ramp_timer: RAMP_INTERVAL,
            ramp_index: 0,
        }
    }

    fn reset(&mut self, _rng: &mut GameRng) {
        *self = Self::new();
    }

    fn act(&mut self, a: usize, rng: &mut GameRng, ramping: bool) -> (f64, bool) {
        let (mut reward, mut terminal) = (0.0, false);
        if self.spawn_timer == 0 {
            self.spawn(rng);
            self.spawn_timer = self.spawn_speed;
        }
        match a {
            LEFT => self.player_x = (self.player_x - 1).max(0),
            RIGHT => self.player_x = (self.player_x + 1).min(9),
            UP => self.player_y = (self.player_y - 1).max(1),
            DOWN => self.player_y = (self.player_y + 1).min(8),
            _ => {}
        }
        // Contact before the entities move (the player walked into something) …
        self.collide(&mut reward, &mut terminal);
        if self.move_timer == 0 {
            self.move_timer = self.move_speed;
            for slot in self.entities.iter_mut() {
                if let Some(e) = slot {
                    e.x += if e.right { 1 } else { -1 };
                    if !(0..=9).contains(&e.x) {
                        *slot = None;
                    }
                }
            }
            // … and after (something walked into the player).
            self.collide(&mut reward, &mut terminal);
        }
        self.spawn_timer -= 1;
        self.move_timer -= 1;
        if ramping && (self.spawn_speed > 1 || self.move_speed > 1) {
            if self.ramp_timer >= 0 {
                self.ramp_timer -= 1;
            } else {
                if self.move_speed > 1 && self.ramp_index % 2 == 1 {
                    self.move_speed -= 1;
                }
                if self.spawn_speed > 1 {
                    self.spawn_speed -= 1;
                }
                self.ramp_index += 1;
                self.ramp_timer = RAMP_INTERVAL;
            }
        }
        (reward, terminal)
    }

    fn draw(&self, g: &mut Grid) {
        g.set(0, self.player_y, self.player_x);
        for (i, e) in self.entities.iter().enumerate() {
            if let Some(e) = e {
                let row = i as i32 + 1;
                g.set(if e.gold { 3 } else { 1 }, row, e.x);
                g.set(2, row, if e.right { e.x - 1 } else { e.x + 1 });
            }
        }
    }
}
