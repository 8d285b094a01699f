#!/usr/bin/env python3
"""The PyTorch side of `xrl bench rainbow`: seconds per Rainbow update of the same network, batch, losses and
replay as xrl's MinAtar preset (Revisiting Rainbow / Dopamine's MinAtar Rainbow):

- network: conv 16 3×3 stride 1 (no padding) on 4×10×10 → ReLU → flatten (1024) → dueling distributional head of
  noisy layers (factorised Gaussian noise, σ0 0.5, σ = σ0/√fan_in, f(x) = sgn(x)·√|x|): advantages 1024 → A·51,
  value 1024 → 51, logits v + a − mean_a(a) per atom, log-softmax over 51 atoms on [−100, 100];
- per update: a stratified proportional draw of 32 transitions from a numpy sum tree (α 0.5, β annealed, importance
  weights normalised by the batch's largest), fresh noise on the online and the target network, the double-Q
  bootstrap action (the online network's argmax of the expected Q of s'), the target network's distribution for it
  projected onto the support (C51, r + γ^n·not_terminal·z), the cross-entropy weighted by the importance weights
  (mean), one Adam step (lr 1e-4, eps 3.125e-4), the sampled transitions' priorities set to their losses, and the
  target copied every 250 updates;
- replay: a ring buffer of n-step (3, γ 0.99) transitions folded at insertion (as xrl's), frames stored as uint8,
  100k slots; new transitions enter the tree at the largest priority so far.

The replay is filled with random transitions (one long trajectory of binary frames, random actions, rewards uniform
in [0, 1), episodes ending with probability 0.01), as xrl's side; the environment is not timed. Prints JSON
{"seconds": [...]} (one per timed update, after the warm-up updates), as bench/ppo.py.

    ~/xrl-ref/bin/pip install torch numpy
"""
import argparse
import collections
import json
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class NoisyLinear(nn.Module):
    """Factorised Gaussian noisy linear layer (Fortunato et al. 2018), as in Kaixhin's and Dopamine's Rainbow."""

    def __init__(self, d_in, d_out, sigma0=0.5):
        super().__init__()
        self.d_in, self.d_out = d_in, d_out
        bound = 1 / math.sqrt(d_in)
        self.weight_mu = nn.Parameter(torch.empty(d_out, d_in).uniform_(-bound, bound))
        self.weight_sigma = nn.Parameter(torch.full((d_out, d_in), sigma0 / math.sqrt(d_in)))
        self.bias_mu = nn.Parameter(torch.empty(d_out).uniform_(-bound, bound))
        self.bias_sigma = nn.Parameter(torch.full((d_out,), sigma0 / math.sqrt(d_in)))
        self.register_buffer("weight_epsilon", torch.zeros(d_out, d_in))
        self.register_buffer("bias_epsilon", torch.zeros(d_out))

    @staticmethod
    def _scale(n):
        x = torch.randn(n)
        return x.sign() * x.abs().sqrt()

    def reset_noise(self):
        eps_in, eps_out = self._scale(self.d_in), self._scale(self.d_out)
        self.weight_epsilon.copy_(torch.outer(eps_out, eps_in))
        self.bias_epsilon.copy_(eps_out)

    def forward(self, x):
        return F.linear(x, self.weight_mu + self.weight_sigma * self.weight_epsilon,
                        self.bias_mu + self.bias_sigma * self.bias_epsilon)


class RainbowNet(nn.Module):
    """Dopamine's MinAtar Rainbow network: conv 16 3×3 → ReLU → flatten → dueling C51 noisy head."""

    def __init__(self, obs_shape, actions, atoms, sigma0):
        super().__init__()
        c, h, w = obs_shape
        self.actions, self.atoms = actions, atoms
        self.conv = nn.Conv2d(c, 16, 3, stride=1)
        features = 16 * (h - 2) * (w - 2)
        self.advantage = NoisyLinear(features, actions * atoms, sigma0)
        self.value = NoisyLinear(features, atoms, sigma0)

    def reset_noise(self):
        self.advantage.reset_noise()
        self.value.reset_noise()

    def forward(self, x):
        """Log-probabilities [batch, actions, atoms]."""
        x = F.relu(self.conv(x)).flatten(1)
        a = self.advantage(x).view(-1, self.actions, self.atoms)
        v = self.value(x).view(-1, 1, self.atoms)
        return F.log_softmax(v + a - a.mean(1, keepdim=True), dim=2)


