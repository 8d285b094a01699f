//! Categorical distributional RL (C51, Bellemare et al. 2017), the return distributions of Rainbow: a network
//! outputs, per action, probabilities over a fixed support of atoms `z_i`, and learns them by projecting the
//! n-step Bellman target `r + d·z` back onto the support and minimising the cross-entropy to it.
//!
//! Plain functions on row-major f32 slices (`rows × atoms`), so that the loss can call them on whatever the
//! network's tensors hold, and the tests can check them by hand. Sums are accumulated in f64.

/// The atoms: `atoms` evenly spaced values from `v_min` to `v_max`, both included.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Support {
    v_min: f32,
    v_max: f32,
    atoms: usize,
}

impl Default for Support {
    /// Rainbow's (Hessel et al. 2018) and C51's: 51 atoms on [−10, 10].
    fn default() -> Self {
        Support { v_min: -10.0, v_max: 10.0, atoms: 51 }
    }
}

impl Support {
    /// `atoms` ≥ 2 evenly spaced values on `[v_min, v_max]`, `v_min < v_max`, both finite. Rainbow's is the
    /// [`Default`]; Revisiting Rainbow (Obando-Ceron & Castro 2021) uses 51 atoms on [−100, 100] for MinAtar, whose
    /// returns exceed 10 ([`Support::minatar`]).
    pub fn new(v_min: f32, v_max: f32, atoms: usize) -> Result<Self, String> {
        if atoms < 2 {
            return Err(format!("a categorical support needs at least 2 atoms, not {atoms}"));
        }
        if !v_min.is_finite() || !v_max.is_finite() || v_min >= v_max {
            return Err(format!("a categorical support needs finite v_min < v_max, not v_min {v_min}, v_max {v_max}"));
        }
        Ok(Support { v_min, v_max, atoms })
    }

    /// Revisiting Rainbow's MinAtar support: 51 atoms on [−100, 100].
    pub fn minatar() -> Self {
        Support { v_min: -100.0, v_max: 100.0, atoms: 51 }
    }

    pub fn v_min(&self) -> f32 {
        self.v_min
    }

    pub fn v_max(&self) -> f32 {
        self.v_max
    }

    pub fn atoms(&self) -> usize {
        self.atoms
    }

    /// The spacing Δz of the atoms.
    pub fn delta(&self) -> f32 {
        self.delta_f64() as f32
    }

    fn delta_f64(&self) -> f64 {
        (self.v_max as f64 - self.v_min as f64) / (self.atoms - 1) as f64
    }

    /// Atom `i`: `v_min + i·Δz`, computed so that the last atom is `v_max` exactly.
    pub fn z(&self, i: usize) -> f32 {
        self.z_f64(i) as f32
    }

    fn z_f64(&self, i: usize) -> f64 {
        let (lo, hi) = (self.v_min as f64, self.v_max as f64);
        lo + (hi - lo) * i as f64 / (self.atoms - 1) as f64
    }

    /// All the atoms.
    pub fn values(&self) -> Vec<f32> {
        (0..self.atoms).map(|i| self.z(i)).collect()
    }

    /// The number of `atoms`-long rows in `len` values, or an error naming `what`.
    fn rows(&self, len: usize, what: &str) -> Result<usize, String> {
        match len % self.atoms {
            0 => Ok(len / self.atoms),
            _ => Err(format!("{what} holds {len} values, not a whole number of rows of {} atoms", self.atoms)),
        }
    }
}

