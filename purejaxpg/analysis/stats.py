"""Aggregate statistics across seeds (NumPy, host side), with the definitions of the rliable
library (Agarwal et al., 2021).

Point estimates: ``iqm`` (the interquartile mean: the mean of the middle 50% of runs,
robust to a few outlier seeds), ``aggregate_iqm`` / ``aggregate_mean`` over [runs, tasks],
``probability_of_improvement`` P(X > Y) between two sets of runs, and the run-score
distribution behind performance profiles.

Intervals: every confidence interval in purejaxpg comes from ONE routine,
``stratified_bootstrap_interval``: rliable's stratified bootstrap (scores laid out
[num_runs, num_tasks, ...]; runs resampled with replacement within each task,
independently per task) and percentile intervals. Resample ``r`` draws
``idx = rng.integers(0, num_runs, size=(reps, num_runs, num_tasks))`` from
``numpy.random.default_rng(seed)`` and takes ``scores[idx[r, i, t], t, ...]`` (trailing
axes, e.g. the points of a learning curve, travel with their run). Several inputs (the
two sides of P(X > Y)) are resampled independently, in argument order, from the one
generator. The same seed therefore gives the same resamples everywhere. The rest are
thin wrappers:

- ``bootstrap_ci``: [num_runs] scores of one task (summaries, sweep tables);
- ``summarize``: ``ci95`` (CI of the mean) and ``iqm_ci95`` (CI of the IQM);
- ``stratified_bootstrap_ci``, ``probability_of_improvement_ci``, ``performance_profile``
  (``purejaxpg compare``);
- ``purejaxpg.analysis.plotting.mean_and_ci`` (learning-curve bands, NaN-tolerant).
"""
from __future__ import annotations

import warnings
from typing import Callable

import numpy as np

# resamples are materialised (and the statistic evaluated) in blocks of at most about
# this many float64 elements; blocking never changes the draws or the result
_BLOCK_ELEMENTS = 1 << 23


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


def aggregate_iqm(scores) -> np.ndarray:
    """rliable's aggregate IQM: ``iqm`` of all [runs x tasks] scores pooled. Leading axes of a
    [..., runs, tasks] array are kept (one value per resample)."""
    x = np.asarray(scores, dtype=np.float64)
    return iqm(x.reshape(x.shape[:-2] + (-1,)) if x.ndim >= 2 else x, axis=-1)


def aggregate_mean(scores) -> np.ndarray:
    """rliable's mean: the mean over runs of each task, averaged over tasks."""
    x = np.asarray(scores, dtype=np.float64)
    return x.mean(-2).mean(-1)