class SumTree:
    """Array-backed sum tree over `capacity` slots (node k's children 2k and 2k + 1, root 1, leaves padded to a
    power of two), float64 sums; draws and updates vectorised over the batch with numpy."""

    def __init__(self, capacity):
        self.capacity = capacity
        self.leaves = 1 << (capacity - 1).bit_length()
        self.depth = self.leaves.bit_length() - 1
        self.nodes = np.zeros(2 * self.leaves)

    def total(self):
        return self.nodes[1]

    def get(self, slots):
        return self.nodes[self.leaves + slots]

    def set(self, slots, priorities):
        k = self.leaves + np.asarray(slots)
        self.nodes[k] = priorities
        for _ in range(self.depth):
            k = k // 2  # repeated parents get the same sum: no need to deduplicate
            self.nodes[k] = self.nodes[2 * k] + self.nodes[2 * k + 1]

    def find(self, masses):
        """The slot whose cumulative interval holds each mass (go left when the mass is in the left child's sum or
        the right child is empty, as xrl's)."""
        mass = np.maximum(masses, 0.0)
        k = np.ones(len(mass), dtype=np.int64)
        for _ in range(self.depth):
            left = self.nodes[2 * k]
            right = self.nodes[2 * k + 1]
            go_left = (mass < left) | (right <= 0.0)
            mass = np.where(go_left, mass, mass - left)
            k = np.where(go_left, 2 * k, 2 * k + 1)
        return k - self.leaves


