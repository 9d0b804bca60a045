"""Issue 16's learning acceptance runs on a CPU, each one program over its seeds, with the
env's preset (the path of ``purejaxpg train``):

* ``ppo``: PPO on playground/CartpoleBalance, 8 seeds: final-return IQM >= 900 within 5e6
  env steps per seed (the CPU preset takes 1e6);
* ``sac``: SAC on playground/CartpoleBalance, 4 seeds: IQM >= 900 within 1e5;
* ``pendulum``: PPO on brax/inverted_pendulum, 4 seeds: IQM >= 900 (the task pays 1 per
  step upright, 1000 at most; falling over ends the episode), i.e. "it trains".

On CartpoleBalance doing nothing scores about 698 and uniform random actions about 358. The
final return of a seed is the mean over the evaluation episodes of its final policy (PPO:
sampled actions; SAC: the mean action), as in every purejaxpg summary.

    python scripts/physics_acceptance.py                 # all three
    python scripts/physics_acceptance.py --only sac
    python scripts/physics_acceptance.py --smoke          # does it work here? (2 seeds, one update each, not judged)

Prints one line per run and a verdict; writes benchmarks/results/physics_acceptance.json
(date, machine, load before and after each run, git commit, per-seed returns) and the run
directories under --out.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

from purejaxpg.engine import compat

compat.configure()  # jaxlib 0.10 CPU settings, before JAX's backend starts

from purejaxpg.engine import runner

from benchmarks import SMOKE_HELP, git_commit, machine, out_path, smoke_steps

RUNS = {
    "ppo": {"algo": "ppo", "env": "playground/CartpoleBalance", "seeds": 8, "budget": 5_000_000, "threshold": 900.0},
    "sac": {"algo": "sac", "env": "playground/CartpoleBalance", "seeds": 4, "budget": 100_000, "threshold": 900.0},
    "pendulum": {"algo": "ppo", "env": "brax/inverted_pendulum", "seeds": 4, "budget": 1_000_000, "threshold": 900.0},
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=sorted(RUNS), default=None)
    p.add_argument("--out", default=None, help="run directories (default runs/physics-acceptance)")
    p.add_argument("--json", default=None, help="default benchmarks/results/physics_acceptance.json")
    p.add_argument("--smoke", action="store_true", help=SMOKE_HELP + "; the thresholds are not judged")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    runs_dir = out_path(args.out, os.path.join(ROOT, "runs", "physics-acceptance"), args)
    json_path = out_path(args.json, os.path.join(ROOT, "benchmarks", "results", "physics_acceptance.json"), args)
    results, ok = {}, True
    for name, spec in RUNS.items():
        if args.only and name != args.only:
            continue
        load = os.getloadavg()
        started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        if args.smoke:
            spec = {**spec, "seeds": 2, "budget": smoke_steps(spec["algo"], {"env": spec["env"]})}
        small = {"total_timesteps": spec["budget"]} if args.smoke else {}
        r = runner.train(spec["algo"], {"env": spec["env"], **small}, num_seeds=spec["seeds"],
                         out_dir=os.path.join(runs_dir, name), quiet=True)
        s = r.summaries["run"]
        fr = s["final_return"]
        within = s["total_timesteps"] <= spec["budget"]
        passed = within and fr["iqm"] is not None and fr["iqm"] >= spec["threshold"]
        ok &= passed
        results[name] = {**spec, "started": started, "env_steps_per_seed": s["total_timesteps"], "passed": passed,
                         "final_return": fr, "compile_seconds": s["compile_seconds"], "run_seconds": s["run_seconds"],
                         "env_steps_per_second": s["env_steps_per_second"], "load_average_before": list(load),
                         "load_average_after": list(os.getloadavg()), "versions": s.get("versions")}
        print(f"{spec['algo']} {spec['env']} {spec['seeds']} seeds x {s['total_timesteps']:,} steps: IQM "
              f"{fr['iqm']:.1f} (95% CI {fr['iqm_ci95'][0]:.1f}..{fr['iqm_ci95'][1]:.1f}; per seed "
              f"{[round(x, 1) for x in fr['per_seed']]}) {'>=' if passed else '<'} {spec['threshold']:.0f} "
              f"{'not judged' if args.smoke else 'PASS' if passed else 'FAIL'} | compile {s['compile_seconds']:.0f} s, run {s['run_seconds']:.0f} s, "
              f"load {load[0]:.1f}", flush=True)
    previous = {}
    if os.path.exists(json_path):
        with open(json_path) as f:
            previous = json.load(f)
    previous.update(results)
    previous["_last"] = {"machine": machine(), "commit": git_commit(),
                         "command": "python scripts/physics_acceptance.py " + " ".join(argv or sys.argv[1:])}
    with open(json_path, "w") as f:
        json.dump(previous, f, indent=2)
    if args.smoke:
        print("acceptance: not judged (--smoke)")
        return 0
    print("acceptance: " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
