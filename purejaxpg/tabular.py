"""Exact answers on finite MDPs: dynamic programming, exact J(theta) and its gradient, and
the same MDPs as gymnax environments.

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

Importing this module registers ``Tabular-Random``, ``Tabular-Chain`` and
``Tabular-FrozenLake`` with ``purejaxpg.envs.register_env``: one-hot observations,
``terminated`` on entering a terminal state, ``truncated`` at ``max_steps_in_episode``.
The environment pays R[s, a], the expected reward of the move, whatever the outcome (J and
its gradient depend on the rewards only through R[s, a]; paying the expectation only
removes reward noise).
"""
from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from .envs import register_env


# ---------------------------------------------------------------------------------------
# The MDP
# ---------------------------------------------------------------------------------------


@struct.dataclass
class MDP:
    P: jax.Array  # [S, A, S]
    R: jax.Array  # [S, A]
    d0: jax.Array  # [S]
    gamma: jax.Array  # []
    terminal: jax.Array  # [S] bool

    @property
    def num_states(self) -> int:
        return self.P.shape[-1]

    @property
    def num_actions(self) -> int:
        return self.P.shape[-2]

    def astype(self, dtype) -> "MDP":
        """The same MDP with floating arrays cast to ``dtype`` (for float64, call inside
        ``jax.enable_x64(True)``)."""
        cast = lambda x: jnp.asarray(x, dtype)  # noqa: E731
        return MDP(cast(self.P), cast(self.R), cast(self.d0), cast(self.gamma), jnp.asarray(self.terminal, bool))


def _live(mdp: MDP) -> jax.Array:
    return 1.0 - mdp.terminal.astype(mdp.P.dtype)


def check_mdp(mdp: MDP, atol: float = 1e-5) -> None:
    """Raise ``ValueError`` unless ``mdp`` (one, not a batch; concrete arrays) is well formed."""
    P, R, d0 = np.asarray(mdp.P), np.asarray(mdp.R), np.asarray(mdp.d0)
    S, A = R.shape
    if P.shape != (S, A, S) or d0.shape != (S,) or np.shape(mdp.terminal) != (S,):
        raise ValueError(f"inconsistent shapes P{P.shape} R{R.shape} d0{d0.shape} terminal{np.shape(mdp.terminal)}")
    if (P < -atol).any() or not np.allclose(P.sum(-1), 1.0, atol=atol):
        raise ValueError("P[s, a, :] must be probability vectors")
    if (d0 < -atol).any() or not np.isclose(d0.sum(), 1.0, atol=atol):
        raise ValueError("d0 must be a probability vector")
    if (d0[np.asarray(mdp.terminal)] > atol).any():
        raise ValueError("d0 puts mass on a terminal state")
    if not 0.0 <= float(mdp.gamma) <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1], got {float(mdp.gamma)}")


# ---------------------------------------------------------------------------------------
# Built-in MDPs
# ---------------------------------------------------------------------------------------


def random_mdp(key, num_states: int, num_actions: int, gamma=0.9, terminal_prob: float = 0.1) -> MDP:
    """A random MDP. With ``terminal_prob > 0`` (static) the last state is terminal and every
    (s, a) enters it with probability ``terminal_prob * U(0.5, 1.5)`` (so the policy
    affects how long episodes last); the rest of P[s, a] is Dirichlet(1) over the
    non-terminal states. R ~ U(0, 1); d0 ~ Dirichlet(1) over non-terminal states.
    With ``terminal_prob == 0`` no state is terminal (a purely discounted MDP)."""
    S, A = int(num_states), int(num_actions)
    n = S - 1 if float(terminal_prob) > 0.0 else S
    if n < 1 or A < 1:
        raise ValueError(f"need at least one non-terminal state and one action, got S={S}, A={A}")
    return _random_mdp(key, S, A, gamma, float(terminal_prob))


@partial(jax.jit, static_argnums=(1, 2, 4))
def _random_mdp(key, S, A, gamma, terminal_prob):
    has_terminal = terminal_prob > 0.0
    n = S - 1 if has_terminal else S
    dtype = jnp.zeros(()).dtype  # float32, or float64 under enable_x64
    # one draw of uniforms, cut into pieces (one random-number kernel to compile, not four)
    sizes = (n * A * n, n, n * A, n * A)
    u = jax.random.uniform(key, (sum(sizes),), dtype, minval=jnp.finfo(dtype).tiny)
    u_p, u_d, u_r, u_q = jnp.split(u, np.cumsum(sizes)[:-1])
    P = _flat_dirichlet(u_p.reshape(n, A, n))
    d0 = _flat_dirichlet(u_d)
    R = u_r.reshape(n, A)
    if has_terminal:
        q = jnp.clip(terminal_prob * (0.5 + u_q.reshape(n, A)), 0.0, 1.0)
        P = jnp.concatenate([P * (1.0 - q)[..., None], q[..., None]], axis=-1)
        absorbing = jnp.zeros((1, A, S), dtype).at[..., -1].set(1.0)
        P = jnp.concatenate([P, absorbing], axis=0)
        R = jnp.concatenate([R, jnp.zeros((1, A), dtype)], axis=0)
        d0 = jnp.concatenate([d0, jnp.zeros(1, dtype)])
    terminal = jnp.arange(S) >= n
    return MDP(P, R, d0, jnp.asarray(gamma, dtype), terminal)


