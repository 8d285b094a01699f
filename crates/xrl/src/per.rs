//! Prioritised experience replay's sampling (Schaul et al. 2016, the proportional variant, as Dopamine's Rainbow):
//! transition i is drawn with probability `P(i) = p_i / Σ_k p_k`, where `p_i = (|δ_i| + ε)^α` from its last TD
//! error δ_i, and its update is scaled by an importance weight that undoes the bias of the non-uniform draw.
//!
//! Only the sampling lives here. The transitions stay in the storage ([`crate::replay::Replay`],
//! [`crate::pixel_replay::PixelReplay`]); [`Prioritized`] knows their physical slots (the indices of the storage's
//! ring buffer, `0..capacity`) and nothing else, so one sampler serves both storages. The trainer tells it when a
//! slot is written ([`Prioritized::insert`]) or dropped ([`Prioritized::remove`]), and hands back the TD errors
//! of each sampled batch ([`Prioritized::update`]).

use rand::Rng;
use serde::{Deserialize, Serialize};

/// A binary tree of sums over `capacity` leaf slots: the priority of each slot at the leaves, the sum of its
/// children at each inner node. Setting a leaf and finding the slot at a given prefix sum both take O(log n).
///
/// The tree is array-backed: node k's children are 2k and 2k + 1, the root is node 1, and the leaves are padded
/// to a power of two (the padding leaves hold 0 and are never returned). Sums are f64, and each inner node is
/// recomputed from its two children on every update rather than adjusted by the change, so rounding errors do
/// not accumulate over millions of updates.
#[derive(Clone, Debug)]
pub struct SumTree {
    capacity: usize,
    /// Leaves, padded to a power of two.
    leaves: usize,
    /// `2·leaves` nodes; node 0 is unused.
    nodes: Vec<f64>,
}

impl SumTree {
    /// A tree of `capacity` slots, all of priority 0.
    pub fn new(capacity: usize) -> Result<Self, String> {
        if capacity == 0 {
            return Err("a prioritised replay needs a capacity of at least one transition".into());
        }
        let leaves = capacity.next_power_of_two();
        Ok(SumTree { capacity, leaves, nodes: vec![0.0; 2 * leaves] })
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Sets the priority of `slot`.
    ///
    /// # Panics
    /// If `slot` is not below the capacity, or `priority` is negative or not finite: both are bugs of the caller
    /// (the sampler checks what comes from outside), and either would corrupt every later draw.
    pub fn set(&mut self, slot: usize, priority: f64) {
        assert!(slot < self.capacity, "slot {slot} is outside the sum tree's {} slots", self.capacity);
        assert!(priority.is_finite() && priority >= 0.0, "priority {priority} of slot {slot} is not finite and ≥ 0");
        let mut k = self.leaves + slot;
        self.nodes[k] = priority;
        while k > 1 {
            k /= 2;
            self.nodes[k] = self.nodes[2 * k] + self.nodes[2 * k + 1];
        }
    }

    /// The priority of `slot` (panics outside the capacity, as slice indexing).
    pub fn get(&self, slot: usize) -> f64 {
        assert!(slot < self.capacity, "slot {slot} is outside the sum tree's {} slots", self.capacity);
        self.nodes[self.leaves + slot]
    }

    /// The sum of all priorities.
    pub fn total(&self) -> f64 {
        self.nodes[1]
    }

    /// The slot whose interval `[prefix, prefix + p)` of the cumulative priorities contains `mass`; `None` when
    /// every priority is 0. A slot of priority 0 has an empty interval and is never returned. Masses outside
    /// `[0, total)` are clamped: below 0 gives the first slot of non-zero priority, `total` or more (which rounding
    /// in a caller's `u·total` can produce) the last one.
    pub fn find(&self, mass: f64) -> Option<usize> {
        if self.total() <= 0.0 {
            return None;
        }
        let mut mass = mass.max(0.0);
        let mut k = 1;
        // Invariant: node k has a positive sum. Go left when the mass falls in the left child's sums or when the
        // right child is empty (only a mass at or past the end does that); go right only into a positive child.
        // A sum of non-negative numbers is 0 only when both are, so the invariant holds all the way to a leaf.
        while k < self.leaves {
            let left = self.nodes[2 * k];
            let right = self.nodes[2 * k + 1];
            if mass < left || right <= 0.0 {
                k *= 2;
            } else {
                mass -= left;
                k = 2 * k + 1;
            }
        }
        Some(k - self.leaves)
    }
}

/// Prioritised replay's hyperparameters (defaults: Schaul et al. 2016's proportional variant, as in Rainbow).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerConfig {
    /// Priority exponent α: 0 is uniform sampling, 1 fully proportional to |δ| + ε.
    pub alpha: f64,
    /// Importance-sampling exponent β at step 0, annealed linearly to `beta_end`.
    pub beta_start: f64,
    pub beta_end: f64,
    /// Steps (of the counter the trainer passes to [`Prioritized::sample`]) over which β goes from `beta_start` to
    /// `beta_end`; 0 uses `beta_end` from the start. Schaul et al. anneal over the whole run, so set it to the run's
    /// length; the default, 10 million, is the length of Revisiting Rainbow's MinAtar runs in frames.
    pub beta_steps: usize,
    /// Added to |δ| so that no transition's priority becomes 0 (it would never be replayed again).
    pub epsilon: f64,
}

