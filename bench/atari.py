#!/usr/bin/env python3
"""The Python side of `xrl bench atari`: ale-py 0.12.1 and Gymnasium 1.4.0 throughput on one game, one round.
Prints JSON {"act": frames/s, "v5_step": frames/s, "preprocessed_stack": steps/s}.

Needs a venv outside the repo:  ~/xrl-ref/bin/pip install ale-py==0.12.1 gymnasium==1.4.0 opencv-python-headless
"""
import argparse
import json
import time

import ale_py
import gymnasium as gym
import numpy as np

gym.register_envs(ale_py)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--game", default="Pong")
    ap.add_argument("--frames", type=int, default=40_000)
    ap.add_argument("--steps", type=int, default=5_000)
    a = ap.parse_args()
    rng = np.random.default_rng(1)
    out = {}

    # ale-py's own act loop: one emulator frame per call, random minimal-set actions drawn beforehand.
    env = gym.make(f"ALE/{a.game}-v5")
    env.reset(seed=0)
    ale = env.unwrapped.ale
    actions = ale.getMinimalActionSet()
    acts = [actions[i] for i in rng.integers(0, len(actions), size=4096)]
    t = time.perf_counter()
    for i in range(a.frames):
        ale.act(acts[i % 4096])
        if ale.game_over():
            ale.reset_game()
    out["act"] = a.frames / (time.perf_counter() - t)

    # gym.make("ALE/<Game>-v5").step: 4 frames and the RGB observation.
    idx = rng.integers(0, env.action_space.n, size=4096).tolist()
    steps = a.frames // 4
    t = time.perf_counter()
    for i in range(steps):
        _, _, term, trunc, _ = env.step(idx[i % 4096])
        if term or trunc:
            env.reset()
    out["v5_step"] = steps * 4 / (time.perf_counter() - t)
    env.close()

    # AtariPreprocessing + FrameStackObservation(4) over NoFrameskip-v4.
    env = gym.wrappers.FrameStackObservation(
        gym.wrappers.AtariPreprocessing(gym.make(f"{a.game}NoFrameskip-v4")), 4)
    env.reset(seed=0)
    t = time.perf_counter()
    for i in range(a.steps):
        _, _, term, trunc, _ = env.step(idx[i % 4096])
        if term or trunc:
            env.reset()
    out["preprocessed_stack"] = a.steps / (time.perf_counter() - t)
    env.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
