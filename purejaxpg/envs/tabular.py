"""Finite MDPs and the same MDPs as gymnax environments.

An ``MDP`` is a pytree of arrays (so a batch of MDPs is one ``MDP`` with a leading axis)::

    P[s, a, s']   transition probabilities (rows sum to 1)
    R[s, a]       expected reward of taking a in s
    d0[s]         initial-state distribution (no mass on terminal states)
    gamma         discount
    terminal[s]   True for absorbing terminal states: entering one ends the episode

Built-in MDPs: ``random_mdp``, ``chain``, ``frozen_lake``. Their exact values, objective
and policy gradient are in ``purejaxpg.lab.exact``.

Importing this module registers ``Tabular-Random``, ``Tabular-Chain`` and
``Tabular-FrozenLake`` with ``purejaxpg.envs.register_env``: one-hot observations,
``terminated`` on entering a terminal state, ``truncated`` at ``max_steps_in_episode``.
The environment pays R[s, a], the expected reward of the move, whatever the outcome (J and
its gradient depend on the rewards only through R[s, a]; paying the expectation only
removes reward noise).
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from purejaxpg.envs.gymnax import import_gymnax, register_env

import_gymnax()  # first: gymnax without its plotting modules
from gymnax.environments import environment, spaces

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
        cast = lambda x: jnp.asarray(x, dtype)
        return MDP(cast(self.P), cast(self.R), cast(self.d0), cast(self.gamma), jnp.asarray(self.terminal, bool))


def live_mask(mdp: MDP) -> jax.Array:
    """1.0 at non-terminal states, 0.0 at terminal ones. [S]."""
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
    cell = lambda s: rows[s // nc][s % nc]
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
