"""Run one algorithm for many seeds as one compiled program and write the results.

``run(algo, overrides, num_seeds, out_dir)`` validates everything first (bad input fails
before anything compiles), compiles ``jit(vmap(train))`` (timed separately), runs it with
a progress bar, and writes to ``out_dir``:

* ``config.json``  — algorithm, full static config, hyperparameters, seeds
* ``metrics.npz``  — every per-update metric as [num_seeds, num_updates], ``env_steps``
  [num_updates] (per seed, after each update) and ``final_return`` [num_seeds]
* ``summary.json`` — final-return statistics across seeds, timings, versions
* ``learning_curve.png`` — mean training return and 95% bootstrap CI across seeds
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from importlib import metadata

import numpy as np

from purejaxpg.algos import get_algo
from purejaxpg.algos.common import check_hparams
from purejaxpg.analysis import stats


def build(algo_name: str, overrides: dict, preset: str = "auto"):
    """Split ``overrides`` into config fields and hyperparameters, validate both.

    The preset (see ``purejaxpg.algos.presets``) for the chosen env is applied first, then
    ``overrides``. Returns (module, config, hparams). Raises ValueError (one line) on
    bad input.
    """
    from purejaxpg.algos.presets import resolve

    algo = get_algo(algo_name)
    fields = {f.name for f in dataclasses.fields(algo.Config)}
    env = overrides.get("env", algo.Config().env)
    overrides = {**resolve(algo_name, env, preset), **overrides}
    cfg_over = {k: v for k, v in overrides.items() if k in fields}
    config = algo.Config(**cfg_over)
    config.validate()
    defaults = algo.default_hparams(config)
    hp_over = {k: v for k, v in overrides.items() if k not in fields}
    unknown = set(hp_over) - set(defaults)
    if unknown:
        raise ValueError(f"unknown setting(s) {sorted(unknown)} for {algo_name}; config fields: "
                         f"{', '.join(sorted(fields))}; hyperparameters: {', '.join(sorted(defaults))}")
    hparams = check_hparams(hp_over, defaults)
    return algo, config, {k: float(v) for k, v in hparams.items()}


def versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("purejaxpg", "jax", "jaxlib", "flax", "optax", "chex", "distrax", "gymnax", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    import jax

    dev = jax.devices()[0]
    out["device"] = f"{dev.platform}:{getattr(dev, 'device_kind', '')} x{jax.device_count()}"
    out["machine"] = f"{platform.machine()} {os.cpu_count()} cpus"
    return out


def run(algo_name: str, overrides: dict | None = None, num_seeds: int = 8, seed: int = 0,
        out_dir: str | None = None, quiet: bool = False, preset: str = "auto") -> dict:
    overrides = dict(overrides or {})
    if int(num_seeds) <= 0:
        raise ValueError(f"num_seeds must be a positive integer, got {num_seeds}")
    algo, config, hparams = build(algo_name, overrides, preset)

    import jax

    from purejaxpg.engine.progress import ProgressBar

    bar = ProgressBar(config.num_updates, num_seeds, config.batch_size, enabled=not quiet)
    train = algo.make_train(config, callback=None if quiet else bar.callback)
    keys = jax.random.split(jax.random.PRNGKey(seed), num_seeds)
    t0 = time.perf_counter()
    compiled = jax.jit(jax.vmap(train, in_axes=(0, None))).lower(keys, hparams).compile()
    compile_s = time.perf_counter() - t0
    bar.start()
    t0 = time.perf_counter()
    out = jax.block_until_ready(compiled(keys, hparams))
    run_s = time.perf_counter() - t0
    bar.close()

    metrics = {k: np.asarray(v) for k, v in out["metrics"].items()}
    final = np.asarray(out["eval_returns"]).mean(-1)  # [num_seeds]
    env_steps = (np.arange(config.num_updates) + 1) * config.batch_size
    summary = {
        "algo": algo_name, "env": config.env, "num_seeds": int(num_seeds),
        "total_timesteps": int(config.num_updates * config.batch_size),
        "final_return": stats.summarize(final),
        "compile_seconds": compile_s, "run_seconds": run_s,
        "env_steps_per_second": num_seeds * config.num_updates * config.batch_size / run_s,
        "versions": versions(),
    }
    if out_dir:
        write_outputs(out_dir, algo_name, config, hparams, num_seeds, seed, metrics, env_steps, final, summary)
    return {"summary": summary, "metrics": metrics, "env_steps": env_steps, "final_return": final,
            "state": out["state"], "config": config, "hparams": hparams}


def write_outputs(out_dir, algo_name, config, hparams, num_seeds, seed, metrics, env_steps, final, summary):
    from purejaxpg.analysis.plotting import plot_learning_curves

    os.makedirs(out_dir, exist_ok=True)
    cfg = {"algo": algo_name, "num_seeds": num_seeds, "seed": seed,
           "config": dataclasses.asdict(config), "hparams": hparams}
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    np.savez_compressed(os.path.join(out_dir, "metrics.npz"), env_steps=env_steps, final_return=final, **metrics)
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    title = f"{algo_name} on {config.env}: final return IQM {summary['final_return']['iqm']:.1f}" \
        if summary["final_return"]["iqm"] is not None else f"{algo_name} on {config.env}"
    plot_learning_curves(os.path.join(out_dir, "learning_curve.png"),
                         {algo_name: (env_steps, metrics["episode_return"])}, title=title)
