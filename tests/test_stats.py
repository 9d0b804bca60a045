"""``purejaxpg.analysis.stats`` against plain-Python references that can be checked by eye.

The references use loops and Python's ``sorted``/``sum``, never the implementation's own
slicing or fancy indexing. The bootstrap references replay the same ``numpy`` Generator
calls (one ``rng.integers(0, runs, size=(reps, runs, tasks))`` per input, in argument
order) and take ``np.percentile`` of the per-resample statistics; on integer-valued scores
(every sum exact, so every mean is one correctly rounded division) they must equal the
routine bit for bit.
"""
import math

import numpy as np
import pytest

from purejaxpg.analysis import plotting, stats

# ---- references ---------------------------------------------------------------------


def ref_iqm(values):
    """Sort, drop floor(n / 4) values from each end one at a time, average the rest."""
    s = sorted(float(v) for v in np.asarray(values).ravel())
    for _ in range(len(s) // 4):
        s.pop(0)
        s.pop()
    return sum(s) / len(s)


def ref_mean(values):
    v = [float(a) for a in np.asarray(values).ravel()]
    return sum(v) / len(v)


def ref_aggregate_mean(scores):
    """scores [runs, tasks]: the mean of each task's column, then the mean over tasks."""
    runs, tasks = scores.shape
    task_means = []
    for t in range(tasks):
        total = 0.0
        for i in range(runs):
            total += float(scores[i, t])
        task_means.append(total / runs)
    return sum(task_means) / tasks


def ref_poi(x, y):
    """x [n, tasks], y [m, tasks]: per task (#{x_i > y_j} + 0.5 #{x_i == y_j}) / (n m), averaged."""
    tasks = x.shape[1]
    total = 0.0
    for t in range(tasks):
        count = 0.0
        for a in x[:, t]:
            for b in y[:, t]:
                if a > b:
                    count += 1.0
                elif a == b:
                    count += 0.5
        total += count / (x.shape[0] * y.shape[0])
    return total / tasks


def ref_profile(scores, taus):
    """scores [runs, tasks]: for each tau, the fraction of runs strictly above it, averaged over tasks."""
    runs, tasks = scores.shape
    out = []
    for tau in taus:
        fractions = []
        for t in range(tasks):
            above = 0
            for i in range(runs):
                if scores[i, t] > tau:
                    above += 1
            fractions.append(above / runs)
        out.append(sum(fractions) / tasks)
    return out


def ref_resamples(score_arrays, reps, seed):
    """Stratified resamples by loops: for each input [runs, tasks] one
    rng.integers(0, runs, size=(reps, runs, tasks)) call, then out[r][i, t] = x[idx[r, i, t], t]."""
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, x.shape[0], size=(reps,) + x.shape) for x in score_arrays]
    out = []
    for r in range(reps):
        resampled = []
        for x, idx in zip(score_arrays, draws):
            runs, tasks = x.shape
            m = np.empty_like(x)
            for i in range(runs):
                for t in range(tasks):
                    m[i, t] = x[idx[r, i, t], t]
            resampled.append(m)
        out.append(resampled)
    return out


def ref_interval(score_arrays, statistic_of_one, reps=200, confidence=0.95, seed=0):
    values = [statistic_of_one(*rs) for rs in ref_resamples(score_arrays, reps, seed)]
    lo, hi = np.percentile(values, [50 * (1 - confidence), 50 * (1 + confidence)])
    return float(lo), float(hi)


# ---- IQM --------------------------------------------------------------------------------


def test_iqm_hand_checked():
    assert stats.iqm([1, 2, 3, 4]) == 2.5  # drop 1 and 4
    assert stats.iqm([4, 3, 2, 1]) == 2.5  # order does not matter
    assert stats.iqm([-1000, 1, 2, 3, 4, 5, 6, 1000]) == 3.5  # 8 values, 2 outliers: mean of 2, 3, 4, 5
    assert stats.iqm([1, 2, 3, 4, 5, 6, 7, 100]) == 4.5  # mean of 3, 4, 5, 6
    assert stats.iqm([1.0, 2.0, 3.0, 4.0, 10.0]) == 3.0  # n = 5: floor(5/4) = 1 cut from each end
    assert stats.iqm(np.arange(16.0)) == 7.5  # mean of 4..11
    # n < 4: nothing cut, the plain mean
    assert stats.iqm([5.0]) == 5.0
    assert stats.iqm([1.0, 3.0]) == 2.0
    assert stats.iqm([1.0, 2.0, 9.0]) == 4.0
    with pytest.raises(ValueError, match="empty"):
        stats.iqm([])


