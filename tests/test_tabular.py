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

# pytest-xdist: this module's tests share module-scoped work, so one worker runs them all
pytestmark = pytest.mark.xdist_group("tabular_lab")

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

# A random MDP whose episodes are short (H = 38 keeps P(truncation) <= 1e-6: derived in
# test_lab_exact_side by matrix powers) and whose
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


def _numpy_horizon(P, d0, terminal, theta, tol):
    """Smallest H >= 1 with P(the episode lasts more than H steps) <= tol under
    pi = softmax(theta), in float64 by matrix powers: P(alive after t steps) =
    d0 P_pi^t 1, with P_pi the transitions among non-terminal states. Returns (H, P(alive
    after H), P(alive after H - 1))."""
    pi = np.exp(theta - theta.max(1, keepdims=True))
    pi /= pi.sum(1, keepdims=True)
    live = ~terminal
    P_pi = np.einsum("sa,sat->st", pi, P)[live][:, live]
    alive = lambda t: d0[live] @ np.linalg.matrix_power(P_pi, t) @ np.ones(live.sum())
    H = 1
    while alive(H) > tol:
        H += 1
    return H, alive(H), alive(H - 1)


def test_lab_exact_side(lab_result):
    env, params = make_env("Tabular-Random", num_states=6, num_actions=3, seed=1, terminal_prob=0.3)
    assert env.action_space(params).n == 3 and env.observation_space(params).shape == (6,)
    # the time limit, derived independently of lab/exact.py: the lab's theta is
    # N(0, 1) drawn with PRNGKey(seed + 1); the survival of its episodes by matrix powers
    theta = np.asarray(lab_result["theta"], np.float64)
    np.testing.assert_array_equal(theta, np.asarray(jax.random.normal(jax.random.PRNGKey(2), (6, 3)), np.float32))
    m = params.mdp
    H, p_H, p_before = _numpy_horizon(np.asarray(m.P, np.float64), np.asarray(m.d0, np.float64),
                                      np.asarray(m.terminal), theta, 1e-6)
    assert p_H <= 1e-6 < p_before
    assert lab_result["horizon"] == H == 38  # 38: this MDP's figure, quoted in the comment above LAB_MDP
    assert lab_result["truncation_probability"] == pytest.approx(p_H, rel=1e-9, abs=0)
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
        # Gradients of L = sum sin(x), x = A^-1 b, against float64 NumPy: dL/db = A^-T cos(x),
        # dL/dA = -(dL/db) x^T. Each is two float32 solves, whose relative error a
        # backward-stable solve bounds by a small multiple of kappa(A) eps32. On the last
        # matrix above (kappa 434, kappa eps32 = 5.2e-5, gradients up to 4.6e3) this CPU's
        # errors relative to max|gradient| are 6.6e-6 (ours) and 7.1e-5 (LAPACK): two float32
        # solvers may differ by ~1e-4, which is what an H100 run saw between ours and cuSOLVER
        # (1.6e-4, benchmarks/results/tests-gpu-h100.edff96f.log) when this check compared them at
        # rtol 1e-4. So: each against float64 within 4 kappa eps32 of max|gradient| there,
        # and ours against LAPACK at the old rtol 1e-4 on a well-conditioned matrix (kappa 7,
        # as I - gamma P is for gamma <= 0.9; measured differences below 1e-6).
        grad = lambda solve: jax.grad(lambda A, b: jnp.sum(jnp.sin(solve(A, b))), (0, 1))
        well = rng.normal(size=(n, n)) + 4.0 * np.eye(n)
        well[[0, 1]] = well[[1, 0]]  # a row swap still needed
        for M in (A, well):
            M32, b32 = jnp.asarray(M, jnp.float32), jnp.asarray(b, jnp.float32)
            M64, b64 = np.asarray(M32, np.float64), np.asarray(b32, np.float64)
            x = np.linalg.solve(M64, b64)
            g_b = np.linalg.solve(M64.T, np.cos(x))
            want = (-np.outer(g_b, x), g_b)
            kappa = np.linalg.cond(M64)
            ours = self.variant(grad(ex.solve))(M32, b32)
            lapack = grad(jnp.linalg.solve)(M32, b32)
            for got in (ours, lapack):
                for g, w in zip(got, want):
                    assert np.abs(np.asarray(g, np.float64) - w).max() <= 4 * kappa * 2.0**-23 * np.abs(w).max()
            if kappa < 10:
                chex.assert_trees_all_close(ours, lapack, rtol=1e-4, atol=1e-5)
        assert 400 < np.linalg.cond(A) < 500  # the ill-conditioned case is really tested


