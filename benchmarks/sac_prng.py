"""SAC's in-program PRNG, side by side: purejaxpg.core.prng's Philox vs jax.random's threefry.

Issue 14's rule: keep core/prng.py only if it is worth more than 5% of SAC's time. The
setting is benchmarks/sac_throughput.py's (issue 4: Pendulum-v1, 8 seeds in one program, 1e4
env steps per seed, the Pendulum preset with 1 env, 64x64 networks, buffer 1e4, learning
from step 256), run with ``rng_impl`` = "philox4x32" (A, the default) and "threefry2x32" (B).

    python benchmarks/sac_prng.py                 # A B A B A B, one fresh process each
    python benchmarks/sac_prng.py --pairs 4 --total-timesteps 2000   # shorter

Each run is a fresh process running ``benchmarks/sides/ours.py`` at sac_throughput.py's
purejaxpg settings with ``rng_impl X``: the runner compiles (timed alone) and runs the
program once (timed, compile and evaluation excluded). Fresh processes rather than one process with both programs:
every compile is then a cold compile (the figure a user sees), and neither program runs with
the other's buffers and caches around; alternating A B A B spreads the shared machine's
load changes over both. Prints medians of the run's wall time, of the process's CPU time
(less sensitive than wall time to other jobs on a shared machine) and of compile time,
and B against A (medians, and each pair's ratio); writes benchmarks/results/sac_prng.json
with the date, machine, load averages and git commit (``--summarize`` redoes the summary
of such a file).

Result (results/sac_prng.json; the project's 2-core AMD EPYC VM, jax/jaxlib 0.10.2,
2026-11-30 02:49-03:06 UTC, not exclusive: other jobs ran, 1-min load 3.1 rising to 7.3;
``python benchmarks/sac_prng.py --pairs 4``): threefry took +13% CPU time during the run
(medians 73.2 vs 64.7 s; per pair +10, +14, +13, +11%) and +24% wall time (medians 105 vs
85 s; per pair +2 to +70%, dominated by the rising load). Compile: medians 18.5 vs 15.8 s
(8-36 s, noise). Final return over 8 seeds: Philox -139.3 (IQM -140.2), threefry -148.1
(IQM -150.0), i.e. both learn; the streams differ. A short look at 1e3 steps per seed gave
+12% wall time. Over the 5% bar: core/prng.py stays.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, ROOT)

from benchmarks import git_commit, machine

IMPLS = {"A": "philox4x32", "B": "threefry2x32"}


def one_run(impl: str, total_timesteps: int, seeds: int) -> dict:
    """One SAC run at sac_throughput.py's purejaxpg settings (``OURS``) with ``rng_impl=impl``,
    in a fresh process (benchmarks/sides/ours.py); its CPU seconds from the child's rusage."""
    import resource

    from benchmarks.sac_throughput import OURS

    settings = {**OURS, "total_timesteps": total_timesteps, "rng_impl": impl}
    cmd = [sys.executable, os.path.join(HERE, "sides", "ours.py"), "sac", str(seeds), json.dumps(settings)]
    load_before, before = os.getloadavg(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    final = r["final_return_per_seed"]
    import numpy as np

    from purejaxpg.analysis import stats

    return {"rng_impl": impl, "compile_seconds": r["compile_seconds"], "run_seconds": r["run_seconds"],
            "cpu_seconds": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
            "final_return_mean": float(np.mean(final)), "final_return_iqm": float(stats.iqm(final)),
            "final_return_per_seed": final, "load_average_before": load_before, "load_average_after": os.getloadavg(),
            "versions": r["versions"]}


def summarize(runs: list) -> dict:
    """Medians per setting, and B against A: medians and, for each A B pair, B / A."""
    summary = {}
    for label, impl in IMPLS.items():
        mine = [r for r in runs if r["label"] == label]
        summary[label] = {"rng_impl": impl, "n": len(mine)}
        for key in ("run_seconds", "cpu_seconds", "compile_seconds"):
            summary[label][key] = [r[key] for r in mine]
            summary[label][key + "_median"] = statistics.median(summary[label][key])
        for key in ("final_return_mean", "final_return_iqm"):
            summary[label][key] = [r[key] for r in mine]
    pairs = [(runs[i], runs[i + 1]) for i in range(0, len(runs) - 1, 2)]
    out = {"settings": summary}
    for key in ("run_seconds", "cpu_seconds"):
        a, b = summary["A"][key + "_median"], summary["B"][key + "_median"]
        ratios = [y[key] / x[key] for x, y in pairs]
        # the share of SAC's (Philox) time that threefry would add (negative: it would save)
        out[key] = {"B_over_A_medians": b / a - 1, "B_over_A_per_pair": [r - 1 for r in ratios],
                    "B_over_A_median_of_pairs": statistics.median(ratios) - 1}
    return out


def print_table(result: dict) -> None:
    s = result["summary"]["settings"]
    A, B = s["A"], s["B"]
    print(f"{'':<27} {'A philox4x32':>14} {'B threefry2x32':>15}")
    for key, name in (("run_seconds", "run (s)"), ("cpu_seconds", "CPU, whole process (s)"),
                      ("compile_seconds", "compile (s)")):
        print(f"{name + ', median':<27} {A[key + '_median']:>14.2f} {B[key + '_median']:>15.2f}")
        print(f"{name + ', each':<27} {' '.join(f'{x:.1f}' for x in A[key]):>14} "
              f"{' '.join(f'{x:.1f}' for x in B[key]):>15}")
    print(f"{'final return, mean':<27} {A['final_return_mean'][0]:>14.1f} {B['final_return_mean'][0]:>15.1f}")
    print(f"{'final return, IQM':<27} {A['final_return_iqm'][0]:>14.1f} {B['final_return_iqm'][0]:>15.1f}")
    for key, name in (("run_seconds", "run time"), ("cpu_seconds", "CPU time")):
        c = result["summary"][key]
        print(f"threefry vs philox {name}: {100 * c['B_over_A_medians']:+.1f}% (medians), per pair "
              f"{', '.join(f'{100 * r:+.0f}%' for r in c['B_over_A_per_pair'])}")
    print("rule: keep core/prng.py if threefry costs more than 5% of SAC's time")
    print(f"load average before {result['load_average_before'][0]:.2f}, after {result['load_average_after'][0]:.2f} "
          f"(each run's in the JSON); commit {result['commit']}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=3, help="A B pairs, run in the order A B A B ...")
    p.add_argument("--total-timesteps", type=int, default=10_000, help="env steps per seed")
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--out", default=os.path.join(HERE, "results", "sac_prng.json"))
    p.add_argument("--summarize", metavar="JSON", help="only summarise the runs of an earlier result file again")
    args = p.parse_args(argv)

    if args.summarize:
        with open(args.summarize) as f:
            result = json.load(f)
        result["summary"] = summarize(result["runs"])
        result.pop("threefry_minus_philox_over_philox_run", None)
        with open(args.summarize, "w") as f:
            json.dump(result, f, indent=2)
        print_table(result)
        return 0

    load_before = os.getloadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    runs = []
    for i in range(args.pairs):
        for label in ("A", "B"):
            r = {"label": label, "order": len(runs), **one_run(IMPLS[label], args.total_timesteps, args.seeds)}
            runs.append(r)
            print(f"{label} {r['rng_impl']:<13} run {r['run_seconds']:6.2f} s (CPU {r['cpu_seconds']:6.2f} s)  "
                  f"compile {r['compile_seconds']:5.2f} s  return {r['final_return_mean']:8.1f}  "
                  f"load {r['load_average_before'][0]:.2f}", flush=True)
    load_after = os.getloadavg()
    result = {"date": started.isoformat(timespec="seconds"), "machine": machine(), "commit": git_commit(),
              "setting": {"seeds": args.seeds, "env_steps_per_seed": args.total_timesteps,
                          "script": "benchmarks/sides/ours.py sac SEEDS OURS+rng_impl (fresh process each)"},
              "order": "".join(r["label"] for r in runs), "runs": runs, "summary": summarize(runs),
              "load_average_before": load_before, "load_average_after": load_after,
              "versions": runs[0]["versions"]}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print()
    print_table(result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