impl Default for PerConfig {
    fn default() -> Self {
        PerConfig { alpha: 0.5, beta_start: 0.4, beta_end: 1.0, beta_steps: 10_000_000, epsilon: 1e-6 }
    }
}

impl PerConfig {
    /// An error naming the first value that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if !self.alpha.is_finite() || self.alpha < 0.0 {
            return Err(format!("prioritised replay's alpha must be a finite number ≥ 0, not {}", self.alpha));
        }
        for (name, beta) in [("beta_start", self.beta_start), ("beta_end", self.beta_end)] {
            if !(0.0..=1.0).contains(&beta) {
                return Err(format!("prioritised replay's {name} must lie in [0, 1], not {beta}"));
            }
        }
        if !self.epsilon.is_finite() || self.epsilon <= 0.0 {
            return Err(format!(
                "prioritised replay's epsilon must be a finite number > 0 (a priority of 0 is never sampled again), \
                 not {}",
                self.epsilon
            ));
        }
        Ok(())
    }
}

/// The sampler: a [`SumTree`] of the stored priorities `(|δ_i| + ε)^α` (α applied before storing, so the tree's
/// sums are the denominators of `P(i)`). New transitions get the largest value stored so far, 1 before any
/// update, so that each is replayed soon after it arrives (Schaul et al.).
#[derive(Clone, Debug)]
pub struct Prioritized {
    tree: SumTree,
    config: PerConfig,
    /// The largest priority stored so far (never lowered, as Schaul et al. and Dopamine).
    max_priority: f64,
    /// Slots of non-zero priority: the N of the importance weights.
    live: usize,
}

impl Prioritized {
    /// A sampler over `capacity` slots, none of them sampleable until inserted.
    pub fn new(capacity: usize, config: PerConfig) -> Result<Self, String> {
        config.validate()?;
        Ok(Prioritized { tree: SumTree::new(capacity)?, config, max_priority: 1.0, live: 0 })
    }

    pub fn config(&self) -> &PerConfig {
        &self.config
    }

    pub fn tree(&self) -> &SumTree {
        &self.tree
    }

    /// Slots that can be sampled.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The priority new transitions get.
    pub fn max_priority(&self) -> f64 {
        self.max_priority
    }

    fn check_slot(&self, slot: usize) -> Result<(), String> {
        match slot < self.tree.capacity() {
            true => Ok(()),
            false => Err(format!("slot {slot} is outside the prioritised replay's {} slots", self.tree.capacity())),
        }
    }

    fn store(&mut self, slot: usize, priority: f64) {
        let was_live = self.tree.get(slot) > 0.0;
        self.tree.set(slot, priority);
        match (was_live, priority > 0.0) {
            (false, true) => self.live += 1,
            (true, false) => self.live -= 1,
            _ => {}
        }
    }

    /// A transition was written to `slot`: it gets the largest priority stored so far.
    pub fn insert(&mut self, slot: usize) -> Result<(), String> {
        self.check_slot(slot)?;
        self.store(slot, self.max_priority);
        Ok(())
    }

    /// The transition in `slot` was dropped from the storage: it is no longer sampled.
    pub fn remove(&mut self, slot: usize) -> Result<(), String> {
        self.check_slot(slot)?;
        self.store(slot, 0.0);
        Ok(())
    }

