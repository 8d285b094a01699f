//! The random streams of the environments.
//!
//! `Fast` (xoshiro256++) is the default. `Numpy` reproduces numpy's legacy `RandomState` (MT19937) draw for draw:
//! `rand()` (53 bits from two 32-bit words) and `randint` (masked rejection sampling on 32-bit words). It exists so
//! that our MinAtar can be compared observation for observation with the Python reference, which draws every random
//! number of a game from one shared `RandomState`.

use rand::{Rng, SeedableRng};
use rand_mt::Mt;
use rand_xoshiro::Xoshiro256PlusPlus;

/// Which random generator an environment draws from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RngKind {
    #[default]
    Fast,
    /// numpy's legacy `RandomState(seed)`; seeds are taken modulo 2^32, as numpy requires them below 2^32.
    Numpy,
}

#[derive(Clone, Debug)]
pub enum GameRng {
    Fast(Xoshiro256PlusPlus),
    Numpy(Box<Mt>),
}

impl GameRng {
    pub fn new(kind: RngKind, seed: u64) -> Self {
        match kind {
            RngKind::Fast => GameRng::Fast(Xoshiro256PlusPlus::seed_from_u64(seed)),
            RngKind::Numpy => GameRng::Numpy(Box::new(Mt::new(seed as u32))),
        }
    }

    /// Uniform in [0, 1), like numpy's `rand()`.
    pub fn uniform(&mut self) -> f64 {
        match self {
            GameRng::Fast(r) => r.random::<f64>(),
            GameRng::Numpy(mt) => {
                let a = (mt.next_u32() >> 5) as f64;
                let b = (mt.next_u32() >> 6) as f64;
                (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
            }
        }
    }

    /// Uniform integer in [0, n), like numpy's legacy `randint(n)`. `n` must be ≥ 1.
    pub fn below(&mut self, n: usize) -> usize {
        debug_assert!(n >= 1);
        match self {
            GameRng::Fast(r) => r.random_range(0..n),
            GameRng::Numpy(mt) => {
                let range = (n - 1) as u32;
                if range == 0 {
                    return 0; // numpy draws nothing for a one-value range
                }
                let mask = u32::MAX >> range.leading_zeros();
                loop {
                    let v = mt.next_u32() & mask;
                    if v <= range {
                        return v as usize;
                    }
                }
            }
        }
    }

    /// Uniform in [low, high).
    pub fn uniform_range(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.uniform()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values printed by numpy 2.x: `r = np.random.RandomState(42); r.rand(), r.rand(), r.randint(2), r.randint(1, 9), r.randint(7)`.
    #[test]
    fn numpy_mode_matches_numpy_random_state() {
        let mut r = GameRng::new(RngKind::Numpy, 42);
        assert_eq!(r.uniform(), 0.3745401188473625);
        assert_eq!(r.uniform(), 0.9507143064099162);
        let ints = [r.below(2), 1 + r.below(8), r.below(7)];
        assert_eq!(ints, NUMPY_INTS_AFTER_TWO_RANDS);
    }
    const NUMPY_INTS_AFTER_TWO_RANDS: [usize; 3] = [0, 8, 4];
}
