//! NumPy's `SeedSequence`, `PCG64` and `Generator.integers` for small ranges, written from NumPy's documented
//! algorithms so that `reset(seed)` here seeds ALE and draws no-op counts exactly as ale-py + Gymnasium do for the
//! same seed (ale-py's `seed_game`: `SeedSequence(seed).generate_state(2)` gives the NumPy and ALE seeds).

const INIT_A: u32 = 0x43b0_d7e5;
const MULT_A: u32 = 0x931e_8875;
const INIT_B: u32 = 0x8b51_f9dd;
const MULT_B: u32 = 0x58f3_8ded;
const MIX_MULT_L: u32 = 0xca01_f9dd;
const MIX_MULT_R: u32 = 0x4973_f715;
const XSHIFT: u32 = 16;
const POOL: usize = 4;

/// `numpy.random.SeedSequence(entropy)` for an integer entropy and no spawn key.
pub struct SeedSequence {
    pool: [u32; POOL],
}

impl SeedSequence {
    pub fn new(entropy: u64) -> Self {
        // An integer becomes its 32-bit words, least significant first (0 is one zero word).
        let mut words = vec![entropy as u32];
        if entropy >> 32 != 0 {
            words.push((entropy >> 32) as u32);
        }
        let mut hash_const = INIT_A;
        let mut hashmix = |value: u32| {
            let mut v = value ^ hash_const;
            hash_const = hash_const.wrapping_mul(MULT_A);
            v = v.wrapping_mul(hash_const);
            v ^ (v >> XSHIFT)
        };
        let mix = |x: u32, y: u32| {
            let r = MIX_MULT_L.wrapping_mul(x).wrapping_sub(MIX_MULT_R.wrapping_mul(y));
            r ^ (r >> XSHIFT)
        };
        let mut pool = [0u32; POOL];
        for (i, slot) in pool.iter_mut().enumerate() {
            *slot = hashmix(words.get(i).copied().unwrap_or(0));
        }
        for src in 0..POOL {
            for dst in 0..POOL {
                if src != dst {
                    let h = hashmix(pool[src]);
                    pool[dst] = mix(pool[dst], h);
                }
            }
        }
        // Entropy longer than the pool (never, for ≤ 64-bit seeds) would be mixed in here.
        SeedSequence { pool }
    }

    /// `generate_state(n, dtype=uint32)`.
    pub fn generate_u32(&self, n: usize) -> Vec<u32> {
        let mut hash_const = INIT_B;
        (0..n)
            .map(|i| {
                let mut v = self.pool[i % POOL] ^ hash_const;
                hash_const = hash_const.wrapping_mul(MULT_B);
                v = v.wrapping_mul(hash_const);
                v ^ (v >> XSHIFT)
            })
            .collect()
    }

    /// `generate_state(n, dtype=uint64)`: pairs of 32-bit words, little-endian.
    pub fn generate_u64(&self, n: usize) -> Vec<u64> {
        self.generate_u32(2 * n).chunks_exact(2).map(|w| w[0] as u64 | (w[1] as u64) << 32).collect()
    }
}

const PCG_MULT: u128 = 0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645;

/// `numpy.random.PCG64` (XSL-RR 128/64).
#[derive(Clone, Debug)]
pub struct Pcg64 {
    state: u128,
    inc: u128,
    /// NumPy's `next_uint32` hands out both halves of a 64-bit output: the high half waits here.
    half: Option<u32>,
}

impl Pcg64 {
    pub fn from_seed_sequence(ss: &SeedSequence) -> Self {
        let w = ss.generate_u64(4);
        let init_state = (w[0] as u128) << 64 | w[1] as u128;
        let init_seq = (w[2] as u128) << 64 | w[3] as u128;
        let mut rng = Pcg64 { state: 0, inc: init_seq << 1 | 1, half: None };
        rng.step();
        rng.state = rng.state.wrapping_add(init_state);
        rng.step();
        rng
    }
    fn step(&mut self) {
        self.state = self.state.wrapping_mul(PCG_MULT).wrapping_add(self.inc);
    }
    pub fn next_u64(&mut self) -> u64 {
        self.step();
        let (hi, lo) = ((self.state >> 64) as u64, self.state as u64);
        (hi ^ lo).rotate_right((hi >> 58) as u32)
    }