/// The categorical projection of the n-step Bellman target onto the support (Bellemare et al. 2017, Algorithm
/// 1): for each row b and atom j, `Tz_j = r_b + d_b·z_j` clipped to `[v_min, v_max]`, at fractional position
/// `b_j = (Tz_j − v_min)/Δz`, hands its probability `p_j` to its neighbours `l = ⌊b_j⌋` and `u = ⌈b_j⌉` in
/// proportion to closeness: `(u − b_j)·p_j` to l and `(b_j − l)·p_j` to u.
///
/// `next_probs`: `rows × atoms`, the target network's distribution for the bootstrap action of each row;
/// `rewards`: the n-step discounted rewards; `discounts`: `γ^n · not_terminal` per row (0 for a terminal row,
/// whose target is the Dirac at r). Returns `rows × atoms` target probabilities; each row's mass is its input's.
pub fn project(support: &Support, next_probs: &[f32], rewards: &[f32], discounts: &[f32]) -> Result<Vec<f32>, String> {
    let rows = support.rows(next_probs.len(), "next_probs")?;
    if rewards.len() != rows || discounts.len() != rows {
        return Err(format!(
            "{rows} rows of next_probs but {} rewards and {} discounts",
            rewards.len(),
            discounts.len()
        ));
    }
    if let Some(r) = rewards.iter().find(|r| !r.is_finite()) {
        return Err(format!("rewards must be finite, not {r}"));
    }
    if let Some(d) = discounts.iter().find(|d| !d.is_finite() || **d < 0.0) {
        return Err(format!("discounts (γ^n · not_terminal) must be finite and ≥ 0, not {d}"));
    }
    let n = support.atoms;
    let (v_min, v_max, dz) = (support.v_min as f64, support.v_max as f64, support.delta_f64());
    let last = (n - 1) as f64;
    let mut out = vec![0f32; next_probs.len()];
    let mut acc = vec![0f64; n];
    for row in 0..rows {
        acc.fill(0.0);
        let (r, d) = (rewards[row] as f64, discounts[row] as f64);
        for (j, &p) in next_probs[row * n..(row + 1) * n].iter().enumerate() {
            let tz = (r + d * support.z_f64(j)).clamp(v_min, v_max);
            // Clamped again: rounding in the division can land a hair outside [0, atoms − 1].
            let b = ((tz - v_min) / dz).clamp(0.0, last);
            let (l, u) = (b.floor(), b.ceil());
            let p = p as f64;
            if l == u {
                // b is a whole number, so Tz sits on atom l and gets all of p. The formula's two weights, u − b
                // and b − l, are both 0 here and would drop the mass (the classic C51 bug); moving l or u one atom
                // aside, as some implementations do, gives the same split but must mind the support's ends.
                acc[l as usize] += p;
            } else {
                acc[l as usize] += p * (u - b);
                acc[u as usize] += p * (b - l);
            }
        }
        for (o, a) in out[row * n..(row + 1) * n].iter_mut().zip(&acc) {
            *o = *a as f32;
        }
    }
    Ok(out)
}

/// The mean of each row's distribution, `Σ_i z_i·p_i`: the Q value a distributional agent acts greedily on.
/// `probs` is any number of `atoms`-long rows (e.g. `batch × actions × atoms`), one value per row.
pub fn expected_q(support: &Support, probs: &[f32]) -> Result<Vec<f32>, String> {
    support.rows(probs.len(), "probs")?;
    let z = support.values();
    Ok(probs
        .chunks(support.atoms)
        .map(|row| row.iter().zip(&z).map(|(&p, &z)| p as f64 * z as f64).sum::<f64>() as f32)
        .collect())
}

