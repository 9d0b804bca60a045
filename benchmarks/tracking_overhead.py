"""What experiment tracking (``--log BACKEND``) costs a run: the same run through
``purejaxpg.train`` without any callback (``quiet``), with the progress bar (``bar``), and
with each backend (``csv``, ``tensorboard``, ``wandb`` offline, ``mlflow`` with a local file
store; no bar), alternating the variants in every round, in one process. Checkpoints are off,
so a run's ``run_seconds`` (compile excluded) is its chunk programs and their callbacks; the
whole call's wall time (programs read from the compilation cache after the first round)
adds the trackers' start and close (opening files, a W&B or MLflow run).

    flock -x /tmp/cpu.lock python benchmarks/tracking_overhead.py        # ~4 min on 2 CPU cores
    python benchmarks/tracking_overhead.py --reps 1 --scale 0.1           # a quick look
    python benchmarks/tracking_overhead.py --smoke                        # does it work here?

A backend whose library is missing (``pip install -e '.[track]'``) is skipped with a line.
Prints a table (median run seconds, overhead against ``quiet`` in %, callbacks per run) and
writes benchmarks/results/tracking_overhead.json with the date, machine, load and commit.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from benchmarks import RESULTS, SMOKE_HELP, load, out_path, provenance, setup, smoke, write_json

setup()  # before JAX's backend starts

import purejaxpg
from purejaxpg.engine import tracking
from purejaxpg.engine.outputs import versions


def variants() -> dict:
    """{name: (quiet, log backends)}, those whose library is installed (``tracking.check``)."""
    out = {"quiet": (True, ()), "bar": (False, ())}
    for backend in tracking.BACKENDS:
        try:
            tracking.check((backend,), ROOT)
        except ValueError as e:
            print(f"{backend}: skipped: {e}")
            continue
        out[backend] = (True, (backend,))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algo", default="a2c", help="a2c (default) has the most updates, so the most callbacks, per step")
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--steps", type=int, default=500_000, help="env steps per seed")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--scale", type=float, default=1.0, help="multiply --steps (a quick look: 0.1)")
    p.add_argument("--json", default=None, help="default benchmarks/results/tracking_overhead.json")
    p.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = p.parse_args(argv)
    smoke(args, seeds=2, steps=2560, scale=1.0, reps=1)
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # a local file store under each run's directory

    setting = {"env": "CartPole-v1", "total_timesteps": int(args.steps * args.scale)}
    cases = variants()
    runs = {v: [] for v in cases}
    work = tempfile.mkdtemp(prefix="purejaxpg-tracking-")
    try:
        for rep in range(args.reps + 1):  # round 0 compiles (then read from the cache) and is not counted
            for name, (quiet, log) in cases.items():
                out = os.path.join(work, f"{name}-{rep}")
                t0 = time.perf_counter()
                with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
                    r = purejaxpg.train(args.algo, num_seeds=args.seeds, out=out, quiet=quiet, log=log,
                                        checkpoint_every=0, **setting)
                wall = time.perf_counter() - t0
                s = r.summary
                if rep:
                    runs[name].append({"run_seconds": s["run_seconds"], "compile_seconds": s["compile_seconds"],
                                       "wall_seconds": wall, "load": load()})
                shutil.rmtree(out, ignore_errors=True)
        num_updates = r.config.num_updates
    finally:
        shutil.rmtree(work, ignore_errors=True)

    from purejaxpg.engine.progress import cadence

    calls = -(-num_updates // cadence(num_updates))
    base = statistics.median(x["run_seconds"] for x in runs["quiet"])
    table = {}
    for name, rs in runs.items():
        med = statistics.median(x["run_seconds"] for x in rs)
        wall = statistics.median(x["wall_seconds"] for x in rs)
        table[name] = {"median_run_seconds": med, "overhead_percent": 100.0 * (med - base) / base,
                       "median_wall_seconds": wall, "runs": rs}
    print()
    print(f"tracking overhead: {args.algo} on {setting['env']}, {args.seeds} seeds x {setting['total_timesteps']:,} "
          f"steps, {num_updates} updates, {calls} callbacks per run; median of {args.reps} alternating rounds; "
          f"load {load()}")
    print(f"{'variant':12s} | {'run s':>7s} | {'vs quiet':>8s} | {'wall s':>7s}  (wall: the whole call, with the "
          f"trackers' start and close, programs from the cache)")
    for name, t in table.items():
        print(f"{name:12s} | {t['median_run_seconds']:7.2f} | {t['overhead_percent']:+7.2f}% | "
              f"{t['median_wall_seconds']:7.2f}")
    write_json(out_path(args.json, os.path.join(RESULTS, "tracking_overhead.json"), args), {**provenance(argv if argv is not None else sys.argv[1:]), "algo": args.algo,
                           "setting": setting, "seeds": args.seeds, "num_updates": num_updates,
                           "callbacks_per_run": calls, "reps": args.reps, "variants": table,
                           "versions": versions()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
