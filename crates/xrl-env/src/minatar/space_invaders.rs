//! Space Invaders: a cannon on the bottom row shoots a 4×6 block of aliens that marches sideways and down and
//! shoots back. +1 per alien; a cleared block respawns (faster when ramping); being hit or reached ends the episode.

use super::doc::{cells, in_range, non_negative};
use super::{FIRE, Game, GameRng, Grid, LEFT, RIGHT};
use serde::{Deserialize, Serialize};

const SHOT_COOL_DOWN: i32 = 5;
const ENEMY_MOVE_INTERVAL: i32 = 12;
const ENEMY_SHOT_INTERVAL: i32 = 10;

type Cells = cells::Cells;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpaceInvaders {
    /// Cannon column (the cannon is on row 9).
    #[serde(deserialize_with = "super::doc::coord")]
    pub cannon_x: i32,
    #[serde(with = "cells")]
    pub aliens: Cells,
    #[serde(with = "cells")]
    pub bullets: Cells,
    #[serde(with = "cells")]
    pub enemy_bullets: Cells,
    /// −1: the block marches left; +1: right.
    #[serde(deserialize_with = "direction")]
    pub alien_dir: i32,
    #[serde(deserialize_with = "positive")]
    pub enemy_move_interval: i32,
    #[serde(deserialize_with = "non_negative")]
    pub alien_move_timer: i32,
    #[serde(deserialize_with = "non_negative")]
    pub alien_shot_timer: i32,
    #[serde(deserialize_with = "non_negative")]
    pub ramp_index: i32,
    #[serde(deserialize_with = "non_negative")]
    pub shot_timer: i32,
}

fn direction<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    match in_range(d, -1, 1)? {
        0 => Err(serde::de::Error::custom("must be -1 (left) or 1 (right)")),
        v => Ok(v),
    }
}
fn positive<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    in_range(d, 1, i32::MAX as i64)
}

fn alien_block() -> Cells {
    let mut a = [[false; 10]; 10];
    for row in a.iter_mut().take(4) {
        row[2..8].fill(true);
    }
    a
}

fn count(c: &Cells) -> i32 {
    c.iter().flatten().filter(|&&b| b).count() as i32
}

impl SpaceInvaders {
    fn any_in_column(&self, x: usize) -> bool {
        self.aliens.iter().any(|row| row[x])
    }
}

impl Game for SpaceInvaders {
    const NAME: &'static str = "SpaceInvaders";
    const CHANNELS: &'static [&'static str] =
        &["cannon", "alien", "alien_left", "alien_right", "friendly_bullet", "enemy_bullet"];
    const MINIMAL_ACTIONS: &'static [usize] = &[0, 1, 3, 5];

    fn new() -> Self {
        SpaceInvaders {
            cannon_x: 5,
            aliens: alien_block(),
            bullets: [[false; 10]; 10],
            enemy_bullets: [[false; 10]; 10],
            alien_dir: -1,
            enemy_move_interval: ENEMY_MOVE_INTERVAL,
            alien_move_timer: ENEMY_MOVE_INTERVAL,
            alien_shot_timer: ENEMY_SHOT_INTERVAL,
            ramp_index: 0,
            shot_timer: 0,
        }
    }

    fn reset(&mut self, _rng: &mut GameRng) {
        *self = Self::new();
    }

    fn act(&mut self, a: usize, _rng: &mut GameRng, ramping: bool) -> (f64, bool) {
        let (mut reward, mut terminal) = (0.0, false);
        let pos = self.cannon_x as usize;
        match a {
            FIRE if self.shot_timer == 0 => {
                self.bullets[9][pos] = true;
                self.shot_timer = SHOT_COOL_DOWN;
            }
            LEFT => self.cannon_x = (self.cannon_x - 1).max(0),
            RIGHT => self.cannon_x = (self.cannon_x + 1).min(9),
            _ => {}
        }
        let pos = self.cannon_x as usize;

        // Bullets travel one row per step and leave the screen at the edge.
        self.bullets.rotate_left(1);
        self.bullets[9] = [false; 10];
        self.enemy_bullets.rotate_right(1);
        self.enemy_bullets[0] = [false; 10];
        if self.enemy_bullets[9][pos] {
            terminal = true;
        }
        if self.aliens[9][pos] {
            terminal = true;
        }

        if self.alien_move_timer == 0 {
            self.alien_move_timer = count(&self.aliens).min(self.enemy_move_interval);
            if (self.any_in_column(0) && self.alien_dir < 0) || (self.any_in_column(9) && self.alien_dir > 0) {
                self.alien_dir = -self.alien_dir;
                if self.aliens[9].iter().any(|&b| b) {
                    terminal = true;
                }
                // The block steps down (a row on the bottom wraps to the top, as in the reference's roll).
                self.aliens.rotate_right(1);
            } else {
                for row in self.aliens.iter_mut() {
                    if self.alien_dir > 0 { row.rotate_right(1) } else { row.rotate_left(1) }
                }
            }
            if self.aliens[9][pos] {
                terminal = true;
            }
        }

        if self.alien_shot_timer == 0 {
            self.alien_shot_timer = ENEMY_SHOT_INTERVAL;
            // The column nearest the cannon (ties: the lower column) fires from its lowest alien.
            let nearest = (0..10usize).filter(|&x| self.any_in_column(x)).min_by_key(|&x| x.abs_diff(pos));
            if let Some(x) = nearest {
                let y = (0..10).rev().find(|&y| self.aliens[y][x]).expect("column has an alien");
                self.enemy_bullets[y][x] = true;
            }
        }

        for y in 0..10 {
            for x in 0..10 {
                if self.aliens[y][x] && self.bullets[y][x] {
                    self.aliens[y][x] = false;
                    self.bullets[y][x] = false;
                    reward += 1.0;
                }
            }
        }

        if self.shot_timer > 0 {
            self.shot_timer -= 1;
        }
        self.alien_move_timer -= 1;
        self.alien_shot_timer -= 1;

        if count(&self.aliens) == 0 {
            if ramping && self.enemy_move_interval > 6 {
                self.enemy_move_interval -= 1;
                self.ramp_index += 1;
            }
            self.aliens = alien_block();
        }
        (reward, terminal)
    }

    fn draw(&self, g: &mut Grid) {
        g.set(0, 9, self.cannon_x);
        let dir_channel = if self.alien_dir < 0 { 2 } else { 3 };
        for y in 0..10 {
            for x in 0..10 {
                let (yi, xi) = (y as i32, x as i32);
                if self.aliens[y][x] {
                    g.set(1, yi, xi);
                    g.set(dir_channel, yi, xi);
                }
                if self.bullets[y][x] {
                    g.set(4, yi, xi);
                }
                if self.enemy_bullets[y][x] {
                    g.set(5, yi, xi);
                }
            }
        }
    }
}
