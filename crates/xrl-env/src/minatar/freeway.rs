//! Freeway: a chicken in column 4 crosses eight lanes of traffic. +1 per crossing (then the traffic is re-drawn);
//! a car sends the chicken back to the bottom. The episode ends after 2,500 steps (a termination, as in the reference).

use super::doc::{coord, in_range, non_negative};
use super::{DOWN, Game, GameRng, Grid, UP};
use serde::{Deserialize, Serialize};

const PLAYER_SPEED: i32 = 3;
const TIME_LIMIT: i32 = 2500;
const CHICKEN_X: i32 = 4;

/// A car; car i drives on row i + 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Car {
    #[serde(deserialize_with = "coord")]
    pub x: i32,
    /// Steps until the car next moves.
    #[serde(deserialize_with = "non_negative")]
    pub timer: i32,
    /// Signed speed: the sign is the direction, |speed| in 1..=5 (a car of |speed| k moves every k + 1 steps).
    #[serde(deserialize_with = "speed")]
    pub speed: i32,
}

fn timer_or_ended<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    in_range(d, -1, TIME_LIMIT as i64)
}

fn speed<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    let v = in_range(d, -5, 5)?;
    if v == 0 {
        return Err(serde::de::Error::custom("must be a non-zero speed in -5..=5"));
    }
    Ok(v)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Freeway {
    /// The chicken's row (it always stands in column 4).
    #[serde(deserialize_with = "coord")]
    pub chicken_y: i32,
    #[serde(deserialize_with = "non_negative")]
    pub move_timer: i32,
    /// Steps left before the episode ends (−1 once it has ended).
    #[serde(deserialize_with = "timer_or_ended")]
    pub terminate_timer: i32,
    pub cars: [Car; 8],
}

impl Freeway {
    /// New speeds and directions for all cars (positions kept); the reference draws all speeds, then all signs.
    fn randomise_cars(&mut self, rng: &mut GameRng) {
        let speeds: [i32; 8] = std::array::from_fn(|_| 1 + rng.below(5) as i32);
        let signs: [i32; 8] = std::array::from_fn(|_| if rng.uniform() - 0.5 < 0.0 { -1 } else { 1 });
        for (car, (s, d)) in self.cars.iter_mut().zip(speeds.into_iter().zip(signs)) {
            car.speed = s * d;
            car.timer = s;
        }
    }

    fn hit(&self, car_row: i32, car: &Car) -> bool {
        car.x == CHICKEN_X && car_row == self.chicken_y
    }
}

impl Game for Freeway {
    const NAME: &'static str = "Freeway";
    const CHANNELS: &'static [&'static str] = &["chicken", "car", "speed1", "speed2", "speed3", "speed4", "speed5"];
    const MINIMAL_ACTIONS: &'static [usize] = &[0, 2, 4];

    fn new() -> Self {
        Freeway {
            chicken_y: 9,
            move_timer: PLAYER_SPEED,
            terminate_timer: TIME_LIMIT,
            cars: std::array::from_fn(|_| Car { x: 0, timer: 1, speed: 1 }),
        }
    }

    fn reset(&mut self, rng: &mut GameRng) {
        *self = Self::new();
        self.randomise_cars(rng);
    }

    fn act(&mut self, a: usize, rng: &mut GameRng, _ramping: bool) -> (f64, bool) {
        let mut reward = 0.0;
        if a == UP && self.move_timer == 0 {
            self.move_timer = PLAYER_SPEED;
            self.chicken_y = (self.chicken_y - 1).max(0);
        } else if a == DOWN && self.move_timer == 0 {
            self.move_timer = PLAYER_SPEED;
            self.chicken_y = (self.chicken_y + 1).min(9);
        }
        if self.chicken_y == 0 {
            reward += 1.0;
            self.randomise_cars(rng);
            self.chicken_y = 9;
        }
        for i in 0..8 {
            let row = i as i32 + 1;
            if self.hit(row, &self.cars[i]) {
                self.chicken_y = 9;
            }
            let car = &mut self.cars[i];
            if car.timer == 0 {
                car.timer = car.speed.abs();
                car.x = (car.x + car.speed.signum()).rem_euclid(10);
                if self.hit(row, &self.cars[i]) {
                    self.chicken_y = 9;
                }
            } else {
                car.timer -= 1;
            }
        }
        if self.move_timer > 0 {
            self.move_timer -= 1;
        }
        self.terminate_timer -= 1;
        (reward, self.terminate_timer < 0)
    }

    fn draw(&self, g: &mut Grid) {
        g.set(0, self.chicken_y, CHICKEN_X);
        for (i, car) in self.cars.iter().enumerate() {
            let row = i as i32 + 1;
            g.set(1, row, car.x);
            let trail = (car.x - car.speed.signum()).rem_euclid(10);
            g.set(1 + car.speed.unsigned_abs() as usize, row, trail);
        }
    }
}