def probability_of_improvement_tasks(x, y) -> np.ndarray:
    """rliable's P(X > Y): per task the Mann-Whitney U of ``x`` against ``y`` over
    (runs_x x runs_y), ties counting 1/2, averaged over tasks. ``x`` [..., n, tasks],
    ``y`` [..., m, tasks]."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    gt = (x[..., :, None, :] > y[..., None, :, :]).mean((-3, -2))
    eq = (x[..., :, None, :] == y[..., None, :, :]).mean((-3, -2))
    return (gt + 0.5 * eq).mean(-1)


def probability_of_improvement(x, y) -> float:
    """P(X > Y) + 0.5 P(X = Y) for X drawn from runs ``x`` and Y from runs ``y``, all values
    pooled as one task (the Mann-Whitney U statistic divided by len(x) * len(y))."""
    x = np.asarray(x, dtype=np.float64).reshape(-1, 1)
    y = np.asarray(y, dtype=np.float64).reshape(-1, 1)
    if x.size == 0 or y.size == 0:
        raise ValueError("probability_of_improvement needs runs on both sides")
    return float(probability_of_improvement_tasks(x, y))


def run_score_distribution(scores, taus) -> np.ndarray:
    """The performance profile: for each threshold tau, the fraction of runs scoring above
    it (strictly), averaged over tasks. ``scores`` [..., runs, tasks] -> [..., len(taus)]."""
    x = np.asarray(scores, dtype=np.float64)
    taus = np.asarray(taus, dtype=np.float64)
    return (x[..., None] > taus).mean(-3).mean(-2)


# ---- the one resampling routine ---------------------------------------------------

def _scores(scores, allow_nan: bool = False) -> np.ndarray:
    """[num_runs] -> [num_runs, 1]; [num_runs, num_tasks, ...] kept. Non-empty; finite unless
    ``allow_nan``."""
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim < 2 or x.size == 0:
        raise ValueError(f"scores must be [num_runs] or [num_runs, num_tasks, ...] and non-empty, got shape {x.shape}")
    if not allow_nan and not np.all(np.isfinite(x)):
        raise ValueError("scores contain NaN or inf (a failed run must not vanish from an interval)")
    return x


def _gather(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """x [runs, tasks, ...], idx [reps, runs, tasks] -> [reps, runs, tasks, ...] with
    out[r, i, t] = x[idx[r, i, t], t]."""
    return x[idx, np.arange(x.shape[1])]


def stratified_resamples(scores, reps: int, rng) -> np.ndarray:
    """[reps, runs, tasks, ...] stratified bootstrap resamples of [runs, tasks, ...] ``scores``
    (one ``rng.integers`` call; see the module docstring)."""
    x = _scores(scores, allow_nan=True)
    return _gather(x, rng.integers(0, x.shape[0], size=(reps,) + x.shape[:2]))


def stratified_bootstrap_interval(*scores, statistic: Callable, reps: int = 2000, confidence: float = 0.95,
                                  seed: int = 0, ignore_nan: bool = False):
    """Percentile bootstrap interval ``(lo, hi)`` of ``statistic`` over stratified resamples.

    ``scores``: one or more arrays, each [num_runs] (one task) or [num_runs, num_tasks, ...];
    several are resampled independently, in argument order, from one
    ``numpy.random.default_rng(seed)`` (all indices are drawn before any statistic runs).
    ``statistic(*resamples)``: each resample [r, num_runs, num_tasks, ...] (r <= reps: the
    resamples arrive in blocks) -> [r, ...], one value (or array) per resample.
    Returns ``lo, hi``: the ``50 (1 -/+ confidence)`` percentiles over the resamples
    (``numpy.percentile``'s linear interpolation, as rliable), each of shape ``[...]``.

    ``ignore_nan=False``: NaN or inf scores are an error. ``ignore_nan=True``: NaN scores are
    accepted, ``statistic`` must cope with them (e.g. ``np.nanmean``), and resamples whose
    statistic is NaN are left out of the percentiles (an all-NaN column gives NaN).
    """
    if not scores:
        raise ValueError("stratified_bootstrap_interval needs at least one score array")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    xs = [_scores(s, allow_nan=ignore_nan) for s in scores]
    rng = np.random.default_rng(seed)
    idx = [rng.integers(0, x.shape[0], size=(reps,) + x.shape[:2]) for x in xs]
    block = max(1, _BLOCK_ELEMENTS // sum(x.size for x in xs))
    boot = np.concatenate([np.asarray(statistic(*(_gather(x, i[s:s + block]) for x, i in zip(xs, idx))),
                                      dtype=np.float64) for s in range(0, reps, block)], axis=0)
    q = [50 * (1 - confidence), 50 * (1 + confidence)]
    if ignore_nan:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            lo, hi = np.nanpercentile(boot, q, axis=0)
    else:
        lo, hi = np.percentile(boot, q, axis=0)
    return lo, hi


# ---- wrappers ----------------------------------------------------------------------

def bootstrap_ci(x, statistic: Callable = np.mean, num_resamples: int = 2000,
                 confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of ``statistic`` (called as ``statistic(a, axis=-1)`` on
    [r, num_runs] resamples, e.g. ``np.mean`` or ``iqm``) of ``x``: [num_runs] finite scores
    of one task (``stratified_bootstrap_interval`` with one task). NaN scores are an error: a
    failed run must not vanish from the interval. For [num_runs, num_tasks] scores use
    ``stratified_bootstrap_ci``."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"bootstrap_ci takes [num_runs] scores, got shape {x.shape}; for [num_runs, num_tasks] "
                         "use stratified_bootstrap_ci")
    lo, hi = stratified_bootstrap_interval(x, statistic=lambda r: statistic(r[..., 0], axis=-1),
                                           reps=num_resamples, confidence=confidence, seed=seed)
    return float(lo), float(hi)


def summarize(per_seed) -> dict:
    """Summary of one configuration's per-seed scores (``final_return`` in summary.json and
    the sweep tables):

    - ``mean``: the mean over seeds; ``iqm``: their interquartile mean (``iqm``);
    - ``ci95``: [lo, hi], the 95% percentile-bootstrap CI of the MEAN;
    - ``iqm_ci95``: [lo, hi], the 95% percentile-bootstrap CI of the IQM;
    - ``per_seed``: every seed's score, None where non-finite; ``num_nonfinite``: how many.

    Both intervals are ``bootstrap_ci`` with 2000 resamples of the seeds and seed 0, so they
    are computed on the same resamples. Non-finite seeds (a diverged run) are counted and
    left out of the aggregates and intervals; with none finite, all aggregates are None.
    """
    x = np.asarray(per_seed, dtype=np.float64).reshape(-1)
    finite = x[np.isfinite(x)]
    out = {"mean": None, "iqm": None, "ci95": [None, None], "iqm_ci95": [None, None],
           "per_seed": [float(v) if np.isfinite(v) else None for v in x],
           "num_nonfinite": int(x.size - finite.size)}
    if finite.size:
        out.update(mean=float(finite.mean()), iqm=float(iqm(finite)),
                   ci95=list(bootstrap_ci(finite, np.mean)), iqm_ci95=list(bootstrap_ci(finite, iqm)))
    return out


def stratified_bootstrap_ci(scores, statistic: Callable = aggregate_iqm, reps: int = 2000,
                            confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile CI of a scalar ``statistic`` ([..., runs, tasks] -> [...], e.g.
    ``aggregate_iqm``, ``aggregate_mean``) of [runs, tasks] ``scores`` over stratified
    resamples (``stratified_bootstrap_interval``)."""
    lo, hi = stratified_bootstrap_interval(scores, statistic=statistic, reps=reps, confidence=confidence, seed=seed)
    return float(lo), float(hi)


def probability_of_improvement_ci(x, y, reps: int = 2000, confidence: float = 0.95,
                                  seed: int = 0) -> tuple[float, float]:
    """Percentile CI of P(X > Y) (``probability_of_improvement_tasks``) of [runs, tasks]
    ``x`` and ``y``: each resampled (stratified), independently, ``x`` first, from one
    generator."""
    x, y = _scores(x), _scores(y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"probability of improvement needs the same tasks on both sides, got {x.shape[1]} and "
                         f"{y.shape[1]}")
    lo, hi = stratified_bootstrap_interval(x, y, statistic=probability_of_improvement_tasks, reps=reps,
                                           confidence=confidence, seed=seed)
    return float(lo), float(hi)


def performance_profile(scores, taus, reps: int = 2000, confidence: float = 0.95, seed: int = 0):
    """(profile [len(taus)], lo, hi): the run-score distribution of [runs, tasks] ``scores``
    and its stratified bootstrap CI (pointwise in tau, all taus on the same resamples)."""
    x = _scores(scores)
    lo, hi = stratified_bootstrap_interval(x, statistic=lambda r: run_score_distribution(r, taus), reps=reps,
                                           confidence=confidence, seed=seed)
    return run_score_distribution(x, taus), lo, hi
