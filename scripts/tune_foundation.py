"""The small sweeps behind REINFORCE's and A2C's CartPole defaults (see their specs and
``purejaxpg.algos.presets``).

One static config per call; a grid of traced hyperparameters x seeds is one compiled
program (``runner.sweep``, preset none). Prints, per grid point, the final-return IQM and
mean across seeds (16 sampled evaluation episodes per seed) and the mean training return
over the last 10% of updates; appends the result to benchmarks/results/foundation_tuning.json.

    python scripts/tune_foundation.py reinforce --set num_envs=8 --set num_steps=64 \\
        --grid lr=1e-3,3e-3,1e-2 --seeds 8
    python scripts/tune_foundation.py a2c --set total_timesteps=20000 --grid lr=1e-3,3e-3 --seeds 2 \\
        --json /tmp/tune.json   # a quick look
"""
from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from benchmarks import git_commit, setup

setup()  # before JAX's backend starts

import numpy as np

from purejaxpg.analysis import stats
from purejaxpg.engine import runner
from purejaxpg.engine.plan import parse_grid


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
        overrides[k.strip()] = v.strip()  # parsed and checked by the algorithm's spec
    grid = parse_grid(args.grid, args.algo)
    result = runner.sweep(args.algo, None, overrides, grid, num_seeds=args.seeds, seed=args.seed, quiet=True,
                          preset="none")
    if len(result.groups) != 1:
        raise SystemExit("--grid must name traced hyperparameters only (one program)")
    g = result.groups[0]
    config = g.group.config
    final = g.final  # [G, seeds]
    curve = g.metrics["episode_return"]  # [G, seeds, updates]
    tail = max(1, curve.shape[-1] // 10)
    t = g.timings
    print(f"{args.algo} {overrides} | {args.seeds} seeds x {config.num_updates * config.batch_size} steps, "
          f"{config.num_updates} updates | compile {t['compile_seconds']:.1f}s run {t['run_seconds']:.1f}s "
          f"{g.env_steps_per_second:,.0f} steps/s | load {os.getloadavg()[0]:.2f}")
    rows = []
    for i, pt in enumerate(g.group.swept):
        iqm = float(stats.iqm(final[i]))
        rows.append({"point": pt, "final_iqm": iqm, "final_mean": float(final[i].mean()),
                     "final_min": float(final[i].min()),
                     "train_tail_mean": float(np.nanmean(curve[i, :, -tail:]))})
        print(f"  {json.dumps(pt):40s} final IQM {iqm:6.1f} mean {final[i].mean():6.1f} min {final[i].min():6.1f} "
              f"| train tail {rows[-1]['train_tail_mean']:6.1f}")
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    log = []
    if os.path.exists(args.json):
        with open(args.json) as f:
            log = json.load(f)
    log.append({"algo": args.algo, "overrides": overrides, "seeds": args.seeds, "seed": args.seed,
                "env_steps_per_seed": config.num_updates * config.batch_size,
                "compile_seconds": t["compile_seconds"], "run_seconds": t["run_seconds"],
                "load_average": os.getloadavg(), "commit": git_commit(), "results": rows})
    with open(args.json, "w") as f:
        json.dump(log, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
