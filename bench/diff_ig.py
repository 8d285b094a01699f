#!/usr/bin/env python3
"""Differential IG beside the seed's procedure, on the same network, weights and input pair, in the same run.

For a directory `xrl fsm` wrote, `xrl diff-ig` explains the machine's most visited decision point with the seed's
quadrature (steps + 1 equally weighted points); this script then rebuilds the policy's torso and the observation
bottleneck's encoder in PyTorch from the same safetensors files and runs on the same input and baseline

* `torch_seed`: the original procedure (modanesh/Differential_IG, SEEDS_DETAILED.md §1a): batch 1, one forward
  pass per path point and one backward pass per bit per point (`retain_graph=True`), (steps + 1)·B backward passes;
* `torch_batched`: the same, every (point, bit) pair one row of a batch;
* `torch_objective`: xrl's structure — the masked and unmasked maps are IG and the mean path gradient of the one
  objective mean_{j∈D} F_j, so one row per path point.

xrl runs twice per round: as `xrl diff-ig` does by default (the maps, plus maps of the 12 differing bits that
changed most, its per-bit panels) and with
`--per-bit none` (the maps only, what the seed's picture shows). The script checks that every reference gives
xrl's masked and unmasked maps, and prints JSON with the median seconds of each over the rounds (xrl, then the
references, alternating) and the ratios; xrl's time of a round is the median of five calls in one process (its
first call also pays for the process's first allocations and threads), as the references run in a warm process.

    ~/xrl-ref/bin/pip install torch safetensors
    python bench/diff_ig.py --fsm runs/fsm-breakout --xrl target/release/xrl
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from safetensors.numpy import load_file


def linear(w, b):
    layer = nn.Linear(w.shape[0], w.shape[1])
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w.T.copy()))  # burn stores [in, out]
        layer.bias.copy_(torch.from_numpy(b))
    return layer


def conv(w, b):
    layer = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2])
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w))
        layer.bias.copy_(torch.from_numpy(b))
    return layer


def model(fsm_dir):
    card = json.loads((fsm_dir / "fsm.json").read_text())
    run = Path(card["run"])
    if not run.is_absolute() and not run.exists():
        run = fsm_dir.parent / run
    spec = tomllib.loads((run / "run.toml").read_text())["net"]
    latest = json.loads((run / "checkpoints" / "latest.json").read_text())
    w = load_file(str(run / "checkpoints" / f"{latest['stem']}.online.safetensors"))
    ox = load_file(str(fsm_dir / "ox.safetensors"))
    kind = spec["torso"]["kind"]
    if kind == "mmn-mlp":
        torso = [linear(w["torso.fc.0.weight"], w["torso.fc.0.bias"]), nn.ELU(),
                 linear(w["torso.fc.1.weight"], w["torso.fc.1.bias"]), nn.ReLU6()]
    elif kind == "mmn-minatar-cnn":
        c, h, wd = spec["obs_shape"]
        torso = [nn.Unflatten(1, (c, h, wd)), conv(w["torso.convs.0.weight"], w["torso.convs.0.bias"]), nn.ReLU(),
                 nn.Flatten(), linear(w["torso.fc.0.weight"], w["torso.fc.0.bias"]), nn.ReLU6()]
    else:
        sys.exit(f"torso {kind} is not one this script rebuilds (mmn-mlp, mmn-minatar-cnn)")
    encoder = [linear(ox["encoder.0.weight"], ox["encoder.0.bias"]), nn.Tanh(),
               linear(ox["encoder.1.weight"], ox["encoder.1.bias"])]
    return nn.Sequential(*torso, *encoder).eval()


def torch_seed(net, x, b, steps):
    """The original: one backward pass per bit per path point, at batch 1."""
    with torch.no_grad():
        zx = net(x[None])[0]
    bits = zx.shape[0]
    out = torch.zeros(bits, x.shape[0])
    for k in range(steps + 1):
        u = (b + (k / steps) * (x - b))[None].clone().requires_grad_(True)
        z = net(u)[0]
        for j in range(bits):
            loss = (z[j] - zx[j]) ** 2
            loss.backward(retain_graph=True)
            out[j] += u.grad[0] / (steps + 1)
            u.grad = None
    return out


def torch_batched(net, x, b, steps):
    """Every (point, bit) pair one row: one backward pass."""
    with torch.no_grad():
        zx = net(x[None])[0]
    bits = zx.shape[0]
    alphas = torch.arange(steps + 1, dtype=torch.float32) / steps
    u = (b[None] + alphas[:, None] * (x - b)[None]).repeat_interleave(bits, 0).requires_grad_(True)
    z = net(u)
    pick = torch.eye(bits).repeat(steps + 1, 1)
    f = (((z - zx[None]) * pick).sum(1) ** 2).sum()
    f.backward()
    return u.grad.reshape(steps + 1, bits, -1).mean(0)


def torch_objective(net, x, b, steps, differing):
    """One row per path point: the gradient of mean_{j∈D} F_j (the maps need nothing else)."""
    with torch.no_grad():
        zx = net(x[None])[0]
    alphas = torch.arange(steps + 1, dtype=torch.float32) / steps
    u = (b[None] + alphas[:, None] * (x - b)[None]).requires_grad_(True)
    z = net(u)
    f = ((z[:, differing] - zx[None, differing]) ** 2).mean(1).sum()
    f.backward()
    return u.grad.mean(0)


def maps(per_bit_mean_gradient, x, b, differing):
    unmasked = per_bit_mean_gradient[differing].mean(0)
    return (x - b).double().numpy() * unmasked.double().numpy(), unmasked.double().numpy()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--fsm", required=True, type=Path)
    p.add_argument("--xrl", default="target/release/xrl")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    net = model(a.fsm)
    times = {"xrl": [], "xrl_maps_only": [], "torch_seed": [], "torch_batched": [], "torch_objective": []}
    worst = {"torch_seed": 0.0, "torch_batched": 0.0, "torch_objective": 0.0, "xrl_maps_only": 0.0}
    for _ in range(a.rounds):
        docs = {}
        for name, extra in [("xrl", []), ("xrl_maps_only", ["--per-bit", "none"])]:
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "dig"
                subprocess.run([a.xrl, "diff-ig", "--fsm", str(a.fsm), "--out", str(out), "--points", "1",
                                "--quadrature", "seed", "--steps", str(a.steps), "--repeat", "5", *extra],
                               check=True,
                               stdout=subprocess.DEVNULL)
                docs[name] = json.loads((out / "diff_ig.json").read_text())["points"][0]
            times[name].append(docs[name]["seconds"])
        doc = docs["xrl"]
        x = torch.tensor(doc["point"]["input"]["obs"], dtype=torch.float32)
        b = torch.tensor(doc["point"]["baseline"]["obs"], dtype=torch.float32)
        differing = doc["diff_ig"]["differing"]
        if not differing:
            sys.exit("no bits differ at the decision point: nothing to compare")
        masked = np.array(doc["diff_ig"]["masked"], dtype=np.float64)
        unmasked = np.array(doc["diff_ig"]["unmasked"], dtype=np.float64)

        def compare(name, m, u):
            for ours, theirs in [(masked, m), (unmasked, u)]:
                scale = max(1e-12, float(np.abs(theirs).max()))
                worst[name] = max(worst[name], float(np.abs(theirs - ours).max()) / scale)

        compare("xrl_maps_only", np.array(docs["xrl_maps_only"]["diff_ig"]["masked"]),
                np.array(docs["xrl_maps_only"]["diff_ig"]["unmasked"]))
        for name, fn in [("torch_seed", torch_seed), ("torch_batched", torch_batched)]:
            t = time.perf_counter()
            g = fn(net, x, b, a.steps)
            times[name].append(time.perf_counter() - t)
            compare(name, *maps(g, x, b, differing))
        t = time.perf_counter()
        u = torch_objective(net, x, b, a.steps, differing)
        times["torch_objective"].append(time.perf_counter() - t)
        compare("torch_objective", (x - b).double().numpy() * u.double().numpy(), u.double().numpy())
    med = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({
        "fsm": str(a.fsm), "steps": a.steps, "rounds": a.rounds, "obs_len": int(x.shape[0]),
        "bits": len(doc["diff_ig"]["input_code"]), "differing_bits": len(differing),
        "backward_passes_seed": (a.steps + 1) * len(doc["diff_ig"]["input_code"]),
        "median_seconds": med, "all_seconds": times,
        "speedup_vs_torch_seed": med["torch_seed"] / med["xrl"],
        "speedup_maps_only_vs_torch_seed": med["torch_seed"] / med["xrl_maps_only"],
        "speedup_vs_torch_batched": med["torch_batched"] / med["xrl"],
        "speedup_maps_only_vs_torch_objective": med["torch_objective"] / med["xrl_maps_only"],
        "max_relative_difference_of_maps_from_xrl": worst,
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
    }, indent=2))


if __name__ == "__main__":
    main()