/// The cross-entropy `−Σ_i target_i · log_probs_i` of each row: C51's loss, from the projected target
/// ([`project`]) and the online network's log-probabilities (log-softmax of its logits) for the taken action.
/// Atoms where the target is 0 add nothing, even where the log-probability is −∞ (0·log 0 = 0 by convention).
pub fn cross_entropy(support: &Support, target: &[f32], log_probs: &[f32]) -> Result<Vec<f32>, String> {
    support.rows(target.len(), "target")?;
    if log_probs.len() != target.len() {
        return Err(format!("{} target values but {} log-probabilities", target.len(), log_probs.len()));
    }
    Ok(target
        .chunks(support.atoms)
        .zip(log_probs.chunks(support.atoms))
        .map(|(t, lp)| {
            -t.iter().zip(lp).filter(|(t, _)| **t != 0.0).map(|(&t, &l)| t as f64 * l as f64).sum::<f64>() as f32
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;

    /// Five atoms on [−2, 2]: z = [−2, −1, 0, 1, 2], Δz = 1.
    fn five() -> Support {
        Support::new(-2.0, 2.0, 5).unwrap()
    }

    const P: [f32; 5] = [0.1, 0.2, 0.3, 0.15, 0.25];

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
        assert!(a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6), "{a:?} vs {b:?}");
    }

    #[test]
    fn supports_and_their_atoms() {
        let s = Support::default();
        assert_eq!((s.atoms(), s.v_min(), s.v_max()), (51, -10.0, 10.0));
        assert_eq!((s.z(0), s.z(25), s.z(50)), (-10.0, 0.0, 10.0));
        assert!((s.delta() - 0.4).abs() < 1e-7);
        assert_eq!(s.values().len(), 51);
        let m = Support::minatar();
        assert_eq!((m.z(0), m.z(26), m.z(50), m.delta()), (-100.0, 4.0, 100.0, 4.0));
        assert_eq!(five().values(), [-2.0, -1.0, 0.0, 1.0, 2.0]);
        for (bad, what) in [((0.0, 1.0, 1), "at least 2"), ((1.0, 1.0, 5), "v_min < v_max"), ((2.0, 1.0, 5), "v_min")] {
            assert!(Support::new(bad.0, bad.1, bad.2).unwrap_err().contains(what), "{bad:?}");
        }
        assert!(Support::new(f32::NEG_INFINITY, 1.0, 5).is_err());
        assert!(Support::new(0.0, f32::NAN, 5).is_err());
    }

    /// r = 0, d = 1 puts every atom on itself (b is a whole number everywhere): a Dirac stays a Dirac and any
    /// distribution stays itself.
    #[test]
    fn identity_target_maps_to_itself() {
        let dirac = [0.0, 0.0, 1.0, 0.0, 0.0];
        close(&project(&five(), &dirac, &[0.0], &[1.0]).unwrap(), &dirac);
        close(&project(&five(), &P, &[0.0], &[1.0]).unwrap(), &P);
        // The same on Rainbow's support (within rounding: its spacing 0.4 is not exact in binary).
        let s = Support::default();
        let mut p = vec![0.0; 51];
        p[37] = 1.0;
        close(&project(&s, &p, &[0.0], &[1.0]).unwrap(), &p);
    }

    /// r = Δz, d = 1 moves each atom up one; the top atom's target 3 clips to v_max, where it piles onto the
    /// mass coming from atom 3: [0, 0.1, 0.2, 0.3, 0.15 + 0.25].
    #[test]
    fn shift_by_one_atom_piles_the_top_at_v_max() {
        close(&project(&five(), &P, &[1.0], &[1.0]).unwrap(), &[0.0, 0.1, 0.2, 0.3, 0.4]);
        close(&project(&five(), &P, &[-1.0], &[1.0]).unwrap(), &[0.3, 0.3, 0.15, 0.25, 0.0]);
    }

    /// A terminal row (d = 0) is the Dirac at r whatever the next distribution: r = 0.25 lies a quarter of the way
    /// from atom 2 (z = 0) to atom 3 (z = 1), so 0.75 and 0.25. Rewards beyond the support clip to its ends.
    #[test]
    fn terminal_rows_split_r_between_its_neighbours() {
        close(&project(&five(), &P, &[0.25], &[0.0]).unwrap(), &[0.0, 0.0, 0.75, 0.25, 0.0]);
        close(&project(&five(), &P, &[7.0], &[0.0]).unwrap(), &[0.0, 0.0, 0.0, 0.0, 1.0]);
        close(&project(&five(), &P, &[-100.0], &[0.5]).unwrap(), &[1.0, 0.0, 0.0, 0.0, 0.0]);
    }

    /// Whole-number positions b keep their mass on their atom. Row 1: d = 0, r = 1 → b = 3 exactly, all on atom 3.
    /// Row 2: r = 0.5, d = 0.5: Tz = [−0.5, 0, 0.5, 1, 1.5], b = [1.5, 2, 2.5, 3, 3.5], so atom 1 gets 0.05, atom 2
    /// 0.05 + 0.2 + 0.15, atom 3 0.15 + 0.15 + 0.125, atom 4 0.125.
    #[test]
    fn whole_number_positions_keep_their_mass() {
        let next: Vec<f32> = P.iter().chain(&P).copied().collect();
        let t = project(&five(), &next, &[1.0, 0.5], &[0.0, 0.5]).unwrap();
        close(&t[..5], &[0.0, 0.0, 0.0, 1.0, 0.0]);
        close(&t[5..], &[0.0, 0.05, 0.4, 0.425, 0.125]);
    }

    /// Random distributions, rewards and discounts (terminal rows included) keep each row's mass at 1 within 10⁻⁶,
    /// and no probability is negative.
    #[test]
    fn projection_conserves_mass() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(9);
        for s in [Support::default(), five(), Support::minatar(), Support::new(-1.0, 3.0, 2).unwrap()] {
            let (rows, n) = (64, s.atoms());
            let mut probs = vec![];
            for _ in 0..rows {
                let row: Vec<f32> = (0..n).map(|_| rng.random::<f32>().powi(3)).collect();
                let sum: f32 = row.iter().sum();
                probs.extend(row.iter().map(|p| p / sum));
            }
            let span = s.v_max() - s.v_min();
            let rewards: Vec<f32> = (0..rows).map(|_| (rng.random::<f32>() - 0.5) * 1.5 * span).collect();
            let discounts: Vec<f32> = (0..rows).map(|i| [0.0, 0.99f32.powi(3), 1.0, 0.5][i % 4]).collect();
            let t = project(&s, &probs, &rewards, &discounts).unwrap();
            for row in t.chunks(n) {
                let mass: f64 = row.iter().map(|&p| p as f64).sum();
                assert!((mass - 1.0).abs() < 1e-6 && row.iter().all(|&p| p >= 0.0), "{mass} {row:?}");
            }
        }
    }

    #[test]
    fn bad_inputs_are_errors() {
        let s = five();
        assert!(project(&s, &P[..4], &[0.0], &[1.0]).unwrap_err().contains("whole number of rows"));
        assert!(project(&s, &P, &[0.0, 1.0], &[1.0]).unwrap_err().contains("2 rewards"));
        assert!(project(&s, &P, &[f32::NAN], &[1.0]).unwrap_err().contains("finite"));
        assert!(project(&s, &P, &[0.0], &[-0.5]).unwrap_err().contains("≥ 0"));
        assert!(expected_q(&s, &[0.5; 3]).is_err());
        assert!(cross_entropy(&s, &P, &P[..4]).is_err());
    }

    /// Σ z·p on [−2, 2]: −0.2 − 0.2 + 0 + 0.15 + 0.5 = 0.25; a Dirac at the top atom is 2.
    #[test]
    fn expected_q_by_hand() {
        let probs = [P, [0.0, 0.0, 0.0, 0.0, 1.0]].concat();
        close(&expected_q(&five(), &probs).unwrap(), &[0.25, 2.0]);
    }

    /// Target [0, 0.75, 0.25] against log-probabilities [−∞, ln 0.5, ln 0.25]: 0.75·ln 2 + 0.25·ln 4 = 1.25·ln 2;
    /// the −∞ under a zero target adds nothing. A target equal to the prediction gives its entropy.
    #[test]
    fn cross_entropy_by_hand() {
        let s = Support::new(0.0, 1.0, 3).unwrap();
        let target = [0.0, 0.75, 0.25, 0.5, 0.5, 0.0];
        let log_probs = [f32::NEG_INFINITY, 0.5f32.ln(), 0.25f32.ln(), 0.5f32.ln(), 0.5f32.ln(), 0.0];
        close(&cross_entropy(&s, &target, &log_probs).unwrap(), &[1.25 * 2f32.ln(), 2f32.ln()]);
    }
}
