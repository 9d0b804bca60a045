"""Exact answers on finite MDPs: dynamic programming, exact J(theta) and its gradient.

An ``MDP`` is a pytree of arrays (so a batch of MDPs is one ``MDP`` with a leading axis,
and every function here can be ``vmap``-ped over it)::

    P[s, a, s']   transition probabilities (rows sum to 1)
    R[s, a]       expected reward of taking a in s
    d0[s]         initial-state distribution (no mass on terminal states)
    gamma         discount
    terminal[s]   True for absorbing terminal states: entering one ends the episode

Terminal states have no future: V = Q = 0 there, and transitions into them contribute no
continuation value. The discounted objective of a policy pi is

    J(pi) = E[ sum_t gamma^t r_t ] = d0^T (I - gamma P_pi)^-1 r_pi,

with P_pi[s, s'] = sum_a pi(a|s) P[s, a, s'] restricted to non-terminal s and s', and
r_pi[s] = sum_a pi(a|s) R[s, a].

For a tabular softmax policy pi(a|s) = softmax(theta[s])_a the gradient is available two
ways that must agree: ``exact_grad`` (autodiff through the linear solve) and
``theorem_grad`` (the policy-gradient theorem, dJ/dtheta[s, a] = d_gamma(s) pi(a|s) A(s, a)
with the *unnormalised* discounted visitation d_gamma = d0^T (I - gamma P_pi)^-1, whose
entries sum to the expected discounted episode length, not to 1).

Loops (iterative evaluation, policy iteration, value iteration) are ``lax.while_loop``s
with a maximum number of iterations, so they compile once and ``vmap`` over MDPs; each
reports its iteration count and the residual of every iteration.

The MDPs themselves (and their gymnax environments) are in ``purejaxpg.envs.tabular``.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from purejaxpg.engine.compat import linear_solve
from purejaxpg.envs.tabular import MDP, live_mask

# ---------------------------------------------------------------------------------------
# Policy evaluation and improvement
# ---------------------------------------------------------------------------------------


class Solution(NamedTuple):
    """What a dynamic-programming routine returns."""

    V: jax.Array  # [S] state values (0 at terminal states)
    pi: jax.Array  # [S, A] the policy evaluated / found
    iterations: jax.Array  # [] int32 iterations run
    residual: jax.Array  # [] the last iteration's residual
    residuals: jax.Array  # [max_iters] every iteration's residual, NaN after the last
    converged: jax.Array  # [] bool: stopped by the tolerance, not by max_iters


def policy_matrices(mdp: MDP, pi: jax.Array):
    """(P_pi [S, S], r_pi [S]) restricted to non-terminal states (rows and columns of terminal
    states are zero), so that V = r_pi + gamma P_pi V."""
    live = live_mask(mdp)
    P_pi = jnp.einsum("sa,sat->st", pi, mdp.P) * live[:, None] * live[None, :]
    r_pi = jnp.einsum("sa,sa->s", pi, mdp.R) * live
    return P_pi, r_pi


def q_values(mdp: MDP, V: jax.Array) -> jax.Array:
    """Q[s, a] = R[s, a] + gamma sum_s' P[s, a, s'] V(s') (0 at terminal s; V(terminal) = 0)."""
    live = live_mask(mdp)
    return (mdp.R + mdp.gamma * jnp.einsum("sat,t->sa", mdp.P, V * live)) * live[:, None]


def solve(A: jax.Array, b: jax.Array) -> jax.Array:
    """A^-1 b ([S, S], [S]), differentiable in A and b: ``jnp.linalg.solve``, or where
    jaxlib 0.10's batched CPU LAPACK can deadlock under ``vmap``, Gauss-Jordan elimination
    (``purejaxpg.engine.compat.linear_solve``)."""
    return linear_solve(A, b)


def evaluate(mdp: MDP, pi: jax.Array) -> jax.Array:
    """V^pi by one linear solve: (I - gamma P_pi) V = r_pi. [S]."""
    P_pi, r_pi = policy_matrices(mdp, pi)
    return solve(jnp.eye(mdp.num_states, dtype=P_pi.dtype) - mdp.gamma * P_pi, r_pi)


def _nan_history(max_iters: int, dtype):
    return jnp.full((int(max_iters),), jnp.nan, dtype)


def evaluate_iterative(mdp: MDP, pi: jax.Array, tol: float = 1e-8, max_iters: int = 10_000) -> Solution:
    """V^pi by repeated Bellman backups V <- r_pi + gamma P_pi V from V = 0, until the
    sup-norm change is below ``tol`` (then |V - V^pi| <= gamma tol / (1 - gamma))."""
    P_pi, r_pi = policy_matrices(mdp, pi)

    def cond(c):
        _, i, res, _ = c
        return (i < max_iters) & (res >= tol)

    def body(c):
        V, i, _, hist = c
        V_new = r_pi + mdp.gamma * P_pi @ V
        res = jnp.max(jnp.abs(V_new - V))
        return V_new, i + 1, res, hist.at[i].set(res)

    init = (jnp.zeros_like(r_pi), jnp.int32(0), jnp.asarray(jnp.inf, r_pi.dtype), _nan_history(max_iters, r_pi.dtype))
    V, it, res, hist = jax.lax.while_loop(cond, body, init)
    return Solution(V, pi, it, res, hist, res < tol)


def _tie_tol(Q):
    return 1e3 * jnp.finfo(Q.dtype).eps * (1.0 + jnp.max(jnp.abs(Q)))


def greedy(mdp: MDP, V: jax.Array, current: jax.Array | None = None) -> jax.Array:
    """Greedy policy w.r.t. Q(V), one-hot [S, A]. With ``current`` (a deterministic policy,
    one-hot), a state keeps its current action unless another is better by more than
    rounding error, so that policy iteration cannot cycle between tied actions."""
    Q = q_values(mdp, V)
    best = jnp.argmax(Q, axis=-1)
    if current is not None:
        cur = jnp.argmax(current, axis=-1)
        cur_q = jnp.take_along_axis(Q, cur[:, None], axis=-1)[:, 0]
        deterministic = jnp.max(current, axis=-1) == 1.0
        keep = deterministic & (cur_q >= jnp.max(Q, axis=-1) - _tie_tol(Q))
        best = jnp.where(keep, cur, best)
    return jax.nn.one_hot(best, mdp.num_actions, dtype=mdp.P.dtype)


def policy_iteration(mdp: MDP, pi0: jax.Array | None = None, max_iters: int = 100) -> Solution:
    """Exact evaluation, greedy improvement, repeat until the policy is stable.
    ``residuals[k]`` is max|V_{k+1} - V_k| (V_0 = V^pi0); the policy is optimal when
    ``converged``. ``pi0`` defaults to uniform."""
    S, A = mdp.num_states, mdp.num_actions
    dtype = mdp.P.dtype
    if pi0 is None:
        pi0 = jnp.full((S, A), 1.0 / A, dtype)
    V0 = evaluate(mdp, pi0)

    def cond(c):
        _, _, i, stable, _, _ = c
        return (i < max_iters) & ~stable

    def body(c):
        pi, V, i, _, _, hist = c
        new_pi = greedy(mdp, V, pi)
        new_V = evaluate(mdp, new_pi)
        res = jnp.max(jnp.abs(new_V - V))
        stable = jnp.all(new_pi == pi)
        return new_pi, new_V, i + 1, stable, res, hist.at[i].set(res)

    init = (pi0, V0, jnp.int32(0), jnp.bool_(False), jnp.asarray(jnp.inf, dtype), _nan_history(max_iters, dtype))
    pi, V, it, stable, res, hist = jax.lax.while_loop(cond, body, init)
    return Solution(V, pi, it, res, hist, stable)


def value_iteration(mdp: MDP, tol: float = 1e-8, max_iters: int = 10_000) -> Solution:
    """V <- max_a Q(V) from V = 0 until the sup-norm change is below ``tol`` (then
    |V - V*| <= gamma tol / (1 - gamma)); the policy returned is greedy w.r.t. the last V."""
    dtype = mdp.P.dtype

    def cond(c):
        _, i, res, _ = c
        return (i < max_iters) & (res >= tol)

    def body(c):
        V, i, _, hist = c
        V_new = jnp.max(q_values(mdp, V), axis=-1)
        res = jnp.max(jnp.abs(V_new - V))
        return V_new, i + 1, res, hist.at[i].set(res)

    init = (jnp.zeros(mdp.num_states, dtype), jnp.int32(0), jnp.asarray(jnp.inf, dtype), _nan_history(max_iters, dtype))
    V, it, res, hist = jax.lax.while_loop(cond, body, init)
    return Solution(V, greedy(mdp, V), it, res, hist, res < tol)


# ---------------------------------------------------------------------------------------
# Exact objective and policy gradient of a tabular softmax policy
# ---------------------------------------------------------------------------------------


def softmax_policy(theta: jax.Array) -> jax.Array:
    """pi(a|s) = softmax(theta[s])_a. [S, A] -> [S, A]."""
    return jax.nn.softmax(theta, axis=-1)


def visitation(mdp: MDP, pi: jax.Array, discount=None) -> jax.Array:
    """Expected discounted number of visits, d(s) = sum_t discount^t P(s_t = s), for
    ``discount`` = gamma by default: d^T = d0^T (I - discount P_pi)^-1. Unnormalised (sums
    to the expected discounted episode length). ``discount=1`` counts visits and needs
    episodes that end with probability 1."""
    P_pi, _ = policy_matrices(mdp, pi)
    discount = mdp.gamma if discount is None else discount
    eye = jnp.eye(mdp.num_states, dtype=P_pi.dtype)
    return solve((eye - discount * P_pi).T, mdp.d0 * live_mask(mdp))


def exact_J(mdp: MDP, theta: jax.Array) -> jax.Array:
    """J(theta) = d0^T (I - gamma P_pi)^-1 r_pi for pi = softmax(theta). []."""
    return mdp.d0 @ evaluate(mdp, softmax_policy(theta))


def exact_grad(mdp: MDP, theta: jax.Array) -> jax.Array:
    """dJ/dtheta by autodiff through the linear solve. [S, A]."""
    return jax.grad(exact_J, argnums=1)(mdp, theta)


def theorem_grad(mdp: MDP, theta: jax.Array, visitation_discount=None) -> jax.Array:
    """dJ/dtheta[s, a] = d_gamma(s) pi(a|s) A(s, a) (the policy-gradient theorem for a
    softmax policy, whose score is d log pi(b|s)/d theta[s, a] = 1[a = b] - pi(a|s)).

    ``visitation_discount=1`` replaces d_gamma by the undiscounted visit counts: the
    expectation of the usual estimator that drops the gamma^t factor, which is *not* the
    gradient of J."""
    pi = softmax_policy(theta)
    V = evaluate(mdp, pi)
    A = q_values(mdp, V) - V[:, None]
    d = visitation(mdp, pi, visitation_discount)
    return d[:, None] * pi * A


def survival(mdp: MDP, pi: jax.Array, steps: int) -> np.ndarray:
    """P(the episode is still running after t steps) for t = 0..steps (host side, float64)."""
    P_pi, _ = policy_matrices(mdp, pi)
    P_pi, alive = np.asarray(P_pi, np.float64), np.asarray(mdp.d0 * live_mask(mdp), np.float64)
    out = np.empty(int(steps) + 1)
    for t in range(int(steps) + 1):
        out[t] = alive.sum()
        alive = alive @ P_pi
    return out


def horizon_for(mdp: MDP, pi: jax.Array, tol: float = 1e-6, max_horizon: int = 5000) -> tuple[int, float]:
    """Smallest H with P(episode longer than H steps) <= ``tol`` under ``pi``, and that
    probability: a time limit of H truncates a fraction <= tol of episodes."""
    surv = survival(mdp, pi, max_horizon)
    below = np.nonzero(surv <= tol)[0]
    if len(below) == 0:
        raise ValueError(f"episodes under this policy outlast {max_horizon} steps with probability "
                         f"{surv[-1]:.2e} > {tol:g}; the exact J assumes they end")
    H = max(int(below[0]), 1)
    return H, float(surv[H])


# ---------------------------------------------------------------------------------------
# The Fisher information of a tabular softmax policy and the natural gradient
# ---------------------------------------------------------------------------------------


def weighted_kl(mdp: MDP, theta0: jax.Array, discount=None):
    """theta -> sum_s d(s) KL(pi0(.|s) || pi_theta(.|s)) with pi0 = softmax(theta0) and its
    discounted visitation d (``visitation``) held fixed: the KL whose Hessian at theta0 is
    ``exact_fisher`` (so ``core.natural.fisher_vector_product`` of it gives exact F v)."""
    pi0 = softmax_policy(theta0)
    d = visitation(mdp, pi0, discount)
    log_pi0 = jax.nn.log_softmax(theta0, axis=-1)

    def kl(theta):
        return jnp.sum(d[:, None] * pi0 * (log_pi0 - jax.nn.log_softmax(theta, axis=-1)))

    return kl


def exact_fisher(mdp: MDP, theta: jax.Array, discount=None) -> jax.Array:
    """F = sum_s d(s) sum_a pi(a|s) grad log pi(a|s) grad log pi(a|s)^T for pi = softmax(theta),
    over theta flattened row-major: [S*A, S*A]. d is the unnormalised discounted visitation
    of ``theorem_grad`` (grad J = sum_s d(s) sum_a pi grad log pi Q), so F^+ grad J is the
    natural gradient in the metric of the same state weighting (Kakade 2001). Singular:
    per-state constant shifts of theta do not change pi, and unvisited states have d = 0."""
    S, A = theta.shape
    pi = softmax_policy(theta)
    d = visitation(mdp, pi, discount)
    score = jax.jacobian(lambda th: jax.nn.log_softmax(th, axis=-1))(theta).reshape(S, A, S * A)
    return jnp.einsum("s,sa,saj,sak->jk", d, pi, score, score)


def natural_grad_closed_form(mdp: MDP, theta: jax.Array) -> jax.Array:
    """F^+ grad J for the tabular softmax in closed form: the advantage A(s, a) centred over
    the actions of each visited state (F_s = d(s)(diag pi_s - pi_s pi_s^T), grad J_s = d(s)
    pi_s * A_s, and sum_a pi A = 0 make A_s a solution; the pseudo-inverse's minimum-norm
    solution removes its component along the null vector 1), 0 where d(s) = 0. [S, A]."""
    pi = softmax_policy(theta)
    V = evaluate(mdp, pi)
    A = q_values(mdp, V) - V[:, None]
    d = visitation(mdp, pi)
    return jnp.where(d[:, None] > 0, A - A.mean(-1, keepdims=True), 0.0)
