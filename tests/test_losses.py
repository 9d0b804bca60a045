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

    def test_explained_variance(self):
        t = jnp.arange(10.0)
        np.testing.assert_allclose(losses.explained_variance(t, t), 1.0)
        np.testing.assert_allclose(losses.explained_variance(jnp.zeros(10), jnp.ones(10)), 0.0)
