"""A hyperparameter sweep in one program against a plain multi-seed run.

PPO on CartPole-v1 with the default PPO config (4 envs x 128 steps per update, 4 epochs x
4 minibatches): a 3 x 3 grid (lr in {1e-4, 3e-4, 1e-3} x clip_eps in {0.1, 0.2, 0.3})
x 8 seeds = 72 runs through ``runner.sweep`` (one compiled chunk program), against the
plain 8-seed ``runner.train`` of the same config, alternating (single, sweep, single, ...).
Both are timed by the runner: compile apart, the training scan as run time (the final
evaluation excluded); env steps/s counts the env steps of all real runs.

    flock -x /tmp/cpu.lock python benchmarks/sweep_throughput.py            # 65,536 steps per run
    python benchmarks/sweep_throughput.py --total-timesteps 16384 --repeats 1   # a quick look

Prints a table and writes benchmarks/results/sweep_throughput.json (with the load average
before and after, and the number of XLA backend compilations each side triggered).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks import RESULTS, git_commit, load, machine, setup, write_json

setup()  # before JAX's backend starts

import jax

from purejaxpg.engine import runner
from purejaxpg.engine.outputs import versions

_COMPILES = [0]


def _listener(event, duration, **kwargs):
    if event == "/jax/core/compile/backend_compile_duration":
        _COMPILES[0] += 1


def measure(fn) -> dict:
    """One runner call: its timings, the real runs' env steps/s and XLA compilations."""
    c0 = _COMPILES[0]
    result = fn()
    gs = result.groups
    runs = sum(g.batch.num_runs for g in gs)
    run_s = sum(g.timings["run_seconds"] for g in gs)
    steps = sum(g.batch.num_runs * g.updates_run * g.batch.program.env_steps_per_update for g in gs)
    return {"runs": runs, "programs": len(gs), "compile_seconds": sum(g.timings["compile_seconds"] for g in gs),
            "run_seconds": run_s, "eval_seconds": sum(g.timings["eval_seconds"] for g in gs),
            "env_steps_per_second": steps / run_s, "backend_compilations": _COMPILES[0] - c0,
            "final_return_mean": float(sum(g.final.sum() for g in gs) / runs), "load_after": load()}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--total-timesteps", type=int, default=65_536, help="env steps per run")
    p.add_argument("--repeats", type=int, default=3, help="alternating timed runs of each side (best is kept)")
    p.add_argument("--block", type=int, default=0,
                   help="also time the sweep with --block K (K runs vmapped at a time, bit-identical across device counts)")
    p.add_argument("--out", default=os.path.join(RESULTS, "sweep_throughput.json"))
    args = p.parse_args(argv)
    jax.monitoring.register_event_duration_secs_listener(_listener)

    base = {"env": "CartPole-v1", "total_timesteps": args.total_timesteps}
    grid = {"lr": [1e-4, 3e-4, 1e-3], "clip_eps": [0.1, 0.2, 0.3]}
    sides = [(f"single {args.seeds}-seed run", lambda: runner.train("ppo", base, args.seeds, quiet=True), []),
             (f"3x3 grid x {args.seeds} seeds sweep",
              lambda: runner.sweep("ppo", None, base, grid, num_seeds=args.seeds, quiet=True), [])]
    if args.block:
        sides.append((f"the sweep, --block {args.block}",
                      lambda: runner.sweep("ppo", None, base, grid, num_seeds=args.seeds, quiet=True,
                                           block=args.block), []))
    load_before = load()
    for _ in range(max(1, args.repeats)):  # alternate, so every side sees the same machine
        for name, fn, rs in sides:
            rs.append(measure(fn))
            print(f"{name}: {rs[-1]['env_steps_per_second']:,.0f} env steps/s, compile "
                  f"{rs[-1]['compile_seconds']:.1f} s", flush=True)
    load_after = load()
    best = [max(r["env_steps_per_second"] for r in rs) for _, _, rs in sides]
    ratio = best[1] / best[0]
    assert sides[1][2][0]["programs"] == 1, "a grid over traced hyperparameters must be one program"

    print(f"PPO CartPole-v1, 4 envs x 128 steps, {args.total_timesteps} env steps per run, "
          f"{jax.devices()[0].platform} x{jax.device_count()}, load {load_before[0]:.2f} -> {load_after[0]:.2f}")
    print(f"{'':30}{'runs':>6}{'compile s':>11}{'XLA compiles':>14}{'run s':>9}{'env steps/s':>14}")
    for name, _, rs in sides:
        for r in rs:
            print(f"{name:30}{r['runs']:>6}{r['compile_seconds']:>11.1f}{r['backend_compilations']:>14}"
                  f"{r['run_seconds']:>9.2f}{r['env_steps_per_second']:>14,.0f}")
    print(f"sweep / single env steps/s (best of {args.repeats} each): {ratio:.2f}; one program for all "
          f"{sides[1][2][0]['runs']} runs")
    if args.block:
        print(f"sweep with --block {args.block} / sweep: {best[2] / best[1]:.2f}")

    result = {"date": time.strftime("%Y-%m-%d", time.gmtime()), "commit": git_commit(), "machine": machine(),
              "command": "python benchmarks/sweep_throughput.py " + " ".join(argv),
              "setting": {"algo": "ppo", **base, "seeds": args.seeds, "grid": grid},
              "sides": {name: rs for name, _, rs in sides}, "ratio_sweep_over_single": ratio,
              **({"ratio_blocked_over_sweep": best[2] / best[1]} if args.block else {}),
              "load_average_before": load_before, "load_average_after": load_after,
              "xla_flags": os.environ.get("XLA_FLAGS", ""), "versions": versions()}
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
