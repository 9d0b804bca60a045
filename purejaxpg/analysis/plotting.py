"""Learning curves with bootstrap confidence bands (matplotlib, imported lazily)."""
from __future__ import annotations

import warnings

import numpy as np


def forward_fill(x: np.ndarray) -> np.ndarray:
    """Carry the last finite value forward along the last axis (NaN before the first)."""
    x = np.asarray(x, dtype=np.float64)
    idx = np.where(np.isfinite(x), np.arange(x.shape[-1]), 0)
    idx = np.maximum.accumulate(idx, axis=-1)
    out = np.take_along_axis(x, idx, axis=-1)
    seen = np.maximum.accumulate(np.isfinite(x), axis=-1)
    return np.where(seen, out, np.nan)


def mean_and_ci(curves: np.ndarray, num_resamples: int = 1000, confidence: float = 0.95, seed: int = 0):
    """Per-point mean across seeds and a percentile-bootstrap CI (seeds resampled).

    ``curves``: [num_seeds, num_points]; NaN entries (no data yet) are ignored.
    Returns (mean, lo, hi), each [num_points].
    """
    curves = np.asarray(curves, dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, curves.shape[0], size=(num_resamples, curves.shape[0]))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns before any episode
        mean = np.nanmean(curves, axis=0)
        boot = np.nanmean(curves[idx], axis=1)  # [R, P]
        lo, hi = np.nanpercentile(boot, [50 * (1 - confidence), 50 * (1 + confidence)], axis=0)
    return mean, lo, hi


def plot_learning_curves(path, curves: dict, xlabel: str = "env steps per seed",
                         ylabel: str = "episode return", title: str = "") -> None:
    """``curves``: {label: (x [P], y [num_seeds, P])}. Draws the mean across seeds and
    its 95% bootstrap CI as a band; writes ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for label, (x, y) in curves.items():
        y = forward_fill(y)
        mean, lo, hi = mean_and_ci(y)
        ax.plot(x, mean, label=f"{label} (n={y.shape[0]})")
        ax.fill_between(x, lo, hi, alpha=0.25)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
