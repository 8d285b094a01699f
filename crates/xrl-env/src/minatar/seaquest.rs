//! Seaquest: a submarine shoots enemy fish and subs (+1 each), rescues divers, and must surface before its oxygen
//! runs out. Surfacing with six divers scores a bonus from the oxygen left; surfacing with none ends the episode.
//! Enemies spawn faster and move faster over time when ramping is on.

use super::doc::{in_range, non_negative};
use super::{DOWN, FIRE, Game, GameRng, Grid, LEFT, RIGHT, UP};
use serde::{Deserialize, Serialize};

const MAX_OXYGEN: i32 = 200;
const INIT_SPAWN_SPEED: i32 = 20;
const DIVER_SPAWN_SPEED: i32 = 30;
const INIT_MOVE_INTERVAL: i32 = 5;
const SHOT_COOL_DOWN: i32 = 5;
const ENEMY_SHOT_INTERVAL: i32 = 10;
const DIVER_MOVE_INTERVAL: i32 = 5;

/// A bullet (the sub's or an enemy's). Bullets move one cell per step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bullet {
    #[serde(deserialize_with = "super::doc::coord")]
    pub x: i32,
    #[serde(deserialize_with = "super::doc::coord")]
    pub y: i32,
    pub right: bool,
}

/// A fish, an enemy sub or a diver: moves one cell every `move_timer` expiry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mover {
    #[serde(deserialize_with = "super::doc::coord")]
    pub x: i32,
    #[serde(deserialize_with = "lane")]
    pub y: i32,
    pub right: bool,
    #[serde(deserialize_with = "non_negative")]
    pub move_timer: i32,
    /// Enemy subs only: steps until the next shot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shot_timer: Option<i32>,
}

fn lane<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    in_range(d, 1, 8)
}
fn sub_row<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    in_range(d, 0, 8)
}
fn oxygen<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    in_range(d, -1, MAX_OXYGEN as i64)
}
fn divers<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    // Negative counts arise from the reference's surfacing quirk (see `surface`).
    in_range(d, i32::MIN as i64, 6)
}
fn positive<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    in_range(d, 1, i32::MAX as i64)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seaquest {
    #[serde(deserialize_with = "super::doc::coord")]
    pub sub_x: i32,
    #[serde(deserialize_with = "sub_row")]
    pub sub_y: i32,
    /// The sub faces right (else left).
    pub sub_right: bool,
    #[serde(deserialize_with = "oxygen")]
    pub oxygen: i32,
    #[serde(deserialize_with = "divers")]
    pub divers_carried: i32,
    /// Lists are kept in spawn order; each step processes them newest first, as the reference does.
    pub bullets: Vec<Bullet>,
    pub enemy_bullets: Vec<Bullet>,
    pub fish: Vec<Mover>,
    pub enemy_subs: Vec<Mover>,
    pub divers: Vec<Mover>,
    #[serde(deserialize_with = "positive")]
    pub enemy_spawn_speed: i32,
    #[serde(deserialize_with = "non_negative")]
    pub enemy_spawn_timer: i32,
    #[serde(deserialize_with = "non_negative")]
    pub diver_spawn_timer: i32,
    #[serde(deserialize_with = "positive")]
    pub move_speed: i32,
    #[serde(deserialize_with = "non_negative")]
    pub ramp_index: i32,
    #[serde(deserialize_with = "non_negative")]
    pub shot_timer: i32,
    /// The sub was at the surface on the previous step.
    pub surface: bool,
}

fn step_x(m_right: bool) -> i32 {
    if m_right { 1 } else { -1 }
}

fn on(x: i32, y: i32, bx: i32, by: i32) -> bool {
    x == bx && y == by
}

impl Seaquest {
    fn spawn_enemy(&mut self, rng: &mut GameRng) {
        let right = rng.uniform() < 0.5;
        let is_sub = rng.uniform() < 1.0 / 3.0;
        let x = if right { 0 } else { 9 };
        let y = 1 + rng.below(8) as i32;
        // No two enemies on one lane travel in opposite directions.
        if self.enemy_subs.iter().chain(&self.fish).any(|e| e.y == y && e.right != right) {
            return;
        }
        let mover = Mover { x, y, right, move_timer: self.move_speed, shot_timer: None };
        if is_sub {
            self.enemy_subs.push(Mover { shot_timer: Some(ENEMY_SHOT_INTERVAL), ..mover });
        } else {
            self.fish.push(mover);
        }
    }

    fn spawn_diver(&mut self, rng: &mut GameRng) {
        let right = rng.uniform() < 0.5;
        let x = if right { 0 } else { 9 };
        let y = 1 + rng.below(8) as i32;
        self.divers.push(Mover { x, y, right, move_timer: DIVER_MOVE_INTERVAL, shot_timer: None });
    }