    /// Sets the priorities of the sampled `slots` from their TD errors: `(|δ| + ε)^α`. A slot removed since it was
    /// sampled stays removed (its transition is gone). Nothing is changed when any input is bad.
    pub fn update(&mut self, slots: &[usize], td_errors: &[f32]) -> Result<(), String> {
        if slots.len() != td_errors.len() {
            return Err(format!("{} slots but {} TD errors to update them with", slots.len(), td_errors.len()));
        }
        for (&slot, &td) in slots.iter().zip(td_errors) {
            self.check_slot(slot)?;
            if !td.is_finite() {
                return Err(format!("the TD error of slot {slot} is {td}: the loss has diverged"));
            }
        }
        for (&slot, &td) in slots.iter().zip(td_errors) {
            if self.tree.get(slot) > 0.0 {
                let p = (td.abs() as f64 + self.config.epsilon).powf(self.config.alpha);
                self.store(slot, p);
                self.max_priority = self.max_priority.max(p);
            }
        }
        Ok(())
    }

    /// The sampler's state for a checkpoint: the maximum priority, then every slot's stored priority (f64, little
    /// endian).
    pub fn to_bytes(&self) -> Vec<u8> {
        let n = self.tree.capacity();
        let mut out = Vec::with_capacity(8 * (n + 2));
        out.extend_from_slice(&(n as u64).to_le_bytes());
        out.extend_from_slice(&self.max_priority.to_le_bytes());
        (0..n).for_each(|slot| out.extend_from_slice(&self.tree.get(slot).to_le_bytes()));
        out
    }