# ---------------------------------------------------------------------------------------
# lab/exact.py and the MDP builders against plain NumPy loops (float64), under jit and not
# ---------------------------------------------------------------------------------------
# Tolerance of the float32 functions against the float64 loops: values are O(1..10) and the
# linear systems are I - gamma P_pi with gamma <= 0.95, condition number <= (1 + gamma) /
# (1 - gamma) = 39, so float32 solves are good to ~39 x 6e-8 x (a few) ~ 1e-5 relative;
# rtol 1e-4 leaves a factor 10. Sums of a few products (P_pi, Q) are good to ~1e-7: 1e-6.


def _np_mdp(mdp):
    return (np.asarray(mdp.P, np.float64), np.asarray(mdp.R, np.float64), np.asarray(mdp.d0, np.float64),
            float(mdp.gamma), np.asarray(mdp.terminal))


def _np_policy_matrices(P, R, terminal, pi):
    S, A = R.shape
    P_pi, r_pi = np.zeros((S, S)), np.zeros(S)
    for s in range(S):
        if terminal[s]:
            continue  # no future from a terminal state
        for a in range(A):
            r_pi[s] += pi[s, a] * R[s, a]
            for t in range(S):
                if not terminal[t]:  # entering a terminal state ends the episode
                    P_pi[s, t] += pi[s, a] * P[s, a, t]
    return P_pi, r_pi


def _np_q(P, R, terminal, gamma, V):
    S, A = R.shape
    Q = np.zeros((S, A))
    for s in range(S):
        for a in range(A):
            if not terminal[s]:
                Q[s, a] = R[s, a] + gamma * sum(P[s, a, t] * V[t] for t in range(S) if not terminal[t])
    return Q


