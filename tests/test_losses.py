import math

import chex
import jax
import jax.numpy as jnp
import numpy as np

from purejaxpg.core import losses

variants = chex.variants(with_jit=True, without_jit=True)


def _data(seed=0, n=64):
    rng = np.random.default_rng(seed)
    lp = rng.normal(-1.0, 0.3, n).astype(np.float32)
    old = (lp + rng.normal(0, 0.3, n)).astype(np.float32)
    adv = rng.normal(size=n).astype(np.float32)
    mask = (rng.uniform(size=n) < 0.8).astype(np.float32)
    return lp, old, adv, mask


class LossesTest(chex.TestCase):
    @variants
    def test_ppo_clip_matches_numpy(self):
        lp, old, adv, mask = _data()
        loss, aux = self.variant(losses.ppo_clip_loss)(lp, old, adv, 0.2, mask)
        ratio = np.exp(lp.astype(np.float64) - old)
        want = 0.0
        for r, a, m in zip(ratio, adv, mask):  # the pessimistic min, one sample at a time
            want += m * min(r * a, np.clip(r, 0.8, 1.2) * a)
        np.testing.assert_allclose(loss, -want / mask.sum(), rtol=1e-5)
        np.testing.assert_allclose(aux["clip_fraction"], (mask * (np.abs(ratio - 1) > 0.2)).sum() / mask.sum(), rtol=1e-5)

    def test_ppo_clip_gradient_vanishes_outside_trust_region(self):
        # A > 0 and ratio above 1 + eps: the clipped term wins, gradient 0; same for A < 0, ratio < 1 - eps
        g = jax.grad(lambda lp: losses.ppo_clip_loss(lp, jnp.zeros(2), jnp.array([1.0, -1.0]), 0.2)[0])(
            jnp.array([0.5, -0.5]))
        np.testing.assert_allclose(g, 0.0)
        g_in = jax.grad(lambda lp: losses.ppo_clip_loss(lp, jnp.zeros(2), jnp.array([1.0, -1.0]), 0.2)[0])(
            jnp.array([0.05, -0.05]))
        assert np.all(np.abs(g_in) > 0)

    @variants
    def test_reinforce_and_value_losses(self):
        lp, _, adv, mask = _data(1)
        np.testing.assert_allclose(self.variant(losses.reinforce_loss)(lp, adv, mask),
                                   -(lp * adv * mask).sum() / mask.sum(), rtol=1e-5)
        v, t = lp, adv
        np.testing.assert_allclose(self.variant(losses.value_loss)(v, t), 0.5 * np.mean((v - t) ** 2), rtol=1e-5)

    def test_reinforce_weights_are_constants(self):
        g = jax.grad(lambda w: losses.reinforce_loss(jnp.ones(3), w))(jnp.ones(3))
        np.testing.assert_allclose(g, 0.0)

    @variants
    def test_kl_penalty(self):
        lp, old, adv, mask = _data(2)
        loss, aux = self.variant(losses.ppo_kl_loss)(lp, old, adv, 0.5, mask)
        lr = lp.astype(np.float64) - old
        kl = ((np.exp(lr) - 1 - lr) * mask).sum() / mask.sum()
        np.testing.assert_allclose(aux["approx_kl"], kl, rtol=1e-4)
        np.testing.assert_allclose(loss, -(np.exp(lr) * adv * mask).sum() / mask.sum() + 0.5 * kl, rtol=1e-4)

    def test_adapt_kl_beta(self):
        np.testing.assert_allclose(losses.adapt_kl_beta(1.0, jnp.array([0.1, 0.01, 0.001]), 0.01), [2.0, 1.0, 0.5])
        # never absorbed at 0: after many halvings beta can still double again
        beta = jnp.float32(1.0)
        for _ in range(300):
            beta = losses.adapt_kl_beta(beta, 0.0, 0.01)
        assert float(beta) > 0 and float(losses.adapt_kl_beta(beta, 1.0, 0.01)) == 2 * float(beta)

    def test_kl_estimate_is_a_kl(self):
        # E_{a~p}[(rho - 1) - log rho] with rho = q/p equals KL(p || q) exactly for discrete p, q
        p = np.array([0.2, 0.5, 0.3])
        q = np.array([0.4, 0.4, 0.2])
        est = (p * np.asarray(losses.kl_estimate(jnp.log(q / p)))).sum()
        np.testing.assert_allclose(est, (p * np.log(p / q)).sum(), rtol=1e-5)


# ---- NumPy references: plain loops over the batch, in float64 ---------------------------

