#!/usr/bin/env python3
"""The Quantus/Captum side of `xrl bench evaluate`: milliseconds per frame of each evaluation measure on the MinAtar
CNN (random weights), 4×10×10 frames uniform in [0, 1), targets i mod 6, maps = the signed gradient (Captum's
Saliency with abs=False), computed once before timing (xrl's side does the same). The same amount of work as xrl's
side: the same number of forward passes per frame.

* faithfulness-correlation: quantus.FaithfulnessCorrelation, 100 runs, subsets of 40 of the 400 features (xrl: 10
  of the 100 cells, all channels — 40 values);
* pixel-flipping: quantus.PixelFlipping, 4 features a step (100 steps; xrl: one cell a step);
* infidelity: captum.metrics.infidelity, 100 perturbations removing 10% of the features, normalize=True;
* sensitivity-max: captum.metrics.sensitivity_max of Saliency, 10 perturbations in the L∞ ball of radius 0.02;
* mprt: quantus.MPRT, cascading from the output down over the three layers, Saliency maps (Quantus' `explain`
  with Captum), Spearman of |map| (xrl: the same, `--measures spearman-abs`);
* road: quantus.ROAD (noise 0, percentages 1, 3, …, 99, most relevant first) on the ROAD agreement fixture
  (crates/xrl-explain/tests/fixtures/eval_quantus_captum.json, which xrl's side reads too): its MLP (1×10×10 → FC
  16 → ReLU → 3), its 8 frames, |maps| and greedy labels — ms per frame over those 8 frames.

With `--serve`, reads lines `minatar-cnn TEST` from stdin and answers each with a JSON list of ms per frame (what
`xrl bench evaluate` uses, so each of xrl's measures is timed right before its reference).

    ~/xrl-ref/bin/pip install torch captum==0.8.0 quantus==0.6.0
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import quantus
import torch
import torch.nn as nn
from captum.attr import Saliency
from captum.metrics import infidelity, sensitivity_max


def minatar_cnn(c=4, actions=6):
    return nn.Sequential(nn.Conv2d(c, 16, 3, 1), nn.ReLU(), nn.Flatten(), nn.Linear(1024, 128), nn.ReLU(),
                         nn.Linear(128, actions))


FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "xrl-explain", "tests", "fixtures",
                       "eval_quantus_captum.json")


def road_test():
    """Quantus' ROAD on the agreement fixture's network, frames, |maps| and greedy labels; (call, frames)."""
    with open(FIXTURE) as f:
        fx = json.load(f)
    w = fx["weights"]
    net = nn.Sequential(nn.Flatten(), nn.Linear(100, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    with torch.no_grad():  # burn's Linear weights are [in, out]: transposed into torch's [out, in]
        net[1].weight.copy_(torch.tensor(w["torso.fc.0.weight"], dtype=torch.float32).reshape(100, 16).T)
        net[1].bias.copy_(torch.tensor(w["torso.fc.0.bias"], dtype=torch.float32))
        net[3].weight.copy_(torch.tensor(w["head.out.weight"], dtype=torch.float32).reshape(16, 3).T)
        net[3].bias.copy_(torch.tensor(w["head.out.bias"], dtype=torch.float32))
    x = np.asarray(fx["obs"], dtype=np.float32).reshape(-1, 1, 10, 10)
    a = np.abs(np.asarray(fx["maps"], dtype=np.float32).reshape(-1, 1, 10, 10))
    greedy = np.asarray(fx["road"]["greedy"])
    road = quantus.ROAD(noise=0.0, abs=False, normalise=False, return_aggregate=False, disable_warnings=True)

    def call():
        out = road(model=net, x_batch=x, y_batch=greedy, a_batch=a, device="cpu", softmax=False)
        return out

    # The same curve the agreement fixture recorded (so the timed call computes the compared numbers).
    got = call()
    want = fx["road"]["values"]
    assert all(abs(got[k] - want[str(k)]) < 1e-6 for k in got), (got, want)
    return call, len(x)


def tests_for(frames):
    torch.manual_seed(0)
    np.random.seed(0)
    net = minatar_cnn().eval()
    x = torch.rand(frames, 4, 10, 10)
    y = torch.tensor([i % 6 for i in range(frames)])
    a = Saliency(net).attribute(x.clone().requires_grad_(), target=y, abs=False).detach()
    xn, yn, an = x.numpy(), y.numpy(), a.numpy()
    fc = quantus.FaithfulnessCorrelation(nr_runs=100, subset_size=40, perturb_baseline="black", abs=False,
                                         normalise=False, return_aggregate=False, disable_warnings=True)
    pf = quantus.PixelFlipping(features_in_step=4, perturb_baseline="black", abs=False, normalise=False,
                               return_aggregate=False, disable_warnings=True)

    def remove(inputs):
        mask = (torch.rand_like(inputs) < 0.1).float()
        perturbation = inputs * mask
        return perturbation, inputs - perturbation

    def saliency(inputs, target):
        return Saliency(net).attribute(inputs, target=target, abs=False)

    return {
        "faithfulness-correlation": lambda: fc(model=net, x_batch=xn, y_batch=yn, a_batch=an, device="cpu",
                                               softmax=False),
        "pixel-flipping": lambda: pf(model=net, x_batch=xn, y_batch=yn, a_batch=an, device="cpu", softmax=False),
        "infidelity": lambda: infidelity(net, remove, x, a, target=y, n_perturb_samples=100, normalize=True),
        "sensitivity-max": lambda: sensitivity_max(saliency, x, n_perturb_samples=10, target=y),
        "mprt": lambda: quantus.MPRT(layer_order="top_down", disable_warnings=True)(
            model=net, x_batch=xn, y_batch=yn, a_batch=None, device="cpu", explain_func=quantus.explain,
            explain_func_kwargs={"method": "Saliency", "abs": True}),
    }


def all_tests(frames):
    """Every timed test: name → (call, frames it covers)."""
    tests = {name: (f, frames) for name, f in tests_for(frames).items()}
    tests["road"] = road_test()
    return tests


def time_test(f, frames, runs):
    start = time.perf_counter()
    f()
    while time.perf_counter() - start < 0.3:  # warm up, as xrl's side does
        f()
    out, start = [], time.perf_counter()
    while len(out) < runs or time.perf_counter() - start < 0.3:
        t = time.perf_counter()
        f()
        out.append((time.perf_counter() - t) * 1e3 / frames)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--serve", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    tests = all_tests(a.frames)
    if a.serve:
        for line in sys.stdin:
            _, test = line.split()
            f, frames = tests[test]
            print(json.dumps(time_test(f, frames, a.runs)), flush=True)
        return
    out = {}
    for t, (f, frames) in tests.items():
        out.setdefault("fixture-mlp" if t == "road" else "minatar-cnn", {})[t] = time_test(f, frames, a.runs)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