def _flat_dirichlet(u):
    """Dirichlet(1, ..., 1) over the last axis from uniforms u in (0, 1): normalised
    Exponential(1) draws -log(u)."""
    e = -jnp.log(u)
    return e / e.sum(-1, keepdims=True)


def chain(length: int = 6, slip: float = 0.1, gamma: float = 0.9, exit_reward: float = 0.1,
          goal_reward: float = 1.0) -> MDP:
    """A corridor of ``length`` states 0..length-1 plus one terminal state (index ``length``).

    Actions: 0 = left, 1 = right; the move goes the other way with probability ``slip``.
    Stepping left out of state 0 ends the episode with ``exit_reward`` (near, small);
    stepping right out of the last state ends it with ``goal_reward`` (far, large).
    Episodes start in state 0. R[s, a] is the expected reward of the move.
    """
    L = int(length)
    if L < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    S, T = L + 1, L
    P = np.zeros((S, 2, S))
    R = np.zeros((S, 2))
    for s in range(L):
        for a, direction in ((0, -1), (1, +1)):
            for move, p in ((direction, 1.0 - slip), (-direction, slip)):
                nxt = s + move
                if nxt < 0:
                    P[s, a, T] += p
                    R[s, a] += p * exit_reward
                elif nxt >= L:
                    P[s, a, T] += p
                    R[s, a] += p * goal_reward
                else:
                    P[s, a, nxt] += p
    P[T, :, T] = 1.0
    d0 = np.zeros(S)
    d0[0] = 1.0
    return _from_numpy(P, R, d0, gamma, np.arange(S) == T)


FROZEN_LAKE_4X4 = ("SFFF", "FHFH", "FFFH", "HFFG")


