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

use crate::replay::Batch;
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
        })
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
            self.tail = (self.tail + 1) % self.capacity;
            self.len -= 1;
        }
        id
    }

    /// Adds a transition between two stacks of stored frames (ids from [`PixelReplay::push_frame`], oldest first).
    pub fn push(&mut self, obs: &[FrameId], action: usize, reward: f32, next: &[FrameId], terminal: bool, steps: u32) {
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
    }

    fn gather(&self, ids: &[FrameId], out: &mut Vec<f32>) {
        for &id in ids {
            let slot = (id % self.frame_slots as u64) as usize;
            out.extend(self.frames[slot * self.frame_len..(slot + 1) * self.frame_len].iter().map(|&b| b as f32));
        }
    }

    /// The transitions at positions `indices` (0 = oldest), as float stacks ready for tensors.
    pub fn batch(&self, indices: &[usize]) -> Batch {
        let n = self.k * self.frame_len;
        let mut b = Batch {
            obs: Vec::with_capacity(indices.len() * n),
            actions: Vec::with_capacity(indices.len()),
            rewards: Vec::with_capacity(indices.len()),
            next_obs: Vec::with_capacity(indices.len() * n),
            not_terminal: Vec::with_capacity(indices.len()),
            steps: Vec::with_capacity(indices.len()),
        };
        for &pos in indices {
            assert!(pos < self.len, "index {pos} beyond the {} stored transitions", self.len);
            let i = (self.tail + pos) % self.capacity;
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

    #[test]
    fn an_atari_transition_costs_about_one_frame() {
        let r = PixelReplay::new(100_000, 84 * 84, 4, 3).unwrap();
        let per = r.bytes_per_transition();
        assert!(per < 8_000.0 && per > 7_056.0, "{per} bytes per transition");
    }
}
