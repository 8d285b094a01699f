#!/usr/bin/env python3
"""The Python side of `xrl bench envs`: steps per second of Gymnasium 1.4.0 classic control and minatar 1.0.15,
observation included, single and in a gymnasium SyncVectorEnv. Prints JSON {id: {"single": [...], "vector": [...]}}.

Needs a venv outside the repo:  python3 -m venv ~/xrl-ref && ~/xrl-ref/bin/pip install gymnasium==1.4.0 minatar==1.0.15
"""
import argparse
import json
import time

import gymnasium as gym
import numpy as np

GAMES = {"Asterix": "asterix", "Breakout": "breakout", "Freeway": "freeway", "Seaquest": "seaquest",
         "SpaceInvaders": "space_invaders"}


def minatar_game(env_id):
    return GAMES[env_id.split("/")[1].split("-")[0]]


def draw_actions(space, count, seed):
    """Uniformly random actions, drawn before timing (discrete indices or float32 boxes)."""
    space.seed(seed)
    return [space.sample() for _ in range(count)]


def single(env_id, steps, runs):
    """minatar: the reference Environment's act() plus state() (the observation); classic control: gym.make."""
    rng = np.random.RandomState(1)
    out = []
    if env_id.startswith("MinAtar/"):
        import minatar
        env = minatar.Environment(minatar_game(env_id), sticky_action_prob=0.1)
        env.seed(0)
        env.reset()
        acts = rng.randint(6, size=4096).tolist()
        for _ in range(runs):
            t = time.perf_counter()
            for i in range(steps):
                _, term = env.act(acts[i % 4096])
                env.state()
                if term:
                    env.reset()
            out.append(steps / (time.perf_counter() - t))
        return out
    env = gym.make(env_id)
    env.reset(seed=0)
    acts = draw_actions(env.action_space, 4096, 1)
    for _ in range(runs):
        t = time.perf_counter()
        for i in range(steps):
            _, _, term, trunc, _ = env.step(acts[i % 4096])
            if term or trunc:
                env.reset()
        out.append(steps / (time.perf_counter() - t))
    return out


def vector(env_id, copies, steps, runs):
    if env_id.startswith("MinAtar/"):
        import minatar.gym  # noqa: F401  (registers the MinAtar ids)
        minatar.gym.register_envs()
    venv = gym.vector.SyncVectorEnv([lambda: gym.make(env_id) for _ in range(copies)],
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    venv.reset(seed=0)
    acts = np.stack([np.array(draw_actions(venv.single_action_space, copies, 2 + k)) for k in range(4096)])
    out = []
    batches = max(1, steps // copies)
    for _ in range(runs):
        t = time.perf_counter()
        for b in range(batches):
            venv.step(acts[b % 4096])
        out.append(batches * copies / (time.perf_counter() - t))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--envs", required=True)
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--copies", type=int, default=8)
    a = ap.parse_args()
    result = {}
    for env_id in a.envs.split(","):
        result[env_id] = {"single": single(env_id, a.steps, a.runs), "vector": vector(env_id, a.copies, a.steps, a.runs)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
