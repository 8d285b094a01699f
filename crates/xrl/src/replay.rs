//! Experience replay with n-step returns.
//!
//! Observations are stored once per transition pair as u8 when the environment's observations are 0/1 planes
//! (MinAtar: 4× smaller than f32) and as f32 otherwise. [`NStep`] folds single steps into n-step transitions:
//! `R = Σ_{k<m} γ^k r_{t+k}` and the bootstrap observation `s_{t+m}`, where `m ≤ n` stops at the episode's end;
//! a terminated episode does not bootstrap, a truncated one does (from its last observation). It folds any
//! observation type: float vectors here, frame ids for [`crate::pixel_replay::PixelReplay`].

use rand::Rng;
use std::collections::VecDeque;

/// One (possibly n-step) transition.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition<O = Vec<f32>> {
    pub obs: O,
    pub action: usize,
    /// Discounted reward over the `steps` steps.
    pub reward: f32,
    pub next_obs: O,
    /// True when the episode terminated within the steps: no bootstrap.
    pub terminal: bool,
    /// Steps folded in (the bootstrap discount is γ^steps).
    pub steps: u32,
}

/// Turns single steps into n-step transitions.
pub struct NStep<O = Vec<f32>> {
    n: usize,
    gamma: f32,
    /// (obs, action, reward) of the steps not yet emitted.
    pending: VecDeque<(O, usize, f32)>,
}

impl<O: Clone> NStep<O> {
    pub fn new(n: usize, gamma: f32) -> Self {
        NStep { n: n.max(1), gamma, pending: VecDeque::new() }
    }

    /// Adds the step `obs --action--> next_obs` and returns the transitions it completes. At an episode's end
    /// (`terminated` or `truncated`) every pending step is flushed.
    pub fn push(
        &mut self,
        obs: &O,
        action: usize,
        reward: f32,
        next_obs: &O,
        terminated: bool,
        truncated: bool,
    ) -> Vec<Transition<O>> {
        self.pending.push_back((obs.clone(), action, reward));
        let mut out = vec![];
        if terminated || truncated {
            while !self.pending.is_empty() {
                out.push(self.emit(next_obs, terminated));
            }
        } else if self.pending.len() == self.n {
            out.push(self.emit(next_obs, false));
        }
        out
    }

    /// Forgets the pending steps (a resumed run starts a fresh episode).
    pub fn clear(&mut self) {
        self.pending.clear();
    }

    /// Emits the oldest pending step with the rewards of all pending steps.
    fn emit(&mut self, next_obs: &O, terminal: bool) -> Transition<O> {
        let reward = self.pending.iter().rev().fold(0.0, |acc, (_, _, r)| r + self.gamma * acc);
        let steps = self.pending.len() as u32;
        let (obs, action, _) = self.pending.pop_front().expect("emit on a non-empty queue");
        Transition { obs, action, reward, next_obs: next_obs.clone(), terminal, steps }
    }
}

/// Storage of observations.
#[derive(Clone, Debug)]
pub enum Frames {
    /// 0/1 values, one byte each.
    Binary(Vec<u8>),
    Float(Vec<f32>),
}

/// A ring buffer of transitions (saved in checkpoints by [`Replay::write_to`]).
#[derive(Clone, Debug)]
pub struct Replay {
    capacity: usize,
    obs_len: usize,
    obs: Frames,
    next_obs: Frames,
    actions: Vec<u32>,
    rewards: Vec<f32>,
    terminal: Vec<bool>,
    steps: Vec<u32>,
    len: usize,
    head: usize,
}

/// A sampled batch, flat and ready for tensors.
pub struct Batch {
    pub obs: Vec<f32>,
    pub actions: Vec<usize>,
    pub rewards: Vec<f32>,
    pub next_obs: Vec<f32>,
    /// 1.0 where the transition bootstraps, 0.0 where it terminated.
    pub not_terminal: Vec<f32>,
    pub steps: Vec<u32>,
}

