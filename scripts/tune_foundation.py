"""The small sweeps behind REINFORCE's and A2C's CartPole defaults (see their ``Config`` /
``default_hparams`` and ``purejaxpg.algos.presets``).

One static config per call; a grid of traced hyperparameters x seeds is one compiled
program (``vmap(vmap(train, seeds), grid)``). Prints, per grid point, the final-return IQM
and mean across seeds (16 sampled evaluation episodes per seed) and the mean training return
over the last 10% of updates; appends the result to benchmarks/results/foundation_tuning.json.

    python scripts/tune_foundation.py reinforce --set num_envs=8 --set num_steps=64 \\
        --grid lr=1e-3,3e-3,1e-2 --seeds 8
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

import numpy as np

from purejaxpg.engine import compat

compat.configure()  # jaxlib 0.10 CPU settings, before JAX's backend starts

from purejaxpg.analysis import stats
from purejaxpg.engine.experiment import build


def _value(text):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if "," in text or text == "()":
        return tuple(int(v) for v in text.strip("()").split(",") if v)
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("algo")
    p.add_argument("--set", action="append", default=[], help="static or hparam override NAME=VALUE")
    p.add_argument("--grid", action="append", default=[], help="traced hparam NAME=v1,v2,...")
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=os.path.join(ROOT, "benchmarks", "results", "foundation_tuning.json"))
    args = p.parse_args(argv)

    overrides = {"env": "CartPole-v1"}
    for item in args.set:
        k, v = item.split("=", 1)
        overrides[k] = _value(v)
    grid_axes = {}
    for item in args.grid:
        k, v = item.split("=", 1)
        grid_axes[k] = [float(x) for x in v.split(",")]
    algo, config, hparams = build(args.algo, overrides, preset="none")
    points = [dict(zip(grid_axes, combo)) for combo in itertools.product(*grid_axes.values())] or [{}]
    for pt in points:
        build(args.algo, {**overrides, **pt}, preset="none")  # validate every grid point

    import jax
    import jax.numpy as jnp

    grid = {k: jnp.asarray([pt.get(k, v) for pt in points], jnp.float32) for k, v in hparams.items()}
    train = algo.make_train(config)
    keys = jax.random.split(jax.random.PRNGKey(args.seed), args.seeds)
    fn = jax.jit(jax.vmap(jax.vmap(train, in_axes=(0, None)), in_axes=(None, 0)))
    t0 = time.perf_counter()
    compiled = fn.lower(keys, grid).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = jax.block_until_ready(compiled(keys, grid))
    run_s = time.perf_counter() - t0
    final = np.asarray(out["eval_returns"]).mean(-1)  # [G, seeds]
    curve = np.asarray(out["metrics"]["episode_return"])  # [G, seeds, updates]
    tail = max(1, curve.shape[-1] // 10)
    steps = len(points) * args.seeds * config.num_updates * config.batch_size
    print(f"{args.algo} {overrides} | {args.seeds} seeds x {config.num_updates * config.batch_size} steps, "
          f"{config.num_updates} updates | compile {compile_s:.1f}s run {run_s:.1f}s {steps / run_s:,.0f} steps/s "
          f"| load {os.getloadavg()[0]:.2f}")
    rows = []
    for g, pt in enumerate(points):
        iqm = float(stats.iqm(final[g]))
        rows.append({"point": pt, "final_iqm": iqm, "final_mean": float(final[g].mean()),
                     "final_min": float(final[g].min()),
                     "train_tail_mean": float(np.nanmean(curve[g, :, -tail:]))})
        print(f"  {json.dumps(pt):40s} final IQM {iqm:6.1f} mean {final[g].mean():6.1f} min {final[g].min():6.1f} "
              f"| train tail {rows[-1]['train_tail_mean']:6.1f}")
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    log = []
    if os.path.exists(args.json):
        with open(args.json) as f:
            log = json.load(f)
    log.append({"algo": args.algo, "overrides": {k: (list(v) if isinstance(v, tuple) else v)
                                                 for k, v in overrides.items()},
                "seeds": args.seeds, "seed": args.seed, "env_steps_per_seed": config.num_updates * config.batch_size,
                "compile_seconds": compile_s, "run_seconds": run_s, "load_average": os.getloadavg(),
                "results": rows})
    with open(args.json, "w") as f:
        json.dump(log, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
