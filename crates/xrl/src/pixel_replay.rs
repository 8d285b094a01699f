//! Replay for pixel frames: each 84 × 84 u8 frame is stored once, and a stacked observation is a list of frame ids
//! into that store, not a copy — about 7 KB per transition instead of the 56 KB of two f32 stacks of four (or 28 KB
//! as u8 copies).
//!
//! Storage ([`PixelReplay`]: frames, transitions, [`PixelReplay::batch`] for any list of indices) is separate from
//! sampling ([`uniform_indices`] here; prioritised sampling plugs in by producing indices).
//!
//! A frame id is a running count of frames pushed; frames live in a ring of `capacity + slack` slots, so each
//! transition's frames stay until it leaves the ring. Ids only grow along the pushes, so when a frame slot is
//! reused the transitions that still point at the old frame are the oldest ones, and they are dropped (`len` shrinks
//! a little in games with many short episodes, whose reset frames take slots without a transition).

use crate::replay::{Batch, NStep, Reader};
use rand::Rng;

/// The id of a stored frame.
pub type FrameId = u64;

/// Frame ids of the last `k` frames of the current episode (oldest first); after a reset every slot holds the first
/// frame, as [`xrl_env::wrappers::FrameStack`] pads.
#[derive(Clone, Debug)]
pub struct IdStack {
    ids: Vec<FrameId>,
}

impl IdStack {
    pub fn new(k: usize, first: FrameId) -> Self {
        IdStack { ids: vec![first; k.max(1)] }
    }
    /// A stack of the given ids (oldest first).
    pub fn from_ids(ids: Vec<FrameId>) -> Self {
        assert!(!ids.is_empty(), "a stack holds at least one frame");
        IdStack { ids }
    }
    pub fn reset(&mut self, first: FrameId) {
        self.ids.fill(first);
    }
    pub fn push(&mut self, id: FrameId) {
        self.ids.rotate_left(1);
        *self.ids.last_mut().expect("k ≥ 1") = id;
    }
    pub fn ids(&self) -> &[FrameId] {
        &self.ids
    }
}

#[derive(Clone, Debug)]
pub struct PixelReplay {
    frame_len: usize,
    k: usize,
    frames: Vec<u8>,
    frame_slots: usize,
    /// Ids `next_frame - frame_slots .. next_frame` are stored.
    next_frame: FrameId,
    capacity: usize,
    /// Per transition: k obs ids then k next-obs ids.
    ids: Vec<FrameId>,
    actions: Vec<u32>,
    rewards: Vec<f32>,
    terminal: Vec<bool>,
    steps: Vec<u32>,
    /// Ring of transitions: the oldest at `tail`, `len` of them.
    tail: usize,
    len: usize,
    /// Slots whose transitions left with their frames since [`PixelReplay::take_dropped`] was last called (a
    /// prioritised sampler must stop drawing them).
    dropped: Vec<usize>,
    /// The longest transition the slack of frame slots was sized for.
    n_step: usize,
}

impl PixelReplay {
    /// Room for `capacity` transitions of stacks of `k` frames of `frame_len` bytes; `n_step` is the longest
    /// transition (frames between obs and next obs).
    pub fn new(capacity: usize, frame_len: usize, k: usize, n_step: usize) -> Result<Self, String> {
        if capacity == 0 || frame_len == 0 || k == 0 {
            return Err("pixel replay needs a capacity, a frame size and a stack of at least 1".into());
        }
        // Slack for the frames of transitions not yet emitted and for reset frames (one per episode).
        let frame_slots = capacity + k + n_step + capacity / 64 + 64;
        let bytes = frame_slots.checked_mul(frame_len).ok_or("pixel replay too large")?;
        Ok(PixelReplay {
            frame_len,
            k,
            frames: vec![0; bytes],
            frame_slots,
            next_frame: 0,
            capacity,
            ids: vec![0; capacity * 2 * k],
            actions: vec![0; capacity],
            rewards: vec![0.0; capacity],
            terminal: vec![false; capacity],
            steps: vec![1; capacity],
            tail: 0,
            len: 0,
            dropped: vec![],
            n_step,
        })
    }

