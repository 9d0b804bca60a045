"""What the progress bar's host callback costs: the runner's chunk program (``engine.batch.
prepare``, one chunk = the whole run) compiled without the callback (``quiet``), with it at
the default cadence (``progress``: every ``progress.cadence(num_updates)`` updates, about 20
times per run, once for all runs) and with it after every update (``every_update``), run
back to back, alternating, in one process. The default cadence's cost is within run-to-run noise, so it is also estimated
from the ``every_update`` runs: per-call cost = (every_update - quiet) / calls, times the
default number of calls.

    flock -x /tmp/cpu.lock python benchmarks/progress_overhead.py          # ~3 min on 2 CPU cores
    python benchmarks/progress_overhead.py --seeds 2 --reps 1 --scale 0.05   # a quick look

Prints a table (median run seconds of each, overhead in %) and writes
benchmarks/results/progress_overhead.json. Compile time is excluded from both.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from benchmarks import RESULTS, git_commit, setup

setup()  # before JAX's backend starts

from purejaxpg.algos import get_algo
from purejaxpg.engine.batch import prepare
from purejaxpg.engine.outputs import versions
from purejaxpg.engine.progress import ProgressBar, cadence

CASES = {  # CartPole-v1 defaults; A2C has the most (and cheapest) updates per env step
    "a2c": {"total_timesteps": 250_000},
    "reinforce": {"total_timesteps": 500_000},
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--reps", type=int, default=4)
    p.add_argument("--scale", type=float, default=1.0, help="multiply each case's env steps (a quick look: 0.05)")
    p.add_argument("--json", default=os.path.join(RESULTS, "progress_overhead.json"))
    args = p.parse_args(argv)

    import jax

    results = {}
    for name, overrides in CASES.items():
        algo = get_algo(name)
        setting = {"env": "CartPole-v1", "total_timesteps": int(overrides["total_timesteps"] * args.scale)}
        config, hp = algo.resolve(setting)
        program = algo.make_program(config)
        holder = {}
        sink = io.StringIO()  # the bar draws (tqdm formatting included) into a buffer, not the terminal

        def report(i, metrics):
            holder["bar"].report(i, metrics)

        every = cadence(program.num_updates)
        variants = {"quiet": (None, every), "progress": (report, every), "every_update": (report, 1)}
        programs = {}
        for variant, (cb, k) in variants.items():
            batch = prepare(program, [hp], args.seeds, 0, report=cb, every=k)
            chunk = batch.chunk(program.num_updates)
            carry = jax.block_until_ready(batch.init(batch.keys, batch.hparams))
            programs[variant] = (chunk, carry, batch.hparams, batch.start(0))
        times = {v: [] for v in variants}
        for rep in range(args.reps + 1):  # the first round warms up and is not counted
            for variant in variants:
                bar = ProgressBar(program.num_updates, args.seeds, config.batch_size, enabled=(variant == "progress"))
                holder["bar"] = bar
                chunk, carry, hps, start = programs[variant]
                with contextlib.redirect_stderr(sink):
                    bar.start()
                    t0 = time.perf_counter()
                    jax.block_until_ready(chunk(carry, hps, start))
                    dt = time.perf_counter() - t0
                    bar.close()
                if rep:
                    times[variant].append(dt)
        q, pr, ev = (statistics.median(times[v]) for v in ("quiet", "progress", "every_update"))
        calls = -(-config.num_updates // every)
        per_call = (ev - q) / config.num_updates  # seconds per callback (one call per update for all runs)
        estimated = 100.0 * per_call * calls / q
        results[name] = {"env": "CartPole-v1", "seeds": args.seeds, "num_updates": config.num_updates,
                         "env_steps_per_seed": config.num_updates * config.batch_size,
                         "callback_every_updates": every, "callbacks_per_run": calls,
                         "run_seconds": times, "median_quiet_s": q, "median_progress_s": pr,
                         "median_every_update_s": ev, "overhead_percent_measured": 100.0 * (pr - q) / q,
                         "seconds_per_callback": per_call, "overhead_percent_estimated": estimated,
                         "load_average": os.getloadavg()}
        print(f"{name}: quiet {q:.2f}s, progress {pr:.2f}s ({100 * (pr - q) / q:+.2f}%), every update {ev:.2f}s "
              f"-> {1e6 * per_call:.0f} us per callback, default cadence {estimated:.2f}% | runs {times} "
              f"| load {os.getloadavg()[0]:.2f}", flush=True)

    print()
    print(f"progress-bar overhead, CartPole-v1, {args.seeds} seeds, median of {args.reps} alternating runs "
          f"({platform.machine()}, {os.cpu_count()} cpus)")
    print(f"{'algo':10s} | {'updates':>7s} | {'callbacks/run':>14s} | {'quiet s':>8s} | {'progress s':>10s} | "
          f"{'measured':>8s} | {'every-update s':>14s} | {'us/callback':>11s} | estimated")
    for name, r in results.items():
        print(f"{name:10s} | {r['num_updates']:7d} | {r['callbacks_per_run']:14d} | {r['median_quiet_s']:8.2f} | "
              f"{r['median_progress_s']:10.2f} | {r['overhead_percent_measured']:+7.2f}% | "
              f"{r['median_every_update_s']:14.2f} | {1e6 * r['seconds_per_callback']:11.0f} | "
              f"{r['overhead_percent_estimated']:.2f}%")
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({**results, "commit": git_commit(), "versions": versions()}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
