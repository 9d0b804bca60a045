"""A sweep read into pandas: one row per configuration and seed, one per update for curves.

    python examples/sweep_to_pandas.py [OUT] [TOTAL_TIMESTEPS]

Runs a 3 x 2 grid of PPO on CartPole-v1 (learning rate x entropy coefficient, 4 seeds each,
one compiled program), then builds two DataFrames from the files the sweep wrote
(OUT/sweep.json, OUT/NAME/config.json and metrics.npz): final returns per seed, and the
training curve of every seed, and prints each configuration's mean final return and the
return at the last update.
"""
import json
import os
import sys

import numpy as np
import pandas as pd

import purejaxpg


def frames(out: str):
    """(final returns: one row per configuration x seed, curves: one row per configuration x
    seed x update) from a sweep directory."""
    finals, curves = [], []
    for row in json.load(open(os.path.join(out, "sweep.json")))["table"]:
        path = os.path.join(out, row["name"])
        hparams = json.load(open(os.path.join(path, "config.json")))["hparams"]
        m = np.load(os.path.join(path, "metrics.npz"))
        swept = {k: hparams[k] for k in row["swept"]}
        for seed, final in enumerate(m["final_return"]):
            finals.append({"name": row["name"], **swept, "seed": seed, "final_return": float(final)})
            curves += [{"name": row["name"], **swept, "seed": seed, "env_steps": int(s), "episode_return": float(r)}
                       for s, r in zip(m["env_steps"], m["episode_return"][seed])]
    return pd.DataFrame(finals), pd.DataFrame(curves)


def main(out: str = "runs/sweep-pandas", total_timesteps: int = 200_000) -> pd.DataFrame:
    purejaxpg.sweep("ppo", env="CartPole-v1", grid={"lr": [3e-4, 1e-3, 3e-3], "ent_coef": [0.0, 0.01]},
                    num_seeds=4, total_timesteps=total_timesteps, out=out, quiet=True)
    finals, curves = frames(out)
    summary = finals.groupby(["lr", "ent_coef"])["final_return"].agg(["mean", "min", "max"])
    last = curves[curves.env_steps == curves.env_steps.max()].groupby(["lr", "ent_coef"])["episode_return"].mean()
    print(summary.assign(last_training_return=last).round(1).to_string())
    return finals


if __name__ == "__main__":
    main(*(sys.argv[1:2]), *(int(float(a)) for a in sys.argv[2:3]))