    pub fn n_step(&self) -> usize {
        self.n_step
    }

    /// Bytes per stored frame.
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// Transition slots (physical; [`PixelReplay::batch_slots`] reads them).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The slots dropped since the last call (see the field).
    pub fn take_dropped(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.dropped)
    }

    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn stack(&self) -> usize {
        self.k
    }

    /// Bytes held per transition slot (frames, ids and the scalars), what the benchmark reports.
    pub fn bytes_per_transition(&self) -> f64 {
        let frames = self.frames.len() as f64;
        let per = (2 * self.k * 8 + 4 + 4 + 1 + 4) as f64;
        frames / self.capacity as f64 + per
    }

    fn oldest_frame(&self) -> FrameId {
        self.next_frame.saturating_sub(self.frame_slots as u64)
    }

    /// Stores one frame (`frame_len` bytes) and returns its id.
    pub fn push_frame(&mut self, frame: &[u8]) -> FrameId {
        assert_eq!(frame.len(), self.frame_len, "frame size differs from the replay's");
        let id = self.next_frame;
        let slot = (id % self.frame_slots as u64) as usize;
        self.frames[slot * self.frame_len..(slot + 1) * self.frame_len].copy_from_slice(frame);
        self.next_frame += 1;
        // Drop the oldest transitions that point at the frame this one replaced.
        let oldest = self.oldest_frame();
        while self.len > 0 && self.ids[self.tail * 2 * self.k] < oldest {
            self.dropped.push(self.tail);
            self.tail = (self.tail + 1) % self.capacity;
            self.len -= 1;
        }
        id
    }

    /// Adds a transition between two stacks of stored frames (ids from [`PixelReplay::push_frame`], oldest first)
    /// and returns its slot (when full, the oldest transition's).
    pub fn push(
        &mut self,
        obs: &[FrameId],
        action: usize,
        reward: f32,
        next: &[FrameId],
        terminal: bool,
        steps: u32,
    ) -> usize {
        assert!(obs.len() == self.k && next.len() == self.k, "stacks must hold {} frame ids", self.k);
        let oldest = self.oldest_frame();
        assert!(
            obs.iter().chain(next).all(|&id| id >= oldest && id < self.next_frame),
            "a transition may only point at stored frames"
        );
        if self.len == self.capacity {
            self.tail = (self.tail + 1) % self.capacity;
            self.len -= 1;
        }
        let i = (self.tail + self.len) % self.capacity;
        let row = &mut self.ids[i * 2 * self.k..(i + 1) * 2 * self.k];
        row[..self.k].copy_from_slice(obs);
        row[self.k..].copy_from_slice(next);
        self.actions[i] = action as u32;
        self.rewards[i] = reward;
        self.terminal[i] = terminal;
        self.steps[i] = steps;
        self.len += 1;
        i
    }

    fn gather(&self, ids: &[FrameId], out: &mut Vec<f32>) {
        for &id in ids {
            let slot = (id % self.frame_slots as u64) as usize;
            out.extend(self.frames[slot * self.frame_len..(slot + 1) * self.frame_len].iter().map(|&b| b as f32));
        }
    }

    /// The transitions at positions `indices` (0 = oldest), as float stacks ready for tensors.
    pub fn batch(&self, indices: &[usize]) -> Batch {
        let slots: Vec<usize> = indices
            .iter()
            .map(|&pos| {
                assert!(pos < self.len, "index {pos} beyond the {} stored transitions", self.len);
                (self.tail + pos) % self.capacity
            })
            .collect();
        self.batch_slots(&slots)
    }

    /// The physical slot of position `pos` (0 = oldest).
    pub fn slot(&self, pos: usize) -> usize {
        assert!(pos < self.len, "index {pos} beyond the {} stored transitions", self.len);
        (self.tail + pos) % self.capacity
    }

    /// Whether physical slot `slot` holds a transition.
    pub fn holds(&self, slot: usize) -> bool {
        slot < self.capacity && (slot + self.capacity - self.tail) % self.capacity < self.len
    }

    /// The transitions in physical slots `slots` (from [`PixelReplay::push`]; each must hold one).
    pub fn batch_slots(&self, slots: &[usize]) -> Batch {
        let indices = slots;
        let n = self.k * self.frame_len;
        let mut b = Batch {
            obs: Vec::with_capacity(indices.len() * n),
            actions: Vec::with_capacity(indices.len()),
            rewards: Vec::with_capacity(indices.len()),
            next_obs: Vec::with_capacity(indices.len() * n),
            not_terminal: Vec::with_capacity(indices.len()),
            steps: Vec::with_capacity(indices.len()),
        };
        for &i in indices {
            assert!(self.holds(i), "slot {i} holds no transition");
            let row = &self.ids[i * 2 * self.k..(i + 1) * 2 * self.k];
            self.gather(&row[..self.k], &mut b.obs);
            self.gather(&row[self.k..], &mut b.next_obs);
            b.actions.push(self.actions[i] as usize);
            b.rewards.push(self.rewards[i]);
            b.not_terminal.push(if self.terminal[i] { 0.0 } else { 1.0 });
            b.steps.push(self.steps[i]);
        }
        b
    }
}

