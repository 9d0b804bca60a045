import chex
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxpg.core import advantages as adv

import reference as ref

variants = chex.variants(with_jit=True, without_jit=True)


def _cols(fn, *arrays, **kw):
    """Apply a [T] reference to each column of [T, N] arrays."""
    return np.stack([fn(*(a[:, i] for a in arrays), **kw) for i in range(arrays[0].shape[1])], axis=1)


def _batch(seed, T=40, N=5):
    rng = np.random.default_rng(seed)
    eps = [ref.random_episodes(rng, T) for _ in range(N)]
    return {k: np.stack([e[k] for e in eps], axis=1) for k in eps[0]}


class RewardToGoTest(chex.TestCase):
    @variants
    def test_hand_checked(self):
        # gamma 0.5; episode [1, 1, 1] terminates at t=2; then one step cut by the batch end
        # with V' = 4:  G = [1 + .5(1 + .5), 1 + .5, 1, 2 + .5*4]
        r = jnp.array([1.0, 1.0, 1.0, 2.0])
        d = jnp.array([0.5, 0.5, 0.0, 0.5])
        done = jnp.array([False, False, True, False])
        nv = jnp.array([9.0, 9.0, 9.0, 4.0])
        g = self.variant(adv.reward_to_go)(r, d, done, nv)
        np.testing.assert_allclose(g, [1.75, 1.5, 1.0, 4.0], rtol=1e-6)

    @variants
    def test_truncation_bootstraps(self):
        # truncation at t=1 (discount gamma, done): bootstrap from V(final_obs) = 10
        r = jnp.array([1.0, 1.0, 5.0])
        d = jnp.array([0.9, 0.9, 0.9])
        done = jnp.array([False, True, False])
        nv = jnp.array([0.0, 10.0, 0.0])
        g = self.variant(adv.reward_to_go)(r, d, done, nv)
        np.testing.assert_allclose(g, [1 + 0.9 * (1 + 9.0), 1 + 9.0, 5.0], rtol=1e-6)

    @variants
    def test_random_episodes_match_numpy(self):
        for seed in range(3):
            b = _batch(seed)
            for nv in (None, b["next_values"]):
                g = self.variant(adv.reward_to_go)(b["rewards"], b["discounts"], b["dones"], nv)
                chex.assert_shape(g, b["rewards"].shape)
                want = _cols(ref.reward_to_go, b["rewards"], b["discounts"], b["dones"],
                             *(() if nv is None else (nv,)))
                np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-5)

    def test_shape_mismatch_raises(self):
        with pytest.raises(AssertionError):
            adv.reward_to_go(jnp.zeros((4, 2)), jnp.zeros((4, 3)), jnp.zeros((4, 2), bool))


class EpisodeStartTest(chex.TestCase):
    @variants
    def test_matches_numpy(self):
        b = _batch(7)
        x = b["values"]
        out = self.variant(adv.episode_start_values)(x, b["dones"])
        np.testing.assert_allclose(out, _cols(ref.episode_start_values, x, b["dones"]), rtol=1e-6)

    @variants
    def test_hand_checked(self):
        x = jnp.array([3.0, 2.0, 1.0, 7.0, 6.0])
        done = jnp.array([False, False, True, False, False])
        np.testing.assert_allclose(self.variant(adv.episode_start_values)(x, done), [3, 3, 3, 7, 7])


