//! Breakout: a paddle on the bottom row bounces a ball into three rows of bricks. +1 per brick; the rows refill when
//! cleared; missing the ball ends the episode. No difficulty ramping.

use super::doc::{cells, coord, in_range};
use super::{Game, GameRng, Grid, LEFT, RIGHT};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Breakout {
    #[serde(deserialize_with = "coord")]
    pub ball_x: i32,
    #[serde(deserialize_with = "coord")]
    pub ball_y: i32,
    /// 0 up-left, 1 up-right, 2 down-right, 3 down-left.
    #[serde(deserialize_with = "direction")]
    pub ball_dir: i32,
    /// Paddle column (the paddle is on row 9).
    #[serde(deserialize_with = "coord")]
    pub paddle_x: i32,
    /// The ball's previous cell (drawn as its trail).
    #[serde(deserialize_with = "coord")]
    pub last_x: i32,
    #[serde(deserialize_with = "coord")]
    pub last_y: i32,
    /// The ball hit a brick on the previous step; it then passes into the next brick without breaking it.
    pub strike: bool,
    #[serde(with = "cells")]
    pub bricks: cells::Cells,
}

fn direction<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    in_range(d, 0, 3)
}

/// (dx, dy) per direction; y grows downward.
const DIRS: [(i32, i32); 4] = [(-1, -1), (1, -1), (1, 1), (-1, 1)];
const FLIP_X: [i32; 4] = [1, 0, 3, 2];
const FLIP_Y: [i32; 4] = [3, 2, 1, 0];
const REVERSE: [i32; 4] = [2, 3, 0, 1];

impl Breakout {
    fn fill_bricks(&mut self) {
        for row in 1..=3 {
            self.bricks[row] = [true; 10];
        }
    }
}

impl Game for Breakout {
    const NAME: &'static str = "Breakout";
    const CHANNELS: &'static [&'static str] = &["paddle", "ball", "trail", "brick"];
    const MINIMAL_ACTIONS: &'static [usize] = &[0, 1, 3];

    fn new() -> Self {
        Breakout {
            ball_x: 0,
            ball_y: 3,
            ball_dir: 2,
            paddle_x: 4,
            last_x: 0,
            last_y: 3,
            strike: false,
            bricks: [[false; 10]; 10],
        }
    }

    fn reset(&mut self, rng: &mut GameRng) {
        *self = Self::new();
        // The ball starts on row 3 at the left edge moving down-right, or the right edge moving down-left.
        if rng.below(2) == 1 {
            (self.ball_x, self.ball_dir) = (9, 3);
        }
        (self.last_x, self.last_y) = (self.ball_x, self.ball_y);
        self.fill_bricks();
    }

    fn act(&mut self, a: usize, _rng: &mut GameRng, _ramping: bool) -> (f64, bool) {
        let mut reward = 0.0;
        let mut terminal = false;
        match a {
            LEFT => self.paddle_x = (self.paddle_x - 1).max(0),
            RIGHT => self.paddle_x = (self.paddle_x + 1).min(9),
            _ => {}
        }
        (self.last_x, self.last_y) = (self.ball_x, self.ball_y);
        let (dx, dy) = DIRS[self.ball_dir as usize];
        let (mut nx, mut ny) = (self.ball_x + dx, self.ball_y + dy);
        let mut strike_now = false;
        if !(0..=9).contains(&nx) {
            nx = nx.clamp(0, 9);
            self.ball_dir = FLIP_X[self.ball_dir as usize];
        }
        if ny < 0 {
            ny = 0;
            self.ball_dir = FLIP_Y[self.ball_dir as usize];
        } else if self.bricks[ny as usize][nx as usize] {
            strike_now = true;
            if !self.strike {
                reward += 1.0;
                self.strike = true;
                self.bricks[ny as usize][nx as usize] = false;
                ny = self.last_y;
                self.ball_dir = FLIP_Y[self.ball_dir as usize];
            }
        } else if ny == 9 {
            if self.bricks.iter().all(|row| row.iter().all(|b| !b)) {
                self.fill_bricks();
            }
            if self.ball_x == self.paddle_x {
                self.ball_dir = FLIP_Y[self.ball_dir as usize];
                ny = self.last_y;
            } else if nx == self.paddle_x {
                self.ball_dir = REVERSE[self.ball_dir as usize];
                ny = self.last_y;
            } else {
                terminal = true;
            }
        }
        if !strike_now {
            self.strike = false;
        }
        (self.ball_x, self.ball_y) = (nx, ny);
        (reward, terminal)
    }

    fn draw(&self, g: &mut Grid) {
        g.set(0, 9, self.paddle_x);
        g.set(1, self.ball_y, self.ball_x);
        g.set(2, self.last_y, self.last_x);
        for (y, row) in self.bricks.iter().enumerate() {
            for (x, &b) in row.iter().enumerate() {
                if b {
                    g.set(3, y as i32, x as i32);
                }
            }
        }
    }
}