impl Replay {
    pub fn new(capacity: usize, obs_len: usize, binary: bool) -> Self {
        let frames = || {
            if binary {
                Frames::Binary(vec![0; capacity * obs_len])
            } else {
                Frames::Float(vec![0.0; capacity * obs_len])
            }
        };
        Replay {
            capacity,
            obs_len,
            obs: frames(),
            next_obs: frames(),
            actions: vec![0; capacity],
            rewards: vec![0.0; capacity],
            terminal: vec![false; capacity],
            steps: vec![1; capacity],
            len: 0,
            head: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Stores `t` (over the oldest when full) and returns its slot.
    pub fn push(&mut self, t: &Transition) -> usize {
        let i = self.head;
        let range = i * self.obs_len..(i + 1) * self.obs_len;
        for (frames, src) in [(&mut self.obs, &t.obs), (&mut self.next_obs, &t.next_obs)] {
            match frames {
                Frames::Binary(v) => v[range.clone()].iter_mut().zip(src).for_each(|(d, s)| *d = (*s > 0.5) as u8),
                Frames::Float(v) => v[range.clone()].copy_from_slice(src),
            }
        }
        self.actions[i] = t.action as u32;
        self.rewards[i] = t.reward;
        self.terminal[i] = t.terminal;
        self.steps[i] = t.steps;
        self.head = (self.head + 1) % self.capacity;
        self.len = (self.len + 1).min(self.capacity);
        i
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// `size` transitions drawn uniformly with replacement.
    pub fn sample(&self, size: usize, rng: &mut impl Rng) -> Batch {
        let slots: Vec<usize> = (0..size).map(|_| rng.random_range(0..self.len)).collect();
        self.batch(&slots)
    }

    /// The transitions in `slots` (each below [`Replay::len`]; slots are stable until overwritten).
    pub fn batch(&self, slots: &[usize]) -> Batch {
        let size = slots.len();
        let n = self.obs_len;
        let mut b = Batch {
            obs: Vec::with_capacity(size * n),
            actions: Vec::with_capacity(size),
            rewards: Vec::with_capacity(size),
            next_obs: Vec::with_capacity(size * n),
            not_terminal: Vec::with_capacity(size),
            steps: Vec::with_capacity(size),
        };
        for &i in slots {
            assert!(i < self.len, "slot {i} beyond the {} stored transitions", self.len);
            for (frames, dst) in [(&self.obs, &mut b.obs), (&self.next_obs, &mut b.next_obs)] {
                match frames {
                    Frames::Binary(v) => dst.extend(v[i * n..(i + 1) * n].iter().map(|&x| x as f32)),
                    Frames::Float(v) => dst.extend_from_slice(&v[i * n..(i + 1) * n]),
                }
            }
            b.actions.push(self.actions[i] as usize);
            b.rewards.push(self.rewards[i]);
            b.not_terminal.push(if self.terminal[i] { 0.0 } else { 1.0 });
            b.steps.push(self.steps[i]);
        }
        b
    }
}

const MAGIC: &[u8; 8] = b"XRLRPLY1";

impl Replay {
    /// Writes the buffer in a compact little-endian binary form (see [`Replay::read_from`]).
    pub fn write_to(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        w.write_all(MAGIC)?;
        let binary = matches!(self.obs, Frames::Binary(_));
        for v in [self.capacity, self.obs_len, self.len, self.head, binary as usize] {
            w.write_all(&(v as u64).to_le_bytes())?;
        }
        for frames in [&self.obs, &self.next_obs] {
            match frames {
                Frames::Binary(v) => w.write_all(&v[..self.len * self.obs_len])?,
                Frames::Float(v) => {
                    v[..self.len * self.obs_len].iter().try_for_each(|x| w.write_all(&x.to_le_bytes()))?
                }
            }
        }
        let n = self.len;
        self.actions[..n].iter().try_for_each(|x| w.write_all(&x.to_le_bytes()))?;
        self.rewards[..n].iter().try_for_each(|x| w.write_all(&x.to_le_bytes()))?;
        self.steps[..n].iter().try_for_each(|x| w.write_all(&x.to_le_bytes()))?;
        w.write_all(&self.terminal[..n].iter().map(|&t| t as u8).collect::<Vec<_>>())
    }

    /// Reads a buffer written by [`Replay::write_to`]; a truncated or foreign file is an error.
    pub fn read_from(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(8)? != MAGIC {
            return Err("not an xrl replay file".into());
        }
        let mut header = [0usize; 5];
        for h in header.iter_mut() {
            *h = u64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes")) as usize;
        }
        let [capacity, obs_len, len, head, binary] = header;
        if len > capacity || head >= capacity.max(1) || obs_len == 0 {
            return Err(format!("inconsistent replay header (capacity {capacity}, length {len}, head {head})"));
        }
        let mut replay = Replay::new(capacity, obs_len, binary == 1);
        let m = len * obs_len;
        for frames in [&mut replay.obs, &mut replay.next_obs] {
            match frames {
                Frames::Binary(v) => v[..m].copy_from_slice(r.take(m)?),
                Frames::Float(v) => r.floats(&mut v[..m])?,
            }
        }
        for a in replay.actions[..len].iter_mut() {
            *a = u32::from_le_bytes(r.take(4)?.try_into().expect("4 bytes"));
        }
        r.floats(&mut replay.rewards[..len])?;
        for s in replay.steps[..len].iter_mut() {
            *s = u32::from_le_bytes(r.take(4)?.try_into().expect("4 bytes"));
        }
        for (t, b) in replay.terminal[..len].iter_mut().zip(r.take(len)?) {
            *t = *b != 0;
        }
        if r.at != bytes.len() {
            return Err("replay file has trailing bytes".into());
        }
        (replay.len, replay.head) = (len, head);
        Ok(replay)
    }
}

/// Reads little-endian fields from a checkpoint file, failing on truncation.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }
    pub(crate) fn done(&self) -> bool {
        self.at == self.bytes.len()
    }
    pub(crate) fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or("replay file is truncated")?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    pub(crate) fn floats(&mut self, out: &mut [f32]) -> Result<(), String> {
        let bytes = self.take(out.len() * 4)?;
        for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
            *o = f32::from_le_bytes(c.try_into().expect("4 bytes"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(x: f32) -> Vec<f32> {
        vec![x]
    }

    #[test]
    fn three_step_returns_by_hand() {
        let mut ns = NStep::new(3, 0.5);
        assert!(ns.push(&o(0.0), 0, 1.0, &o(1.0), false, false).is_empty());
        assert!(ns.push(&o(1.0), 1, 2.0, &o(2.0), false, false).is_empty());
        // Third step completes s0: R = 1 + 0.5·2 + 0.25·4 = 3, bootstrap from s3 with γ³.
        let t = ns.push(&o(2.0), 0, 4.0, &o(3.0), false, false);
        assert_eq!(
            t,
            vec![Transition { obs: o(0.0), action: 0, reward: 3.0, next_obs: o(3.0), terminal: false, steps: 3 }]
        );
        // A termination flushes s1 (2 + 0.5·4 + 0.25·8 = 6) and s2 (4 + 0.5·8 = 8) and s3 (8), none bootstrapping.
        let t = ns.push(&o(3.0), 1, 8.0, &o(9.0), true, false);
        let got: Vec<(f32, f32, bool, u32)> = t.iter().map(|t| (t.obs[0], t.reward, t.terminal, t.steps)).collect();
        assert_eq!(got, vec![(1.0, 6.0, true, 3), (2.0, 8.0, true, 2), (3.0, 8.0, true, 1)]);
        assert!(t.iter().all(|t| t.next_obs == o(9.0)));
    }

    #[test]
    fn truncation_flushes_but_bootstraps() {
        let mut ns = NStep::new(3, 0.9);
        ns.push(&o(0.0), 0, 1.0, &o(1.0), false, false);
        let t = ns.push(&o(1.0), 0, 1.0, &o(2.0), false, true);
        assert_eq!(t.len(), 2);
        assert!(t.iter().all(|t| !t.terminal && t.next_obs == o(2.0)));
        assert!((t[0].reward - 1.9).abs() < 1e-6 && t[0].steps == 2);
        assert_eq!((t[1].reward, t[1].steps), (1.0, 1));
    }

    #[test]
    fn replay_ring_stores_binary_frames_as_bytes_and_overwrites_the_oldest() {
        use rand::SeedableRng;
        let mut r = Replay::new(2, 3, true);
        for k in 0..3 {
            let obs = vec![1.0, 0.0, (k % 2) as f32];
            r.push(&Transition {
                obs: obs.clone(),
                action: k,
                reward: k as f32,
                next_obs: obs,
                terminal: k == 2,
                steps: 1,
            });
        }
        assert_eq!(r.len(), 2);
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(0);
        let b = r.sample(64, &mut rng);
        // Only transitions 1 and 2 remain.
        assert!(b.actions.iter().all(|&a| a == 1 || a == 2));
        // The binary form round-trips, and a truncated file is refused.
        let mut bytes = vec![];
        r.write_to(&mut bytes).unwrap();
        let back = Replay::read_from(&bytes).unwrap();
        let mut rng2 = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(0);
        assert_eq!(
            back.sample(64, &mut rng2).obs,
            r.sample(64, &mut rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(0)).obs
        );
        assert!(Replay::read_from(&bytes[..bytes.len() - 1]).unwrap_err().contains("truncated"));
        for (i, &a) in b.actions.iter().enumerate() {
            assert_eq!(b.obs[i * 3..i * 3 + 3], [1.0, 0.0, (a % 2) as f32]);
            assert_eq!(b.not_terminal[i], if a == 2 { 0.0 } else { 1.0 });
        }
    }
}