class GaeTest(chex.TestCase):
    @variants
    def test_random_episodes_match_numpy(self):
        for seed, lam in ((0, 0.95), (1, 0.0), (2, 1.0)):
            b = _batch(seed)
            a = self.variant(adv.gae)(b["rewards"], b["discounts"], b["dones"], b["values"], b["next_values"], lam)
            chex.assert_shape(a, b["rewards"].shape)
            want = _cols(ref.gae, b["rewards"], b["discounts"], b["dones"], b["values"], b["next_values"], lam=lam)
            np.testing.assert_allclose(a, want, rtol=1e-5, atol=1e-5)

    @variants
    def test_lambda_limits(self):
        b = _batch(3)
        # consistent values, as a rollout makes them: V'_t = V_{t+1} inside an episode
        inside = ~b["dones"][:-1]
        b["next_values"][:-1][inside] = b["values"][1:][inside]
        args = (b["rewards"], b["discounts"], b["dones"], b["values"], b["next_values"])
        one_step = self.variant(adv.gae)(*args, 0.0)
        np.testing.assert_allclose(one_step, b["rewards"] + b["discounts"] * b["next_values"] - b["values"],
                                   rtol=1e-5, atol=1e-6)
        mc = self.variant(adv.gae)(*args, 1.0)
        g = adv.reward_to_go(b["rewards"], b["discounts"], b["dones"], b["next_values"])
        np.testing.assert_allclose(mc, g - b["values"], rtol=1e-4, atol=1e-4)

    @variants
    def test_hand_checked(self):
        # T=2, gamma=lambda=0.5, no ends: d0 = 1 + .5*2 - 1 = 1, d1 = 1 + .5*3 - 2 = 0.5
        # A1 = 0.5, A0 = 1 + .25 * .5 = 1.125
        a = self.variant(adv.gae)(jnp.array([1.0, 1.0]), jnp.array([0.5, 0.5]), jnp.array([False, False]),
                                  jnp.array([1.0, 2.0]), jnp.array([2.0, 3.0]), 0.5)
        np.testing.assert_allclose(a, [1.125, 0.5], rtol=1e-6)


class NStepTest(chex.TestCase):
    @variants
    def test_random_episodes_match_numpy(self):
        b = _batch(4)
        for n in (1, 3, 7):
            f = self.variant(adv.nstep_targets, static_argnums=(4,))
            g = f(b["rewards"], b["discounts"], b["dones"], b["next_values"], n)
            want = _cols(ref.nstep_targets, b["rewards"], b["discounts"], b["dones"], b["next_values"], n=n)
            np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-5)

    def test_long_horizon_equals_bootstrapped_reward_to_go(self):
        b = _batch(5)
        args = (b["rewards"], b["discounts"], b["dones"], b["next_values"])
        np.testing.assert_allclose(adv.nstep_targets(*args, 40), adv.reward_to_go(*args), rtol=1e-5, atol=1e-5)

    def test_bad_n(self):
        with pytest.raises(ValueError, match="n must be"):
            adv.nstep_targets(*(jnp.zeros(3),) * 4, 0)


class MaskAndNormalizeTest(chex.TestCase):
    @variants
    def test_complete_episode_mask(self):
        b = _batch(6)
        m = self.variant(adv.complete_episode_mask)(b["dones"])
        np.testing.assert_array_equal(m, _cols(ref.complete_episode_mask, b["dones"]))
        m2 = self.variant(adv.complete_episode_mask)(b["dones"], b["episode_step"])
        np.testing.assert_array_equal(m2, _cols(ref.complete_episode_mask, b["dones"], b["episode_step"]))

    @variants
    def test_normalize(self):
        rng = np.random.default_rng(0)
        x = rng.normal(3.0, 2.0, size=(20, 4)).astype(np.float32)
        mask = (rng.uniform(size=x.shape) < 0.7).astype(np.float32)
        y = np.asarray(self.variant(adv.normalize)(x, mask))
        sel = x[mask > 0]
        np.testing.assert_allclose(y[mask > 0], (sel - sel.mean()) / (sel.std() + 1e-8), rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(y[mask == 0], 0.0)
        z = np.asarray(self.variant(adv.normalize)(x))
        np.testing.assert_allclose(z.mean(), 0.0, atol=1e-5)
        np.testing.assert_allclose(z.std(), 1.0, rtol=1e-4)

    @variants
    def test_discount_weights(self):
        w = self.variant(adv.discount_weights)(0.9, jnp.array([0, 1, 5]))
        np.testing.assert_allclose(w, [1.0, 0.9, 0.9 ** 5], rtol=1e-6)
