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

    @variants
    def test_hand_checked(self):
        # gamma 0.5, T = 7. Episodes: steps 0-2 terminate at 2 (discount 0); steps 3-4 are
        # truncated at 4 (discount gamma, bootstrap from V'_4 = 50); steps 5-6 reach the end of
        # the batch (bootstrap from V'_6 = 70). G^(n)_t sums r and the discounted V' of the
        # window t..m, m = min(t + n - 1, the step where t's episode ends, T - 1):
        #   n = 1: G_t = r_t + d_t V'_t = [1+5, 2+10, 3+0, 4+20, 5+25, 6+30, 7+35]
        #   n = 2: t0: 1 + .5*2 + .25*20 = 7     t1: 2 + .5*3 + .25*0*30 = 3.5   t2: 3
        #          t3: 4 + .5*5 + .25*50 = 19    t4: 30 (window ends at the truncation)
        #          t5: 6 + .5*7 + .25*70 = 27    t6: 42 (batch end)
        #   n = 3: t0: 1 + .5*2 + .25*3 + .125*0*30 = 2.75 (the termination inside the window
        #          cuts the bootstrap); every other window is already cut (t5: n > 2 steps left)
        #   n = 6: nothing left to add, as n = 3
        r = jnp.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
        d = jnp.array([0.5, 0.5, 0.0, 0.5, 0.5, 0.5, 0.5])
        done = jnp.array([False, False, True, False, True, False, False])
        nv = jnp.array([10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0])
        f = self.variant(adv.nstep_targets, static_argnums=(4,))
        want = {1: [6, 12, 3, 24, 30, 36, 42], 2: [7, 3.5, 3, 19, 30, 27, 42],
                3: [2.75, 3.5, 3, 19, 30, 27, 42], 6: [2.75, 3.5, 3, 19, 30, 27, 42]}
        for n, w in want.items():
            np.testing.assert_allclose(f(r, d, done, nv, n), w, rtol=1e-6, err_msg=f"n={n}")
            np.testing.assert_allclose(ref.nstep_targets(*map(np.asarray, (r, d, done, nv)), n), w, rtol=1e-12)
        # [T, N]: the episodes above as a column beside one with no end at all (d = .5), where
        # n = 3 from t = 5 runs out of batch (2 steps left): 6 + .5*7 + .25*70 = 27 again
        got = f(jnp.stack([r, r], 1), jnp.stack([d, jnp.full(7, 0.5)], 1), jnp.stack([done, jnp.zeros(7, bool)], 1),
                jnp.stack([nv, nv], 1), 3)
        np.testing.assert_allclose(got[:, 0], want[3], rtol=1e-6)
        # column 1 by hand: G^(3)_t = r_t + .5 r_{t+1} + .25 r_{t+2} + .125 V'_{t+2} (cut at T - 1)
        col1 = [1 + 1 + .75 + .125 * 30, 2 + 1.5 + 1 + .125 * 40, 3 + 2 + 1.25 + .125 * 50,
                4 + 2.5 + 1.5 + .125 * 60, 5 + 3 + 1.75 + .125 * 70, 27, 42]
        np.testing.assert_allclose(got[:, 1], col1, rtol=1e-6)

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
    def test_complete_episode_mask_hand_checked(self):
        # T = 7: an episode ends at t=1, another at t=4, the last runs past the batch end.
        done = jnp.array([False, True, False, False, True, False, False])
        f = self.variant(adv.complete_episode_mask)
        # ends inside the batch: steps 0-4 yes, steps 5-6 no
        np.testing.assert_array_equal(f(done), [1, 1, 1, 1, 1, 0, 0])
        # the first episode started 3 steps before the batch (episode_step 3, 4 at t = 0, 1):
        # step t started inside iff episode_step[t] <= t, so steps 0-1 are dropped
        np.testing.assert_array_equal(f(done, jnp.array([3, 4, 0, 1, 2, 0, 1])), [0, 0, 1, 1, 1, 0, 0])
        # ... and it started exactly at t = 0: kept
        np.testing.assert_array_equal(f(done, jnp.array([0, 1, 0, 1, 2, 0, 1])), [1, 1, 1, 1, 1, 0, 0])
        # only the last step ends an episode: everything counts; no end at all: nothing does
        last = jnp.zeros(7, bool).at[-1].set(True)
        np.testing.assert_array_equal(f(jnp.stack([last, jnp.zeros(7, bool)], 1)), np.stack([np.ones(7), np.zeros(7)], 1))
        # a truncation ends an episode as a termination does (dones = terminated | truncated)
        np.testing.assert_array_equal(f(done[:, None] | last[:, None]), np.ones((7, 1)))

    @variants
    def test_discount_weights_match_numpy(self):
        b = _batch(8)
        got = self.variant(adv.discount_weights)(0.97, b["episode_step"])
        want = np.array([[0.97 ** int(k) for k in row] for row in b["episode_step"]])
        np.testing.assert_allclose(got, want, rtol=1e-5)

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
