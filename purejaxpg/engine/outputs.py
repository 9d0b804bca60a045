"""The files a run writes; one function for a configuration's summary, one for a sweep's.

A configuration's directory (the run's ``--out`` itself for ``train``, ``OUT/NAME`` for
each configuration of a sweep) holds

* ``config.json``  — algorithm, full static config, hyperparameters, seeds, swept values
* ``metrics.npz``  — every per-update metric as [num_seeds, num_updates], ``env_steps``
  [num_updates] (per seed, after each update) and ``final_return`` [num_seeds]
* ``summary.json`` — final-return statistics across seeds (``ci95``: the 95% bootstrap CI
  of the mean, ``iqm_ci95``: that of the IQM), diverged runs, timings, versions
* ``learning_curve.png`` — mean training return and the 95% bootstrap CI of that mean

and a sweep's directory adds ``sweep.json`` (every configuration's row), ``table.txt`` and
``sweep.png``; ``run.json`` (the plan) and ``checkpoints/`` sit at the top. Every file is
written under a temporary name and renamed, so a reader never sees half a file.
``previous_run`` lists what an earlier run left in a directory (a new run refuses to mix
with it) and ``remove_previous_run`` deletes exactly those files (``--overwrite``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import platform
import re
import shutil
from importlib import metadata

import numpy as np

from purejaxpg.analysis import stats

PACKAGES = ("purejaxpg", "jax", "jaxlib", "flax", "optax", "chex", "distrax", "gymnax", "numpy")


def versions() -> dict:
    """Package versions, the device and the machine (with its vector instructions)."""
    import jax

    from purejaxpg.engine import host

    out = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    dev = jax.devices()[0]
    out["device"] = f"{dev.platform}:{getattr(dev, 'device_kind', '')} x{jax.device_count()}"
    out["machine"] = f"{platform.machine()} {os.cpu_count()} cpus"
    out["vector"] = host.vector_isa() or None
    return out


@contextlib.contextmanager
def atomic_path(path: str):
    """Yields a temporary name beside ``path`` with the same extension (so that writers
    that pick a format from it still can); renamed to ``path`` when the block ends
    normally, removed otherwise."""
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    stem, ext = os.path.splitext(path)
    tmp = f"{stem}.tmp{os.getpid()}{ext}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _atomic(path: str, write) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)


def write_json(path: str, obj) -> None:
    _atomic(path, lambda f: f.write(json.dumps(obj, indent=2).encode()))


def write_npz(path: str, **arrays) -> None:
    def write(f):
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        f.write(buf.getvalue())

    _atomic(path, write)


def summary(algo: str, config, num_seeds: int, final, timings: dict, swept: dict, resumed: bool,
            name: str = "run", first_nonfinite=None) -> dict:
    """summary.json of one configuration: ``final`` [num_seeds] final returns;
    ``first_nonfinite`` [num_seeds]: each seed's first update after which a loss or its
    parameters or optimiser state were non-finite (-1: never). ``final_return``'s ``ci95``
    is the 95% bootstrap CI of the mean, ``iqm_ci95`` that of the IQM (stats.summarize);
    ``diverged`` lists the diverged runs (kept in every statistic; ``num_diverged`` counts
    them, ``final_return.num_nonfinite`` the non-finite final returns left out)."""
    first = np.full(int(num_seeds), -1) if first_nonfinite is None else np.asarray(first_nonfinite)
    diverged = [{"configuration": name, "seed": int(s), "update": int(u)} for s, u in enumerate(first) if u >= 0]
    return {
        "algo": algo, "env": config.env, "num_seeds": int(num_seeds),
        "total_timesteps": int(config.num_updates * config.batch_size),
        "final_return": stats.summarize(final),
        "num_diverged": len(diverged),
        "diverged": diverged,
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
    with atomic_path(os.path.join(path, "learning_curve.png")) as tmp:
        plot_learning_curves(tmp, {plan.algo: (env_steps, metrics["episode_return"])}, title=title)


def sweep_row(name: str, swept: dict, summ: dict) -> dict:
    fr = summ["final_return"]
    return {"name": name, "swept": swept, "iqm": fr["iqm"], "iqm_ci95": fr["iqm_ci95"], "mean": fr["mean"],
            "mean_ci95": fr["ci95"], "num_nonfinite": fr["num_nonfinite"], "num_diverged": summ["num_diverged"],
            "diverged": summ["diverged"], "env_steps_per_second": summ["env_steps_per_second"]}


def write_sweep(out_dir: str, info: dict, plan) -> None:
    from purejaxpg.analysis.plotting import plot_sweep

    write_json(os.path.join(out_dir, "sweep.json"), info)
    text = format_table(info["table"])
    _atomic(os.path.join(out_dir, "table.txt"), lambda f: f.write((text + "\n").encode()))
    with atomic_path(os.path.join(out_dir, "sweep.png")) as tmp:
        plot_sweep(tmp, info["table"], plan.algo, plan.num_seeds, plan.ranges)


def _num(v, width=9):
    return f"{'n/a':>{width}}" if v is None else f"{v:>{width}.1f}"


def format_table(rows: list, extra: tuple = ()) -> str:
    """Configurations sorted by IQM of the final return, with the 95% bootstrap CI of the
    IQM beside the IQM, that of the mean beside the mean, and the diverged runs.
    ``extra``: more columns of the rows shown after the swept values (halving's
    ``last_rung``)."""
    swept = sorted({k for row in rows for k in row["swept"]})
    head = f"{'rank':>4}  " + "  ".join(f"{k:>10}" for k in swept + list(extra)) + \
        f"  {'IQM':>9}  {'95% CI of the IQM':>21}  {'mean':>9}  {'95% CI of the mean':>21}  {'diverged':>8}"
    lines = [head, "-" * len(head)]
    for i, row in enumerate(rows):
        vals = []
        for k in swept:
            v = row["swept"].get(k, "")
            vals.append(f"{v:>10.4g}" if isinstance(v, float) else f"{str(v):>10}")
        vals += [f"{str(row.get(k, '')):>10}" for k in extra]
        ci, mci = row["iqm_ci95"], row["mean_ci95"]
        lines.append(f"{i + 1:>4}  " + "  ".join(vals) + f"  {_num(row['iqm'])}  [{_num(ci[0])}, {_num(ci[1])}]  "
                     f"{_num(row['mean'])}  [{_num(mci[0])}, {_num(mci[1])}]  {row.get('num_diverged', 0):>8}")
    lines.append("final return across seeds; CIs: 95% percentile bootstrap over seeds; diverged: runs whose loss, "
                 "parameters or optimiser state became non-finite (summary.json lists them)")
    return "\n".join(lines)


# ---- what a run leaves in its directory -------------------------------------------

RUN_FILES = ("run.json", "checkpoints", "config.json", "metrics.npz", "summary.json", "learning_curve.png",
             "sweep.json", "table.txt", "sweep.png")
CONFIG_FILES = ("config.json", "metrics.npz", "summary.json", "learning_curve.png")
_TEMP = re.compile(r"\.tmp\d+")  # atomic_path's temporary names


def _ours(name: str, names) -> bool:
    return name in names or any(_TEMP.sub("", name) == n for n in names)


def previous_run(out_dir: str) -> list:
    """What a run made by purejaxpg left in ``out_dir``, as paths relative to it: run.json,
    checkpoints, the outputs, and the outputs inside a sweep's configuration directories
    (``cNNN_...``); [] when there is none. Other files are not a run's."""
    if not os.path.isdir(out_dir):
        return []
    found = []
    for name in sorted(os.listdir(out_dir)):
        path = os.path.join(out_dir, name)
        if _ours(name, RUN_FILES):
            found.append(name)
        elif os.path.isdir(path) and not os.path.islink(path) and re.fullmatch(r"c\d{3}_.+", name):
            found += [os.path.join(name, n) for n in sorted(os.listdir(path)) if _ours(n, CONFIG_FILES)]
    return found


def remove_previous_run(out_dir: str, paths: list) -> None:
    """Delete what ``previous_run`` found (and nothing else), then the configuration
    directories left empty."""
    for rel in paths:
        path = os.path.join(out_dir, rel)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)
    for d in {os.path.dirname(rel) for rel in paths if os.path.dirname(rel)}:
        with contextlib.suppress(OSError):
            os.rmdir(os.path.join(out_dir, d))  # only when empty
