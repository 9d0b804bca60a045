"""Tune a PPO preset with a hyperparameter grid x seeds in ONE compiled program.

Traced hyperparameters (lr, ent_coef, gamma, ...) are vmapped over as a grid, seeds inside,
so the whole grid compiles once. Used to choose the MinAtar presets:

    python scripts/tune_ppo_grid.py --env Breakout-MinAtar --seeds 2 \
        --grid lr=2.5e-4,5e-4,1e-3 --grid ent_coef=0.01,0.001 --grid gamma=0.99,0.999 \
        --set hidden=256 --set torso=conv

Prints the final-return IQM and mean per configuration (best first) and writes JSON.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import purejaxpg  # noqa: E402,F401

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from purejaxpg import stats  # noqa: E402
from purejaxpg.experiment import build  # noqa: E402


def _value(text):
    if "," in text:
        return tuple(int(v) for v in text.split(",") if v)
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algo", default="ppo")
    p.add_argument("--env", required=True)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--grid", action="append", default=[], help="NAME=v1,v2,... (traced hyperparameters)")
    p.add_argument("--set", action="append", default=[], help="NAME=VALUE (config fields or hyperparameters)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    fixed = {"env": args.env}
    for s in args.set:
        k, v = s.split("=", 1)
        fixed[k] = _value(v + "," if k == "hidden" else v)
    grid = {}
    for g in args.grid:
        k, v = g.split("=", 1)
        grid[k] = [float(x) for x in v.split(",")]
    algo, config, hparams = build(args.algo, fixed)
    combos = list(itertools.product(*grid.values()))
    hp = {k: jnp.full(len(combos), v, jnp.float32) for k, v in hparams.items()}
    for i, k in enumerate(grid):
        hp[k] = jnp.asarray([c[i] for c in combos], jnp.float32)
    train = algo.make_train(config)
    keys = jax.random.split(jax.random.PRNGKey(0), args.seeds)
    fn = jax.jit(jax.vmap(jax.vmap(train, in_axes=(0, None)), in_axes=(None, 0)))
    t0 = time.perf_counter()
    compiled = fn.lower(keys, hp).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = jax.block_until_ready(compiled(keys, hp))
    run_s = time.perf_counter() - t0
    final = np.asarray(out["eval_returns"]).mean(-1)  # [configs, seeds]
    curve = np.asarray(out["metrics"]["episode_return"])  # [configs, seeds, updates]
    rows = []
    for i, c in enumerate(combos):
        rows.append({"hparams": dict(zip(grid, c)), "iqm": float(stats.iqm(final[i])), "mean": float(final[i].mean()),
                     "per_seed": final[i].tolist(), "train_return_last10pct": float(np.nanmean(
                         curve[i][:, -max(1, curve.shape[-1] // 10):]))})
    rows.sort(key=lambda r: -r["iqm"])
    print(f"{args.algo} {args.env}: {len(combos)} configs x {args.seeds} seeds, {config.num_updates * config.batch_size:.1e} "
          f"steps each; compile {compile_s:.1f}s run {run_s:.1f}s; fixed {fixed}")
    for r in rows:
        print(f"  IQM {r['iqm']:8.2f} mean {r['mean']:8.2f} train(last 10%) {r['train_return_last10pct']:8.2f}  {r['hparams']}")
    path = args.out or f"tune-{args.algo}-{args.env}.json"
    with open(path, "w") as f:
        json.dump({"fixed": {k: (list(v) if isinstance(v, tuple) else v) for k, v in fixed.items()},
                   "seeds": args.seeds, "compile_seconds": compile_s, "run_seconds": run_s, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
