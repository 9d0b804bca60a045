"""The files a run writes; one function for a configuration's summary, one for a sweep's.

A configuration's directory (the run's ``--out`` itself for ``train``, ``OUT/NAME`` for
each configuration of a sweep) holds

* ``config.json``  — algorithm, full static config, hyperparameters, seeds, swept values
* ``metrics.npz``  — every per-update metric as [num_seeds, num_updates], ``env_steps``
  [num_updates] (per seed, after each update) and ``final_return`` [num_seeds]
* ``summary.json`` — final-return statistics across seeds, timings, versions
* ``learning_curve.png`` — mean training return and its 95% bootstrap CI across seeds

and a sweep's directory adds ``sweep.json`` (every configuration's row), ``table.txt`` and
``sweep.png``. Every file is written under a temporary name and renamed, so a reader never
sees half a file.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import platform
from importlib import metadata

import numpy as np

from purejaxpg.analysis import stats

PACKAGES = ("purejaxpg", "jax", "jaxlib", "flax", "optax", "chex", "distrax", "gymnax", "numpy")


def versions() -> dict:
    """Package versions, the device and the machine."""
    import jax

    out = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    dev = jax.devices()[0]
    out["device"] = f"{dev.platform}:{getattr(dev, 'device_kind', '')} x{jax.device_count()}"
    out["machine"] = f"{platform.machine()} {os.cpu_count()} cpus"
    return out


def _atomic(path: str, write) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)


def write_json(path: str, obj) -> None:
    _atomic(path, lambda f: f.write(json.dumps(obj, indent=2).encode()))


def write_npz(path: str, **arrays) -> None:
    def write(f):
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        f.write(buf.getvalue())

    _atomic(path, write)


def summary(algo: str, config, num_seeds: int, final, timings: dict, swept: dict, resumed: bool) -> dict:
    """summary.json of one configuration: ``final`` [num_seeds] final returns."""
    return {
        "algo": algo, "env": config.env, "num_seeds": int(num_seeds),
        "total_timesteps": int(config.num_updates * config.batch_size),
        "final_return": stats.summarize(final),
        **timings,
        "resumed": bool(resumed),
        "swept": swept,
        "versions": versions(),
    }


def write_run(path: str, plan, config, hparams: dict, metrics: dict, final, summ: dict) -> None:
    """A configuration's four files. ``metrics``: {name: [num_seeds, num_updates]}."""
    from purejaxpg.analysis.plotting import plot_learning_curves
    from purejaxpg.engine.plan import jsonable

    env_steps = (np.arange(config.num_updates) + 1) * config.batch_size
    write_json(os.path.join(path, "config.json"),
               {"algo": plan.algo, "num_seeds": plan.num_seeds, "seed": plan.seed,
                "config": jsonable(dataclasses.asdict(config)), "hparams": hparams, "swept": summ["swept"]})
    write_npz(os.path.join(path, "metrics.npz"), env_steps=env_steps, final_return=final, **metrics)
    write_json(os.path.join(path, "summary.json"), summ)
    iqm = summ["final_return"]["iqm"]
    title = f"{plan.algo} on {config.env}" + (f": final return IQM {iqm:.1f}" if iqm is not None else "")
    plot_learning_curves(os.path.join(path, "learning_curve.png"),
                         {plan.algo: (env_steps, metrics["episode_return"])}, title=title)


def sweep_row(name: str, swept: dict, summ: dict) -> dict:
    fr = summ["final_return"]
    return {"name": name, "swept": swept, "iqm": fr["iqm"], "iqm_ci95": fr["iqm_ci95"], "mean": fr["mean"],
            "mean_ci95": fr["ci95"], "num_nonfinite": fr["num_nonfinite"],
            "env_steps_per_second": summ["env_steps_per_second"]}


def write_sweep(out_dir: str, info: dict, plan) -> None:
    from purejaxpg.analysis.plotting import plot_sweep

    write_json(os.path.join(out_dir, "sweep.json"), info)
    text = format_table(info["table"])
    _atomic(os.path.join(out_dir, "table.txt"), lambda f: f.write((text + "\n").encode()))
    plot_sweep(os.path.join(out_dir, "sweep.png"), info["table"], plan.algo, plan.num_seeds, plan.ranges)


def _num(v, width=9):
    return f"{'n/a':>{width}}" if v is None else f"{v:>{width}.1f}"


def format_table(rows: list) -> str:
    """Configurations sorted by IQM of the final return, with 95% bootstrap CIs of the IQM
    and of the mean."""
    swept = sorted({k for row in rows for k in row["swept"]})
    head = f"{'rank':>4}  " + "  ".join(f"{k:>10}" for k in swept) + \
        f"  {'IQM':>9}  {'IQM 95% CI':>21}  {'mean':>9}  {'mean 95% CI':>21}"
    lines = [head, "-" * len(head)]
    for i, row in enumerate(rows):
        vals = []
        for k in swept:
            v = row["swept"].get(k, "")
            vals.append(f"{v:>10.4g}" if isinstance(v, float) else f"{str(v):>10}")
        ci, mci = row["iqm_ci95"], row["mean_ci95"]
        lines.append(f"{i + 1:>4}  " + "  ".join(vals) + f"  {_num(row['iqm'])}  [{_num(ci[0])}, {_num(ci[1])}]  "
                     f"{_num(row['mean'])}  [{_num(mci[0])}, {_num(mci[1])}]")
    return "\n".join(lines)
