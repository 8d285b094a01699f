#!/usr/bin/env python3
"""The PyTorch side of `xrl bench nets`: the same networks, batch and optimiser as xrl's side.

Times one DQN-style training step (forward, Huber loss on the taken actions' Q values, backward, Adam step) at
batch 32, and acting latency at batch 1 (numpy observation in, greedy action out), on the CPU. Prints JSON:
{"minatar-cnn": {"train step": [ms per run...], "act": [...]}, "nature-cnn": {...}}.

Needs torch in a venv outside the repo:  ~/xrl-ref/bin/pip install torch
"""
import argparse
import json
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def minatar_cnn(c=4, actions=6):
    return nn.Sequential(nn.Conv2d(c, 16, 3, 1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 8 * 8, 128), nn.ReLU(),
                         nn.Linear(128, actions))


def nature_cnn(c=4, actions=6):
    return nn.Sequential(nn.Conv2d(c, 32, 8, 4), nn.ReLU(), nn.Conv2d(32, 64, 4, 2), nn.ReLU(),
                         nn.Conv2d(64, 64, 3, 1), nn.ReLU(), nn.Flatten(), nn.Linear(3136, 512), nn.ReLU(),
                         nn.Linear(512, actions))


NETS = {"minatar-cnn": (minatar_cnn, (4, 10, 10)), "nature-cnn": (nature_cnn, (4, 84, 84))}


def time_runs(runs, iters, f):
    for _ in range(min(iters, 10)):
        f()
    out = []
    for _ in range(runs):
        t = []
        for _ in range(iters):
            s = time.perf_counter()
            f()
            t.append((time.perf_counter() - s) * 1e3)
        out.append(sorted(t)[len(t) // 2])
    return out


def bench(name, batch, runs, iters):
    make, shape = NETS[name]
    torch.manual_seed(0)
    net = make()
    opt = torch.optim.Adam(net.parameters(), lr=2.5e-4)
    obs = torch.rand((batch, *shape))
    actions = (torch.arange(batch) % 6).unsqueeze(1)
    targets = torch.rand((batch, 1))

    def step():
        q = net(obs).gather(1, actions)
        loss = F.smooth_l1_loss(q, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()

    one = np.array([((i * 7919) % 13) / 13.0 for i in range(int(np.prod(shape)))], dtype=np.float32)

    def act():
        with torch.no_grad():
            return int(net(torch.from_numpy(one).reshape(1, *shape)).argmax(1).item())

    return {"train step": time_runs(runs, iters, step), "act": time_runs(runs, iters * 10, act)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(json.dumps({name: bench(name, a.batch, a.runs, a.iters) for name in NETS}))


if __name__ == "__main__":
    main()
