"""The pure pieces of ``purejaxpg.core.rollout`` against NumPy loops, under jit and without:
``episode_metrics``, ``batched_apply`` and the per-step ``Transition.discounts`` / ``done``;
and ``reset`` / ``collect`` / ``evaluate`` (with ``policy_step``) on a deterministic corridor,
simulated step by step in NumPy from the actions the program took."""
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np

from purejaxpg.core import rollout
from purejaxpg.core.rollout import Transition, batched_apply, episode_metrics
from purejaxpg.envs import VecEnv

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


# ---- collect and evaluate --------------------------------------------------------------
# Tabular-Chain of 3 states without slip: deterministic given the actions. State s, action
# 0 (left) / 1 (right): s - 1 or s + 1; leaving on the left ends the episode with 0.1, on
# the right with 1 (terminal state 3); every episode starts in state 0; a time limit of 4
# steps truncates. The policy is uniform (log-prob log 1/2); V(obs) = obs . W.
L, N_ENVS, T_STEPS, LIMIT = 3, 5, 12, 4
W = np.array([0.5, -1.0, 2.0, 7.0], np.float32)


def _chain_env():
    return VecEnv("Tabular-Chain", N_ENVS, length=L, slip=0.0, max_steps_in_episode=LIMIT)


def _uniform_policy(params, obs, key):
    a = jax.random.bernoulli(key, 0.5, obs.shape[:1]).astype(jnp.int32)
    return a, jnp.full(obs.shape[:1], math.log(0.5))


def _value(params, obs):
    return obs @ params


def _np_chain_step(s, a):
    """(next state, reward, terminated) of the corridor."""
    nxt = s + (1 if a == 1 else -1)
    if nxt < 0:
        return L, 0.1, True
    if nxt >= L:
        return L, 1.0, True
    return nxt, 0.0, False


def _np_rms(seen):
    """RunningMeanStd's statistics of every observation seen: its prior is a pseudo-sample
    of weight 1e-4 with mean 0 and variance 1, pooled with the observations."""
    x = np.asarray(seen, np.float64)
    total = 1e-4 + len(x)
    mean = x.sum(0) / total
    var = (1e-4 + (x ** 2).sum(0)) / total - mean ** 2
    return lambda o: np.clip((o - mean) / np.sqrt(var + 1e-8), -10, 10)


class CollectTest(chex.TestCase):
    @variants
    def test_collect_matches_a_numpy_simulation(self):
        venv = _chain_env()
        carry = rollout.reset(venv, jax.random.PRNGKey(0), normalize_obs=True)
        f = self.variant(lambda c, k: rollout.collect(venv, _uniform_policy, jnp.asarray(W), c, k, T_STEPS, _value))
        carry, traj = f(carry, jax.random.PRNGKey(1))
        actions = np.asarray(traj.action)
        onehot = np.eye(L + 1)
        s, t, ret = np.zeros(N_ENVS, int), np.zeros(N_ENVS, int), np.zeros(N_ENVS)
        seen = [onehot[0]] * N_ENVS  # the reset observations
        for k in range(T_STEPS):
            norm = _np_rms(seen)
            obs = onehot[s]
            rows = {"obs": norm(obs), "reward": [], "terminated": [], "truncated": [], "next_obs": [],
                    "episode_step": t.copy(), "returned_episode": [], "episode_return": [], "episode_length": []}
            finals = []
            for i in range(N_ENVS):
                nxt, r, term = _np_chain_step(s[i], actions[k, i])
                trunc = t[i] + 1 >= LIMIT
                ret[i] += r
                for key, v in (("reward", r), ("terminated", term), ("truncated", trunc),
                               ("returned_episode", term or trunc), ("episode_return", ret[i]),
                               ("episode_length", t[i] + 1)):
                    rows[key].append(v)
                finals.append(onehot[nxt])
                if term or trunc:  # automatic reset
                    s[i], t[i], ret[i] = 0, 0, 0.0
                else:
                    s[i], t[i] = nxt, t[i] + 1
            seen += [onehot[v] for v in s]  # the observations after the step (reset ones included)
            rows["next_obs"] = _np_rms(seen)(np.array(finals))  # normalised with the updated statistics
            for key, want in rows.items():
                np.testing.assert_allclose(np.asarray(getattr(traj, key)[k], np.float64), np.asarray(want, np.float64),
                                           rtol=1e-5, atol=1e-5, err_msg=f"{key} at step {k}")
            np.testing.assert_allclose(traj.value[k], rows["obs"] @ W, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(traj.next_value[k], rows["next_obs"] @ W, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(traj.log_prob, math.log(0.5), rtol=1e-6)
        np.testing.assert_array_equal(np.asarray(carry.obs).argmax(-1), s)  # where the next batch starts
        assert traj.terminated.any() and traj.truncated.any() and (actions == 0).any() and (actions == 1).any()

    @variants
    def test_evaluate_returns_each_envs_first_episode(self):
        """evaluate against a plain Python loop over the same steps (the same keys, split as
        policy_step does): the return of each environment's first episode, later episodes
        ignored, the loop ending once every environment has finished one."""
        venv = _chain_env()
        got = self.variant(lambda k: rollout.evaluate(venv, _uniform_policy, None, None, k))(jax.random.PRNGKey(3))
        key = jax.random.split(jax.random.PRNGKey(3))[1]  # the first half resets (every env starts in 0)
        s, t, ret = np.zeros(N_ENVS, int), np.zeros(N_ENVS, int), np.zeros(N_ENVS)
        first = np.full(N_ENVS, np.nan)
        while np.isnan(first).any():
            key, k_act, _ = jax.random.split(key, 3)
            a = np.asarray(_uniform_policy(None, jnp.zeros((N_ENVS, L + 1)), k_act)[0])  # obs unused by this policy
            for i in np.nonzero(np.isnan(first))[0]:
                s[i], r, term = _np_chain_step(s[i], a[i])
                ret[i] += r
                t[i] += 1
                if term or t[i] >= LIMIT:  # left the corridor, or the time limit
                    first[i] = ret[i]
        np.testing.assert_allclose(got, first, rtol=1e-6)
        assert len(set(first.tolist())) > 1  # the environments' episodes differ
