"""A hyperparameter sweep in one program against a plain multi-seed run.

PPO on CartPole-v1 with the default PPO config (4 envs x 128 steps per update, 4 epochs x
4 minibatches): a 3 x 3 grid (lr in {1e-4, 3e-4, 1e-3} x clip_eps in {0.1, 0.2, 0.3})
x 8 seeds = 72 runs as ``purejaxpg.engine.sweep`` builds them (one compiled chunk program),
against the plain 8-seed run of ``experiment.run`` (``jit(vmap(train, (0, None)))``) of
the same config. Both are timed without compilation and with the final evaluation
included; env steps/s counts the env steps of all runs.

    flock -x /tmp/cpu.lock python benchmarks/sweep_throughput.py            # 65,536 steps per run
    python benchmarks/sweep_throughput.py --total-timesteps 16384 --repeats 1   # a quick look

Prints a table and writes benchmarks/results/sweep_throughput.json (with the load average
before and after, and the number of XLA backend compilations each side triggered).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax
import numpy as np

from purejaxpg.engine import compat

compat.configure()  # jaxlib 0.10 CPU settings, before JAX's backend starts

from purejaxpg.engine import sweep
from purejaxpg.engine.experiment import build, versions

_COMPILES = [0]


def _listener(event, duration, **kwargs):
    if event == "/jax/core/compile/backend_compile_duration":
        _COMPILES[0] += 1


def compile_single(algo, config, hparams, seeds):
    """The plain multi-seed program of ``experiment.run``: jit(vmap(train, (0, None)))."""
    train = algo.make_train(config)
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    c0 = _COMPILES[0]
    t0 = time.perf_counter()
    compiled = jax.jit(jax.vmap(train, in_axes=(0, None))).lower(keys, hparams).compile()
    info = {"runs": seeds, "compile_seconds": time.perf_counter() - t0, "backend_compilations": _COMPILES[0] - c0}
    steps = seeds * config.num_updates * config.batch_size

    def run():
        t0 = time.perf_counter()
        out = jax.block_until_ready(compiled(keys, hparams))
        seconds = time.perf_counter() - t0
        return {"run_seconds": seconds, "env_steps_per_second": steps / seconds,
                "final_return_mean": float(np.asarray(out["eval_returns"]).mean())}

    return info, run


def compile_sweep(algo, group, seeds, block=0):
    """The sweep's programs as ``sweep.run_group`` builds them (one chunk = the whole run):
    init, the chunk program and the evaluation, each compiled once (``block``: runs vmapped
    at a time per device, as ``--block``)."""
    c0 = _COMPILES[0]
    t0 = time.perf_counter()
    pr = sweep._prepare(algo, group, seeds, 0, 1, block=block)
    init = pr.init_fn.lower(pr.keys, pr.hps).compile()
    chunk = pr.chunk_fn(pr.lengths[0]).lower(pr.abstract, pr.hps, pr.start0).compile()
    evaluate = pr.eval_fn.lower(pr.abstract).compile()
    info = {"runs": pr.B, "configurations": pr.C, "block": block, "compile_seconds": time.perf_counter() - t0,
            "chunk_programs_compiled": 1, "backend_compilations": _COMPILES[0] - c0}
    steps = pr.B * group.config.num_updates * group.config.batch_size  # real runs, not padding

    def run():
        t0 = time.perf_counter()
        carry, metrics = chunk(init(pr.keys, pr.hps), pr.hps, pr.start0)
        returns = jax.block_until_ready(evaluate(carry))
        seconds = time.perf_counter() - t0
        return {"run_seconds": seconds, "env_steps_per_second": steps / seconds,
                "final_return_mean": float(np.asarray(returns).mean())}

    return info, run


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--total-timesteps", type=int, default=65_536, help="env steps per run")
    p.add_argument("--repeats", type=int, default=3, help="alternating timed runs of each side (best is kept)")
    p.add_argument("--block", type=int, default=0,
                   help="also time the sweep with --block K (K runs vmapped at a time, bit-identical across device counts)")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                 "sweep_throughput.json"))
    args = p.parse_args(argv)
    jax.monitoring.register_event_duration_secs_listener(_listener)

    base = {"env": "CartPole-v1", "total_timesteps": args.total_timesteps}
    algo, config, hparams = build("ppo", base)
    grid = {"lr": [1e-4, 3e-4, 1e-3], "clip_eps": [0.1, 0.2, 0.3]}
    groups = sweep.plan_groups("ppo", base, sweep.configurations(grid, {}, 0, 0, "ppo"))
    assert len(groups) == 1, "a grid over traced hyperparameters must be one program"

    load_before = os.getloadavg()
    single_info, single_run = compile_single(algo, config, hparams, args.seeds)
    sweep_info, sweep_run = compile_sweep(algo, groups[0], args.seeds)
    sides = [("single 8-seed run", single_info, single_run, []), ("3x3 grid x 8 seeds sweep", sweep_info, sweep_run, [])]
    if args.block:
        info, run = compile_sweep(algo, groups[0], args.seeds, args.block)
        sides.append((f"the sweep, --block {args.block}", info, run, []))
    print("compiled: " + ", ".join(f"{name} {info['compile_seconds']:.1f} s" for name, info, _, _ in sides),
          flush=True)
    for _ in range(max(1, args.repeats)):  # alternate, so every side sees the same machine
        for name, _, run, rs in sides:
            rs.append(run())
            print(f"{name}: {rs[-1]['env_steps_per_second']:,.0f} env steps/s", flush=True)
    load_after = os.getloadavg()
    best = [max(rs, key=lambda r: r["env_steps_per_second"])["env_steps_per_second"] for _, _, _, rs in sides]
    singles, sweeps = sides[0][3], sides[1][3]
    ratio = best[1] / best[0]

    print(f"PPO CartPole-v1, {config.num_envs} envs x {config.num_steps} steps, "
          f"{config.num_updates * config.batch_size} env steps per run, {jax.devices()[0].platform} "
          f"x{jax.device_count()}, load {load_before[0]:.2f} -> {load_after[0]:.2f}")
    print(f"{'':30}{'runs':>6}{'compile s':>11}{'XLA compiles':>14}{'run s':>9}{'env steps/s':>14}")
    for name, info, _, rs in sides:
        for r in rs:
            print(f"{name:30}{info['runs']:>6}{info['compile_seconds']:>11.1f}{info['backend_compilations']:>14}"
                  f"{r['run_seconds']:>9.2f}{r['env_steps_per_second']:>14,.0f}")
    print(f"sweep / single env steps/s (best of {len(singles)} each): {ratio:.2f}; one chunk program for all "
          f"{sweep_info['runs']} runs")
    if args.block:
        print(f"sweep with --block {args.block} / sweep: {best[2] / best[1]:.2f}")

    result = {"setting": {"algo": "ppo", "env": config.env, "num_envs": config.num_envs,
                          "num_steps": config.num_steps, "env_steps_per_run": config.num_updates * config.batch_size,
                          "seeds": args.seeds, "grid": grid},
              "single": {**single_info, "runs_timed": singles}, "sweep": {**sweep_info, "runs_timed": sweeps},
              "ratio_sweep_over_single": ratio,
              **({"sweep_blocked": {**sides[2][1], "runs_timed": sides[2][3]},
                  "ratio_blocked_over_sweep": best[2] / best[1]} if args.block else {}),
              "load_average_before": load_before, "load_average_after": load_after,
              "xla_flags": os.environ.get("XLA_FLAGS", ""),
              "command": "python benchmarks/sweep_throughput.py " + " ".join(argv or sys.argv[1:]),
              "versions": versions(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