def test_iqm_matches_the_loop_reference():
    rng = np.random.default_rng(0)
    for n in range(1, 21):
        x = rng.normal(size=n)
        assert stats.iqm(x) == pytest.approx(ref_iqm(x), rel=1e-12, abs=1e-12), n
    x = rng.normal(size=(9, 4))
    assert stats.iqm(x, axis=0) == pytest.approx([ref_iqm(x[:, j]) for j in range(4)], rel=1e-12)
    assert stats.iqm(x, axis=1) == pytest.approx([ref_iqm(x[i]) for i in range(9)], rel=1e-12)
    assert stats.iqm(x) == pytest.approx(ref_iqm(x), rel=1e-12)  # axis=None: all values pooled


def test_aggregates_match_the_loop_references():
    rng = np.random.default_rng(1)
    for runs, tasks in ((1, 1), (3, 2), (5, 3), (10, 4)):
        x = rng.normal(size=(runs, tasks))
        assert stats.aggregate_iqm(x) == pytest.approx(ref_iqm(x), rel=1e-12)  # pooled over runs x tasks
        assert stats.aggregate_mean(x) == pytest.approx(ref_aggregate_mean(x), rel=1e-12)
    # leading (resample) axes are kept
    x = rng.normal(size=(6, 5, 3))
    assert stats.aggregate_iqm(x) == pytest.approx([ref_iqm(m) for m in x], rel=1e-12)
    assert stats.aggregate_mean(x) == pytest.approx([ref_aggregate_mean(m) for m in x], rel=1e-12)


# ---- probability of improvement -------------------------------------------------------


def test_probability_of_improvement_hand_checked():
    assert stats.probability_of_improvement([2, 3], [1, 1]) == 1.0
    assert stats.probability_of_improvement([1, 1], [2, 3]) == 0.0
    assert stats.probability_of_improvement([1, 1], [1, 1, 1]) == 0.5  # all ties
    # 2 vs (1, 2, 3): 1 + 0.5 + 0; 4 vs (1, 2, 3): 3  ->  4.5 / 6
    assert stats.probability_of_improvement([2, 4], [1, 2, 3]) == 0.75
    # 1 vs (2, 2): 0; 2 vs (2, 2): 0.5 + 0.5; 3 vs (2, 2): 2  ->  3 / 6
    assert stats.probability_of_improvement([1, 2, 3], [2, 2]) == 0.5
    # per task, then averaged: task 0 (1, 2) vs (2, 2): 0.5 + 0.5 = 1 of 4; task 1 (5, 5) vs (4, 6): 2 of 4
    x = np.array([[1.0, 5.0], [2.0, 5.0]])
    y = np.array([[2.0, 4.0], [2.0, 6.0]])
    assert stats.probability_of_improvement_tasks(x, y) == (0.25 + 0.5) / 2
    assert stats.probability_of_improvement_tasks(y, x) == 1 - (0.25 + 0.5) / 2
    with pytest.raises(ValueError, match="both sides"):
        stats.probability_of_improvement([], [1.0])


def test_probability_of_improvement_matches_the_loop_reference():
    rng = np.random.default_rng(2)
    for n, m, tasks in ((1, 1, 1), (4, 6, 1), (7, 3, 3), (10, 10, 2)):
        x = rng.integers(0, 4, size=(n, tasks)).astype(float)  # many ties
        y = rng.integers(0, 4, size=(m, tasks)).astype(float)
        p = stats.probability_of_improvement_tasks(x, y)
        assert p == pytest.approx(ref_poi(x, y), rel=1e-12)
        assert p + stats.probability_of_improvement_tasks(y, x) == pytest.approx(1.0, rel=1e-12)
        assert stats.probability_of_improvement(x, y) == pytest.approx(ref_poi(x.reshape(-1, 1), y.reshape(-1, 1)))


# ---- performance profile ----------------------------------------------------------------


def test_performance_profile_hand_checked():
    scores = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 10.0], [4.0, 10.0]])  # [runs=4, tasks=2]
    taus = [0.0, 2.0, 5.0, 10.0]
    # tau 0: task 0 4/4, task 1 2/4; tau 2: 2/4 and 2/4; tau 5: 0 and 2/4; tau 10: strictly above, none
    expected = [0.75, 0.5, 0.25, 0.0]
    assert stats.run_score_distribution(scores, taus).tolist() == expected
    assert ref_profile(scores, taus) == expected
    prof, lo, hi = stats.performance_profile(scores, taus, reps=200)
    assert prof.tolist() == expected
    # task 1 resamples only from {0, 10}: at tau = 5 its fraction is k/4 for k = 0..4, so the band is wide
    assert lo[2] < 0.25 < hi[2] and hi[3] == 0.0
    constant = np.array([[1.0, 3.0]] * 5)  # every resample is the data itself: a zero-width band
    prof, lo, hi = stats.performance_profile(constant, taus, reps=50)
    assert prof.tolist() == lo.tolist() == hi.tolist() == [1.0, 0.5, 0.0, 0.0]