const MAGIC: &[u8; 8] = b"XRLPIXR1";

impl PixelReplay {
    /// Writes the buffer (the stored frames and the transitions, oldest first) in little-endian binary, for
    /// checkpoints; [`PixelReplay::read_from`] reads it back.
    pub fn write_to(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        w.write_all(MAGIC)?;
        let header = [self.frame_len as u64, self.k as u64, self.capacity as u64, self.next_frame, self.len as u64];
        header.iter().try_for_each(|v| w.write_all(&v.to_le_bytes()))?;
        let stored = (self.next_frame as usize).min(self.frame_slots);
        w.write_all(&self.frames[..stored * self.frame_len])?;
        let row = 2 * self.k;
        for pos in 0..self.len {
            let i = (self.tail + pos) % self.capacity;
            self.ids[i * row..(i + 1) * row].iter().try_for_each(|id| w.write_all(&id.to_le_bytes()))?;
            w.write_all(&self.actions[i].to_le_bytes())?;
            w.write_all(&self.rewards[i].to_le_bytes())?;
            w.write_all(&self.steps[i].to_le_bytes())?;
            w.write_all(&[self.terminal[i] as u8])?;
        }
        Ok(())
    }

    /// Reads a buffer written by [`PixelReplay::write_to`] for stacks of `n_step`-step transitions (the slack of
    /// frame slots depends on it); a truncated, foreign or inconsistent file is an error.
    pub fn read_from(bytes: &[u8], n_step: usize) -> Result<Self, String> {
        let mut r = Reader::new(bytes);
        if r.take(8)? != MAGIC {
            return Err("not an xrl pixel replay file".into());
        }
        let mut header = [0u64; 5];
        for h in header.iter_mut() {
            *h = r.u64()?;
        }
        let [frame_len, k, capacity, next_frame, len] = header;
        let as_size = |v: u64| usize::try_from(v).map_err(|_| "pixel replay header out of range".to_string());
        let (frame_len, k, capacity, len) = (as_size(frame_len)?, as_size(k)?, as_size(capacity)?, as_size(len)?);
        // A damaged header must not ask for more memory than any machine has (256 GiB).
        if len > capacity || frame_len.checked_mul(capacity).is_none_or(|b| b > 1 << 38) {
            return Err(format!(
                "inconsistent pixel replay header (capacity {capacity}, frame {frame_len} bytes, length {len})"
            ));
        }
        let mut replay = PixelReplay::new(capacity, frame_len, k, n_step)?;
        let stored = (next_frame as usize).min(replay.frame_slots);
        replay.frames[..stored * frame_len].copy_from_slice(r.take(stored * frame_len)?);
        replay.next_frame = next_frame;
        let oldest = replay.oldest_frame();
        let row = 2 * k;
        for i in 0..len {
            for id in replay.ids[i * row..(i + 1) * row].iter_mut() {
                *id = r.u64()?;
                if *id < oldest || *id >= next_frame {
                    return Err("pixel replay file points at frames it does not hold".into());
                }
            }
            replay.actions[i] = r.u32()?;
            replay.rewards[i] = f32::from_bits(r.u32()?);
            replay.steps[i] = r.u32()?;
            replay.terminal[i] = r.take(1)?[0] != 0;
        }
        if !r.done() {
            return Err("pixel replay file has trailing bytes".into());
        }
        replay.len = len;
        Ok(replay)
    }
}

