"""Natural-gradient pieces (purejaxpg.core.natural) and V-trace against plain NumPy, with
and without jit: Fisher-vector products against a Fisher built from explicit Jacobians on
a small network, CG against np.linalg.solve and a textbook loop, the KL-scaled step, the
line search, and V-trace against its defining sum (and GAE / n-step returns on-policy)."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from purejaxpg.core import advantages as adv
from purejaxpg.core import natural
from purejaxpg.core.networks import Actor

import reference as ref

variants = chex.variants(with_jit=True, without_jit=True)


def _spd(n, seed, cond=50.0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    return (q * np.geomspace(1.0, cond, n)) @ q.T


def _actor(discrete, seed=0, B=12):
    actor = Actor(3 if discrete else 2, discrete, (5,))
    obs = jax.random.normal(jax.random.PRNGKey(seed), (B, 4))
    params = actor.init(jax.random.PRNGKey(seed + 1), obs[:1])
    if not discrete:  # a log-std away from 0, so that 1/std^2 matters
        params = jax.tree_util.tree_map_with_path(
            lambda p, x: x - 0.3 if "log_std" in jax.tree_util.keystr(p) else x, params)
    x0, unravel = ravel_pytree(params)
    return actor, obs, x0, unravel


def _mean_kl(actor, obs, x0, unravel):
    old = jax.tree.map(jax.lax.stop_gradient, actor.apply(unravel(x0), obs))
    return lambda x: old.kl_divergence(actor.apply(unravel(x), obs)).mean()


class FisherVectorProductTest(chex.TestCase):
    @variants
    def test_categorical_matches_explicit_fisher(self):
        actor, obs, x0, unravel = _actor(True)
        logits = lambda x: actor.apply(unravel(x), obs).logits
        jac = np.asarray(jax.jacobian(logits)(x0), np.float64)  # [B, A, P]
        probs = np.asarray(jax.nn.softmax(logits(x0)), np.float64)
        F = ref.fisher_categorical(jac, probs)
        v = np.random.default_rng(0).normal(size=x0.shape).astype(np.float32)
        fvp = self.variant(lambda x, v: natural.fisher_vector_product(_mean_kl(actor, obs, x0, unravel), x, 0.1)(v))
        np.testing.assert_allclose(fvp(x0, v), F @ v + 0.1 * v, rtol=2e-4, atol=2e-6)

    @variants
    def test_gaussian_matches_explicit_fisher(self):
        actor, obs, x0, unravel = _actor(False)

        def mean_and_log_std(x):
            d = actor.apply(unravel(x), obs)
            return jnp.concatenate([d.loc, jnp.log(d.scale_diag)], axis=-1)

        jac = np.asarray(jax.jacobian(mean_and_log_std)(x0), np.float64)  # [B, 2A, P]
        std = np.asarray(actor.apply(unravel(x0), obs).scale_diag[0], np.float64)
        F = ref.fisher_gaussian(jac, std)
        v = np.random.default_rng(1).normal(size=x0.shape).astype(np.float32)
        fvp = self.variant(lambda x, v: natural.fisher_vector_product(_mean_kl(actor, obs, x0, unravel), x)(v))
        np.testing.assert_allclose(fvp(x0, v), F @ v, rtol=2e-4, atol=2e-6)


class ConjugateGradientTest(chex.TestCase):
    @variants
    def test_solves_like_numpy(self):
        A = _spd(8, 0).astype(np.float32)
        b = np.random.default_rng(2).normal(size=8).astype(np.float32)
        cg = self.variant(lambda A, b: natural.conjugate_gradient(lambda v: A @ v, b, 20))(A, b)
        want = np.linalg.solve(A.astype(np.float64), b.astype(np.float64))
        np.testing.assert_allclose(cg.x, want, rtol=1e-4, atol=1e-5)
        self.assertLess(float(cg.residual), 1e-4)

    @variants
    def test_fixed_iterations_match_the_textbook_loop(self):
        A = _spd(12, 3, cond=1e3)
        b = np.random.default_rng(4).normal(size=12)
        for iters in (1, 3, 7):
            x, res = ref.conjugate_gradient(A, b, iters)
            cg = self.variant(lambda A, b: natural.conjugate_gradient(lambda v: A @ v, b, iters))(
                A.astype(np.float32), b.astype(np.float32))
            np.testing.assert_allclose(cg.x, x, rtol=2e-3, atol=1e-5)
            np.testing.assert_allclose(cg.residual, res, rtol=2e-3)

    @variants
    def test_zero_right_hand_side_and_converged_iterations_stay_finite(self):
        A = _spd(4, 5).astype(np.float32)
        cg = self.variant(lambda b: natural.conjugate_gradient(lambda v: A @ v, b, 10))(jnp.zeros(4))
        np.testing.assert_array_equal(cg.x, np.zeros(4))
        self.assertEqual(float(cg.residual), 0.0)
        # a diagonal system is solved in as many iterations as distinct eigenvalues; later
        # iterations meet an exactly zero residual and must not divide by it
        D = jnp.diag(jnp.array([2.0, 2.0, 4.0, 4.0]))
        cg = self.variant(lambda b: natural.conjugate_gradient(lambda v: D @ v, b, 10))(jnp.array([2.0, 4.0, 4.0, 8.0]))
        np.testing.assert_allclose(cg.x, [1.0, 2.0, 1.0, 2.0], rtol=1e-6)
        self.assertTrue(np.all(np.isfinite(cg.x)))


class NaturalStepTest(chex.TestCase):
    @variants
    def test_step_is_the_scaled_solution(self):
        A = _spd(6, 6)
        g = np.random.default_rng(7).normal(size=6)
        x = np.linalg.solve(A, g)
        want = np.sqrt(2 * 0.02 / (x @ A @ x)) * x
        ns = self.variant(lambda A, g: natural.natural_step(g, lambda v: A @ v, 0.02, 6))(
            A.astype(np.float32), g.astype(np.float32))
        np.testing.assert_allclose(ns.step, want, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(0.5 * ns.step @ A @ ns.step, 0.02, rtol=1e-4)  # the quadratic KL is max_kl
        np.testing.assert_allclose(ns.expected_gain, g @ want, rtol=1e-4)


class LineSearchTest(chex.TestCase):
    def _problem(self):
        c = np.array([1.0, -2.0, 0.5])
        objective = lambda x: -((x - c) ** 2).sum()
        kl = lambda x: 0.5 * (x ** 2).sum()
        return c, objective, kl

    @variants
    def test_matches_the_numpy_loop(self):
        c, objective, kl = self._problem()
        x0 = np.zeros(3)
        # steps that overshoot by different amounts, KL bounds that bind or not, and a
        # step in a wrong direction that no fraction accepts
        for step, max_kl in ((4.0 * c, 10.0), (4.0 * c, 1.0), (1.5 * c, 10.0), (0.5 * c, 10.0), (-c, 10.0)):
            want_x, want_frac, want_tries = ref.line_search(objective, kl, x0, step, max_kl, 0.8, 10)
            ls = self.variant(lambda x0, s, m: natural.backtracking_line_search(
                lambda x: (objective(x), kl(x)), x0, s, m, 0.8, 10))(
                    x0.astype(np.float32), step.astype(np.float32), np.float32(max_kl))
            np.testing.assert_allclose(ls.x, want_x, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(ls.fraction, want_frac, rtol=1e-5)
            self.assertEqual(int(ls.tries), want_tries)
            self.assertEqual(bool(ls.accepted), want_frac > 0)
            if want_frac > 0:
                np.testing.assert_allclose(ls.gain, objective(want_x) - objective(x0), rtol=1e-4)
                np.testing.assert_allclose(ls.kl, kl(want_x), rtol=1e-5)


def _episodes(seed, T=30, N=4):
    rng = np.random.default_rng(seed)
    eps = [ref.random_episodes(rng, T) for _ in range(N)]
    b = {k: np.stack([e[k] for e in eps], axis=1) for k in eps[0]}
    b["log_rhos"] = rng.normal(scale=0.7, size=(T, N)).astype(np.float32)
    return b


class VTraceTest(chex.TestCase):
    @variants
    def test_matches_the_defining_sum(self):
        b = _episodes(0)
        fn = self.variant(adv.vtrace)
        for rho_bar, c_bar, lam in ((1.0, 1.0, 1.0), (2.0, 0.5, 0.9), (100.0, 100.0, 1.0)):
            vs, a = fn(b["rewards"], b["discounts"], b["dones"], b["values"], b["next_values"], b["log_rhos"],
                       rho_bar, c_bar, lam)
            for i in range(b["rewards"].shape[1]):
                want_vs, want_a = ref.vtrace(*(b[k][:, i].astype(np.float64) for k in (
                    "rewards", "discounts", "dones", "values", "next_values", "log_rhos")), rho_bar, c_bar, lam)
                np.testing.assert_allclose(vs[:, i], want_vs, rtol=1e-4, atol=1e-4)
                np.testing.assert_allclose(a[:, i], want_a, rtol=1e-4, atol=1e-4)

    @variants
    def test_on_policy_it_is_gae_and_the_n_step_return(self):
        b = _episodes(1)
        # on-policy data as a rollout makes it: V(next obs) = V(obs of the next step) inside an episode
        cont = ~b["dones"][:-1]
        b["next_values"][:-1][cont] = b["values"][1:][cont]
        zero = np.zeros_like(b["log_rhos"])
        args = [b[k] for k in ("rewards", "discounts", "dones", "values", "next_values")]
        fn = self.variant(adv.vtrace)
        for lam in (0.0, 0.7, 1.0):
            vs, a = fn(*args, zero, 1.0, 1.0, lam)
            g = adv.gae(*args, lam)
            np.testing.assert_allclose(vs, g + b["values"], rtol=1e-5, atol=1e-5)
        vs, a = fn(*args, zero, 1.0, 1.0, 1.0)
        T = b["rewards"].shape[0]
        n_step = adv.nstep_targets(b["rewards"], b["discounts"], b["dones"], b["next_values"], T)
        np.testing.assert_allclose(vs, n_step, rtol=1e-5, atol=1e-4)
        # the advantage is the one-step TD error towards the next target
        one_step = adv.nstep_targets(b["rewards"], b["discounts"], b["dones"],
                                     np.where(np.r_[cont, np.zeros((1, cont.shape[1]), bool)],
                                              np.r_[vs[1:], vs[-1:]], b["next_values"]), 1)
        np.testing.assert_allclose(a, one_step - b["values"], rtol=1e-5, atol=1e-4)


def test_the_loop_adam_steps_only_its_groups():
    """With groups=("critic",), onpolicy.apply_gradients differentiates and steps the critic
    alone (Adam's state holds only the critic) and leaves the actor as it was."""
    import optax

    from purejaxpg.core.optim import clipped_adam
    from purejaxpg.engine import onpolicy

    params = {"actor": {"w": jnp.ones(3)}, "critic": {"w": jnp.arange(3.0)}}
    tx = clipped_adam(lambda count: 0.1, 0.5, 1e-5)
    ctx = onpolicy.Context(None, None, None, None, tx, ("critic",))
    state = onpolicy.TrainState(params, tx.init({"critic": params["critic"]}), None, ())

    def loss_fn(p):
        return (p["actor"]["w"] * p["critic"]["w"] ** 2).sum(), {}

    new, loss, _ = onpolicy.apply_gradients(ctx, state, loss_fn)
    np.testing.assert_array_equal(new.params["actor"]["w"], params["actor"]["w"])
    grads = {"critic": {"w": 2.0 * params["critic"]["w"]}}
    updates, _ = tx.update(grads, tx.init({"critic": params["critic"]}))
    np.testing.assert_allclose(new.params["critic"]["w"], optax.apply_updates(params["critic"]["w"], updates["critic"]["w"]))
    assert set(new.opt_state.mu) == {"critic"}


def test_trpo_and_npg_settings():
    from purejaxpg.algos import get_algo

    config, hp = get_algo("trpo").resolve({"max_kl": "0.02", "damping": 0.01, "lr": 3e-4})
    assert config.line_search and {"max_kl", "damping", "lr", "gae_lambda", "backtrack_shrink"} <= set(hp)
    assert hp["max_kl"] == 0.02
    npg_config, _ = get_algo("npg").resolve({})
    assert not npg_config.line_search
    with np.testing.assert_raises_regex(ValueError, "applies only with --line-search true"):
        get_algo("npg").resolve({"backtrack_shrink": 0.5})
    with np.testing.assert_raises_regex(ValueError, "critic_minibatches"):
        get_algo("trpo").resolve({"critic_minibatches": 7})