def test_performance_profile_matches_the_loop_reference():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 6, size=(7, 3)).astype(float)
    taus = [-1.0, 0.0, 2.0, 2.5, 5.0]
    assert stats.run_score_distribution(x, taus).tolist() == pytest.approx(ref_profile(x, taus), rel=1e-12)
    prof, lo, hi = stats.performance_profile(x, taus, reps=200, seed=4)
    resamples = ref_resamples([x], 200, 4)
    for k, tau in enumerate(taus):
        values = [ref_profile(rs[0], [tau])[0] for rs in resamples]
        assert [lo[k], hi[k]] == pytest.approx(np.percentile(values, [2.5, 97.5]), rel=1e-12, abs=1e-12)


# ---- the bootstrap ------------------------------------------------------------------------


def test_resamples_are_the_loop_references():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(6, 3))
    y = rng.normal(size=(4, 3))
    got = stats.stratified_resamples(x, 30, np.random.default_rng(5))
    ref = ref_resamples([x], 30, 5)
    assert np.array_equal(got, np.stack([rs[0] for rs in ref]))
    # the routine hands the statistic exactly these resamples, the inputs drawn in argument order
    seen = []

    def record(a, b):
        seen.append((a.copy(), b.copy()))
        return a[:, 0, 0]

    stats.stratified_bootstrap_interval(x, y, statistic=record, reps=30, seed=5)
    ref = ref_resamples([x, y], 30, 5)
    assert np.array_equal(np.concatenate([a for a, _ in seen]), np.stack([rs[0] for rs in ref]))
    assert np.array_equal(np.concatenate([b for _, b in seen]), np.stack([rs[1] for rs in ref]))


def test_bootstrap_ci_equals_the_loop_reference_exactly():
    rng = np.random.default_rng(6)
    for n in (1, 2, 5, 9, 16):
        x = rng.integers(0, 500, size=n).astype(float)  # integer returns, as CartPole's: sums are exact
        for seed in (0, 11):
            assert stats.bootstrap_ci(x, np.mean, 300, seed=seed) == ref_interval(
                [x[:, None]], ref_mean, 300, seed=seed), (n, seed)
            assert stats.bootstrap_ci(x, stats.iqm, 300, seed=seed) == ref_interval(
                [x[:, None]], ref_iqm, 300, seed=seed), (n, seed)
        assert stats.bootstrap_ci(x, np.mean, 300, 0.8) == ref_interval([x[:, None]], ref_mean, 300, 0.8)
    # real-valued scores: equal up to the order of floating-point sums
    x = rng.normal(size=11)
    assert stats.bootstrap_ci(x, np.mean, 300) == pytest.approx(ref_interval([x[:, None]], ref_mean, 300), rel=1e-12)


def test_stratified_intervals_equal_the_loop_references():
    rng = np.random.default_rng(7)
    x = rng.integers(0, 50, size=(7, 3)).astype(float)
    y = rng.integers(0, 50, size=(5, 3)).astype(float)
    assert stats.stratified_bootstrap_ci(x, stats.aggregate_iqm, 300, seed=3) == ref_interval([x], ref_iqm, 300, seed=3)
    assert stats.stratified_bootstrap_ci(x, stats.aggregate_mean, 300, seed=3) == ref_interval(
        [x], ref_aggregate_mean, 300, seed=3)
    assert stats.probability_of_improvement_ci(x, y, 300, seed=3) == pytest.approx(
        ref_interval([x, y], ref_poi, 300, seed=3), rel=1e-12)


def test_blocking_does_not_change_the_interval(monkeypatch):
    rng = np.random.default_rng(8)
    x = rng.normal(size=(9, 2))
    y = rng.normal(size=(6, 2))
    whole = stats.probability_of_improvement_ci(x, y, 500, seed=1)
    prof = stats.performance_profile(x, [-1.0, 0.0, 1.0], 500, seed=1)
    monkeypatch.setattr(stats, "_BLOCK_ELEMENTS", 50)  # blocks of a couple of resamples
    assert stats.probability_of_improvement_ci(x, y, 500, seed=1) == whole
    assert all(np.array_equal(a, b) for a, b in zip(stats.performance_profile(x, [-1.0, 0.0, 1.0], 500, seed=1), prof))


def test_bootstrap_ci_rejects_nan_and_task_layouts():
    with pytest.raises(ValueError, match="NaN"):
        stats.bootstrap_ci([1.0, np.nan])
    with pytest.raises(ValueError, match=r"\[num_runs\]"):
        stats.bootstrap_ci(np.ones((3, 2)))
    with pytest.raises(ValueError, match="non-empty"):
        stats.bootstrap_ci([])
    with pytest.raises(ValueError, match="NaN"):
        stats.stratified_bootstrap_ci(np.array([[1.0, np.inf]]))


