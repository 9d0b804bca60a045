"""``purejaxpg compare`` against plain-loop NumPy references of rliable's definitions."""
import json
import os

import numpy as np
import pytest
from scipy import stats as sps

from purejaxpg.analysis import stats
from purejaxpg.cli import main


def _fake_run(path, env, final, updates=5):
    os.makedirs(path)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump({"algo": "ppo", "config": {"env": env}}, f)
    rng = np.random.default_rng(len(final))
    np.savez(os.path.join(path, "metrics.npz"), final_return=np.asarray(final, np.float64),
             env_steps=np.arange(1, updates + 1) * 100, episode_return=rng.normal(size=(len(final), updates)))


def ref_iqm(scores):
    """Sort every score, drop floor(n/4) from each end, average (scipy's trim_mean 0.25)."""
    flat = sorted(float(v) for v in np.asarray(scores).ravel())
    cut = int(0.25 * len(flat))
    kept = flat[cut:len(flat) - cut]
    return sum(kept) / len(kept)


def ref_poi(x, y):
    """Average over tasks of (#{x_i > y_j} + 0.5 #{x_i == y_j}) / (n m)."""
    x, y = np.atleast_2d(x.T).T, np.atleast_2d(y.T).T
    total = 0.0
    for t in range(x.shape[1]):
        count = 0.0
        for a in x[:, t]:
            for b in y[:, t]:
                count += 1.0 if a > b else 0.5 if a == b else 0.0
        total += count / (x.shape[0] * y.shape[0])
    return total / x.shape[1]


def ref_resample(scores, rng):
    runs, tasks = scores.shape
    idx = rng.integers(0, runs, size=(runs, tasks))  # one resample: runs within each task
    out = np.empty_like(scores)
    for i in range(runs):
        for t in range(tasks):
            out[i, t] = scores[idx[i, t], t]
    return out


def ref_ci(values, confidence=0.95):
    return tuple(np.percentile(values, [50 * (1 - confidence), 50 * (1 + confidence)]))


def test_aggregates_match_scipy_and_loops():
    rng = np.random.default_rng(0)
    for n in (3, 5, 8, 10):
        x = rng.normal(size=(n, 2))
        assert stats.aggregate_iqm(x) == pytest.approx(sps.trim_mean(x, 0.25, axis=None))
        assert stats.aggregate_iqm(x) == pytest.approx(ref_iqm(x))
        y = rng.normal(size=(n + 1, 2)).round(1)
        u = np.mean([sps.mannwhitneyu(x[:, t].round(1), y[:, t], alternative="greater").statistic
                     / (n * (n + 1)) for t in range(2)])
        assert stats.probability_of_improvement_tasks(x.round(1), y) == pytest.approx(u)
        assert stats.probability_of_improvement_tasks(x.round(1), y) == pytest.approx(ref_poi(x.round(1), y))
    taus = np.linspace(-2, 2, 7)
    prof = stats.run_score_distribution(x, taus)
    assert prof == pytest.approx([np.mean([np.mean(x[:, t] > tau) for t in range(2)]) for tau in taus])


def test_compare_cli_matches_numpy_reference(tmp_path, capsys):
    rng = np.random.default_rng(1)
    a = rng.normal(100, 20, size=8).round()  # rounded: ties exercise the 1/2 rule
    b = rng.normal(90, 20, size=6).round()
    _fake_run(tmp_path / "a", "CartPole-v1", a)
    _fake_run(tmp_path / "b", "CartPole-v1", b)
    reps = 300
    rc = main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--labels", "A,B", "--reps", str(reps),
               "--seed", "7", "--out", str(tmp_path / "cmp")])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "IQM" in printed and "P(X > Y)" in printed and "A vs B" in printed
    assert "not run on the same envs" not in printed
    out = json.load(open(tmp_path / "cmp" / "compare.json"))
    for label, x in (("A", a), ("B", b)):
        agg = out["aggregates"][label]
        s = x[:, None]
        assert agg["iqm"] == pytest.approx(ref_iqm(s)) and agg["mean"] == pytest.approx(x.mean())
        r = np.random.default_rng(7)
        boots = [ref_resample(s, r) for _ in range(reps)]
        assert agg["iqm_ci95"] == pytest.approx(ref_ci([ref_iqm(m) for m in boots]))
        assert agg["mean_ci95"] == pytest.approx(ref_ci([m.mean() for m in boots]))
        assert agg["iqm_ci95"][0] <= agg["iqm"] <= agg["iqm_ci95"][1]
    (ab,) = [p for p in out["probability_of_improvement"] if p["x"] == "A"]
    assert ab["p"] == pytest.approx(ref_poi(a[:, None], b[:, None]))
    r = np.random.default_rng(7)
    bx = [ref_resample(a[:, None], r) for _ in range(reps)]
    by = [ref_resample(b[:, None], r) for _ in range(reps)]
    assert ab["ci95"] == pytest.approx(ref_ci([ref_poi(x, y) for x, y in zip(bx, by)]))
    (ba,) = [p for p in out["probability_of_improvement"] if p["x"] == "B"]
    assert ba["p"] == pytest.approx(1 - ab["p"])
    prof = out["performance_profiles"]["A"]
    taus = np.asarray(out["taus"])
    assert prof["fraction"] == pytest.approx([np.mean(a > t) for t in taus])
    assert all(lo <= f <= hi for lo, f, hi in zip(prof["lo"], prof["fraction"], prof["hi"]))
    assert (tmp_path / "cmp" / "performance_profiles.png").exists()
    assert (tmp_path / "cmp" / "learning_curves.png").exists()


def test_methods_on_different_envs_get_a_note_and_no_pairing(tmp_path, capsys):
    _fake_run(tmp_path / "a", "CartPole-v1", [100.0, 200.0])
    _fake_run(tmp_path / "b", "Pendulum-v1", [-150.0, -160.0])
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--reps", "50", "--out", str(tmp_path / "c")]) == 0
    printed = capsys.readouterr().out
    assert "note: the methods were not run on the same envs (a: CartPole-v1; b: Pendulum-v1)" in printed
    assert "X vs Y" not in printed  # no pair of methods shares its envs


def test_compare_errors(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "missing")]) == 2
    assert "not a run directory" in capsys.readouterr().err
