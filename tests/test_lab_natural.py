"""The natural gradient and off-policy estimators on tabular MDPs (purejaxpg.lab.natural,
purejaxpg.lab.offpolicy, the Fisher of purejaxpg.lab.exact): exact answers in float64 against
NumPy, and the sampled estimates against the exact ones. Small sizes: the lab itself
(``purejaxpg lab``) runs them at scale."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxpg.core import rollout
from purejaxpg.lab import exact as ex
from purejaxpg.lab import natural as nat
from purejaxpg.lab import offpolicy as op
from purejaxpg.lab.estimators import exact_quantities, make_problem

import reference as ref

# pytest-xdist: this module's tests share module-scoped work, so one worker runs them all
pytestmark = pytest.mark.xdist_group("lab_natural")

variants = chex.variants(with_jit=True, without_jit=True)


class ExactFisherTest(chex.TestCase):
    @variants
    def test_matches_numpy_and_the_hessian_of_the_weighted_kl(self):
        with jax.enable_x64(True):
            p = make_problem("random", seed=3)
            m = p.mdp.astype(jnp.float64)
            theta = jnp.asarray(p.theta, jnp.float64)
            F = np.asarray(self.variant(ex.exact_fisher)(m, theta))
            d = np.asarray(ex.visitation(m, ex.softmax_policy(theta)))
            np.testing.assert_allclose(F, ref.tabular_fisher(d, np.asarray(ex.softmax_policy(theta))), atol=1e-12)
            S, A = theta.shape
            H = jax.hessian(lambda x: ex.weighted_kl(m, theta)(x.reshape(S, A)))(theta.reshape(-1))
            np.testing.assert_allclose(F, np.asarray(H), atol=1e-12)


@pytest.mark.parametrize("mdp", ["random", "chain"])
def test_cg_on_exact_fvps_is_the_pseudo_inverse_solve(mdp):
    out = nat.cg_against_pinv(make_problem(mdp))
    assert out["cg_vs_pinv_max_abs_err"] < 1e-6, out  # the bound; measured ~1e-14
    assert out["closed_form_vs_pinv_max_abs_err"] < 1e-10, out
    assert out["natural_grad_norm"] > 0.1


def test_sampled_natural_direction_tends_to_the_exact_one():
    p = make_problem("random")
    with jax.enable_x64(True):
        exact = np.asarray(ex.natural_grad_closed_form(p.mdp.astype(jnp.float64), jnp.asarray(p.theta, jnp.float64)))
    s = nat.sampled_directions(p, exact, (32, 2048), 1, jax.random.PRNGKey(0))
    small, large = s["natural_cosine_mean"]
    print(f"\nsampled natural direction: cosine {small:.3f} at B=32, {large:.4f} at B=2048")
    assert small < large and large > 0.95, s  # the lab: mean 0.965 at B=1024, 0.99 at 4096


def test_natural_ascent_needs_fewer_iterations_at_equal_step_size():
    a = nat.ascent("chain", iters=200, etas=(1.0, 10.0), kls=(0.1,))
    van, natural = a["vanilla"]["iterations"], a["natural"]["iterations"]
    print(f"\nchain: iterations to 99% of J* at eta 1, 10: vanilla {van}, natural {natural}")
    assert van[0] is None and natural[0] is not None and natural[0] < 200
    assert natural[1] < van[1] / 5
    for name in ("vanilla", "natural"):  # KL-matched steps: both get there, and stay
        assert a[name]["iterations_kl"][0] is not None
        assert min(a[name]["curve_kl"][a[name]["iterations_kl"][0]:]) >= 0.99 * a["optimal_J"]


# ---- off-policy ---------------------------------------------------------------------------


class OffPolicyWeightsTest(chex.TestCase):
    @variants
    def test_weights_match_the_loops(self):
        rng = np.random.default_rng(0)
        S, A, T, gamma = 5, 3, 7, 0.9
        theta = rng.normal(size=(S, A)).astype(np.float32)
        states = rng.integers(0, S, size=(T, 1))
        actions = rng.integers(0, A, size=(T, 1)).astype(np.int32)
        beta = np.asarray(op.behaviour_probs(jnp.asarray(theta), 0.3))
        pi = np.asarray(jax.nn.softmax(theta, -1))
        rewards = rng.uniform(size=(T, 1)).astype(np.float32)
        V = rng.normal(size=S).astype(np.float32)
        done = np.zeros((T, 1), bool)
        done[-1] = True
        obs = np.eye(S, dtype=np.float32)[states]
        z = np.zeros((T, 1), np.float32)
        traj = rollout.Transition(obs, actions, np.log(beta[states, actions]), rewards, done, np.zeros_like(done),
                                  obs, np.arange(T)[:, None].astype(np.int32), z, z, done, z, z)
        w, rho, mask = self.variant(op.weights)(traj, jnp.asarray(theta), jnp.asarray(V), gamma)
        r = (pi[states, actions] / beta[states, actions])[:, 0]
        want = ref.off_policy_weights(rewards[:, 0].astype(np.float64), r, V[states[:, 0]], gamma)
        for name, value in want.items():
            np.testing.assert_allclose(np.asarray(w[name])[:, 0], value, rtol=2e-5, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(np.asarray(rho)[:, 0], r, rtol=1e-5)


@pytest.fixture(scope="module")
def off_policy_result():
    p = make_problem("random")
    return op.run_offpolicy(p, exact_quantities(p), batch_size=32, k=150, horizons=(2, 16), episodes=1024)


def test_unbiased_off_policy_estimators_agree_and_the_clipped_one_does_not(off_policy_result):
    e = off_policy_result["estimators"]
    for name in ("is_whole", "is_per_decision", "is_per_decision_value"):
        assert e[name]["max_abs_z"] < 4.0, (name, e[name])
    assert e["clipped_per_decision"]["max_abs_z"] > 6.0, e["clipped_per_decision"]  # its bias, far outside noise
    assert e["is_per_decision"]["variance"] < 0.5 * e["is_whole"]["variance"]


def test_whole_trajectory_weight_variance_grows_geometrically_with_the_horizon(off_policy_result):
    h = off_policy_result["horizon"]
    exact, sampled = np.asarray(h["weight_variance_exact"]), np.asarray(h["weight_variance"])
    np.testing.assert_allclose(sampled[0], exact[0], rtol=0.25)  # a short horizon: the sample is reliable
    assert exact[1] > 5 * exact[0], exact  # H = 2 -> 16
    whole, per_decision = np.asarray(h["is_whole"]), np.asarray(h["is_per_decision"])
    assert whole[-1] > 10 * whole[0] and whole[-1] > 3 * per_decision[-1], (whole, per_decision)