def _coverage(n, replications, confidence, seed=0):
    rng = np.random.default_rng(seed)
    hits = 0
    for k in range(replications):
        x = rng.normal(3.0, 2.0, size=n)
        lo, hi = stats.bootstrap_ci(x, np.mean, 1000, confidence, seed=k)
        hits += lo <= 3.0 <= hi
    return hits / replications


def test_coverage_of_the_mean_interval_is_nominal():
    """On N(3, 2^2) samples of n = 100 the percentile interval of the mean should cover 3 in
    about 95% of replications: slightly fewer, as the percentile bootstrap's interval is about
    mean +- z sd_n / sqrt(n) with the 1/n standard deviation and a normal quantile, whose
    coverage is P(|t_99| < z sqrt(99/100)) = 0.946 (0.895 for 90%). With M = 2000 replications
    the binomial standard error of the observed coverage is sqrt(p (1 - p) / M) (0.0049 at
    95%, 0.0067 at 90%); we allow 4 of them around that expectation. (Measured over 10000
    replications: 0.943 and 0.894; this seed gives 0.9375 and 0.881.) The 90% level is checked
    the same way: its coverage is ~10 standard errors from 0.95, so the check can tell levels apart."""
    from scipy import stats as sps

    m, n = 2000, 100
    for confidence in (0.95, 0.90):
        z = sps.norm.ppf(0.5 + confidence / 2)
        expected = 1 - 2 * sps.t.sf(z * math.sqrt((n - 1) / n), n - 1)
        assert abs(expected - confidence) < 0.006
        se = math.sqrt(expected * (1 - expected) / m)
        cov = _coverage(n, m, confidence)
        assert abs(cov - expected) <= 4 * se, (confidence, cov, expected, se)


# ---- summaries and learning curves ----------------------------------------------------------


def test_summarize():
    x = [10.0, 12.0, 11.0, 13.0, 400.0, np.nan, 9.0, 12.0, 10.0, 11.0, 12.0, 9.0, 13.0, 10.0, 11.0, 12.0, 11.0]
    s = stats.summarize(x)
    finite = np.array([v for v in x if np.isfinite(v)])
    assert s["num_nonfinite"] == 1 and s["per_seed"][5] is None and s["per_seed"][4] == 400.0
    assert s["mean"] == ref_mean(finite) and s["iqm"] == ref_iqm(finite)
    # ci95 is the CI of the mean, iqm_ci95 the CI of the IQM, both on the same resamples (seed 0)
    assert s["ci95"] == list(ref_interval([finite[:, None]], ref_mean, 2000))
    assert s["iqm_ci95"] == list(ref_interval([finite[:, None]], ref_iqm, 2000))
    # with 16 finite seeds a resample holds the outlier more than 4 times with probability < 1%:
    # it drags the mean's interval up, not the IQM's
    assert s["iqm_ci95"][1] < 20 < s["ci95"][1]
    empty = stats.summarize([np.nan, np.inf])
    assert empty["mean"] is None and empty["ci95"] == [None, None] and empty["iqm_ci95"] == [None, None]
    assert empty["num_nonfinite"] == 2


def test_curve_bands_ignore_missing_points():
    """plotting.mean_and_ci: seeds without data at a point (NaN) are left out of that point's
    mean and of each resample's mean; resamples with no data there are left out of the
    percentiles; a point where no seed has data is NaN."""
    rng = np.random.default_rng(9)
    seeds, points, reps = 5, 6, 300
    curves = rng.integers(0, 100, size=(seeds, points)).astype(float)
    curves[:, 0] = np.nan  # no seed has data yet
    curves[:4, 1] = np.nan  # only seed 4 has data
    curves[0, :4] = np.nan  # seed 0 starts late
    mean, lo, hi = plotting.mean_and_ci(curves, num_resamples=reps, seed=2)
    assert np.isnan(mean[0]) and np.isnan(lo[0]) and np.isnan(hi[0])
    assert mean[1] == lo[1] == hi[1] == curves[4, 1]
    # whole curves resampled (one task, the points ride along): one draw of size (reps, seeds, 1)
    idx = np.random.default_rng(2).integers(0, seeds, size=(reps, seeds, 1))
    for p in range(1, points):
        assert mean[p] == ref_mean([v for v in curves[:, p] if not np.isnan(v)])
        values = []
        for r in range(reps):
            present = []
            for i in range(seeds):
                v = curves[idx[r, i, 0], p]
                if not np.isnan(v):
                    present.append(v)
            if present:
                values.append(ref_mean(present))
        assert [lo[p], hi[p]] == list(np.percentile(values, [2.5, 97.5])), p
