"""Issue 2's learning acceptance runs, each 16 seeds in one compiled program on CartPole-v1
within 1e6 env steps per seed:

* ``reinforce``: REINFORCE with its defaults (reward-to-go, learned value baseline):
  final-return IQM >= 450;
* ``a2c``: A2C with its defaults: final-return IQM >= 450;
* ``textbook``: the textbook REINFORCE (whole-episode return, normalised, no baseline):
  learns, IQM >= 150.

Every run goes through the same path as ``purejaxpg train`` (``runner.train``: presets of
``purejaxpg.algos.presets`` first, then the overrides below), so it also checks that path. The
final return of a seed is the mean over 16 evaluation episodes of its final (sampling)
policy; IQM, mean and their 95% percentile-bootstrap CIs are across seeds.

    python scripts/foundation_acceptance.py                 # all three; ~10-20 min on 2 CPU cores
    python scripts/foundation_acceptance.py --only a2c
    python scripts/foundation_acceptance.py --only a2c --seeds 2 --total-timesteps 20000 --json /tmp/fa.json  # smoke

Prints a table (IQM, CI, wall, compile, env steps/s, load average) and a verdict; writes
benchmarks/results/foundation_acceptance.json and the usual run directories under --out.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from benchmarks import git_commit, setup

setup()  # before JAX's backend starts

from purejaxpg.algos import get_algo
from purejaxpg.engine import runner
from purejaxpg.engine.outputs import versions

BUDGET = 1_000_000
RUNS = {
    "reinforce": {"algo": "reinforce", "overrides": {}, "threshold": 450.0},
    "a2c": {"algo": "a2c", "overrides": {}, "threshold": 450.0},
    "textbook": {"algo": "reinforce",
                 "overrides": {"returns": "whole", "normalize": True, "baseline": "none", "boundary": "drop"},
                 "threshold": 150.0},
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=sorted(RUNS), action="append", default=None)
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--total-timesteps", type=int, default=None, help="instead of the defaults' (a smoke test)")
    p.add_argument("--out", default=os.path.join(ROOT, "runs", "foundation-acceptance"))
    p.add_argument("--json", default=os.path.join(ROOT, "benchmarks", "results", "foundation_acceptance.json"))
    args = p.parse_args(argv)

    results, ok, rows = {}, True, []
    for name, spec in RUNS.items():
        if args.only and name not in args.only:
            continue
        overrides = {"env": "CartPole-v1", **spec["overrides"]}
        if args.total_timesteps:
            overrides["total_timesteps"] = args.total_timesteps
        config, hparams = get_algo(spec["algo"]).resolve(overrides)
        if config.num_updates * config.batch_size > BUDGET:
            raise SystemExit(f"{name}: uses {config.num_updates * config.batch_size} env steps, over {BUDGET}")
        t0 = time.perf_counter()
        out = runner.train(spec["algo"], overrides, num_seeds=args.seeds, seed=args.seed,
                           out_dir=os.path.join(args.out, name), quiet=True)
        wall = time.perf_counter() - t0
        s = out.summaries["run"]
        fr = s["final_return"]  # mean, iqm and their 95% bootstrap CIs (ci95, iqm_ci95) across seeds
        passed = fr["iqm"] is not None and fr["iqm"] >= spec["threshold"]
        ok &= passed
        load = os.getloadavg()
        results[name] = {
            "algo": spec["algo"], "env": "CartPole-v1", "overrides": spec["overrides"],
            "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()},
            "hparams": hparams, "seeds": args.seeds, "env_steps_per_seed": s["total_timesteps"],
            "threshold_iqm": spec["threshold"], "passed": bool(passed), "final_return": fr,
            "wall_seconds": wall, "compile_seconds": s["compile_seconds"], "run_seconds": s["run_seconds"],
            "env_steps_per_second": s["env_steps_per_second"], "load_average_after": load,
        }
        rows.append((name, s, fr, wall, load, passed, spec["threshold"]))
        print(f"{name:10s} IQM {fr['iqm']:6.1f} [{fr['iqm_ci95'][0]:6.1f}, {fr['iqm_ci95'][1]:6.1f}] mean {fr['mean']:6.1f} "
              f"{'PASS' if passed else 'FAIL'} (>= {spec['threshold']:.0f}) | wall {wall:6.1f}s compile "
              f"{s['compile_seconds']:5.1f}s run {s['run_seconds']:6.1f}s {s['env_steps_per_second']:9,.0f} steps/s "
              f"| load {load[0]:.2f}", flush=True)

    print()
    print(f"CartPole-v1, {args.seeds} seeds x {args.total_timesteps or BUDGET:,} env steps each, one compiled program per row "
          f"({platform.machine()}, {os.cpu_count()} cpus)")
    head = (f"{'run':10s} | {'IQM':>6s} | {'IQM 95% CI':>15s} | {'mean':>6s} | {'mean 95% CI':>15s} | {'wall s':>7s} | "
            f"{'compile s':>9s} | "
            f"{'run s':>7s} | {'env steps/s':>11s} | {'load1':>5s} | verdict")
    print(head)
    print("-" * len(head))
    for name, s, fr, wall, load, passed, thr in rows:
        print(f"{name:10s} | {fr['iqm']:6.1f} | {fr['iqm_ci95'][0]:6.1f} .. {fr['iqm_ci95'][1]:6.1f} | {fr['mean']:6.1f} | "
              f"{fr['ci95'][0]:6.1f} .. {fr['ci95'][1]:6.1f} | "
              f"{wall:7.1f} | {s['compile_seconds']:9.1f} | {s['run_seconds']:7.1f} | "
              f"{s['env_steps_per_second']:11,.0f} | {load[0]:5.2f} | {'PASS' if passed else 'FAIL'} (>= {thr:.0f})")

    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    previous = {}
    if os.path.exists(args.json):
        with open(args.json) as f:
            previous = json.load(f)
    previous.pop("versions", None)
    previous.pop("commit", None)
    with open(args.json, "w") as f:
        json.dump({**previous, **results, "commit": git_commit(), "versions": versions()}, f, indent=2)
    print("acceptance: " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
