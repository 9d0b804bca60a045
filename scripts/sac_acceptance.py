"""Issue 4's learning acceptance runs for SAC, each 16 seeds in one compiled program:

* Pendulum-v1 (tanh-squashed Gaussian SAC): final-return IQM >= -200 within 2e4 env steps
  per seed;
* CartPole-v1 (discrete SAC): final-return IQM >= 400 within 2e5 env steps per seed.

Both use the presets of ``purejaxpg.algos.presets`` (``PRESETS["sac"]``) through the same path as
``purejaxpg train sac``, so they also check that path. The final return of a seed is the mean
over 16 evaluation episodes of its final policy (deterministic: tanh(mean) / argmax).

    python scripts/sac_acceptance.py                  # both; about 15-30 min on 2 CPU cores
    python scripts/sac_acceptance.py --only pendulum
    python scripts/sac_acceptance.py --only pendulum --seeds 2 --total-timesteps 2000 --json /tmp/sa.json  # smoke

The runner checks the memory of the replay buffers before compiling (engine.memory).

Prints one line per run and a verdict; writes benchmarks/results/sac_acceptance.json and the
usual run directories (config, metrics, summary, learning curve) under --out.
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

from purejaxpg.algos import get_algo
from purejaxpg.engine import runner

RUNS = {
    "pendulum": {"env": "Pendulum-v1", "budget": 20_000, "threshold": -200.0},
    "cartpole": {"env": "CartPole-v1", "budget": 200_000, "threshold": 400.0},
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=sorted(RUNS), default=None)
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--total-timesteps", type=int, default=None, help="instead of the presets' (a smoke test)")
    p.add_argument("--out", default=os.path.join(ROOT, "runs", "sac-acceptance"))
    p.add_argument("--json", default=os.path.join(ROOT, "benchmarks", "results", "sac_acceptance.json"))
    args = p.parse_args(argv)

    results, ok = {}, True
    for name, spec in RUNS.items():
        if args.only and name != args.only:
            continue
        overrides = {"env": spec["env"], **({"total_timesteps": args.total_timesteps} if args.total_timesteps else {})}
        config, _ = get_algo("sac").resolve(overrides)
        if config.num_updates * config.batch_size > spec["budget"]:
            raise SystemExit(f"{name}: preset uses {config.total_timesteps} env steps, over the budget {spec['budget']}")
        out = runner.train("sac", overrides, num_seeds=args.seeds, out_dir=os.path.join(args.out, name), quiet=True)
        s = out.summaries["run"]
        fr = s["final_return"]
        passed = fr["iqm"] is not None and fr["iqm"] >= spec["threshold"]
        ok &= passed
        results[name] = {"env": spec["env"], "seeds": args.seeds, "env_steps_per_seed": s["total_timesteps"],
                         "threshold_iqm": spec["threshold"], "passed": passed, "final_return": fr,
                         "compile_seconds": s["compile_seconds"], "run_seconds": s["run_seconds"],
                         "env_steps_per_second": s["env_steps_per_second"],
                         "load_average_after": os.getloadavg(), "commit": git_commit()}
        print(f"{spec['env']:14s} {args.seeds} seeds x {s['total_timesteps']} steps: final-return IQM "
              f"{fr['iqm']} (mean {fr['mean']}, 95% CI {fr['ci95'][0]}..{fr['ci95'][1]}) "
              f"{'>=' if passed else '<'} {spec['threshold']:.0f}  {'PASS' if passed else 'FAIL'} | compile "
              f"{s['compile_seconds']:.1f}s run {s['run_seconds']:.1f}s {s['env_steps_per_second']:.0f} env steps/s",
              flush=True)
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    previous = {}
    if os.path.exists(args.json):
        with open(args.json) as f:
            previous = json.load(f)
    with open(args.json, "w") as f:
        json.dump({**previous, **results}, f, indent=2)
    print("acceptance: " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