/// Pixel replay fed with stacked float observations, as the training loops see them: it keeps the frame ids of
/// the current stack, stores only each step's new frame, and folds steps into n-step transitions over ids.
///
/// An observation is `k` frames of `frame_len` grey levels (0–255 as f32). When a step's `obs` is not the
/// previous `next_obs` (an episode's first step, or a caller that skipped steps), its frames are stored afresh,
/// each run of identical frames once (a reset stack is one frame repeated), so the replay never holds a stack
/// that differs from what the agent saw.
pub struct PixelMemory {
    pub replay: PixelReplay,
    nstep: NStep<Vec<FrameId>>,
    stack: Option<IdStack>,
    /// The last `next_obs` seen, to recognise the next step's `obs`.
    last: Vec<f32>,
    frame: Vec<u8>,
}

impl PixelMemory {
    pub fn new(capacity: usize, obs_len: usize, k: usize, n_step: usize, gamma: f32) -> Result<Self, String> {
        if k == 0 || !obs_len.is_multiple_of(k) {
            return Err(format!("an observation of {obs_len} values is not a stack of {k} frames"));
        }
        Ok(PixelMemory {
            replay: PixelReplay::new(capacity, obs_len / k, k, n_step)?,
            nstep: NStep::new(n_step, gamma),
            stack: None,
            last: vec![],
            frame: vec![0; obs_len / k],
        })
    }

    /// Takes a stored replay (from a checkpoint); pending steps are dropped and the next step starts a fresh
    /// stack.
    pub fn restore(&mut self, replay: PixelReplay) {
        self.replay = replay;
        self.nstep.clear();
        self.stack = None;
        self.last.clear();
    }

    fn push_frame(&mut self, frame: &[f32]) -> FrameId {
        for (b, &x) in self.frame.iter_mut().zip(frame) {
            *b = x.round().clamp(0.0, 255.0) as u8;
        }
        self.replay.push_frame(&self.frame)
    }

    /// Records one environment step; the n-step transitions it completes go into the replay, and their slots are
    /// returned.
    pub fn observe(
        &mut self,
        obs: &[f32],
        action: usize,
        reward: f32,
        next_obs: &[f32],
        terminated: bool,
        truncated: bool,
    ) -> Vec<usize> {
        let n = self.replay.frame_len;
        assert!(obs.len() == n * self.replay.k && next_obs.len() == obs.len(), "observation size differs");
        if self.stack.is_none() || self.last != obs {
            let mut ids: Vec<FrameId> = Vec::with_capacity(self.replay.k);
            for (j, f) in obs.chunks_exact(n).enumerate() {
                let repeat = j > 0 && f == &obs[(j - 1) * n..j * n];
                let id = if repeat { ids[j - 1] } else { self.push_frame(f) };
                ids.push(id);
            }
            self.stack = Some(IdStack::from_ids(ids));
        }
        let before = self.stack.as_ref().expect("set above").ids().to_vec();
        let id = self.push_frame(&next_obs[(self.replay.k - 1) * n..]);
        let stack = self.stack.as_mut().expect("set above");
        stack.push(id);
        let after = stack.ids().to_vec();
        let mut written = vec![];
        for t in self.nstep.push(&before, action, reward, &after, terminated, truncated) {
            written.push(self.replay.push(&t.obs, t.action, t.reward, &t.next_obs, t.terminal, t.steps));
        }
        if terminated || truncated {
            self.stack = None;
            self.last.clear();
        } else {
            self.last.clear();
            self.last.extend_from_slice(next_obs);
        }
        written
    }
}

