"""The pure pieces of ``purejaxpg.core.rollout`` against NumPy loops, under jit and without:
``episode_metrics``, ``batched_apply`` and the per-step ``Transition.discounts`` / ``done``.
(``collect`` and ``evaluate`` step real environments: see test_envs.py and test_truncation.py.)"""
import math

import chex
import jax.numpy as jnp
import numpy as np

from purejaxpg.core.rollout import Transition, batched_apply, episode_metrics

variants = chex.variants(with_jit=True, without_jit=True)


def _traj(rng, T=12, N=3, p_end=0.15):
    zeros = np.zeros((T, N), np.float32)
    terminated = rng.uniform(size=(T, N)) < p_end
    truncated = ~terminated & (rng.uniform(size=(T, N)) < p_end)
    ended = terminated | truncated
    return Transition(
        obs=np.zeros((T, N, 2), np.float32), action=np.zeros((T, N), np.int32), log_prob=zeros,
        reward=zeros, terminated=terminated, truncated=truncated, next_obs=np.zeros((T, N, 2), np.float32),
        episode_step=np.zeros((T, N), np.int32), value=zeros, next_value=zeros,
        returned_episode=ended,
        # garbage where no episode finished: it must not leak into the means
        episode_return=np.where(ended, rng.normal(50.0, 20.0, (T, N)), 1e6).astype(np.float32),
        episode_length=np.where(ended, rng.integers(1, 200, (T, N)), -7).astype(np.float32))


class EpisodeMetricsTest(chex.TestCase):
    @variants
    def test_matches_numpy(self):
        rng = np.random.default_rng(0)
        f = self.variant(episode_metrics)
        for _ in range(3):
            traj = _traj(rng)
            returns, lengths = [], []
            for t in range(traj.reward.shape[0]):  # every finished episode, once
                for i in range(traj.reward.shape[1]):
                    if traj.returned_episode[t, i]:
                        returns.append(float(traj.episode_return[t, i]))
                        lengths.append(float(traj.episode_length[t, i]))
            assert len(returns) > 0
            m = f(traj)
            np.testing.assert_allclose(m["episode_return"], sum(returns) / len(returns), rtol=1e-5)
            np.testing.assert_allclose(m["episode_length"], sum(lengths) / len(lengths), rtol=1e-5)
            assert float(m["episodes"]) == len(returns)

    @variants
    def test_hand_checked_and_no_episode(self):
        traj = _traj(np.random.default_rng(1), T=4, N=2, p_end=0.0)
        ended = np.zeros((4, 2), bool)
        ended[1, 0] = ended[3, 1] = True  # two episodes: returns 10 and 20, lengths 5 and 7
        traj = traj._replace(returned_episode=ended,
                             episode_return=np.where(ended, [[10.0, 0], [10.0, 0], [0, 0], [0, 20.0]], 3.0),
                             episode_length=np.where(ended, [[0, 0], [5.0, 0], [0, 0], [0, 7.0]], 3.0))
        m = self.variant(episode_metrics)(traj)
        np.testing.assert_allclose([m["episode_return"], m["episode_length"], m["episodes"]], [15.0, 6.0, 2.0])
        none = self.variant(episode_metrics)(traj._replace(returned_episode=np.zeros((4, 2), bool)))
        assert math.isnan(float(none["episode_return"])) and math.isnan(float(none["episode_length"]))
        assert float(none["episodes"]) == 0.0


class TransitionTest(chex.TestCase):
    @variants
    def test_discounts_and_done(self):
        traj = _traj(np.random.default_rng(2))
        got_d, got_done = self.variant(lambda tr: (tr.discounts(0.97), tr.done))(traj)
        T, N = traj.reward.shape
        want_d = [[0.0 if traj.terminated[t, i] else 0.97 for i in range(N)] for t in range(T)]  # truncation: gamma
        want_done = [[bool(traj.terminated[t, i] or traj.truncated[t, i]) for i in range(N)] for t in range(T)]
        np.testing.assert_allclose(got_d, want_d, rtol=1e-7)
        np.testing.assert_array_equal(got_done, want_done)
        assert np.any(traj.truncated) and np.any(traj.terminated)


class BatchedApplyTest(chex.TestCase):
    @variants
    def test_matches_a_loop_over_time_and_envs(self):
        rng = np.random.default_rng(3)
        params = {"w": rng.normal(size=(4, 2)).astype(np.float32), "b": np.float32(0.3)}
        x = rng.normal(size=(6, 5, 4)).astype(np.float32)
        shapes = []

        def fn(p, xb):  # a per-row function of a [B, 4] batch
            shapes.append(xb.shape)
            return jnp.tanh(xb @ p["w"]).sum(-1) * p["b"] + xb[:, 0]

        got = self.variant(batched_apply, static_argnums=0)(fn, params, x)
        assert shapes == [(30, 4)]  # one call on the flattened [T * N] batch
        want = np.zeros((6, 5))
        for t in range(6):
            for n in range(5):
                row = x[t, n].astype(np.float64)
                want[t, n] = np.tanh(row @ params["w"]).sum() * params["b"] + row[0]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        # observations of higher rank ([T, N, H, W]) reach fn as [T * N, H, W]
        img = rng.normal(size=(3, 2, 4, 4)).astype(np.float32)
        got = self.variant(batched_apply, static_argnums=0)(lambda p, xb: xb.sum((1, 2)) * p, np.float32(2.0), img)
        np.testing.assert_allclose(got, [[2 * img[t, n].astype(np.float64).sum() for n in range(2)] for t in range(3)],
                                   rtol=1e-5, atol=1e-5)
