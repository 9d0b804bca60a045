import numpy as np
import pytest

from purejaxpg.analysis import stats


def test_iqm_hand_checked():
    assert stats.iqm([1, 2, 3, 4, 5, 6, 7, 100]) == pytest.approx(4.5)  # mean of 3,4,5,6
    assert stats.iqm(np.arange(16.0)) == pytest.approx(np.arange(4, 12).mean())
    assert stats.iqm([5.0]) == 5.0
    assert stats.iqm([1.0, 2.0, 3.0, 4.0, 10.0]) == pytest.approx(3.0)  # floor(5/4) = 1 cut each end
    assert stats.iqm([1.0, 2.0, 9.0]) == pytest.approx(4.0)  # n < 4: nothing cut


def test_iqm_matches_a_numpy_trim():
    rng = np.random.default_rng(0)
    for n in (3, 4, 5, 7, 8, 20):
        x = rng.normal(size=n)
        s = np.sort(x)
        assert stats.iqm(x) == pytest.approx(s[n // 4: n - n // 4].mean())


def test_bootstrap_ci_covers_the_mean_and_shrinks():
    rng = np.random.default_rng(1)
    small = rng.normal(10, 1, 8)
    big = rng.normal(10, 1, 512)
    lo, hi = stats.bootstrap_ci(small)
    assert lo < small.mean() < hi
    lo2, hi2 = stats.bootstrap_ci(big)
    assert hi2 - lo2 < (hi - lo) / 3
    with pytest.raises(ValueError, match="NaN"):
        stats.bootstrap_ci([1.0, np.nan])


def test_probability_of_improvement():
    assert stats.probability_of_improvement([2, 3], [1, 1]) == 1.0
    assert stats.probability_of_improvement([1, 2], [1, 2]) == 0.5


def test_summarize_reports_nonfinite_seeds():
    s = stats.summarize([1.0, 2.0, np.nan, 3.0])
    assert s["num_nonfinite"] == 1 and s["per_seed"][2] is None and s["mean"] == pytest.approx(2.0)