/// `size` positions drawn uniformly with replacement from `0..len`.
pub fn uniform_indices(len: usize, size: usize, rng: &mut impl Rng) -> Vec<usize> {
    (0..size).map(|_| rng.random_range(0..len)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn frame(v: u8) -> Vec<u8> {
        vec![v; 6]
    }

    #[test]
    fn stacks_are_rebuilt_from_frames_stored_once() {
        let mut r = PixelReplay::new(10, 6, 3, 1).unwrap();
        let first = r.push_frame(&frame(1));
        let mut stack = IdStack::new(3, first);
        for v in 2..6u8 {
            let obs = stack.ids().to_vec();
            let id = r.push_frame(&frame(v));
            stack.push(id);
            r.push(&obs, v as usize, v as f32, stack.ids(), v == 5, 1);
        }
        assert_eq!(r.len(), 4);
        let b = r.batch(&[0, 3]);
        // Transition 0: obs = [1, 1, 1] (padded with the first frame), next = [1, 1, 2].
        let f = |vals: &[u8]| vals.iter().flat_map(|&v| vec![v as f32; 6]).collect::<Vec<_>>();
        assert_eq!(&b.obs[..18], &f(&[1, 1, 1])[..]);
        assert_eq!(&b.next_obs[..18], &f(&[1, 1, 2])[..]);
        // Transition 3: obs = [2, 3, 4], next = [3, 4, 5], terminal.
        assert_eq!(&b.obs[18..], &f(&[2, 3, 4])[..]);
        assert_eq!(&b.next_obs[18..], &f(&[3, 4, 5])[..]);
        assert_eq!(b.actions, vec![2, 5]);
        assert_eq!(b.not_terminal, vec![1.0, 0.0]);
    }

    #[test]
    fn old_transitions_leave_with_their_frames_and_new_ones_stay_intact() {
        let (cap, k) = (50, 4);
        let mut r = PixelReplay::new(cap, 6, k, 1).unwrap();
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(0);
        let mut value = 0u8;
        let mut id = r.push_frame(&frame(value));
        let mut stack = IdStack::new(k, id);
        // Many short episodes: reset frames take slots without transitions.
        for step in 0..5_000 {
            value = value.wrapping_add(1);
            let obs = stack.ids().to_vec();
            id = r.push_frame(&frame(value));
            stack.push(id);
            r.push(&obs, 0, 0.0, stack.ids(), false, 1);
            if step % 3 == 2 {
                value = value.wrapping_add(1);
                id = r.push_frame(&frame(value));
                stack.reset(id);
            }
            assert!(r.len() <= cap);
        }
        assert!(r.len() > cap * 3 / 4, "kept {} of {cap}", r.len());
        // The newest transition's next stack ends with the last pushed step frame, value by value.
        let b = r.batch(&[r.len() - 1]);
        let last = &b.next_obs[(k - 1) * 6..];
        assert!(last.iter().all(|&x| x == b.next_obs[(k - 1) * 6]));
        let idx = uniform_indices(r.len(), 64, &mut rng);
        assert_eq!(r.batch(&idx).obs.len(), 64 * k * 6);
    }

    /// A FrameStack-like stream of stacked float observations (k frames of 6 grey levels), with episodes ending
    /// by termination and truncation and one step whose `obs` is not the previous `next_obs`.
    /// (obs, action, reward, next obs, terminated, truncated).
    type Step = (Vec<f32>, usize, f32, Vec<f32>, bool, bool);

    fn stream(k: usize, steps: usize) -> Vec<Step> {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(7);
        let frame = |rng: &mut rand_xoshiro::Xoshiro256PlusPlus| -> Vec<f32> {
            (0..6).map(|_| rng.random_range(0..=255u8) as f32).collect()
        };
        let first = frame(&mut rng);
        let mut obs: Vec<f32> = (0..k).flat_map(|_| first.clone()).collect();
        let mut out = vec![];
        for t in 0..steps {
            if t == 40 {
                // A caller that skipped a step: this obs is not the last next_obs.
                obs = (0..k).flat_map(|_| frame(&mut rng)).collect();
            }
            let mut next = obs[6..].to_vec();
            next.extend(frame(&mut rng));
            let (terminated, truncated) = (t % 17 == 16, t % 29 == 28);
            out.push((obs.clone(), t % 3, t as f32, next.clone(), terminated, truncated));
            obs = if terminated || truncated {
                let f = frame(&mut rng);
                (0..k).flat_map(|_| f.clone()).collect()
            } else {
                next
            };
        }
        out
    }

    #[test]
    fn pixel_memory_gives_back_exactly_the_stacks_it_was_fed() {
        let k = 4;
        let mut memory = PixelMemory::new(1_000, 6 * k, k, 3, 0.9).unwrap();
        let mut reference = NStep::<Vec<f32>>::new(3, 0.9);
        let mut expected = vec![];
        let steps = stream(k, 120);
        for (obs, a, r, next, term, trunc) in &steps {
            memory.observe(obs, *a, *r, next, *term, *trunc);
            expected.extend(reference.push(obs, *a, *r, next, *term, *trunc));
        }
        assert_eq!(memory.replay.len(), expected.len());
        let b = memory.replay.batch(&(0..expected.len()).collect::<Vec<_>>());
        let n = 6 * k;
        for (i, t) in expected.iter().enumerate() {
            assert_eq!(&b.obs[i * n..(i + 1) * n], &t.obs[..], "obs of transition {i}");
            assert_eq!(&b.next_obs[i * n..(i + 1) * n], &t.next_obs[..], "next obs of transition {i}");
            assert_eq!((b.actions[i], b.rewards[i], b.steps[i]), (t.action, t.reward, t.steps));
            assert_eq!(b.not_terminal[i], if t.terminal { 0.0 } else { 1.0 });
        }
        // One frame per step, one per episode start (a reset stack repeats one frame), k for the skipped step.
        let starts = steps.iter().filter(|s| s.4 || s.5).count();
        assert_eq!(memory.replay.next_frame as usize, steps.len() + 1 + starts + k);
    }

    #[test]
    fn a_checkpointed_pixel_replay_reads_back_the_same_transitions_and_damage_is_refused() {
        let k = 4;
        // Small enough that the frame ring wraps and old transitions leave.
        let mut memory = PixelMemory::new(30, 6 * k, k, 3, 0.9).unwrap();
        for (obs, a, r, next, term, trunc) in stream(k, 200) {
            memory.observe(&obs, a, r, &next, term, trunc);
        }
        let mut bytes = vec![];
        memory.replay.write_to(&mut bytes).unwrap();
        let back = PixelReplay::read_from(&bytes, 3).unwrap();
        let all: Vec<usize> = (0..memory.replay.len()).collect();
        let (a, b) = (memory.replay.batch(&all), back.batch(&all));
        assert_eq!((a.obs, a.next_obs, a.actions, a.rewards), (b.obs, b.next_obs, b.actions, b.rewards));
        assert_eq!((a.not_terminal, a.steps), (b.not_terminal, b.steps));
        assert!(PixelReplay::read_from(&bytes[..bytes.len() - 1], 3).unwrap_err().contains("truncated"));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(PixelReplay::read_from(&longer, 3).unwrap_err().contains("trailing"));
        assert!(PixelReplay::read_from(b"XRLRPLY1", 3).unwrap_err().contains("not an xrl pixel replay"));
        // A transition pointing past the stored frames (a damaged id) is refused.
        let mut bad = bytes.clone();
        let at = 8 + 5 * 8 + memory.replay.frame_slots.min(memory.replay.next_frame as usize) * 6 * k;
        bad[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(PixelReplay::read_from(&bad, 3).unwrap_err().contains("does not hold"));
    }

    #[test]
    fn an_atari_transition_costs_about_one_frame() {
        let r = PixelReplay::new(100_000, 84 * 84, 4, 3).unwrap();
        let per = r.bytes_per_transition();
        assert!(per < 8_000.0 && per > 7_056.0, "{per} bytes per transition");
    }
}
