"""Aggregate statistics across seeds (NumPy, host side).

Interquartile mean (the mean of the middle 50% of runs, robust to a few outlier seeds),
percentile bootstrap confidence intervals (stratified when scores come from several
tasks: seeds are resampled within each task), and the probability of improvement
P(X > Y) between two sets of runs.
"""
from __future__ import annotations

from typing import Callable

import numpy as np


def iqm(x, axis=None) -> np.ndarray:
    """Interquartile mean as rliable defines it (``scipy.stats.trim_mean(x, 0.25)``): sort,
    drop ``floor(n / 4)`` values from each end, average the rest (all values for n < 4).
    One definition for summary.json, sweep tables, tests and ``compare``."""
    x = np.asarray(x, dtype=np.float64)
    if axis is None:
        x, axis = x.reshape(-1), 0
    x = np.sort(np.moveaxis(x, axis, -1), axis=-1)
    n = x.shape[-1]
    if n == 0:
        raise ValueError("iqm of an empty array")
    cut = n // 4
    return x[..., cut:n - cut].mean(-1)


def bootstrap_ci(x, statistic: Callable = np.mean, num_resamples: int = 2000,
                 confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of ``statistic`` (called as ``statistic(a, axis=-1)``, e.g.
    ``np.mean`` or ``iqm``) over the runs.

    ``x``: [num_runs] scores, or [num_tasks, num_runs] for a stratified bootstrap (runs
    resampled within each task; ``statistic`` then sees the [num_tasks, num_runs] resample
    flattened). NaN scores are an error: a failed run must not vanish from the interval.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    if x.size == 0:
        raise ValueError("bootstrap_ci of an empty array")
    if not np.all(np.isfinite(x)):
        raise ValueError("bootstrap_ci: scores contain NaN or inf")
    rng = np.random.default_rng(seed)
    tasks, runs = x.shape
    idx = rng.integers(0, runs, size=(num_resamples, tasks, runs))
    samples = np.take_along_axis(x[None], idx, axis=2).reshape(num_resamples, -1)
    stats = statistic(samples, axis=-1)
    lo, hi = np.percentile(stats, [50 * (1 - confidence), 50 * (1 + confidence)])
    return float(lo), float(hi)


def probability_of_improvement(x, y) -> float:
    """P(X > Y) + 0.5 P(X = Y) for X drawn from runs ``x`` and Y from runs ``y``
    (the Mann-Whitney U statistic divided by len(x) * len(y))."""
    x = np.asarray(x, dtype=np.float64).reshape(-1, 1)
    y = np.asarray(y, dtype=np.float64).reshape(1, -1)
    if x.size == 0 or y.size == 0:
        raise ValueError("probability_of_improvement needs runs on both sides")
    return float(((x > y) + 0.5 * (x == y)).mean())


def summarize(per_seed) -> dict:
    """{"mean", "iqm", "ci95": [lo, hi] (bootstrap CI of the mean), "per_seed",
    "num_nonfinite"}. Non-finite seeds (a diverged run) are reported as None in
    ``per_seed``, counted, and left out of the aggregates."""
    x = np.asarray(per_seed, dtype=np.float64).reshape(-1)
    finite = x[np.isfinite(x)]
    out = {"mean": None, "iqm": None, "ci95": [None, None],
           "per_seed": [float(v) if np.isfinite(v) else None for v in x],
           "num_nonfinite": int(x.size - finite.size)}
    if finite.size:
        out.update(mean=float(finite.mean()), iqm=float(iqm(finite)), ci95=list(bootstrap_ci(finite)))
    return out


# ---- rliable-compatible aggregates (Agarwal et al., 2021) --------------------------
# Scores are [num_runs, num_tasks] (rliable's layout). A stratified bootstrap resamples
# runs with replacement within each task, independently per task: resample r draws
# ``idx = rng.integers(0, num_runs, size=(reps, num_runs, num_tasks))`` from
# ``numpy.random.default_rng(seed)`` and takes ``scores[idx[r, i, t], t]``. Intervals are
# percentile intervals, as rliable's default.

def _runs_tasks(scores) -> np.ndarray:
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.size == 0:
        raise ValueError(f"scores must be [num_runs] or [num_runs, num_tasks] and non-empty, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("scores contain NaN or inf")
    return x


def aggregate_iqm(scores) -> np.ndarray:
    """rliable's aggregate IQM: ``iqm`` of all [runs x tasks] scores pooled. Leading axes of a
    [..., runs, tasks] array are kept (one value per resample)."""
    x = np.asarray(scores, dtype=np.float64)
    return iqm(x.reshape(x.shape[:-2] + (-1,)) if x.ndim >= 2 else x, axis=-1)


def aggregate_mean(scores) -> np.ndarray:
    """rliable's mean: the mean over runs of each task, averaged over tasks."""
    x = np.asarray(scores, dtype=np.float64)
    return x.mean(-2).mean(-1)


def stratified_resamples(scores, reps: int, rng) -> np.ndarray:
    """[reps, runs, tasks] stratified bootstrap resamples of [runs, tasks] ``scores``."""
    x = np.asarray(scores, dtype=np.float64)
    runs, tasks = x.shape
    idx = rng.integers(0, runs, size=(reps, runs, tasks))
    return np.take_along_axis(np.broadcast_to(x, (reps, runs, tasks)), idx, axis=1)


def stratified_bootstrap_ci(scores, statistic=aggregate_iqm, reps: int = 2000, confidence: float = 0.95,
                            seed: int = 0) -> tuple[float, float]:
    """Percentile CI of ``statistic`` ([..., runs, tasks] -> [...]) over stratified resamples."""
    x = _runs_tasks(scores)
    boot = statistic(stratified_resamples(x, reps, np.random.default_rng(seed)))
    lo, hi = np.percentile(boot, [50 * (1 - confidence), 50 * (1 + confidence)])
    return float(lo), float(hi)


def probability_of_improvement_tasks(x, y) -> np.ndarray:
    """rliable's P(X > Y): per task the Mann-Whitney U of ``x`` against ``y`` over
    (runs_x x runs_y), ties counting 1/2, averaged over tasks. ``x`` [..., n, tasks],
    ``y`` [..., m, tasks]."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    gt = (x[..., :, None, :] > y[..., None, :, :]).mean((-3, -2))
    eq = (x[..., :, None, :] == y[..., None, :, :]).mean((-3, -2))
    return (gt + 0.5 * eq).mean(-1)


def probability_of_improvement_ci(x, y, reps: int = 2000, confidence: float = 0.95,
                                  seed: int = 0) -> tuple[float, float]:
    """Percentile CI of P(X > Y): ``x`` and ``y`` each resampled (stratified), independently,
    ``x`` first, from one generator."""
    x, y = _runs_tasks(x), _runs_tasks(y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"probability of improvement needs the same tasks on both sides, got {x.shape[1]} and "
                         f"{y.shape[1]}")
    rng = np.random.default_rng(seed)
    bx = stratified_resamples(x, reps, rng)
    by = stratified_resamples(y, reps, rng)
    boot = probability_of_improvement_tasks(bx, by)
    lo, hi = np.percentile(boot, [50 * (1 - confidence), 50 * (1 + confidence)])
    return float(lo), float(hi)


def run_score_distribution(scores, taus) -> np.ndarray:
    """The performance profile: for each threshold tau, the fraction of runs scoring above
    it, averaged over tasks. ``scores`` [..., runs, tasks] -> [..., len(taus)]."""
    x = np.asarray(scores, dtype=np.float64)
    taus = np.asarray(taus, dtype=np.float64)
    return (x[..., None] > taus).mean(-3).mean(-2)


def performance_profile(scores, taus, reps: int = 2000, confidence: float = 0.95, seed: int = 0):
    """(profile [len(taus)], lo, hi): the run-score distribution and its stratified bootstrap CI."""
    x = _runs_tasks(scores)
    boot = run_score_distribution(stratified_resamples(x, reps, np.random.default_rng(seed)), taus)
    lo, hi = np.percentile(boot, [50 * (1 - confidence), 50 * (1 + confidence)], axis=0)
    return run_score_distribution(x, taus), lo, hi