def _np_softmax(theta):
    e = np.exp(theta - theta.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _np_J_and_parts(P, R, d0, gamma, terminal, theta):
    """(J, V, pi) of pi = softmax(theta): V solves V = r_pi + gamma P_pi V."""
    pi = _np_softmax(theta)
    P_pi, r_pi = _np_policy_matrices(P, R, terminal, pi)
    V = np.linalg.solve(np.eye(len(r_pi)) - gamma * P_pi, r_pi)
    return float(d0 @ V), V, pi


def _np_visitation(P, R, d0, terminal, pi, discount, steps=3000):
    """sum_t discount^t P(s_t = s): the state distribution pushed forward step by step."""
    P_pi, _ = _np_policy_matrices(P, R, terminal, pi)
    d, total = d0 * ~terminal, np.zeros(len(d0))
    for t in range(steps):
        total += discount ** t * d
        d = d @ P_pi
    return total


def _np_value_iteration(P, R, terminal, gamma, sweeps=3000):
    V = np.zeros(R.shape[0])
    for _ in range(sweeps):
        V = _np_q(P, R, terminal, gamma, V).max(-1)
    return V


class ExactNumpyTest(chex.TestCase):
    @variants
    def test_policy_matrices_q_values_and_softmax(self):
        for terminal in (True, False):
            mdp = _one_float32(terminal, 4)
            P, R, d0, gamma, term = _np_mdp(mdp)
            theta = np.asarray(_random_policies(11)[4], np.float32)
            pi = self.variant(ex.softmax_policy)(theta)
            np.testing.assert_allclose(pi, _np_softmax(theta.astype(np.float64)), rtol=1e-6)
            pi64 = np.asarray(pi, np.float64)
            P_pi, r_pi = self.variant(ex.policy_matrices)(mdp, pi)
            want_P, want_r = _np_policy_matrices(P, R, term, pi64)
            np.testing.assert_allclose(P_pi, want_P, rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(r_pi, want_r, rtol=1e-6, atol=1e-7)
            np.testing.assert_array_equal(self.variant(tb.live_mask)(mdp), (~term).astype(np.float32))
            V = np.random.default_rng(5).normal(size=S).astype(np.float32)
            np.testing.assert_allclose(self.variant(ex.q_values)(mdp, V), _np_q(P, R, term, gamma, V), rtol=1e-6,
                                       atol=1e-6)
            assert term.any() == terminal

    @variants
    def test_greedy_and_its_tie_rule(self):
        mdp = _one_float32(True, 5)
        # state 0: every action a copy of action 0 (Q ties exactly)
        mdp = mdp.replace(P=mdp.P.at[0].set(mdp.P[0, 0]), R=mdp.R.at[0].set(mdp.R[0, 0]))
        P, R, d0, gamma, term = _np_mdp(mdp)
        V = np.random.default_rng(6).normal(size=S).astype(np.float32)
        Q = _np_q(P, R, term, gamma, V)
        assert Q[0, 0] == Q[0, 1] == Q[0, 2]
        best = [int(np.argmax(row)) for row in Q]  # the first of tied actions
        got = self.variant(ex.greedy)(mdp, V)
        np.testing.assert_array_equal(got, np.eye(A)[best])
        # with a current deterministic policy, a state keeps its action unless another is
        # strictly better: state 0 keeps action 1 (tied with 0); the others move to the best
        current = np.eye(A, dtype=np.float32)[np.full(S, 1)]
        keep = [1 if Q[s, 1] >= Q[s].max() else best[s] for s in range(S)]
        np.testing.assert_array_equal(self.variant(ex.greedy)(mdp, V, current), np.eye(A)[keep])
        assert keep[0] == 1 != best[0]

    @variants
    def test_value_and_policy_iteration_reach_the_numpy_optimum(self):
        for terminal in (True, False):
            mdp = _one_float32(terminal, 6)
            P, R, d0, gamma, term = _np_mdp(mdp)
            V_star = _np_value_iteration(P, R, term, gamma)
            Q_star = _np_q(P, R, term, gamma, V_star)
            top = np.sort(Q_star, -1)
            # states whose best action is clear (the non-terminal variant's absorbing state
            # pays the same for every action, and a terminal state has Q = 0)
            clear = top[:, -1] - top[:, -2] > 1e-3
            assert clear.sum() == S - 1
            pi_star = np.eye(A)[Q_star.argmax(-1)]
            vi = self.variant(lambda m: ex.value_iteration(m, tol=1e-6, max_iters=3000))(mdp)
            pit = self.variant(ex.policy_iteration)(mdp)
            for sol in (vi, pit):
                assert bool(sol.converged)
                np.testing.assert_allclose(sol.V, V_star, rtol=1e-4, atol=1e-4)
                np.testing.assert_array_equal(np.asarray(sol.pi)[clear], pi_star[clear])

    @variants
    def test_visitation_J_and_both_gradients(self):
        for terminal in (True, False):
            mdp = _one_float32(terminal, 7)
            P, R, d0, gamma, term = _np_mdp(mdp)
            theta = np.asarray(_random_policies(12)[7], np.float32)
            theta64 = theta.astype(np.float64)
            J, V, pi = _np_J_and_parts(P, R, d0, gamma, term, theta64)
            np.testing.assert_allclose(self.variant(ex.exact_J)(mdp, theta), J, rtol=1e-4)
            discounts = (None, 1.0) if terminal else (None,)  # undiscounted counts need episodes that end
            for discount in discounts:
                want = _np_visitation(P, R, d0, term, pi, gamma if discount is None else discount)
                got = self.variant(lambda m, p: ex.visitation(m, p, discount))(mdp, jnp.asarray(pi, jnp.float32))
                np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
                # the theorem: d(s) pi(a|s) (Q(s, a) - V(s)), state by state
                Q = _np_q(P, R, term, gamma, V)
                want_g = np.array([[want[s] * pi[s, a] * (Q[s, a] - V[s]) for a in range(A)] for s in range(S)])
                got_g = self.variant(lambda m, t: ex.theorem_grad(m, t, discount))(mdp, theta)
                np.testing.assert_allclose(got_g, want_g, rtol=1e-4, atol=1e-5)
            # autodiff gradient against central differences of the NumPy J (float64, eps 1e-6:
            # truncation ~1e-12, cancellation ~1e-10)
            eps, fd = 1e-6, np.zeros((S, A))
            for s in range(S):
                for a in range(A):
                    d = np.zeros((S, A))
                    d[s, a] = eps
                    fd[s, a] = (_np_J_and_parts(P, R, d0, gamma, term, theta64 + d)[0]
                                - _np_J_and_parts(P, R, d0, gamma, term, theta64 - d)[0]) / (2 * eps)
            got = self.variant(ex.exact_grad)(mdp, theta)
            np.testing.assert_allclose(got, fd, rtol=1e-4, atol=1e-5)
            assert np.abs(fd).max() > 1e-2


def test_survival_and_horizon_match_matrix_powers():
    """Host-side (NumPy) functions, no jit: against the matrix-power reference above."""
    with jax.enable_x64(True):
        for mdp in (tb.chain().astype(jnp.float64), _one_float32(True, 8).astype(jnp.float64)):
            P, R, d0, gamma, term = _np_mdp(mdp)
            theta = np.random.default_rng(13).normal(size=(mdp.num_states, mdp.num_actions))
            pi = jnp.asarray(_np_softmax(theta))
            live = ~term
            P_pi = np.einsum("sa,sat->st", np.asarray(pi), P)[live][:, live]
            want = [d0[live] @ np.linalg.matrix_power(P_pi, t) @ np.ones(live.sum()) for t in range(60)]
            np.testing.assert_allclose(ex.survival(mdp, pi, 59), want, rtol=1e-12, atol=1e-15)
            H, p = ex.horizon_for(mdp, pi, 1e-3)
            want_H, want_p, _ = _numpy_horizon(P, d0, term, theta, 1e-3)
            assert H == want_H and p == pytest.approx(want_p, rel=1e-12)


def _np_random_mdp(u, S, A, gamma, terminal_prob):
    """random_mdp's MDP from its uniforms u, by loops: the first (S-1) A (S-1) of them make
    P among non-terminal states (Dirichlet(1) as normalised -log u), the next S-1 d0, the
    next (S-1) A R, the last (S-1) A the chance q = terminal_prob (0.5 + u) of ending."""
    n = S - 1
    it = iter(u.tolist())
    P, R, d0 = np.zeros((S, A, S)), np.zeros((S, A)), np.zeros(S)
    for s in range(n):
        for a in range(A):
            e = [-np.log(next(it)) for _ in range(n)]
            P[s, a, :n] = np.array(e) / sum(e)
    e = [-np.log(next(it)) for _ in range(n)]
    d0[:n] = np.array(e) / sum(e)
    for s in range(n):
        for a in range(A):
            R[s, a] = next(it)
    for s in range(n):
        for a in range(A):
            q = min(terminal_prob * (0.5 + next(it)), 1.0)
            P[s, a, :n] *= 1.0 - q
            P[s, a, n] = q
    P[n, :, n] = 1.0  # the terminal state is absorbing
    return P, R, d0, gamma, np.arange(S) == n


def test_random_mdp_matches_numpy_with_and_without_jit():
    S_, A_, key = 5, 2, jax.random.PRNGKey(9)
    n = S_ - 1
    u = np.asarray(jax.random.uniform(key, (n * A_ * n + n + 2 * n * A_,), jnp.float32,
                                      minval=np.finfo(np.float32).tiny), np.float64)
    want = _np_random_mdp(u, S_, A_, 0.8, 0.3)
    for disable in (False, True):
        with jax.disable_jit(disable):
            mdp = tb.random_mdp(key, S_, A_, 0.8, 0.3)
        got = _np_mdp(mdp)
        for g, w in zip(got[:3], want[:3]):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-7)
        assert got[3] == pytest.approx(0.8) and np.array_equal(got[4], want[4])
        tb.check_mdp(mdp)


def test_chain_and_frozen_lake_hand_checked():
    # chain of 2 states (+ terminal 2), slip 0.1: left from 0 leaves (exit reward 0.1) w.p.
    # 0.9, slips to 1 w.p. 0.1; right from 1 reaches the goal (reward 1) w.p. 0.9
    m = tb.chain(length=2, slip=0.1, gamma=0.9)
    P = np.zeros((3, 2, 3))
    P[0, 0] = [0.0, 0.1, 0.9]
    P[0, 1] = [0.0, 0.9, 0.1]
    P[1, 0] = [0.9, 0.0, 0.1]
    P[1, 1] = [0.1, 0.0, 0.9]
    P[2, :, 2] = 1.0
    R = np.array([[0.9 * 0.1, 0.1 * 0.1], [0.1 * 1.0, 0.9 * 1.0], [0.0, 0.0]])
    np.testing.assert_allclose(m.P, P, rtol=1e-6)
    np.testing.assert_allclose(m.R, R, rtol=1e-6)
    np.testing.assert_array_equal(m.d0, [1, 0, 0])
    np.testing.assert_array_equal(m.terminal, [False, False, True])
    # FrozenLake 4x4 (SFFF / FHFH / FFFH / HFFG): holes 5, 7, 11, 12 and the goal 15 end it
    fl = tb.frozen_lake(slippery=True)
    np.testing.assert_array_equal(np.nonzero(np.asarray(fl.terminal))[0], [5, 7, 11, 12, 15])
    np.testing.assert_array_equal(fl.d0, np.eye(16)[0])
    # from 14, "right" (2) goes right (15, the goal), down (off the grid: stays 14) or up
    # (10) with 1/3 each; R = P(reaching the goal)
    np.testing.assert_allclose(fl.P[14, 2], np.eye(16)[[15, 14, 10]].sum(0) / 3, rtol=1e-6)
    np.testing.assert_allclose(fl.R[14, 2], 1 / 3, rtol=1e-6)
    # from 0, "left": left (stays), down (4), up (stays): 2/3 on 0, 1/3 on 4
    np.testing.assert_allclose(fl.P[0, 0], np.eye(16)[0] * 2 / 3 + np.eye(16)[4] / 3, rtol=1e-6)
    det = tb.frozen_lake(slippery=False)
    for s, a, t in ((0, 1, 4), (0, 2, 1), (14, 2, 15), (13, 3, 9), (3, 2, 3)):
        np.testing.assert_array_equal(det.P[s, a], np.eye(16)[t])
    assert float(det.R.sum()) == 1.0  # only 14 -> right reaches the goal (from 11, a hole, nothing moves)
    for m in (m, fl, det):
        tb.check_mdp(m)


def test_check_mdp_refuses_malformed_mdps():
    good = tb.chain(length=2)
    tb.check_mdp(good)
    for bad, match in ((good.replace(P=good.P.at[0, 0, 0].add(0.2)), "probability vectors"),
                       (good.replace(d0=good.d0 * 0.5), "d0 must be"),
                       (good.replace(d0=jnp.asarray([0.5, 0.0, 0.5])), "terminal state"),
                       (good.replace(gamma=jnp.asarray(1.5)), "gamma"),
                       (good.replace(R=good.R[:2]), "inconsistent shapes")):
        with pytest.raises(ValueError, match=match):
            tb.check_mdp(bad)
