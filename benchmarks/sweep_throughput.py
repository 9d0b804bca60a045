"""A hyperparameter sweep in one program against a plain multi-seed run.

PPO on CartPole-v1 with the default PPO config (4 envs x 128 steps per update, 4 epochs x
4 minibatches): a 3 x 3 grid (lr in {1e-4, 3e-4, 1e-3} x clip_eps in {0.1, 0.2, 0.3})
x 8 seeds = 72 runs through ``purejaxpg.sweep.run_group`` (one compiled chunk program),
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

import purejaxpg  # noqa: E402,F401  (sets XLA flags before JAX's backend starts)

import jax  # noqa: E402
import numpy as np  # noqa: E402

from purejaxpg import sweep  # noqa: E402
from purejaxpg.experiment import build, versions  # noqa: E402

_COMPILES = [0]


def _listener(event, duration, **kwargs):
    if event == "/jax/core/compile/backend_compile_duration":
        _COMPILES[0] += 1


def baseline(algo, config, hparams, seeds):
    train = algo.make_train(config)
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    c0 = _COMPILES[0]
    t0 = time.perf_counter()
    compiled = jax.jit(jax.vmap(train, in_axes=(0, None))).lower(keys, hparams).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = jax.block_until_ready(compiled(keys, hparams))
    run_s = time.perf_counter() - t0
    steps = seeds * config.num_updates * config.batch_size
    return {"runs": seeds, "compile_seconds": compile_s, "run_seconds": run_s, "env_steps": steps,
            "env_steps_per_second": steps / run_s, "backend_compilations": _COMPILES[0] - c0,
            "final_return_mean": float(np.asarray(out["eval_returns"]).mean())}


def grid_run(algo, group, seeds):
    c0 = _COMPILES[0]
    r = sweep.run_group(algo, group, seeds, seed=0, chunks=1, log=lambda *a: None)
    seconds = r["run_seconds"] + r["eval_seconds"]
    steps = r["num_runs"] * group.config.num_updates * group.config.batch_size
    return {"runs": r["num_runs"], "configurations": len(group.hparams), "compile_seconds": r["compile_seconds"],
            "run_seconds": seconds, "env_steps": steps, "env_steps_per_second": steps / seconds,
            "chunk_programs_compiled": r["programs_compiled"], "backend_compilations": _COMPILES[0] - c0,
            "final_return_mean": float(np.nanmean(r["final_return"]))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--total-timesteps", type=int, default=65_536, help="env steps per run")
    p.add_argument("--repeats", type=int, default=2, help="alternating timed runs of each side (best is kept)")
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
    singles, sweeps = [], []
    for _ in range(max(1, args.repeats)):
        singles.append(baseline(algo, config, hparams, args.seeds))
        sweeps.append(grid_run(algo, groups[0], args.seeds))
    load_after = os.getloadavg()
    best_single = max(singles, key=lambda r: r["env_steps_per_second"])
    best_sweep = max(sweeps, key=lambda r: r["env_steps_per_second"])
    ratio = best_sweep["env_steps_per_second"] / best_single["env_steps_per_second"]

    print(f"PPO CartPole-v1, {config.num_envs} envs x {config.num_steps} steps, "
          f"{config.num_updates * config.batch_size} env steps per run, {jax.devices()[0].platform} "
          f"x{jax.device_count()}, load {load_before[0]:.2f} -> {load_after[0]:.2f}")
    print(f"{'':28}{'runs':>6}{'compile s':>11}{'run s':>9}{'env steps/s':>14}{'XLA compiles':>14}")
    for name, rs in (("single 8-seed run", singles), ("3x3 grid x 8 seeds sweep", sweeps)):
        for r in rs:
            print(f"{name:28}{r['runs']:>6}{r['compile_seconds']:>11.1f}{r['run_seconds']:>9.2f}"
                  f"{r['env_steps_per_second']:>14,.0f}{r['backend_compilations']:>14}")
    print(f"sweep / single env steps/s (best of {len(singles)} each): {ratio:.2f}; "
          f"chunk programs compiled for the sweep: {best_sweep['chunk_programs_compiled']}")

    result = {"setting": {"algo": "ppo", "env": config.env, "num_envs": config.num_envs,
                          "num_steps": config.num_steps, "env_steps_per_run": config.num_updates * config.batch_size,
                          "seeds": args.seeds, "grid": grid},
              "single": singles, "sweep": sweeps, "ratio_sweep_over_single": ratio,
              "load_average_before": load_before, "load_average_after": load_after,
              "command": "python benchmarks/sweep_throughput.py " + " ".join(argv or sys.argv[1:]),
              "versions": versions(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
