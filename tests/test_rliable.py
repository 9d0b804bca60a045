"""Cross-check of ``purejaxpg compare``'s statistics (``purejaxpg.analysis.stats``) against rliable itself.

rliable is not a dependency: these tests are skipped unless it is importable. rliable 1.2.0
pins ``arch<8``, and arch 7.2 fails to import under pandas 3 (``deprecate_kwarg`` changed),
so the environment needs ``pip install 'rliable>=1.2,<2' 'pandas<3'``.

Point estimates must equal rliable's to 1e-9. The stratified resampling must be rliable's
draw for draw (rliable's own resample indices replayed through ours). Bootstrap intervals
come from independent random streams on each side, so they are compared with a Monte Carlo
tolerance: with R = 20000 resamples per side, the standard deviation of each endpoint over
seeds was measured at <= 0.65% of the interval width for every statistic here, so the
difference of two independent estimates has sd <= 0.9% of the width; the tolerance of 3% of
the width is > 3 such sds. The same check is applied to a 90% interval and, for the IQM
(skewed bootstrap distribution), to the "basic" bootstrap interval; those miss by >= 7.7%
and ~20% of the width respectively (largest endpoint; measured over 8 rliable seeds, where
the 95% intervals differed by <= 1.5%), so the test fails if ours used another level or method.
"""
import numpy as np
import pytest

pytest.importorskip("rliable")
try:
    from rliable import library as rly
    from rliable import metrics as rlm
except Exception as e:
    pytest.skip(f"rliable is installed but does not import here: {e!r}", allow_module_level=True)

from purejaxpg.analysis import (
    compare,
    stats,
)

REPS = 20000
TOL = 0.03  # of the interval width; see the module docstring


class _Replay:
    """A stand-in for a numpy Generator whose ``integers`` returns recorded index arrays."""

    def __init__(self, draws):
        self.draws = list(draws)

    def integers(self, low, high, size):
        d = self.draws.pop(0)
        assert low == 0 and d.shape == tuple(size) and d.max() < high
        return d


def _score_matrices(rng):
    """(x, y) pairs of [runs, tasks] scores: continuous, heavily tied, identical, one task."""
    out = []
    for runs_x, runs_y, tasks in ((5, 7, 3), (8, 8, 2), (3, 10, 1), (10, 6, 4), (13, 13, 5)):
        out.append((rng.normal(size=(runs_x, tasks)), rng.normal(size=(runs_y, tasks))))
        out.append((rng.integers(0, 4, size=(runs_x, tasks)).astype(float),
                    rng.integers(0, 4, size=(runs_y, tasks)).astype(float)))
    same = rng.integers(0, 3, size=(6, 3)).astype(float)
    out.append((same, same.copy()))  # rliable's np.array_equal branch (P = 0.5 exactly)
    return out


def test_point_estimates_equal_rliable():
    rng = np.random.default_rng(0)
    for x, y in _score_matrices(rng):
        for s in (x, y):
            assert stats.aggregate_iqm(s) == pytest.approx(rlm.aggregate_iqm(s), abs=1e-9)
            assert stats.aggregate_mean(s) == pytest.approx(rlm.aggregate_mean(s), abs=1e-9)
            # thresholds on score values exercise '>' against '>='
            taus = np.concatenate([np.unique(s)[:4], [s.min() - 1, s.max() + 1, np.median(s)]])
            assert stats.run_score_distribution(s, taus) == pytest.approx(
                rly.score_distributions(s, taus), abs=1e-9)
        for a, b in ((x, y), (y, x)):
            assert stats.probability_of_improvement_tasks(a, b) == pytest.approx(
                rlm.probability_of_improvement(a, b), abs=1e-9)


def test_iqm_of_summaries_is_rliables():
    """``stats.iqm`` (summary.json, sweep tables) is rliable's IQM for any number of seeds."""
    rng = np.random.default_rng(1)
    for n in (1, 2, 3, 4, 5, 7, 8, 13, 64):
        x = rng.normal(size=(n, 1))
        assert stats.iqm(x) == pytest.approx(rlm.aggregate_iqm(x), abs=1e-9)
    x = np.array([[1.0], [2.0], [3.0], [4.0], [10.0]])
    assert stats.iqm(x) == pytest.approx(3.0) == rlm.aggregate_iqm(x)  # mean of 2, 3, 4


