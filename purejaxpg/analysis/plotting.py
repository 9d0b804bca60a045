"""Learning curves with bootstrap confidence bands (matplotlib, imported lazily)."""
from __future__ import annotations

import warnings

import numpy as np

from purejaxpg.analysis import stats


def forward_fill(x: np.ndarray) -> np.ndarray:
    """Carry the last finite value forward along the last axis (NaN before the first)."""
    x = np.asarray(x, dtype=np.float64)
    idx = np.where(np.isfinite(x), np.arange(x.shape[-1]), 0)
    idx = np.maximum.accumulate(idx, axis=-1)
    out = np.take_along_axis(x, idx, axis=-1)
    seen = np.maximum.accumulate(np.isfinite(x), axis=-1)
    return np.where(seen, out, np.nan)


def _nanmean_over_runs(resamples: np.ndarray) -> np.ndarray:
    """[r, runs, 1, points] -> [r, points]: the mean over the runs that have data (NaN where none has)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns before any episode
        return np.nanmean(resamples[:, :, 0], axis=1)


def mean_and_ci(curves: np.ndarray, num_resamples: int = 1000, confidence: float = 0.95, seed: int = 0):
    """Per-point mean across seeds and a percentile-bootstrap CI, from the package's one
    resampling routine (``stats.stratified_bootstrap_interval``; whole curves are resampled:
    one task, the points ride along with their seed).

    ``curves``: [num_seeds, num_points]. NaN entries (a seed with no data yet at that point)
    are ignored: the mean at a point is over the seeds that have data there, a resample in
    which none of the drawn seeds has data is left out of that point's percentiles, and a
    point where no seed has data gets NaN mean and bounds. Returns (mean, lo, hi), each
    [num_points].
    """
    curves = np.asarray(curves, dtype=np.float64)
    mean = _nanmean_over_runs(curves[None, :, None])[0]
    lo, hi = stats.stratified_bootstrap_interval(curves[:, None], statistic=_nanmean_over_runs, reps=num_resamples,
                                                 confidence=confidence, seed=seed, ignore_nan=True)
    return mean, lo, hi


def learning_curve_figure(curves: dict, xlabel: str = "env steps per seed", ylabel: str = "episode return",
                          title: str = ""):
    """``curves``: {label: (x [P], y [num_seeds, P])}. The mean across seeds and the 95%
    bootstrap CI of that mean as a band (the y label says so), on a
    ``matplotlib.figure.Figure`` (no pyplot state)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=120)
    ax = fig.add_subplot()
    for label, (x, y) in curves.items():
        y = forward_fill(y)
        mean, lo, hi = mean_and_ci(y)
        ax.plot(x, mean, label=f"{label} (n={y.shape[0]})")
        ax.fill_between(x, lo, hi, alpha=0.25)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{ylabel}: mean across seeds\n(band: 95% bootstrap CI of the mean)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def plot_learning_curves(path, curves: dict, xlabel: str = "env steps per seed",
                         ylabel: str = "episode return", title: str = "") -> None:
    """``learning_curve_figure`` written to ``path`` (PNG)."""
    learning_curve_figure(curves, xlabel, ylabel, title).savefig(path)


def plot_sweep(path: str, rows: list, algo: str, num_seeds: int, ranges: dict | None = None) -> None:
    """One panel per numeric swept setting: each configuration's final-return IQM against its
    value, with the 95% bootstrap CI of the IQM as error bars (log axis for log ranges and
    for values spanning a decade or more)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    names = sorted({k for row in rows for k, v in row["swept"].items() if not isinstance(v, (list, tuple, str, bool))})
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(4.5 * max(1, len(names)), 3.6), dpi=120, squeeze=False)
    for ax, name in zip(axes[0], names):
        pts = [(row["swept"][name], row["iqm"], row["iqm_ci95"]) for row in rows if row["iqm"] is not None]
        if not pts:
            continue
        x = np.asarray([p[0] for p in pts], np.float64)
        y = np.asarray([p[1] for p in pts], np.float64)
        lo = np.asarray([p[1] if p[2][0] is None else p[2][0] for p in pts], np.float64)
        hi = np.asarray([p[1] if p[2][1] is None else p[2][1] for p in pts], np.float64)
        ax.errorbar(x, y, yerr=[y - lo, hi - y], fmt="o", capsize=3, alpha=0.8)
        scale = (ranges or {}).get(name)
        if (scale and scale[2] == "log") or (np.all(x > 0) and x.max() / x.min() >= 10):
            ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.set_ylabel("final return IQM\n(bars: 95% bootstrap CI of the IQM)")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{algo} sweep: {len(rows)} configurations x {num_seeds} seeds")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
