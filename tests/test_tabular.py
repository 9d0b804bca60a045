"""Exact answers on tabular MDPs: dynamic programming, the policy-gradient theorem, the
MDPs as environments, the estimator lab against the exact gradient, and REINFORCE reaching
the optimum that policy iteration finds.

float64 is switched on only inside ``jax.enable_x64(True)`` blocks; everything else (the
environments, the engine's losses, training) runs in float32 as in the rest of the suite.
"""
import functools
import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxpg import lab
from purejaxpg.envs import VecEnv, make_env
from purejaxpg.envs import tabular as tb
from purejaxpg.lab import exact as ex

import reference as ref

variants = chex.variants(with_jit=True, without_jit=True)


N_MDPS, S, A = 64, 6, 3  # one shape for every property test: each program compiles once


@functools.lru_cache(maxsize=None)
def _random_mdps(terminal: bool):
    """N_MDPS random float64 MDPs (use inside ``jax.enable_x64(True)``), stacked along a
    leading axis, gamma ~ U(0.5, 0.95) each. With ``terminal=False`` the same MDPs with no
    terminal state (the last state is then an absorbing state paying 0.5 a step), so that
    the purely discounted case is covered too."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        keys = jax.random.split(jax.random.PRNGKey(0), N_MDPS)
        gammas = jnp.asarray(rng.uniform(0.5, 0.95, N_MDPS))
        mdps = jax.jit(jax.vmap(lambda k, g: tb.random_mdp(k, S, A, g, 0.2)))(keys, gammas)
        if terminal:
            return mdps
        return mdps.replace(terminal=jnp.zeros_like(mdps.terminal), R=mdps.R.at[:, -1, :].set(0.5))


def _random_policies(seed, scale=2.0):
    """[N_MDPS, S, A] logits (NumPy-drawn: no random-number program to compile)."""
    return jnp.asarray(scale * np.random.default_rng(seed).normal(size=(N_MDPS, S, A)))


_evaluate = jax.jit(jax.vmap(ex.evaluate))
_greedy = jax.jit(jax.vmap(ex.greedy))
_policy_iteration = jax.jit(jax.vmap(ex.policy_iteration))
_value_iteration = jax.jit(jax.vmap(lambda m: ex.value_iteration(m, tol=1e-11, max_iters=3000)))


# ---------------------------------------------------------------------------------------
# Dynamic programming
# ---------------------------------------------------------------------------------------


def _one_float32(terminal, i):
    """MDP i of ``_random_mdps(terminal)`` in float32."""
    return jax.tree.map(lambda x: x[i], _random_mdps(terminal)).astype(jnp.float32)


class PolicyEvaluationTest(chex.TestCase):
    @variants
    def test_exact_and_iterative_match_numpy(self):
        for terminal in (True, False):
            mdp = _one_float32(terminal, 1)
            pi = jax.nn.softmax(_random_policies(1)[0].astype(jnp.float32))
            want = ref.policy_evaluation(np.asarray(mdp.P, np.float64), np.asarray(mdp.R, np.float64),
                                         np.asarray(mdp.terminal), float(mdp.gamma), np.asarray(pi, np.float64),
                                         sweeps=500)
            V = self.variant(ex.evaluate)(mdp, pi)
            chex.assert_shape(V, (S,))
            np.testing.assert_allclose(V, want, rtol=1e-5, atol=1e-5)
            sol = self.variant(lambda m, p: ex.evaluate_iterative(m, p, tol=1e-6, max_iters=500))(mdp, pi)
            np.testing.assert_allclose(sol.V, want, rtol=1e-4, atol=1e-4)
            it = int(sol.iterations)
            assert bool(sol.converged) and 0 < it < 500
            assert float(sol.residual) < 1e-6 and float(sol.residuals[it - 1]) == float(sol.residual)
            assert np.all(np.isfinite(sol.residuals[:it])) and np.all(np.isnan(sol.residuals[it:]))
            assert (float(V[-1]) == 0.0) == terminal  # a terminal state has no value

    def test_iterative_reports_non_convergence(self):
        mdp = _one_float32(False, 2)
        sol = ex.evaluate_iterative(mdp, jnp.full((S, A), 1.0 / A), tol=1e-6, max_iters=5)
        assert int(sol.iterations) == 5 and not bool(sol.converged)


def test_policy_iteration_and_value_iteration_reach_the_same_optimum():
    with jax.enable_x64(True):
        for terminal in (False, True):
            mdps = _random_mdps(terminal)
            pi_sol, vi_sol = _policy_iteration(mdps), _value_iteration(mdps)
            assert pi_sol.V.dtype == jnp.float64
            assert bool(jnp.all(pi_sol.converged)) and bool(jnp.all(vi_sol.converged))
            assert 1 <= int(pi_sol.iterations.max()) < 100 and int(vi_sol.iterations.max()) < 3000
            np.testing.assert_allclose(pi_sol.V, vi_sol.V, atol=1e-7)
            # V* satisfies the Bellman optimality equation and beats random policies everywhere
            q = jax.vmap(ex.q_values)(mdps, pi_sol.V)
            np.testing.assert_allclose(q.max(-1), pi_sol.V, atol=1e-10)
            rand_pi = jax.nn.softmax(_random_policies(7))
            assert bool(jnp.all(_evaluate(mdps, rand_pi) <= pi_sol.V + 1e-10))
        # FrozenLake 4x4 (slippery) at gamma 0.99: the optimal value of the start state is
        # about 0.54, a figure quoted widely for this map.
        m = tb.frozen_lake(gamma=0.99).astype(jnp.float64)
        v = jax.jit(lambda m: ex.value_iteration(m, tol=1e-12, max_iters=5000))(m)
        assert bool(v.converged) and 0.53 < float(m.d0 @ v.V) < 0.55, float(m.d0 @ v.V)


def test_policy_improvement_never_lowers_a_value():
    with jax.enable_x64(True):
        for terminal in (False, True):
            mdps = _random_mdps(terminal)
            pi = jax.nn.softmax(_random_policies(3))
            V = _evaluate(mdps, pi)
            gained = []
            for _ in range(6):
                pi = _greedy(mdps, V)
                V_new = _evaluate(mdps, pi)
                assert bool(jnp.all(V_new >= V - 1e-10)), float(jnp.min(V_new - V))
                gained.append(float(jnp.max(V_new - V)))
                V = V_new
            assert gained[0] > 1e-2  # not vacuous: the first step does improve


# ---------------------------------------------------------------------------------------
# The policy-gradient theorem
# ---------------------------------------------------------------------------------------


def test_policy_gradient_theorem_equals_autodiff():
    exact_grad = jax.jit(jax.vmap(ex.exact_grad))
    theorem_grad = jax.jit(jax.vmap(ex.theorem_grad))
    with jax.enable_x64(True):
        for terminal in (False, True):
            mdps, thetas = _random_mdps(terminal), _random_policies(5)
            auto, theorem = exact_grad(mdps, thetas), theorem_grad(mdps, thetas)
            assert auto.dtype == jnp.float64 and auto.shape == (N_MDPS, S, A)
            assert float(jnp.min(jnp.linalg.norm(auto.reshape(N_MDPS, -1), axis=-1))) > 1e-3
            np.testing.assert_allclose(theorem, auto, atol=1e-6, rtol=0)
            assert float(jnp.max(jnp.abs(theorem - auto))) < 1e-10
        # central differences of J confirm that the objective itself is differentiated
        J = jax.jit(ex.exact_J)
        mdp, theta, eps = jax.tree.map(lambda x: x[0], mdps), thetas[0], 1e-6
        fd = np.zeros((S, A))
        for s in range(S):
            for a in range(A):
                d = jnp.zeros((S, A), jnp.float64).at[s, a].set(eps)
                fd[s, a] = (J(mdp, theta + d) - J(mdp, theta - d)) / (2 * eps)
        np.testing.assert_allclose(fd, auto[0], atol=1e-7)


def test_visitation_counts_episode_length():
    with jax.enable_x64(True):
        mdp = tb.chain().astype(jnp.float64)
        pi = jnp.full((7, 2), 0.5, jnp.float64)
        # sum of undiscounted visits = expected episode length = sum_t P(alive after t)
        length = ex.survival(mdp, pi, 4000).sum()
        np.testing.assert_allclose(float(ex.visitation(mdp, pi, 1.0).sum()), length, rtol=1e-9)
        H, p = ex.horizon_for(mdp, pi, 1e-6)
        assert p <= 1e-6 < ex.survival(mdp, pi, H)[H - 1]


# ---------------------------------------------------------------------------------------
# The MDPs as environments
# ---------------------------------------------------------------------------------------


def test_tabular_envs_follow_the_gymnax_api_and_the_mdp():
    n = 2000
    venv = VecEnv("Tabular-Chain", n)
    mdp = venv.params.mdp
    obs, state = jax.jit(venv.reset)(jax.random.PRNGKey(0))
    assert obs.shape == (n, 7) and obs.dtype == jnp.float32
    np.testing.assert_array_equal(obs.argmax(-1), 0)  # the chain starts in state 0
    right = jnp.ones(n, jnp.int32)
    obs2, _, reward, term, trunc, info = jax.jit(venv.step)(jax.random.PRNGKey(1), state, right)
    final = info["final_observation"].argmax(-1)
    # P[0, right] = 0.9 to state 1, 0.1 out of the left end (terminal, index 6)
    frac = float(jnp.mean(final == 1))
    assert abs(frac - 0.9) < 5 * np.sqrt(0.9 * 0.1 / n), frac
    np.testing.assert_array_equal(term, final == 6)
    np.testing.assert_array_equal(obs2.argmax(-1), jnp.where(term, 0, final))  # auto-reset
    np.testing.assert_allclose(reward, float(mdp.R[0, 1]))
    assert not bool(trunc.any())

    # time limit: non-slippery FrozenLake, pushing left into the wall, truncates at step 3
    venv = VecEnv("Tabular-FrozenLake", 2, slippery=False, max_steps_in_episode=3)
    _, state = venv.reset(jax.random.PRNGKey(0))
    step = jax.jit(venv.step)
    for t in range(3):
        _, state, _, term, trunc, info = step(jax.random.PRNGKey(t), state, jnp.zeros(2, jnp.int32))
        assert not bool(term.any()) and bool(trunc.all()) == (t == 2)


# ---------------------------------------------------------------------------------------
# The estimator lab
# ---------------------------------------------------------------------------------------

# A random MDP whose episodes are short (H = 38 keeps P(truncation) <= 1e-6) and whose
# discount is strong enough for dropping gamma^t to matter. The sample: 800 batches x 32
# episodes (25,600 episodes), about 3x what the noisiest estimator (the whole return)
# needs for a cosine of 0.99 on this MDP.
LAB_MDP = dict(mdp="random", num_states=6, num_actions=3, seed=1, terminal_prob=0.3, gamma=0.8)
LAB_K = 800


@pytest.fixture(scope="module")
def lab_result():
    return lab.run_lab(**LAB_MDP, batch_sizes=(32,), k=LAB_K, natural=False, off_policy=False)


def _stat(result, name, field):
    return result["estimators"][name][field][0]


def test_lab_exact_side(lab_result):
    env, params = make_env("Tabular-Random", num_states=6, num_actions=3, seed=1, terminal_prob=0.3)
    assert env.action_space(params).n == 3 and env.observation_space(params).shape == (6,)
    assert lab_result["horizon"] == 38 and lab_result["truncation_probability"] <= 1e-6
    assert lab_result["theorem_vs_autodiff_max_abs_err"] < 1e-10
    assert lab_result["exact_grad_norm"] > 0.1


def test_unbiased_estimators_agree_with_the_exact_gradient(lab_result):
    unbiased = [name for name, (ub, _) in lab.ESTIMATORS.items() if ub]
    assert len(unbiased) == 8
    for name in unbiased:
        assert _stat(lab_result, name, "max_abs_z") < 4.0, (name, lab_result["estimators"][name])
        assert _stat(lab_result, name, "cosine") > 0.99, (name, lab_result["estimators"][name])


def test_dropping_gamma_t_is_biased_as_predicted(lab_result):
    for name in ("rtg_no_gamma_t", "ppo_clip_no_gamma_t"):
        e = lab_result["estimators"][name]
        assert not e["unbiased"]
        assert e["expectation_bias_norm"] > 0.1 * lab_result["exact_grad_norm"]
        assert e["max_abs_z"][0] > 8.0, (name, e)  # far from grad J ...
        assert e["max_abs_z_vs_expectation"][0] < 4.0, (name, e)  # ... and where theory puts it


def test_reward_to_go_and_baselines_lower_the_variance(lab_result):
    var = {name: _stat(lab_result, name, "variance") for name in lab.ESTIMATORS}
    # each pair: (lower, higher), by at least 10%: the variance estimates from 800 batches are
    # good to a few per cent, and all estimators see the same episodes
    for low, high in (("rtg", "whole"), ("whole_const", "whole"), ("whole_value", "whole"),
                      ("rtg_const", "rtg"), ("rtg_value", "rtg"), ("gae", "rtg"),
                      ("rtg", "rtg_no_gamma_t")):
        assert var[low] < 0.9 * var[high], (low, high, var[low], var[high])
    ratio = lab_result["estimators"]["rtg_value"]["variance_ratio_to_whole"][0]
    assert ratio == pytest.approx(var["rtg_value"] / var["whole"])


def test_ppo_surrogate_at_ratio_one_is_the_gae_estimator(lab_result):
    for field in ("bias_norm", "variance", "cosine"):
        assert _stat(lab_result, "ppo_clip", field) == pytest.approx(_stat(lab_result, "gae", field), rel=1e-4)


def test_lab_cli(lab_result, tmp_path, capsys, monkeypatch):
    from purejaxpg.cli import main

    calls = []

    def fake_run_lab(*args):
        calls.append(args)
        return lab_result

    monkeypatch.setattr(lab, "run_lab", fake_run_lab)
    out = tmp_path / "lab"
    assert main(["lab", "--mdp", "chain", "--states", "4", "--batch-sizes", "2,8", "--k", "8", "--seed", "3",
                 "--out", str(out)]) == 0
    assert calls == [("chain", 4, None, (2, 8), 8, 3, 0.95)]
    printed = capsys.readouterr().out
    assert "var/whole" in printed and "rtg_value" in printed and "ppo_clip_no_gamma_t" in printed
    result = json.loads((out / "lab.json").read_text())
    assert result["theorem_vs_autodiff_max_abs_err"] < 1e-10
    for name in lab.ESTIMATORS:
        for field in ("bias_norm", "variance", "cosine", "max_abs_z"):
            assert len(result["estimators"][name][field]) == 1, (name, field)
    assert os.path.getsize(out / "lab.png") > 1000
    monkeypatch.undo()
    # bad input: one line, exit code 2, before anything is sampled
    assert main(["lab", "--mdp", "nope"]) == 2
    assert main(["lab", "--batch-sizes", "0"]) == 2
    assert main(["lab", "--k", "1"]) == 2
    assert main(["lab", "--mdp", "frozenlake", "--states", "5"]) == 2
    assert "error" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------
# REINFORCE on a tabular softmax policy reaches the optimum
# ---------------------------------------------------------------------------------------


def test_reinforce_approaches_the_optimal_J():
    from reference import train_seeds

    _, params = make_env("Tabular-Random")  # 8 states (one terminal) x 3 actions, gamma 0.9
    out = train_seeds("reinforce", dict(env="Tabular-Random", hidden=(), num_envs=8, num_steps=64,
                                        total_timesteps=250_000, num_eval_episodes=4, lr=0.08,
                                        gamma=float(params.mdp.gamma), max_grad_norm=10.0), seeds=4)[3]
    actor = out["carry"][0].params["actor"]["params"]["Dense_0"]  # hidden=(): logits = onehot @ W + b
    thetas = actor["kernel"] + actor["bias"][:, None, :]
    with jax.enable_x64(True):
        m = params.mdp.astype(jnp.float64)
        j_star = float(m.d0 @ ex.policy_iteration(m).V)
        j_uniform = float(ex.exact_J(m, jnp.zeros((m.num_states, m.num_actions), jnp.float64)))
        j_learned = np.array([float(ex.exact_J(m, jnp.asarray(t, jnp.float64))) for t in thetas])
    gap = (j_star - j_learned) / (j_star - j_uniform)  # 1 at the uniform policy, 0 at the optimum
    assert j_star - j_uniform > 1.0
    assert np.all(gap >= -1e-9), (j_star, j_learned)  # nothing beats the optimum
    # every seed closes 90% of the distance from uniform to optimal, and on average 95%
    assert np.all(gap < 0.1) and gap.mean() < 0.05, (j_star, j_uniform, j_learned)


class SolveTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_solve_matches_numpy_and_its_gradient_matches_lapack(self):
        """tabular.solve (Gauss-Jordan, no LAPACK) against np.linalg.solve, a zero leading
        entry forcing a row swap; gradients against autodiff through jnp.linalg.solve."""
        rng = np.random.default_rng(3)
        for n in (1, 3, 8):
            A = rng.normal(size=(n, n)) + 2.0 * np.eye(n)
            if n > 1:
                A[0, 0] = 0.0
            b = rng.normal(size=n)
            x = self.variant(ex.solve)(jnp.asarray(A, jnp.float32), jnp.asarray(b, jnp.float32))
            chex.assert_shape(x, (n,))
            np.testing.assert_allclose(x, np.linalg.solve(A, b), rtol=1e-4, atol=1e-5)
        # gradients on a well-conditioned matrix (as I - gamma P is); a row swap still needed
        A = rng.normal(size=(n, n)) + 4.0 * np.eye(n)
        A[[0, 1]] = A[[1, 0]]
        A, b = jnp.asarray(A, jnp.float32), jnp.asarray(b, jnp.float32)
        ours = jax.grad(lambda A, b: jnp.sum(jnp.sin(ex.solve(A, b))), (0, 1))(A, b)
        lapack = jax.grad(lambda A, b: jnp.sum(jnp.sin(jnp.linalg.solve(A, b))), (0, 1))(A, b)
        chex.assert_trees_all_close(ours, lapack, rtol=1e-4, atol=1e-5)
