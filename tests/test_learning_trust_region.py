"""Small CI learning tests for trpo, npg's step and impala on CartPole-v1: a few seeds in
one compiled program, a short budget, a threshold on the interquartile mean of the final
return (16 sampled evaluation episodes per seed). A uniform random policy scores about 22.
Each fails when the update breaks: a flipped sign of the surrogate or of the advantages,
a broken conjugate gradient (see the commit that adds this file for the mutations tried).
The acceptance-scale runs are scripts/trpo_acceptance.py."""
import numpy as np
import pytest

from purejaxpg.analysis import stats

from reference import train_seeds


@pytest.mark.parametrize("name, fields, threshold", [
    # TRPO's defaults (8 envs x 256 steps, CG 15, max_kl 0.01): 12 updates of 2048 steps;
    # here the IQM was 406 (every seed at 500 by 1e5 steps)
    ("trpo", {"total_timesteps": 25_000, "critic_epochs": 5}, 200.0),
    # IMPALA with K = 4 replayed batches, 16 envs x 32 steps, lr 3e-3: 293 updates; IQM 157 here
    ("impala", {"total_timesteps": 150_000, "lr": 3e-3, "replay_batches": 4}, 100.0),
])
def test_learns_cartpole_on_a_small_budget(name, fields, threshold):
    out = train_seeds(name, {"env": "CartPole-v1", **fields}, 4, 0, preset="none")[3]
    final = np.asarray(out["eval_returns"]).mean(-1)
    first = np.nanmean(np.asarray(out["metrics"]["episode_return"])[:, :2])
    iqm = stats.iqm(final)
    print(f"\n{name}: first-updates training return {first:.1f}; final return IQM {iqm:.1f}, per seed {np.round(final, 1)}")
    assert first < 40.0
    assert iqm >= threshold
    if name == "trpo":
        m = out["metrics"]
        assert float(np.mean(m["accepted"])) > 0.9  # the line search accepts nearly every step ...
        assert float(np.max(m["kl"])) <= 0.01 * (1 + 1e-5)  # ... never past the KL bound
        assert float(np.mean(m["cg_residual"])) < 0.1
