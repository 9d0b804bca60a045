"""Issue 15's learning acceptance runs, each 16 seeds in one compiled program, with the
presets of ``purejaxpg.algos.presets`` (the same path as ``purejaxpg train ALGO --env ENV``):

* trpo CartPole-v1: final-return IQM >= 475 within 2e5 env steps per seed;
* trpo Acrobot-v1: IQM >= -100 within 5e5;
* trpo Pendulum-v1: IQM >= -250 within 1e6;
* npg CartPole-v1: IQM >= 400 within 5e5;
* impala (K = 4 replayed batches) CartPole-v1: IQM >= 450 within 1e6.

A seed's final return is the mean over 16 evaluation episodes of its final policy.

    python scripts/trpo_acceptance.py                           # all runs, one after another
    python scripts/trpo_acceptance.py --only trpo-cartpole,npg-cartpole

Prints one line per run and a verdict; writes benchmarks/results/trpo_acceptance.json (date,
machine, load average before and after each run, git commit) after every run.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from benchmarks import git_commit, setup

RUNS = {
    "trpo-cartpole": ("trpo", "CartPole-v1", 200_000, 475.0),
    "npg-cartpole": ("npg", "CartPole-v1", 500_000, 400.0),
    "impala-cartpole": ("impala", "CartPole-v1", 1_000_000, 450.0),
    "trpo-acrobot": ("trpo", "Acrobot-v1", 500_000, -100.0),
    "trpo-pendulum": ("trpo", "Pendulum-v1", 1_000_000, -250.0),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default=",".join(RUNS), help=f"comma-separated subset of {', '.join(RUNS)}")
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--json", default=os.path.join(ROOT, "benchmarks", "results", "trpo_acceptance.json"))
    args = p.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - set(RUNS)
    if unknown:
        raise SystemExit(f"unknown run(s) {sorted(unknown)}; valid: {', '.join(RUNS)}")
    setup()
    import numpy as np

    from purejaxpg.algos import get_algo
    from purejaxpg.analysis import stats
    from purejaxpg.engine import runner

    for name in names:  # import every algorithm now: later edits of the tree do not reach this run
        get_algo(RUNS[name][0])
    commit = git_commit()
    results = json.load(open(args.json)) if os.path.exists(args.json) else {}
    ok = True
    for name in names:
        algo, env, budget, threshold = RUNS[name]
        config, _ = get_algo(algo).resolve({"env": env})
        steps = config.num_updates * config.batch_size
        if steps > budget:
            raise SystemExit(f"{name}: the preset uses {steps} env steps per seed, over the budget {budget}")
        load_before = os.getloadavg()
        r = runner.train(algo, {"env": env}, num_seeds=args.seeds, quiet=True)
        g = r.groups[0]
        final = np.asarray(g.final[0], np.float64)
        s = stats.summarize(final)
        passed = bool(s["iqm"] >= threshold)
        ok &= passed
        metrics = {k: float(np.nanmean(np.asarray(v)[0])) for k, v in g.metrics.items()
                   if k in ("accepted", "kl", "cg_residual", "step_fraction", "rho_clipped")}
        results[name] = {"algo": algo, "env": env, "seeds": args.seeds, "env_steps_per_seed": steps,
                         "threshold_iqm": threshold, "passed": passed, "final_return": s,
                         "per_seed": [float(x) for x in final], "mean_over_run": metrics,
                         "compile_seconds": g.timings["compile_seconds"], "run_seconds": g.timings["run_seconds"],
                         "env_steps_per_second": g.env_steps_per_second,
                         "command": f"python scripts/trpo_acceptance.py --only {name}",
                         "date": datetime.datetime.now().isoformat(timespec="seconds"),
                         "machine": f"{platform.machine()} {os.cpu_count()} cpus", "git_commit": commit,
                         "load_average_before": load_before, "load_average_after": os.getloadavg()}
        ci = s.get("iqm_ci95") or [float("nan")] * 2
        print(f"{algo:6s} {env:12s} {args.seeds} seeds x {steps:.1e} steps: IQM {s['iqm']:.1f} "
              f"[{ci[0]:.1f}, {ci[1]:.1f}] mean {s['mean']:.1f} {'>=' if passed else '<'} {threshold:.0f} "
              f"{'PASS' if passed else 'FAIL'} | compile {g.timings['compile_seconds']:.0f}s run "
              f"{g.timings['run_seconds']:.0f}s {g.env_steps_per_second:,.0f} steps/s", flush=True)
        os.makedirs(os.path.dirname(args.json), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    print("acceptance: " + ("PASS" if ok else "FAIL") + f"; wrote {args.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
