"""SAC throughput on Pendulum-v1: seeds x env steps per second in one compiled program.

The setting of issue 4: 8 seeds, 1 env, 1e4 env steps per seed, one gradient step per env
step, minibatch 256, 64x64 MLPs for the actor and for each of the twin critics, a buffer of
1e4 transitions, learning starting after 256 env steps. The reference is rejax on the same
2-core CPU: about 115 s for the run (compile, about 19 s, excluded), about 690 env steps/s
over all seeds, mean final return about -153.

    python benchmarks/sac_throughput.py                 # the issue's setting, 3 timed runs
    python benchmarks/sac_throughput.py --repeats 1 --total-timesteps 2000   # a quick look
    python benchmarks/sac_throughput.py --compare fuse_passes=false   # A/B, runs interleaved

``--compare FIELD=VALUE[,FIELD=VALUE]`` (repeatable) adds variants of the program; all are
compiled first and their timed runs interleave (A B A B ...), so load changes hit them
alike. Prints a table and writes benchmarks/results/sac_throughput.json. Compile time is measured
separately (``lower().compile()``); each timed run executes the compiled program once,
evaluation of the final policies (16 episodes per seed) included. Wall time on a shared
machine varies with what else runs: the JSON records the load average before and after.
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

from purejaxpg.algos import sac
from purejaxpg.algos.presets import resolve
from purejaxpg.analysis import stats
from purejaxpg.engine.experiment import versions

REFERENCE = {"name": "rejax (same machine, issue 4)", "run_seconds": 115.0, "compile_seconds": 19.0,
             "env_steps_per_second": 690.0, "final_return_mean": -153.0}


def _parse_value(text: str):
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if "," in text or text.isdigit():
        return tuple(int(v) for v in text.split(","))
    return text


def _parse_variant(text: str) -> dict:
    out = {}
    for item in text.split(";"):
        if "=" not in item:
            raise SystemExit(f"--compare expects FIELD=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = _parse_value(v.strip())
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--total-timesteps", type=int, default=10_000, help="env steps per seed")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of the compiled program")
    p.add_argument("--rng-impl", default=None, help=f"one of {', '.join(sac.RNG_IMPLS)} (default: Config's)")
    p.add_argument("--compare", action="append", default=[],
                   help="a variant as FIELD=VALUE[;FIELD=VALUE] (config field or hyperparameter); repeatable")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                 "sac_throughput.json"))
    args = p.parse_args(argv)

    overrides = {**resolve("sac", "Pendulum-v1"), "env": "Pendulum-v1", "num_envs": 1, "num_steps": 1,
                 "grad_steps": 1, "total_timesteps": args.total_timesteps, "minibatch_size": 256,
                 "hidden": (64, 64), "buffer_size": 10_000, "learning_starts": 256}
    if args.rng_impl:
        overrides["rng_impl"] = args.rng_impl
    fields = set(sac.Config.__dataclass_fields__)

    def setup(over):
        config = sac.Config(**{k: v for k, v in over.items() if k in fields})
        hparams = {**sac.default_hparams(config), **{k: v for k, v in over.items() if k not in fields}}
        sac.validate_hparams(hparams)
        return config, hparams

    config, hparams = setup(overrides)
    load_before = os.getloadavg()
    keys = jax.random.split(jax.random.PRNGKey(0), args.seeds)
    programs = []  # (name, config, hparams, compiled, compile seconds, runs)
    for name, extra in [("main", {})] + [(v, _parse_variant(v)) for v in args.compare]:
        cfg, hp = setup({**overrides, **extra})
        t0 = time.perf_counter()
        compiled = jax.jit(jax.vmap(sac.make_train(cfg, num_seeds=args.seeds), in_axes=(0, None))).lower(
            keys, hp).compile()
        programs.append((name, cfg, hp, compiled, time.perf_counter() - t0, []))
    outs = {}
    for _ in range(max(1, args.repeats)):
        for name, cfg, hp, compiled, _, runs in programs:
            t0 = time.perf_counter()
            c0 = time.process_time()
            outs[name] = jax.block_until_ready(compiled(keys, hp))
            runs.append({"run_seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0})
    compile_s, runs, out = programs[0][4], programs[0][5], outs["main"]
    final = np.asarray(out["eval_returns"]).mean(-1)  # [seeds]; identical across repeats
    env_steps = args.seeds * config.num_updates * config.batch_size
    best = min(r["run_seconds"] for r in runs)
    median = float(np.median([r["run_seconds"] for r in runs]))
    result = {
        "setting": {"env": config.env, "seeds": args.seeds, "env_steps_per_seed": config.num_updates * config.batch_size,
                    "num_envs": config.num_envs, "grad_steps_per_env_step": config.replay_ratio,
                    "minibatch_size": config.minibatch_size, "hidden": list(config.hidden),
                    "buffer_size": config.buffer_size, "learning_starts": config.learning_starts,
                    "rng_impl": config.rng_impl, "fuse_passes": config.fuse_passes, "hparams": hparams},
        "compile_seconds": compile_s,
        "runs": runs,
        "run_seconds_best": best,
        "run_seconds_median": median,
        "env_steps_per_second_best": env_steps / best,
        "final_return": {"mean": float(final.mean()), "iqm": float(stats.iqm(final)),
                         "per_seed": [float(x) for x in final]},
        "reference": REFERENCE,
        "speedup_vs_reference": REFERENCE["run_seconds"] / median,
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "versions": versions(),
    }
    variants = []
    for name, cfg, hp, _, c_s, v_runs in programs[1:]:
        v_final = np.asarray(outs[name]["eval_returns"]).mean(-1)
        v_median = float(np.median([r["run_seconds"] for r in v_runs]))
        variants.append({"variant": name, "compile_seconds": c_s, "runs": v_runs, "run_seconds_median": v_median,
                         "main_over_variant": median / v_median,
                         "final_return": {"mean": float(v_final.mean()), "iqm": float(stats.iqm(v_final))}})
    if variants:
        result["variants"] = variants
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)

    rows = [("", "purejaxpg", REFERENCE["name"]),
            ("run time (s), median", f"{median:.1f}", f"{REFERENCE['run_seconds']:.0f}"),
            ("run time (s), best", f"{best:.1f}", ""),
            ("compile (s)", f"{compile_s:.1f}", f"{REFERENCE['compile_seconds']:.0f}"),
            ("env steps/s, all seeds", f"{env_steps / median:.0f}", f"{REFERENCE['env_steps_per_second']:.0f}"),
            ("final return, mean", f"{final.mean():.1f}", f"{REFERENCE['final_return_mean']:.0f}"),
            ("final return, IQM", f"{stats.iqm(final):.1f}", ""),
            ("speed-up (median)", f"{REFERENCE['run_seconds'] / median:.2f}x", "1x")]
    for v in variants:
        rows.append((f"variant {v['variant']}: run (s), median", f"{v['run_seconds_median']:.1f}",
                     f"return {v['final_return']['mean']:.1f}"))
    w = max(len(r[0]) for r in rows)
    for r in rows:
        print(f"{r[0]:<{w}}  {r[1]:>12}  {r[2]:>12}")
    print(f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