def _np_masked_mean(x, mask):
    total = count = 0.0
    for xi, mi in zip(np.ravel(x), np.ravel(mask)):
        total += float(mi) * float(xi)
        count += float(mi)
    return total / max(count, 1.0)


def _np_var(x, mask):
    return _np_masked_mean([(float(xi) - _np_masked_mean(x, mask)) ** 2 for xi in np.ravel(x)], mask)


class MoreLossesTest(chex.TestCase):
    @variants
    def test_masked_mean(self):
        x = np.array([[1.0, 2.0, 4.0], [8.0, 16.0, 32.0]], np.float32)
        mask = np.array([[1, 0, 1], [0, 1, 0]], np.float32)
        f = self.variant(losses.masked_mean)
        np.testing.assert_allclose(f(x, mask), (1 + 4 + 16) / 3, rtol=1e-6)  # by hand
        np.testing.assert_allclose(f(x), 63 / 6, rtol=1e-6)
        np.testing.assert_allclose(f(x, np.zeros_like(mask)), 0.0)  # nothing selected: 0, not NaN
        lp, _, adv, m = _data(5)
        np.testing.assert_allclose(f(adv, m), _np_masked_mean(adv, m), rtol=1e-5, atol=1e-7)

    @variants
    def test_masked_value_loss_and_ppo_approx_kl(self):
        lp, old, adv, mask = _data(3)
        got = self.variant(losses.value_loss)(lp, adv, mask)
        np.testing.assert_allclose(got, 0.5 * _np_masked_mean([(v - t) ** 2 for v, t in zip(lp, adv)], mask),
                                   rtol=1e-5)
        _, aux = self.variant(losses.ppo_clip_loss)(lp, old, adv, 0.2, mask)
        kl = [math.expm1(a - b) - (a - b) for a, b in zip(lp.astype(np.float64), old.astype(np.float64))]
        np.testing.assert_allclose(aux["approx_kl"], _np_masked_mean(kl, mask), rtol=1e-4)

    @variants
    def test_kl_estimate_matches_numpy(self):
        # log_ratio from -5 to 3; (rho - 1) - log rho computed one sample at a time in float64.
        # rtol 1e-5: float32 expm1(x) - x loses about |x| * 6e-8 to rounding, which is below
        # 1e-5 of the result x^2/2 for |x| >= 0.05 (the smallest nonzero entry here is 0.05)
        x = np.array([-5.0, -1.0, -0.3, -0.05, 0.0, 0.05, 0.3, 1.0, 3.0], np.float32)
        got = np.asarray(self.variant(losses.kl_estimate)(x))
        want = [math.exp(float(xi)) - 1.0 - float(xi) for xi in x]
        np.testing.assert_allclose(got, want, rtol=1e-5)
        assert got[4] == 0.0 and np.all(got >= 0)
        # by hand: x = log 2 (rho = 2): 1 - log 2; x = -log 2 (rho = 1/2): log 2 - 1/2
        got = self.variant(losses.kl_estimate)(jnp.log(jnp.array([2.0, 0.5])))
        np.testing.assert_allclose(got, [1 - math.log(2), math.log(2) - 0.5], rtol=1e-6)
        # [B, ...] shapes pass through elementwise
        x2 = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
        np.testing.assert_allclose(self.variant(losses.kl_estimate)(x2), np.expm1(x2.astype(np.float64)) - x2,
                                   rtol=1e-5, atol=1e-7)

    @variants
    def test_adapt_kl_beta_hand_checked(self):
        # target 0.75: 1.5 * target = 1.125 and target / 1.5 = 0.5, both exact in float32,
        # so the strict inequalities can be checked on the boundary itself
        f = self.variant(losses.adapt_kl_beta)
        kl = jnp.array([2.0, 1.126, 1.125, 0.75, 0.5, 0.499, 0.0])
        np.testing.assert_array_equal(f(3.0, kl, 0.75), [6.0, 6.0, 3.0, 3.0, 3.0, 1.5, 1.5])
        # the clamp to KL_BETA_RANGE = (1e-6, 1e6), from above and from below
        lo, hi = (np.float32(b) for b in losses.KL_BETA_RANGE)
        np.testing.assert_array_equal(f(jnp.array([6e5, 1e6, 4e5]), 2.0, 0.75), [hi, hi, 8e5])
        np.testing.assert_array_equal(f(jnp.array([1.5e-6, 1e-6, 4e-6]), 0.0, 0.75), [lo, lo, np.float32(2e-6)])
        np.testing.assert_array_equal(f(jnp.array([1e-9, 1e9]), 0.75, 0.75), [lo, hi])  # unchanged, yet clamped

    @variants
    def test_adapt_kl_beta_matches_numpy(self):
        rng = np.random.default_rng(4)
        beta = np.exp(rng.uniform(-16, 16, 200)).astype(np.float32)
        kl = rng.uniform(0, 0.05, 200).astype(np.float32)
        got = np.asarray(self.variant(losses.adapt_kl_beta)(beta, kl, 0.01))
        for b, k, g in zip(beta, kl, got):
            # the rule compared in float32, as the implementation does
            new = 2 * b if k > np.float32(1.5 * 0.01) else (b / 2 if k < np.float32(0.01 / 1.5) else b)
            assert g == np.float32(min(max(new, 1e-6), 1e6)), (b, k, g)

    @variants
    def test_explained_variance_with_mask_matches_numpy(self):
        rng = np.random.default_rng(6)
        f = self.variant(losses.explained_variance)
        for seed in range(3):
            t = rng.normal(2.0, 3.0, 50).astype(np.float32)
            v = (t + rng.normal(0, 1.5 * seed + 0.5, 50)).astype(np.float32)  # from a good to a bad fit
            mask = (rng.uniform(size=50) < 0.7).astype(np.float32)
            for m in (mask, np.ones(50, np.float32)):
                want = 1.0 - _np_var(t - v, m) / _np_var(t, m)
                np.testing.assert_allclose(f(v, t, m), want, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(f(v, t), 1.0 - np.var(t - v.astype(np.float64)) / np.var(t.astype(np.float64)),
                                       rtol=1e-5, atol=1e-6)
        # by hand: t = [0, 1, 2, 3], v = [0, 1, 2, 2]: residual [0, 0, 0, 1] has variance
        # 1/4 - 1/16 = 3/16, t has variance 5/4, so EV = 1 - (3/16) / (5/4) = 0.85
        np.testing.assert_allclose(f(jnp.array([0.0, 1, 2, 2]), jnp.array([0.0, 1, 2, 3])), 0.85, rtol=1e-6)

    @variants
    def test_explained_variance_perfect_fit_and_constant_targets(self):
        f = self.variant(losses.explained_variance)
        t = np.linspace(-1.0, 2.0, 37).astype(np.float32)
        np.testing.assert_allclose(f(t, t), 1.0)
        np.testing.assert_allclose(f(jnp.zeros(10), jnp.ones(10)), 0.0)
        # constants that are not binary fractions: their float32 mean is off by an ulp, which
        # leaves a variance of ~1e-18 instead of 0 (then 1 - var(t - v) / 1e-18 was -1e14)
        for c in (0.1, 7.7, -1 / 3):
            for v in (np.zeros(37, np.float32), t):
                assert float(f(v, np.full(37, c, np.float32))) == 0.0, (c, v[:3])
        # the mask selects what counts: a perfect fit and a constant on the masked entries only
        mask = (np.arange(37) % 3 != 0).astype(np.float32)
        noisy = np.where(mask > 0, t, 100.0).astype(np.float32)
        np.testing.assert_allclose(f(noisy, t, mask), 1.0)
        assert float(f(t, np.where(mask > 0, 0.1, t).astype(np.float32), mask)) == 0.0
        assert float(f(t, t + 1, np.zeros(37, np.float32))) == 0.0  # nothing selected

    @variants
    def test_discrete_sac_actor_loss_matches_numpy(self):
        rng = np.random.default_rng(7)
        logits = rng.normal(size=(16, 4))
        logp = (logits - np.log(np.exp(logits).sum(-1, keepdims=True))).astype(np.float32)
        p = np.exp(logp.astype(np.float64)).astype(np.float32)
        q = rng.normal(size=(16, 4)).astype(np.float32)
        got = self.variant(losses.discrete_sac_actor_loss)(p, logp, q, 0.3)
        per_state = [sum(float(p[s, a]) * (0.3 * float(logp[s, a]) - float(q[s, a])) for a in range(4))
                     for s in range(16)]
        np.testing.assert_allclose(got, sum(per_state) / 16, rtol=1e-5)
        # by hand: a uniform policy over 2 actions, alpha 1, Q = [1, 3] in one state:
        # 0.5 (log 0.5 - 1) + 0.5 (log 0.5 - 3) = -log 2 - 2
        half = jnp.full((1, 2), 0.5)
        got = self.variant(losses.discrete_sac_actor_loss)(half, jnp.log(half), jnp.array([[1.0, 3.0]]), 1.0)
        np.testing.assert_allclose(got, -math.log(2) - 2, rtol=1e-6)
