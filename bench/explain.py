#!/usr/bin/env python3
"""The Captum side of `xrl bench explain`: milliseconds per frame of each attribution method on the MinAtar CNN and
the Nature CNN (random weights, the same settings as xrl's side). Prints JSON {net: {method: [ms per run...]}}, or
with `--serve` times one method per request (what `xrl bench explain` uses: each xrl method, then its reference).

Perturbation saliency is not in Captum. Two PyTorch references run one forward pass per perturbed frame, as the
original code did: `perturbation_original` (`original=True`) also makes every mask and blurs the frame anew for
every grid point, as the original did; `perturbation_one_at_a_time` blurs each frame once and makes masks with one
`exp` (forward passes and little else).

    ~/xrl-ref/bin/pip install torch captum==0.8.0
"""
import argparse
import json
import sys
import time

import numpy as np
import torch
import torch.nn as nn
from captum.attr import GuidedBackprop, IntegratedGradients, LayerGradCam, NoiseTunnel, Occlusion, Saliency
from scipy.ndimage import gaussian_filter


def minatar_cnn(c=4, actions=6):
    return nn.Sequential(nn.Conv2d(c, 16, 3, 1), nn.ReLU(), nn.Flatten(), nn.Linear(1024, 128), nn.ReLU(),
                         nn.Linear(128, actions))


def nature_cnn(c=4, actions=6):
    return nn.Sequential(nn.Conv2d(c, 32, 8, 4), nn.ReLU(), nn.Conv2d(32, 64, 4, 2), nn.ReLU(), nn.Conv2d(64, 64, 3, 1),
                         nn.ReLU(), nn.Flatten(), nn.Linear(3136, 512), nn.ReLU(), nn.Linear(512, actions))


def perturbation_one_at_a_time(net, x, stride, original=False, r=5.0, blur_sigma=3.0):
    """Greydanus et al.: one perturbed copy, one forward pass, per grid point. With `original`, the original code's
    procedure as described in SEEDS_DETAILED.md §5: for every point the mask is made anew (a 5-pixel plus blurred by
    `gaussian_filter(σ = r)`, divided by its max) and the whole frame is blurred anew (σ 3). Without it, each frame
    is blurred once and a mask is one `exp`: the forward passes and little else."""
    def blur(f):
        return torch.from_numpy(np.stack([gaussian_filter(ch, blur_sigma) for ch in f])).float()

    out = []
    with torch.no_grad():
        for frame in x:
            f = frame.numpy()
            once = None if original else blur(f)
            base = net(frame[None])
            h, w = f.shape[1:]
            yy, xx = np.mgrid[0:h, 0:w]
            scores = []
            for i in range(0, h, stride):
                for j in range(0, w, stride):
                    d2 = (yy - i) ** 2 + (xx - j) ** 2
                    if original:
                        m = gaussian_filter((d2 <= 1).astype(np.float64), r)
                        m = m / m.max()
                    else:
                        m = np.exp(-d2 / (2 * r * r))
                    m = torch.from_numpy(m).float()
                    blurred = blur(f) if original else once
                    scores.append(0.5 * ((net((frame * (1 - m) + blurred * m)[None]) - base) ** 2).sum().item())
            out.append(scores)
    return out


def methods_for(name, frames):
    """The timed methods of one network (random weights, seed 0), each a function of no arguments."""
    torch.manual_seed(0)
    net = (minatar_cnn if name == "minatar-cnn" else nature_cnn)().eval()
    shape = (4, 10, 10) if name == "minatar-cnn" else (4, 84, 84)
    x = torch.rand((frames, *shape))
    target = [i % 6 for i in range(frames)]
    last_relu = [m for m in net if isinstance(m, nn.ReLU)][-2]  # after the last conv
    big = shape[1] >= 84
    window, stride = ((4, 8, 8), (4, 4, 4)) if big else ((4, 3, 3), (4, 1, 1))
    return {
        "saliency": lambda: Saliency(net).attribute(x.clone().requires_grad_(), target=target, abs=False),
        "guided_backprop": lambda: GuidedBackprop(net).attribute(x.clone().requires_grad_(), target=target),
        "grad_cam": lambda: LayerGradCam(net, last_relu).attribute(x, target=target, relu_attributions=True),
        "integrated_gradients": lambda: IntegratedGradients(net).attribute(
            x, baselines=0.0, target=target, n_steps=50, method="gausslegendre", internal_batch_size=64),
        "smoothgrad": lambda: NoiseTunnel(Saliency(net)).attribute(
            x.clone().requires_grad_(), nt_type="smoothgrad", nt_samples=25, nt_samples_batch_size=64, stdevs=0.15,
            target=target, abs=False),
        "occlusion": lambda: Occlusion(net).attribute(
            x, sliding_window_shapes=window, strides=stride, baselines=0.0, target=target, perturbations_per_eval=64),
        "perturbation_one_at_a_time": lambda: perturbation_one_at_a_time(net, x, 5 if big else 1),
        "perturbation_original": lambda: perturbation_one_at_a_time(net, x, 5 if big else 1, original=True),
    }


def time_method(f, frames, runs):
    """Milliseconds per frame of each call — at least `runs` calls and at least 0.3 s of them — after calling it for
    at least 0.3 s (as xrl's side does)."""
    start = time.perf_counter()
    f()
    while time.perf_counter() - start < 0.3:
        f()
    ms, start = [], time.perf_counter()
    while len(ms) < runs or time.perf_counter() - start < 0.3:
        t = time.perf_counter()
        f()
        ms.append((time.perf_counter() - t) * 1e3 / frames)
    return ms


def main():
    import warnings
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--serve", action="store_true",
                    help="read lines `NET METHOD` from stdin and answer each with a JSON list of ms per frame, so "
                         "that xrl can time each method right before its reference")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    nets = ["minatar-cnn", "nature-cnn"]
    if a.serve:
        table = {name: methods_for(name, a.frames) for name in nets}
        for line in sys.stdin:
            net, method = line.split()
            print(json.dumps(time_method(table[net][method], a.frames, a.runs)), flush=True)
        return
    print(json.dumps({name: {m: time_method(f, a.frames, a.runs) for m, f in methods_for(name, a.frames).items()}
                      for name in nets}))


if __name__ == "__main__":
    main()