def test_stratified_resamples_are_rliables_draw_for_draw():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(7, 3)), rng.normal(size=(5, 3))
    np.random.seed(0)  # rliable 1.2 draws its indices from numpy's global generator
    bs = rly.StratifiedBootstrap(x)
    theirs, idx = [], []
    for (data,), _ in bs.bootstrap(50):
        theirs.append(data)
        idx.append(bs.index[0])
    np.testing.assert_array_equal(stats.stratified_resamples(x, 50, _Replay([np.stack(idx)])), np.stack(theirs))
    # probability of improvement: both inputs resampled independently, each within tasks
    bs = rly.StratifiedIndependentBootstrap(x, y)
    tx, ty, ix, iy = [], [], [], []
    for (dx, dy), _ in bs.bootstrap(50):
        (jx, *_), (jy, *_) = bs.index[0]
        tx.append(dx), ty.append(dy), ix.append(jx), iy.append(jy)
    rep = _Replay([np.stack(ix), np.stack(iy)])
    np.testing.assert_array_equal(stats.stratified_resamples(x, 50, rep), np.stack(tx))
    np.testing.assert_array_equal(stats.stratified_resamples(y, 50, rep), np.stack(ty))


def _close(ours, theirs):
    ours, theirs = np.asarray(ours, float), np.asarray(theirs, float)
    return bool(np.all(np.abs(ours - theirs) <= TOL * (theirs[1] - theirs[0])))


def test_compare_intervals_agree_with_rliable():
    rng = np.random.default_rng(0)
    x = rng.lognormal(4.0, 0.8, size=(10, 3))  # skewed, so percentile and basic intervals differ
    y = rng.lognormal(3.8, 0.8, size=(12, 3))
    methods = {"A": {"tasks": ["t0", "t1", "t2"], "scores": x}, "B": {"tasks": ["t0", "t1", "t2"], "scores": y}}
    res = compare.compare(methods, reps=REPS, seed=0)
    np.random.seed(1)
    # rliable's defaults: percentile intervals, 95%
    point, ci = rly.get_interval_estimates(
        {"A": x}, lambda s: np.array([rlm.aggregate_iqm(s), rlm.aggregate_mean(s)]), reps=REPS)
    agg = res["aggregates"]["A"]
    assert [agg["iqm"], agg["mean"]] == pytest.approx(point["A"], abs=1e-9)
    assert _close(agg["iqm_ci95"], ci["A"][:, 0]), (agg["iqm_ci95"], ci["A"][:, 0])
    assert _close(agg["mean_ci95"], ci["A"][:, 1]), (agg["mean_ci95"], ci["A"][:, 1])
    # the check can fail: a 90% interval, or the basic interval of the IQM, is out of tolerance
    iqm90 = stats.stratified_bootstrap_ci(x, stats.aggregate_iqm, REPS, 0.90, seed=0)
    mean90 = stats.stratified_bootstrap_ci(x, stats.aggregate_mean, REPS, 0.90, seed=0)
    basic = [2 * agg["iqm"] - agg["iqm_ci95"][1], 2 * agg["iqm"] - agg["iqm_ci95"][0]]
    assert not _close(iqm90, ci["A"][:, 0]) and not _close(mean90, ci["A"][:, 1])
    assert not _close(basic, ci["A"][:, 0])

    # P(A > B) through rliable's independent stratified bootstrap; the statistic is ours
    # (equal to rliable's, test above; rliable's scipy version costs ~1 ms per resample)
    point, ci = rly.get_interval_estimates(
        {"AB": [x, y]}, lambda a, b: np.array([stats.probability_of_improvement_tasks(a, b)]), reps=REPS)
    (ab,) = [p for p in res["probability_of_improvement"] if p["x"] == "A"]
    assert ab["p"] == pytest.approx(rlm.probability_of_improvement(x, y), abs=1e-9)
    assert _close(ab["ci95"], ci["AB"][:, 0]), (ab["ci95"], ci["AB"][:, 0])
    assert not _close(stats.probability_of_improvement_ci(x, y, REPS, 0.90, seed=0), ci["AB"][:, 0])

    # performance profile (rliable evaluates it one threshold at a time: a few thresholds)
    taus = np.asarray(res["taus"])
    pick = [20, 40, 50, 60, 80]
    prof, pci = rly.create_performance_profile({"A": x}, taus[pick], reps=REPS)
    ours = res["performance_profiles"]["A"]
    assert np.asarray(ours["fraction"]) == pytest.approx(rly.score_distributions(x, taus), abs=1e-9)
    for j, k in enumerate(pick):
        assert _close([ours["lo"][k], ours["hi"][k]], pci["A"][:, j]), (k, ours["lo"][k], ours["hi"][k], pci["A"][:, j])
    _, lo90, hi90 = stats.performance_profile(x, taus[pick], REPS, 0.90, seed=0)
    assert not all(_close([lo90[j], hi90[j]], pci["A"][:, j]) for j in range(len(pick)))