    /// NumPy's `next_uint32`: the low half of a new 64-bit output, then its high half on the next call.
    pub fn next_u32(&mut self) -> u32 {
        if let Some(h) = self.half.take() {
            return h;
        }
        let x = self.next_u64();
        self.half = Some((x >> 32) as u32);
        x as u32
    }

    /// `Generator.integers(low, high)` (high exclusive) for one value of a range below 2³², as NumPy draws it:
    /// Lemire's multiply-and-reject on 32-bit draws.
    pub fn integers(&mut self, low: i64, high: i64) -> i64 {
        assert!(high > low && (high - low) as u64 <= u32::MAX as u64, "range must be non-empty and below 2^32");
        let rng_excl = (high - low) as u64; // rng + 1 in NumPy's terms
        if rng_excl == 1 {
            return low;
        }
        let mut m = (self.next_u32() as u64) * rng_excl;
        let mut leftover = m & 0xffff_ffff;
        if leftover < rng_excl {
            let threshold = (u32::MAX as u64 - (rng_excl - 1)) % rng_excl;
            while leftover < threshold {
                m = (self.next_u32() as u64) * rng_excl;
                leftover = m & 0xffff_ffff;
            }
        }
        low + (m >> 32) as i64
    }
}

/// What ale-py's `seed_game(seed)` makes of a seed: the generator behind `env.np_random` and ALE's `random_seed`.
pub fn ale_py_seeds(seed: u64) -> (Pcg64, i32) {
    let s = SeedSequence::new(seed).generate_u32(2);
    // gymnasium.utils.seeding.np_random(np_seed): PCG64(SeedSequence(np_seed)).
    (Pcg64::from_seed_sequence(&SeedSequence::new(s[0] as u64)), s[1] as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values printed by NumPy 2.4.6 / Gymnasium 1.4.0 (`SeedSequence(seed).generate_state(2)`, `random_raw`,
    /// `np_random.integers(1, 31)` five times).
    #[test]
    fn matches_numpy() {
        type Case = (u64, u32, i32, [u64; 3], [i64; 5]);
        let cases: [Case; 4] = [
            (
                0,
                2968811710,
                -617818137,
                [0x010c2b23b6b92181, 0xfdb7b57f02991ef4, 0xc4c685a564339112],
                [22, 1, 1, 30, 12],
            ),
            (
                1,
                1835504127,
                1731038949,
                [0xbd47f1cf282d580b, 0x23ea9933f9d8ecdc, 0x6bb5fc0a0d6b3452],
                [5, 23, 30, 5, 2],
            ),
            (
                42,
                3444837047,
                -1625411987,
                [0xf6b113f759478ed3, 0xb78556b89690e8f4, 0x7f2f6a4005f79928],
                [11, 29, 18, 22, 1],
            ),
            (
                (1 << 40) + 7,
                238885397,
                226915041,
                [0x2d3cc6b15d76d9da, 0xf9f90aaf27cf8753, 0xeafe03a72b969278],
                [11, 6, 5, 30, 6],
            ),
        ];
        for (seed, np_seed, ale_seed, raw, noops) in cases {
            let s = SeedSequence::new(seed).generate_u32(2);
            assert_eq!((s[0], s[1] as i32), (np_seed, ale_seed), "seed {seed}");
            let (mut rng, a) = ale_py_seeds(seed);
            assert_eq!(a, ale_seed);
            let mut raw_rng = rng.clone();
            assert_eq!([raw_rng.next_u64(), raw_rng.next_u64(), raw_rng.next_u64()], raw, "seed {seed}");
            let drawn: Vec<i64> = (0..5).map(|_| rng.integers(1, 31)).collect();
            assert_eq!(drawn, noops, "seed {seed}");
        }
    }
}