    fn player_at(&self, x: i32, y: i32) -> bool {
        on(x, y, self.sub_x, self.sub_y)
    }

    /// Removes the first friendly bullet on (x, y), if any; true if one was there.
    fn take_bullet_at(&mut self, x: i32, y: i32) -> bool {
        match self.bullets.iter().position(|b| on(b.x, b.y, x, y)) {
            Some(i) => {
                self.bullets.remove(i);
                true
            }
            None => false,
        }
    }

    /// Surfacing: a full load of six divers scores oxygen/20; oxygen refills; difficulty ramps.
    fn surface(&mut self, ramping: bool) -> f64 {
        self.surface = true;
        let reward = if self.divers_carried == 6 {
            self.divers_carried = 0;
            (self.oxygen * 10 / MAX_OXYGEN) as f64
        } else {
            0.0
        };
        self.oxygen = MAX_OXYGEN;
        // The reference decrements even after emptying a full load (leaving −1), which grants free surfacings;
        // published results include it, so it is kept.
        self.divers_carried -= 1;
        if ramping && (self.enemy_spawn_speed > 1 || self.move_speed > 2) {
            if self.move_speed > 2 && self.ramp_index % 2 == 1 {
                self.move_speed -= 1;
            }
            if self.enemy_spawn_speed > 1 {
                self.enemy_spawn_speed -= 1;
            }
            self.ramp_index += 1;
        }
        reward
    }

    /// Moves fish (`subs == false`) or enemy subs, newest first; returns (reward, player hit).
    fn move_enemies(&mut self, subs: bool) -> (f64, bool) {
        let (mut reward, mut hit) = (0.0, false);
        let mut list = std::mem::take(if subs { &mut self.enemy_subs } else { &mut self.fish });
        let mut i = list.len();
        while i > 0 {
            i -= 1;
            let mut removed = false;
            let e = &mut list[i];
            if self.player_at(e.x, e.y) {
                hit = true;
            }
            if e.move_timer == 0 {
                e.move_timer = self.move_speed;
                e.x += step_x(e.right);
                if !(0..=9).contains(&e.x) {
                    removed = true;
                } else if self.player_at(e.x, e.y) {
                    hit = true;
                } else if self.take_bullet_at(e.x, e.y) {
                    removed = true;
                    reward += 1.0;
                }
            } else {
                e.move_timer -= 1;
            }
            // Subs shoot on their own clock, even on the step they leave or are destroyed.
            if let Some(t) = e.shot_timer.as_mut() {
                if *t == 0 {
                    *t = ENEMY_SHOT_INTERVAL;
                    self.enemy_bullets.push(Bullet { x: e.x, y: e.y, right: e.right });
                } else {
                    *t -= 1;
                }
            }
            if removed {
                list.remove(i);
            }
        }
        *(if subs { &mut self.enemy_subs } else { &mut self.fish }) = list;
        (reward, hit)
    }
}