class PrioritizedReplay:
    """A ring buffer of n-step transitions with proportional prioritised sampling (Schaul et al. 2016)."""

    def __init__(self, capacity, obs_shape, n_step, gamma, alpha, beta_start, beta_end, beta_steps, eps, seed):
        self.capacity, self.n_step, self.gamma = capacity, n_step, gamma
        self.alpha, self.beta_start, self.beta_end, self.beta_steps, self.eps = alpha, beta_start, beta_end, \
            beta_steps, eps
        self.obs = np.zeros((capacity, *obs_shape), dtype=np.uint8)
        self.next_obs = np.zeros((capacity, *obs_shape), dtype=np.uint8)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminal = np.zeros(capacity, dtype=np.float32)
        self.steps = np.ones(capacity, dtype=np.float32)
        self.tree = SumTree(capacity)
        self.max_priority = 1.0
        self.live = 0
        self.len = 0
        self.head = 0
        self.pending = collections.deque()
        self.rng = np.random.default_rng(seed)

    def _store(self, obs, action, reward, next_obs, terminal, steps):
        i = self.head
        self.obs[i], self.next_obs[i] = obs, next_obs
        self.actions[i], self.rewards[i], self.terminal[i], self.steps[i] = action, reward, terminal, steps
        if self.tree.get(i) <= 0.0:
            self.live += 1
        self.tree.set([i], self.max_priority)
        self.head = (self.head + 1) % self.capacity
        self.len = min(self.len + 1, self.capacity)

    def _emit(self, next_obs, terminal):
        reward = 0.0
        for _, _, r in reversed(self.pending):
            reward = r + self.gamma * reward
        steps = len(self.pending)
        obs, action, _ = self.pending.popleft()
        self._store(obs, action, reward, next_obs, terminal, steps)

    def add(self, obs, action, reward, next_obs, terminated, truncated):
        """One environment step; completed n-step transitions are stored (flushed at an episode's end)."""
        self.pending.append((obs, action, reward))
        if terminated or truncated:
            while self.pending:
                self._emit(next_obs, terminated)
        elif len(self.pending) == self.n_step:
            self._emit(next_obs, False)

    def beta(self, step):
        if step >= self.beta_steps:
            return self.beta_end
        return self.beta_start + (self.beta_end - self.beta_start) * step / self.beta_steps

    def sample(self, batch, step):
        """Stratified proportional draw: one slot uniformly by mass in each of `batch` equal segments; importance
        weights (N·P(i))^−β over the batch's largest."""
        total = self.tree.total()
        masses = (np.arange(batch) + self.rng.random(batch)) * (total / batch)
        slots = self.tree.find(masses)
        p = self.tree.get(slots)
        w = (self.live * p / total) ** (-self.beta(step))
        w = (w / w.max()).astype(np.float32)
        return slots, w, (self.obs[slots], self.actions[slots], self.rewards[slots], self.next_obs[slots],
                          1.0 - self.terminal[slots], self.steps[slots])

    def update(self, slots, losses):
        p = (np.abs(losses).astype(np.float64) + self.eps) ** self.alpha
        self.tree.set(slots, p)
        self.max_priority = max(self.max_priority, float(p.max()))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--obs", type=str, default="4,10,10")
    p.add_argument("--actions", type=int, default=6)
    p.add_argument("--atoms", type=int, default=51)
    p.add_argument("--v-min", type=float, default=-100.0)
    p.add_argument("--v-max", type=float, default=100.0)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--capacity", type=int, default=100_000)
    p.add_argument("--fill", type=int, default=5_000, help="random steps put into the replay before timing")
    p.add_argument("--warmup", type=int, default=10, help="untimed updates before the timed ones")
    p.add_argument("--updates", type=int, default=200)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default, as bench/ppo.py)")
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    obs_shape = tuple(int(d) for d in a.obs.split(","))
    gamma, n_step, sigma0, target_every = 0.99, 3, 0.5, 250
    online = RainbowNet(obs_shape, a.actions, a.atoms, sigma0)
    target = RainbowNet(obs_shape, a.actions, a.atoms, sigma0)
    target.load_state_dict(online.state_dict())
    for q in target.parameters():
        q.requires_grad_(False)
    opt = torch.optim.Adam(online.parameters(), lr=1e-4, eps=3.125e-4)
    z = torch.linspace(a.v_min, a.v_max, a.atoms)
    dz = (a.v_max - a.v_min) / (a.atoms - 1)

    replay = PrioritizedReplay(a.capacity, obs_shape, n_step, gamma, alpha=0.5, beta_start=0.4, beta_end=1.0,
                               beta_steps=10_000_000, eps=1e-6, seed=1)
    rng = np.random.default_rng(7)
    frame = lambda: (rng.random(obs_shape) < 0.5).astype(np.uint8)
    obs = frame()
    for _ in range(a.fill):
        nxt = frame()
        replay.add(obs, int(rng.integers(a.actions)), float(rng.random()), nxt, bool(rng.random() < 0.01), False)
        obs = nxt
    rows = torch.arange(a.batch)
    offset = (rows * a.atoms)[:, None]
    updates = 0

    def update(step):
        nonlocal updates
        slots, weights, (o, act, r, no, not_terminal, steps) = replay.sample(a.batch, step)
        o = torch.from_numpy(o.astype(np.float32))
        no = torch.from_numpy(no.astype(np.float32))
        act = torch.from_numpy(act)
        r = torch.from_numpy(r)
        discount = torch.from_numpy(((gamma ** steps) * not_terminal).astype(np.float32))
        weights = torch.from_numpy(weights)
        online.reset_noise()
        target.reset_noise()
        with torch.no_grad():
            # Double Q: the online network picks a* = argmax_a E[Z(s', a)], the target network gives its distribution.
            a_star = (online(no).exp() * z).sum(2).argmax(1)
            next_probs = target(no)[rows, a_star].exp()
            # C51 projection of r + γ^n·not_terminal·z onto the support.
            tz = (r[:, None] + discount[:, None] * z[None, :]).clamp(a.v_min, a.v_max)
            b = ((tz - a.v_min) / dz).clamp(0, a.atoms - 1)
            lo, hi = b.floor().long(), b.ceil().long()
            # b a whole number: all the mass on that atom (move one neighbour aside so that the weights are 1 and 0).
            lo[(hi > 0) & (lo == hi)] -= 1
            hi[(lo < a.atoms - 1) & (lo == hi)] += 1
            m = torch.zeros(a.batch * a.atoms)
            m.index_add_(0, (lo + offset).view(-1), (next_probs * (hi.float() - b)).view(-1))
            m.index_add_(0, (hi + offset).view(-1), (next_probs * (b - lo.float())).view(-1))
            m = m.view(a.batch, a.atoms)
        logp = online(o)[rows, act]
        ce = -(m * logp).sum(1)
        loss = (weights * ce).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        updates += 1
        if updates % target_every == 0:
            target.load_state_dict(online.state_dict())
        replay.update(slots, ce.detach().numpy())
        return loss.item()

    times = []
    for u in range(a.warmup + a.updates):
        t = time.perf_counter()
        update(a.fill + u)
        if u >= a.warmup:
            times.append(time.perf_counter() - t)
    print(json.dumps({"seconds": times, "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