def frozen_lake(desc=FROZEN_LAKE_4X4, slippery: bool = True, gamma: float = 0.95) -> MDP:
    """FrozenLake with its known dynamics. Actions 0 left, 1 down, 2 right, 3 up; slippery:
    the intended move and each of the two perpendicular ones with probability 1/3 (moves
    off the grid stay put). Holes (H) and the goal (G) are terminal; entering G gives 1, so
    R[s, a] is the probability that the move reaches G."""
    rows = [list(r) for r in desc]
    nr, nc = len(rows), len(rows[0])
    S, A = nr * nc, 4
    moves = {0: (0, -1), 1: (1, 0), 2: (0, 1), 3: (-1, 0)}
    cell = lambda s: rows[s // nc][s % nc]  # noqa: E731
    terminal = np.array([cell(s) in "HG" for s in range(S)])
    P = np.zeros((S, A, S))
    R = np.zeros((S, A))
    for s in range(S):
        if terminal[s]:
            P[s, :, s] = 1.0
            continue
        r, c = divmod(s, nc)
        for a in range(A):
            outcomes = [((a - 1) % 4, 1 / 3), (a, 1 / 3), ((a + 1) % 4, 1 / 3)] if slippery else [(a, 1.0)]
            for b, p in outcomes:
                dr, dc = moves[b]
                rr, cc = min(max(r + dr, 0), nr - 1), min(max(c + dc, 0), nc - 1)
                nxt = rr * nc + cc
                P[s, a, nxt] += p
                R[s, a] += p * (cell(nxt) == "G")
    d0 = np.array([cell(s) == "S" for s in range(S)], float)
    return _from_numpy(P, R, d0, gamma, terminal)


def _from_numpy(P, R, d0, gamma, terminal) -> MDP:
    dtype = jnp.zeros(()).dtype
    return MDP(jnp.asarray(P, dtype), jnp.asarray(R, dtype), jnp.asarray(d0, dtype), jnp.asarray(gamma, dtype),
               jnp.asarray(terminal, bool))


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
    live = _live(mdp)
    P_pi = jnp.einsum("sa,sat->st", pi, mdp.P) * live[:, None] * live[None, :]
    r_pi = jnp.einsum("sa,sa->s", pi, mdp.R) * live
    return P_pi, r_pi


def q_values(mdp: MDP, V: jax.Array) -> jax.Array:
    """Q[s, a] = R[s, a] + gamma sum_s' P[s, a, s'] V(s') (0 at terminal s; V(terminal) = 0)."""
    live = _live(mdp)
    return (mdp.R + mdp.gamma * jnp.einsum("sat,t->sa", mdp.P, V * live)) * live[:, None]


def _eliminate(A: jax.Array, b: jax.Array) -> jax.Array:
    """x with A x = b ([S, S], [S]): Gauss-Jordan elimination with partial pivoting in
    plain array ops. Not jnp.linalg.solve: LAPACK's batched LU under vmap runs on XLA's
    CPU thread pool, where a batched LAPACK call (QR) was seen to deadlock on 2 cores."""
    n = A.shape[0]
    rows = jnp.arange(n)

    def step(k, M):
        p = jnp.argmax(jnp.where(rows >= k, jnp.abs(M[:, k]), -1.0))  # pivot row
        M = M.at[jnp.stack([k, p])].set(M[jnp.stack([p, k])])
        pivot = M[k] / M[k, k]
        return (M - jnp.outer(M[:, k], pivot)).at[k].set(pivot)

    return jax.lax.fori_loop(0, n, step, jnp.concatenate([A, b[:, None]], axis=1))[:, n]


def solve(A: jax.Array, b: jax.Array) -> jax.Array:
    """A^-1 b, differentiable in A and b (implicitly: one more solve with A^T)."""
    return jax.lax.custom_linear_solve(lambda x: A @ x, b, solve=lambda _, r: _eliminate(A, r),
                                       transpose_solve=lambda _, r: _eliminate(A.T, r))


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
    return solve((eye - discount * P_pi).T, mdp.d0 * _live(mdp))


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
    P_pi, alive = np.asarray(P_pi, np.float64), np.asarray(mdp.d0 * _live(mdp), np.float64)
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
# The MDPs as gymnax environments
# ---------------------------------------------------------------------------------------


@struct.dataclass
class TabularState(environment.EnvState):
    s: jax.Array  # int32 index of the current state


@struct.dataclass
class TabularParams(environment.EnvParams):
    max_steps_in_episode: int = 100
    mdp: MDP | None = None


class TabularEnv(environment.Environment):
    """A finite MDP as a gymnax 1.x environment. Observations are one-hot [S] float32; the
    reward of (s, a) is R[s, a]; entering a terminal state terminates the episode (its
    one-hot is ``info["final_observation"]``); ``max_steps_in_episode`` truncates. The
    MDP lives in the params, so one env object serves a batch of MDPs."""

    def __init__(self, mdp: MDP, max_steps_in_episode: int = 100, name: str = "Tabular"):
        super().__init__()
        self._params = TabularParams(max_steps_in_episode=int(max_steps_in_episode), mdp=mdp)
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @property
    def default_params(self) -> TabularParams:
        return self._params

    @property
    def num_actions(self) -> int:
        return self._params.mdp.num_actions

    def step_env(self, key, state, action, params):
        mdp = params.mdp
        a = jnp.asarray(action, jnp.int32).reshape(())
        nxt = jax.random.categorical(key, jnp.log(mdp.P[state.s, a])).astype(jnp.int32)
        reward = mdp.R[state.s, a].astype(jnp.float32)
        new_state = TabularState(time=state.time + 1, s=nxt)
        return self.get_obs(new_state, params), new_state, reward, mdp.terminal[nxt], {}

    def reset_env(self, key, params):
        s0 = jax.random.categorical(key, jnp.log(params.mdp.d0)).astype(jnp.int32)
        state = TabularState(time=0, s=s0)
        return self.get_obs(state, params), state

    def get_obs(self, state, params=None, key=None):
        params = self._params if params is None else params
        return jax.nn.one_hot(state.s, params.mdp.num_states, dtype=jnp.float32)

    def is_terminated(self, state, params):
        return params.mdp.terminal[state.s]

    def action_space(self, params=None):
        params = self._params if params is None else params
        return spaces.Discrete(params.mdp.num_actions)

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (params.mdp.num_states,), jnp.float32)


def make_tabular_env(mdp: MDP, max_steps_in_episode: int = 100, name: str = "Tabular"):
    """(env, params) for ``mdp``, in the shape ``purejaxpg.envs.make_env`` returns."""
    check_mdp(mdp)
    env = TabularEnv(mdp, max_steps_in_episode, name)
    return env, env.default_params


def _random_factory(num_states: int = 8, num_actions: int = 3, seed: int = 0, gamma: float = 0.9,
                    terminal_prob: float = 0.1, max_steps_in_episode: int = 200):
    mdp = random_mdp(jax.random.PRNGKey(int(seed)), num_states, num_actions, gamma, terminal_prob)
    return make_tabular_env(mdp, max_steps_in_episode, "Tabular-Random")


def _chain_factory(length: int = 6, slip: float = 0.1, gamma: float = 0.9, exit_reward: float = 0.1,
                   goal_reward: float = 1.0, max_steps_in_episode: int = 200):
    mdp = chain(length, slip, gamma, exit_reward, goal_reward)
    return make_tabular_env(mdp, max_steps_in_episode, "Tabular-Chain")


def _frozen_lake_factory(slippery: bool = True, gamma: float = 0.95, max_steps_in_episode: int = 100):
    return make_tabular_env(frozen_lake(FROZEN_LAKE_4X4, slippery, gamma), max_steps_in_episode, "Tabular-FrozenLake")


register_env("Tabular-Random", _random_factory)
register_env("Tabular-Chain", _chain_factory)
register_env("Tabular-FrozenLake", _frozen_lake_factory)