    /// Restores a state written by [`Prioritized::to_bytes`] into a sampler of the same capacity.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), String> {
        let n = self.tree.capacity();
        if bytes.len() != 8 * (n + 2) || u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) != n as u64 {
            return Err(format!("the priorities file is not one of {n} slots (damaged, or another run's)"));
        }
        let values: Vec<f64> =
            bytes[8..].chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
        if values.iter().any(|p| !p.is_finite() || *p < 0.0) {
            return Err("the priorities file holds a negative or non-finite priority".into());
        }
        self.max_priority = values[0];
        for (slot, &p) in values[1..].iter().enumerate() {
            self.store(slot, p);
        }
        Ok(())
    }

    /// β at `step`: linear from `beta_start` to `beta_end` over `beta_steps`, then `beta_end`.
    pub fn beta(&self, step: usize) -> f64 {
        let c = &self.config;
        if step >= c.beta_steps {
            return c.beta_end;
        }
        c.beta_start + (c.beta_end - c.beta_start) * step as f64 / c.beta_steps as f64
    }

    /// The importance weights of `slots` at `step`: `w_i = (N·P(i))^(−β)` divided by the largest `w` of the
    /// batch, N being the number of slots that can be sampled. Dividing by the batch's largest weight (as
    /// Dopamine) makes the weights only ever scale updates down, which keeps the step size stable; the buffer-wide
    /// largest weight (another reading of Schaul et al.'s `max_i w_i`) would need a second tree for the smallest
    /// priority and lets one stale transition shrink every update. N then cancels: `(p_i / min_batch p)^(−β)`.
    pub fn weights(&self, slots: &[usize], step: usize) -> Result<Vec<f32>, String> {
        let (total, n, beta) = (self.tree.total(), self.live as f64, self.beta(step));
        let mut w = Vec::with_capacity(slots.len());
        for &slot in slots {
            self.check_slot(slot)?;
            let p = self.tree.get(slot);
            if p <= 0.0 {
                return Err(format!("slot {slot} has no priority (it was never inserted or was removed)"));
            }
            w.push((n * p / total).powf(-beta));
        }
        let max = w.iter().copied().fold(0.0, f64::max);
        Ok(w.into_iter().map(|x| (x / max) as f32).collect())
    }

    /// Draws `batch` slots with their importance weights ([`Prioritized::weights`]) at `step`. Stratified, as
    /// Schaul et al. and Dopamine: the total priority is cut into `batch` equal segments and one slot is drawn
    /// uniformly by mass within each, which spreads a batch over the buffer with the same marginal probabilities
    /// `P(i)` as independent draws.
    pub fn sample(&self, batch: usize, step: usize, rng: &mut impl Rng) -> Result<(Vec<usize>, Vec<f32>), String> {
        if batch == 0 {
            return Err("a prioritised replay batch needs at least one transition".into());
        }
        let total = self.tree.total();
        if self.live == 0 || total <= 0.0 {
            return Err("cannot sample from a prioritised replay that holds no transitions".into());
        }
        let segment = total / batch as f64;
        let slots: Vec<usize> = (0..batch)
            .map(|i| {
                let mass = (i as f64 + rng.random::<f64>()) * segment;
                self.tree.find(mass).expect("a tree of positive total has a slot at every mass")
            })
            .collect();
        let weights = self.weights(&slots, step)?;
        Ok((slots, weights))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_xoshiro::Xoshiro256PlusPlus;

    fn tree(priorities: &[f64]) -> SumTree {
        let mut t = SumTree::new(priorities.len()).unwrap();
        for (i, &p) in priorities.iter().enumerate() {
            t.set(i, p);
        }
        t
    }

    /// Priorities [1, 0, 2, 3]: intervals [0, 1), none, [1, 3), [3, 6). Boundaries belong to the slot on their
    /// right, the empty slot is never found, and masses out of range clamp to the first / last non-zero slot.
    #[test]
    fn find_follows_hand_made_prefix_sums() {
        let t = tree(&[1.0, 0.0, 2.0, 3.0]);
        assert_eq!(t.total(), 6.0);
        for (mass, slot) in [(0.0, 0), (0.999, 0), (1.0, 2), (2.5, 2), (2.999, 2), (3.0, 3), (5.999, 3), (6.0, 3)] {
            assert_eq!(t.find(mass), Some(slot), "mass {mass}");
        }
        assert_eq!(t.find(100.0), Some(3));
        assert_eq!(t.find(-1.0), Some(0));
        // Trailing and leading zeros: mass == total is the last non-zero slot, mass 0 the first one.
        let t = tree(&[0.0, 1.0, 2.0, 0.0]);
        assert_eq!((t.find(0.0), t.find(3.0), t.find(1e9)), (Some(1), Some(2), Some(2)));
        assert_eq!(tree(&[0.0, 0.0]).find(0.0), None);
    }

    /// Capacities that are not powers of two pad the leaves with zeros that are never returned.
    #[test]
    fn non_power_of_two_capacities() {
        let t = tree(&[1.0, 2.0, 0.0, 4.0, 0.0]);
        assert_eq!(t.total(), 7.0);
        assert_eq!((0..5).map(|i| t.get(i)).collect::<Vec<_>>(), [1.0, 2.0, 0.0, 4.0, 0.0]);
        for (mass, slot) in [(0.5, 0), (1.0, 1), (2.999, 1), (3.0, 3), (6.99, 3), (7.0, 3), (8.0, 3)] {
            assert_eq!(t.find(mass), Some(slot), "mass {mass}");
        }
        for capacity in [1, 3, 6, 7] {
            let t = tree(&vec![1.0; capacity]);
            for k in 0..capacity {
                assert_eq!(t.find(k as f64 + 0.5), Some(k), "capacity {capacity}");
            }
            assert_eq!(t.find(capacity as f64), Some(capacity - 1));
        }
        assert!(SumTree::new(0).unwrap_err().contains("at least one"));
    }

    /// Many updates do not drift: the total is recomputed from the leaves, not adjusted.
    #[test]
    fn sums_do_not_drift() {
        let mut t = SumTree::new(1000).unwrap();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
        for _ in 0..200_000 {
            t.set(rng.random_range(0..1000), rng.random::<f64>() * 1e3);
        }
        for i in 0..1000 {
            t.set(i, 0.25);
        }
        assert_eq!(t.total(), 250.0);
    }

    /// α = 0.5, ε = 0.25: TD errors 2 and 6 give √2.25 = 1.5 and √6.25 = 2.5 (exact in f64).
    fn config() -> PerConfig {
        PerConfig { alpha: 0.5, epsilon: 0.25, ..PerConfig::default() }
    }

    /// Four slots at priority 1; updating slots 0 and 2 with TD errors 2 and −6 gives [1.5, 1, 2.5, 1]: total 6,
    /// intervals [0, 1.5), [1.5, 2.5), [2.5, 5), [5, 6).
    #[test]
    fn updates_change_the_total_and_the_draws() {
        let mut per = Prioritized::new(4, config()).unwrap();
        for slot in 0..4 {
            per.insert(slot).unwrap();
        }
        assert_eq!((per.tree().total(), per.tree().find(1.5)), (4.0, Some(1)));
        per.update(&[0, 2], &[2.0, -6.0]).unwrap();
        assert_eq!((0..4).map(|i| per.tree().get(i)).collect::<Vec<_>>(), [1.5, 1.0, 2.5, 1.0]);
        assert_eq!(per.tree().total(), 6.0);
        for (mass, slot) in [(1.49, 0), (1.5, 1), (2.49, 1), (2.5, 2), (4.99, 2), (5.0, 3)] {
            assert_eq!(per.tree().find(mass), Some(slot), "mass {mass}");
        }
        // Bad inputs change nothing.
        assert!(per.update(&[0, 1], &[1.0]).unwrap_err().contains("2 slots but 1 TD errors"));
        assert!(per.update(&[1, 0], &[1.0, f32::NAN]).unwrap_err().contains("diverged"));
        assert!(per.update(&[1, 4], &[1.0, 1.0]).unwrap_err().contains("outside"));
        assert_eq!(per.tree().total(), 6.0);
    }

    /// New transitions get the largest priority stored so far: 1 at first, 2.5 after an update raised it, and
    /// still 2.5 after that slot's priority came down again.
    #[test]
    fn insert_uses_the_max_priority() {
        let mut per = Prioritized::new(5, config()).unwrap();
        per.insert(0).unwrap();
        assert_eq!(per.tree().get(0), 1.0);
        per.update(&[0], &[6.0]).unwrap();
        per.insert(1).unwrap();
        assert_eq!(per.tree().get(1), 2.5);
        per.update(&[0, 1], &[0.75, 0.75]).unwrap();
        per.insert(2).unwrap();
        assert_eq!((per.tree().get(0), per.tree().get(2), per.max_priority()), (1.0, 2.5, 2.5));
    }

    /// A removed slot is never drawn, an update does not bring it back, and a sampler with nothing left refuses.
    #[test]
    fn remove_makes_a_slot_unsampleable() {
        let mut per = Prioritized::new(3, config()).unwrap();
        for slot in 0..3 {
            per.insert(slot).unwrap();
        }
        per.remove(1).unwrap();
        per.update(&[1], &[100.0]).unwrap();
        assert_eq!((per.len(), per.tree().get(1), per.tree().total()), (2, 0.0, 2.0));
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(2);
        for _ in 0..1000 {
            let (slots, _) = per.sample(4, 0, &mut rng).unwrap();
            assert!(!slots.contains(&1), "{slots:?}");
        }
        per.remove(0).unwrap();
        per.remove(2).unwrap();
        assert!(per.is_empty());
        assert!(per.sample(4, 0, &mut rng).unwrap_err().contains("holds no transitions"));
        assert!(per.weights(&[1], 0).unwrap_err().contains("no priority"));
    }

    /// Eight slots with α = 1 priorities ≈ [1, 2, 0, 3, 4, 5, 6, 7] (TD error k, ε = 10⁻⁶; slot 2 removed).
    fn eight() -> Prioritized {
        let mut per = Prioritized::new(8, PerConfig { alpha: 1.0, ..PerConfig::default() }).unwrap();
        for slot in 0..8 {
            per.insert(slot).unwrap();
        }
        per.update(&[0, 1, 3, 4, 5, 6, 7], &[1., 2., 3., 4., 5., 6., 7.]).unwrap();
        per.remove(2).unwrap();
        per
    }

    /// 10⁵ independent draws (batches of one, where stratified sampling is plain proportional sampling) hit each
    /// slot with frequency within 0.01 of p_i/Σp (Σp = 28; the binomial standard deviation is at most 0.0014, so
    /// the bound sits at 7 of them); the zero-priority slot is never drawn.
    #[test]
    fn draws_follow_the_priorities() {
        let per = eight();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
        let mut counts = [0usize; 8];
        let draws = 100_000;
        for _ in 0..draws {
            counts[per.sample(1, 0, &mut rng).unwrap().0[0]] += 1;
        }
        assert_eq!(counts[2], 0);
        for (slot, &c) in counts.iter().enumerate() {
            let expected = per.tree().get(slot) / per.tree().total();
            let freq = c as f64 / draws as f64;
            assert!((freq - expected).abs() <= 0.01, "slot {slot}: {freq} vs {expected}");
        }
    }

    /// Stratified batches of 28 (one segment per unit of priority): the interval of slot i spans p_i segments
    /// exactly, up to the 10⁻⁶ of ε, so each batch holds slot i p_i times give or take one.
    #[test]
    fn stratified_batches_spread_over_the_priorities() {
        let per = eight();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(12);
        for _ in 0..1000 {
            let (slots, _) = per.sample(28, 0, &mut rng).unwrap();
            for (slot, p) in [(0, 1), (1, 2), (2, 0), (3, 3), (4, 4), (5, 5), (6, 6), (7, 7)] {
                let n = slots.iter().filter(|&&s| s == slot).count() as i64;
                assert!((n - p).abs() <= 1, "slot {slot} drawn {n} times in {slots:?}");
            }
        }
    }

    /// Priorities [1, 2, 3, 4] (α = 1, TD errors 0.5 … 3.5 with ε = 0.5), β = 0.5: P = [0.1, 0.2, 0.3, 0.4], N = 4,
    /// w = (N·P)^−½ = [1.581, 1.118, 0.913, 0.791]; over the batch's largest (slot 0's): [1, 1/√2, 1/√3, 1/2].
    /// For the batch [1, 3] the largest is slot 1's: [1, (4/2)^−½].
    #[test]
    fn importance_weights_by_hand() {
        let cfg = PerConfig { alpha: 1.0, beta_start: 0.5, beta_end: 1.0, beta_steps: 100, epsilon: 0.5 };
        let mut per = Prioritized::new(4, cfg).unwrap();
        for slot in 0..4 {
            per.insert(slot).unwrap();
        }
        per.update(&[0, 1, 2, 3], &[0.5, 1.5, 2.5, 3.5]).unwrap();
        let close = |a: Vec<f32>, b: &[f64]| {
            assert!(a.iter().zip(b).all(|(x, y)| (*x as f64 - y).abs() < 1e-6) && a.len() == b.len(), "{a:?}");
        };
        close(per.weights(&[0, 1, 2, 3], 0).unwrap(), &[1.0, 0.5f64.sqrt(), (1.0f64 / 3.0).sqrt(), 0.5]);
        close(per.weights(&[1, 3], 0).unwrap(), &[1.0, 0.5f64.sqrt()]);
        // β = 1 at the end of the anneal: w ∝ 1/p.
        close(per.weights(&[3, 0, 3], 100).unwrap(), &[0.25, 1.0, 0.25]);
        // `sample` returns the same weights as `weights` for the slots it drew.
        let (slots, w) = per.sample(16, 50, &mut Xoshiro256PlusPlus::seed_from_u64(4)).unwrap();
        assert_eq!(w, per.weights(&slots, 50).unwrap());
    }

    /// β runs linearly from beta_start to beta_end over beta_steps and stays there; beta_steps 0 is beta_end.
    #[test]
    fn beta_anneals_between_its_endpoints() {
        let per = Prioritized::new(2, PerConfig { beta_steps: 1000, ..PerConfig::default() }).unwrap();
        assert_eq!(per.beta(0), 0.4);
        assert!((per.beta(500) - 0.7).abs() < 1e-12);
        assert_eq!((per.beta(1000), per.beta(5000)), (1.0, 1.0));
        let per = Prioritized::new(2, PerConfig { beta_steps: 0, ..PerConfig::default() }).unwrap();
        assert_eq!(per.beta(0), 1.0);
    }

    /// Bad configurations are errors that name the value; unknown fields are refused.
    #[test]
    fn bad_configs_are_errors() {
        let bad = |c: PerConfig| Prioritized::new(4, c).unwrap_err();
        assert!(bad(PerConfig { alpha: -1.0, ..PerConfig::default() }).contains("alpha"));
        assert!(bad(PerConfig { beta_start: 1.5, ..PerConfig::default() }).contains("beta_start"));
        assert!(bad(PerConfig { beta_end: f64::NAN, ..PerConfig::default() }).contains("beta_end"));
        assert!(bad(PerConfig { epsilon: 0.0, ..PerConfig::default() }).contains("epsilon"));
        assert!(Prioritized::new(0, PerConfig::default()).unwrap_err().contains("capacity"));
        let per = Prioritized::new(4, PerConfig::default()).unwrap();
        assert!(per.sample(0, 0, &mut Xoshiro256PlusPlus::seed_from_u64(0)).unwrap_err().contains("at least one"));
        let text = toml::to_string(&PerConfig::default()).unwrap();
        assert_eq!(toml::from_str::<PerConfig>(&text).unwrap(), PerConfig::default());
        assert!(toml::from_str::<PerConfig>(&format!("{text}\nbeta = 1.0\n")).is_err());
    }
}
