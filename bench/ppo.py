#!/usr/bin/env python3
"""The PyTorch side of `xrl bench ppo`: seconds per PPO update of the same network, batch, minibatches and epochs
as xrl's (CleanRL's update: GAE, then per epoch shuffled minibatches, each one Adam step on the clipped surrogate,
the clipped value loss and the entropy bonus, advantages normalised per minibatch, gradient norm clipped). The
rollout is random (binary frames, uniform rewards); the environment is not timed. Prints JSON
{"seconds": [...]} (one per update after a warm-up update).

    ~/xrl-ref/bin/pip install torch
"""
import argparse
import json
import time

import numpy as np
import torch
import torch.nn as nn


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--obs", type=int, default=400)
    p.add_argument("--actions", type=int, default=3)
    p.add_argument("--hidden", type=str, default="256,256")
    p.add_argument("--envs", type=int, default=64)
    p.add_argument("--steps", type=int, default=128)
    p.add_argument("--minibatches", type=int, default=8)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--updates", type=int, default=3)
    p.add_argument("--shared", action="store_true", help="actor and critic share the torso (default: separate "
                   "towers, as xrl's MinAtar preset)")
    a = p.parse_args()
    torch.manual_seed(0)
    widths = [a.obs] + [int(w) for w in a.hidden.split(",")]
    layers = []
    for i, o in zip(widths, widths[1:]):
        layers += [nn.Linear(i, o), nn.ReLU()]
    torso = nn.Sequential(*layers)

    def tower():
        ls = []
        for i, o in zip(widths, widths[1:]):
            ls += [nn.Linear(i, o), nn.ReLU()]
        return nn.Sequential(*ls)

    critic_torso = torso if a.shared else tower()
    actor, critic = nn.Linear(widths[-1], a.actions), nn.Linear(widths[-1], 1)
    params = list(torso.parameters()) + list(actor.parameters()) + list(critic.parameters())
    if not a.shared:
        params += list(critic_torso.parameters())
    opt = torch.optim.Adam(params, lr=5e-4, eps=1e-5)
    rows = a.envs * a.steps
    rng = np.random.default_rng(7)
    obs = torch.from_numpy((rng.random((rows, a.obs)) < 0.5).astype(np.float32))
    rewards = torch.from_numpy(rng.random(rows).astype(np.float32)).reshape(a.steps, a.envs)
    dones = torch.from_numpy((rng.random(rows) < 0.01).astype(np.float32)).reshape(a.steps, a.envs)
    with torch.no_grad():
        h = torso(obs)
        dist = torch.distributions.Categorical(logits=actor(h))
        actions = dist.sample()
        logp = dist.log_prob(actions)
        values = critic(critic_torso(obs)).squeeze(1)
    gamma, lam, clip, ent_coef, vf_coef = 0.999, 0.95, 0.2, 0.01, 0.5
    size = rows // a.minibatches
    times = []
    for u in range(a.updates + 1):
        t = time.perf_counter()
        with torch.no_grad():
            v = values.reshape(a.steps, a.envs)
            adv = torch.zeros_like(rewards)
            last = torch.zeros(a.envs)
            next_adv = torch.zeros(a.envs)
            for s in reversed(range(a.steps)):
                nv = v[s + 1] if s + 1 < a.steps else last
                delta = rewards[s] + gamma * nv * (1 - dones[s]) - v[s]
                next_adv = delta + gamma * lam * (1 - dones[s]) * next_adv
                adv[s] = next_adv
            adv = adv.reshape(-1)
            ret = adv + values
        for _ in range(a.epochs):
            order = torch.randperm(rows)
            for start in range(0, rows, size):
                idx = order[start:start + size]
                h = torso(obs[idx])
                logits = actor(h)
                new_logp_all = torch.log_softmax(logits, 1)
                new_logp = new_logp_all.gather(1, actions[idx][:, None]).squeeze(1)
                entropy = -(new_logp_all.exp() * new_logp_all).sum(1).mean()
                ratio = (new_logp - logp[idx]).exp()
                mb_adv = adv[idx]
                mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                pg = torch.max(-mb_adv * ratio, -mb_adv * ratio.clamp(1 - clip, 1 + clip)).mean()
                nv = critic(h if a.shared else critic_torso(obs[idx])).squeeze(1)
                v_clipped = values[idx] + (nv - values[idx]).clamp(-clip, clip)
                v_loss = 0.5 * torch.max((nv - ret[idx]) ** 2, (v_clipped - ret[idx]) ** 2).mean()
                loss = pg - ent_coef * entropy + vf_coef * v_loss
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(params, 0.5)
                opt.step()
        if u > 0:
            times.append(time.perf_counter() - t)
    print(json.dumps({"seconds": times, "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