impl Game for Seaquest {
    const NAME: &'static str = "Seaquest";
    const CHANNELS: &'static [&'static str] = &[
        "sub_front",
        "sub_back",
        "friendly_bullet",
        "trail",
        "enemy_bullet",
        "enemy_fish",
        "enemy_sub",
        "oxygen_gauge",
        "diver_gauge",
        "diver",
    ];
    const MINIMAL_ACTIONS: &'static [usize] = &[0, 1, 2, 3, 4, 5];

    fn new() -> Self {
        Seaquest {
            sub_x: 5,
            sub_y: 0,
            sub_right: false,
            oxygen: MAX_OXYGEN,
            divers_carried: 0,
            bullets: vec![],
            enemy_bullets: vec![],
            fish: vec![],
            enemy_subs: vec![],
            divers: vec![],
            enemy_spawn_speed: INIT_SPAWN_SPEED,
            enemy_spawn_timer: INIT_SPAWN_SPEED,
            diver_spawn_timer: DIVER_SPAWN_SPEED,
            move_speed: INIT_MOVE_INTERVAL,
            ramp_index: 0,
            shot_timer: 0,
            surface: true,
        }
    }

    fn reset(&mut self, _rng: &mut GameRng) {
        *self = Self::new();
    }

    fn act(&mut self, a: usize, rng: &mut GameRng, ramping: bool) -> (f64, bool) {
        let (mut reward, mut terminal) = (0.0, false);
        if self.enemy_spawn_timer == 0 {
            self.spawn_enemy(rng);
            self.enemy_spawn_timer = self.enemy_spawn_speed;
        }
        if self.diver_spawn_timer == 0 {
            self.spawn_diver(rng);
            self.diver_spawn_timer = DIVER_SPAWN_SPEED;
        }

        match a {
            FIRE if self.shot_timer == 0 => {
                self.bullets.push(Bullet { x: self.sub_x, y: self.sub_y, right: self.sub_right });
                self.shot_timer = SHOT_COOL_DOWN;
            }
            LEFT => (self.sub_x, self.sub_right) = ((self.sub_x - 1).max(0), false),
            RIGHT => (self.sub_x, self.sub_right) = ((self.sub_x + 1).min(9), true),
            UP => self.sub_y = (self.sub_y - 1).max(0),
            DOWN => self.sub_y = (self.sub_y + 1).min(8),
            _ => {}
        }

        // Friendly bullets, newest first: fish are checked before subs.
        let mut i = self.bullets.len();
        while i > 0 {
            i -= 1;
            let b = &mut self.bullets[i];
            b.x += step_x(b.right);
            let (x, y) = (b.x, b.y);
            if !(0..=9).contains(&x) {
                self.bullets.remove(i);
            } else if let Some(f) = self.fish.iter().position(|f| on(f.x, f.y, x, y)) {
                self.fish.remove(f);
                self.bullets.remove(i);
                reward += 1.0;
            } else if let Some(s) = self.enemy_subs.iter().position(|s| on(s.x, s.y, x, y)) {
                self.enemy_subs.remove(s);
                self.bullets.remove(i);
                reward += 1.0;
            }
        }

        // Divers, newest first: picked up on contact while there is room.
        let mut i = self.divers.len();
        while i > 0 {
            i -= 1;
            let d = &self.divers[i];
            if self.player_at(d.x, d.y) && self.divers_carried < 6 {
                self.divers.remove(i);
                self.divers_carried += 1;
                continue;
            }
            let d = &mut self.divers[i];
            if d.move_timer == 0 {
                d.move_timer = DIVER_MOVE_INTERVAL;
                d.x += step_x(d.right);
                let (x, y) = (d.x, d.y);
                if !(0..=9).contains(&x) {
                    self.divers.remove(i);
                } else if self.player_at(x, y) && self.divers_carried < 6 {
                    self.divers.remove(i);
                    self.divers_carried += 1;
                }
            } else {
                d.move_timer -= 1;
            }
        }

        let (r, hit) = self.move_enemies(true);
        reward += r;
        terminal |= hit;

        // Enemy bullets, newest first: they move every step.
        let mut i = self.enemy_bullets.len();
        while i > 0 {
            i -= 1;
            if self.player_at(self.enemy_bullets[i].x, self.enemy_bullets[i].y) {
                terminal = true;
            }
            let b = &mut self.enemy_bullets[i];
            b.x += step_x(b.right);
            let (x, y) = (b.x, b.y);
            if !(0..=9).contains(&x) {
                self.enemy_bullets.remove(i);
            } else if self.player_at(x, y) {
                terminal = true;
            }
        }

        let (r, hit) = self.move_enemies(false);
        reward += r;
        terminal |= hit;

        if self.enemy_spawn_timer > 0 {
            self.enemy_spawn_timer -= 1;
        }
        if self.diver_spawn_timer > 0 {
            self.diver_spawn_timer -= 1;
        }
        if self.shot_timer > 0 {
            self.shot_timer -= 1;
        }
        if self.oxygen <= 0 {
            terminal = true;
        }
        if self.sub_y > 0 {
            self.oxygen -= 1;
            self.surface = false;
        } else if !self.surface {
            if self.divers_carried == 0 {
                terminal = true;
            } else {
                reward += self.surface(ramping);
            }
        }
        (reward, terminal)
    }

    fn draw(&self, g: &mut Grid) {
        g.set(0, self.sub_y, self.sub_x);
        let back = if self.sub_right { self.sub_x - 1 } else { self.sub_x + 1 };
        g.set(1, self.sub_y, back);
        for x in 0..(self.oxygen * 10 / MAX_OXYGEN) {
            g.set(7, 9, x);
        }
        for x in (9 - self.divers_carried)..9 {
            g.set(8, 9, x);
        }
        for b in &self.bullets {
            g.set(2, b.y, b.x);
        }
        for b in &self.enemy_bullets {
            g.set(4, b.y, b.x);
        }
        let trail = |m: &Mover| if m.right { m.x - 1 } else { m.x + 1 };
        for (list, c) in [(&self.fish, 5), (&self.enemy_subs, 6), (&self.divers, 9)] {
            for m in list {
                g.set(c, m.y, m.x);
                g.set(3, m.y, trail(m));
            }
        }
    }

    fn validate(&self) -> Result<(), String> {
        for (i, s) in self.enemy_subs.iter().enumerate() {
            if s.shot_timer.is_none() {
                return Err(format!("field `game.enemy_subs[{i}].shot_timer`: enemy subs need a shot timer"));
            }
        }
        for (name, list) in [("fish", &self.fish), ("divers", &self.divers)] {
            if let Some(i) = list.iter().position(|m| m.shot_timer.is_some()) {
                return Err(format!("field `game.{name}[{i}].shot_timer`: only enemy subs shoot"));
            }
        }
        Ok(())
    }
}
