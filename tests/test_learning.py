"""Small CI learning tests: 8 seeds in one compiled program, a short CartPole-v1 budget and
a threshold on the interquartile mean of the final return (16 sampled evaluation episodes
per seed). A uniform random policy scores about 22; the thresholds sit well above that
and well below what the defaults reach at this budget (REINFORCE, 1e5 steps: IQM 225 here,
232 on other seeds; A2C, 2e5 steps: IQM 370 on other seeds, its seeds bimodal at ~170 / 500), so they fail when learning breaks (e.g.
a sign error in the loss or advantages) without being flaky. The full-budget acceptance
runs (16 seeds x 1e6 steps, IQM >= 450) are scripts/foundation_acceptance.py.
"""
import numpy as np
import pytest

from purejaxpg.analysis import stats

from reference import train_seeds


def _final_returns(name, seeds=8, seed=0, **fields):
    out = train_seeds(name, {"env": "CartPole-v1", **fields}, seeds, seed, preset="none")[3]
    final = np.asarray(out["eval_returns"]).mean(-1)
    first = np.nanmean(np.asarray(out["metrics"]["episode_return"])[:, :5])
    return final, first


@pytest.mark.parametrize("name, fields, threshold", [
    # REINFORCE defaults (reward-to-go, learned value baseline, bootstrap at batch ends),
    # with 128 instead of 256 steps per update so that 1e5 steps are 97 updates
    ("reinforce", {"total_timesteps": 100_000, "num_steps": 128}, 150.0),
    # A2C defaults (16 envs x 16 steps, GAE 0.95): 781 updates
    ("a2c", {"total_timesteps": 200_000}, 150.0),
])
def test_learns_cartpole_on_a_small_budget(name, fields, threshold):
    final, first = _final_returns(name, **fields)
    iqm = stats.iqm(final)
    print(f"\n{name}: first-updates training return {first:.1f}; final return IQM {iqm:.1f}, per seed {np.round(final, 1)}")
    assert first < 40.0  # it starts near random ...
    assert iqm >= threshold  # ... and learns
