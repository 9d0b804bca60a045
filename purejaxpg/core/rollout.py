"""Experience collection: one ``lax.scan`` of vectorised environment steps.

``collect`` runs ``num_steps`` steps of ``num_envs`` environments under a policy and
returns a time-major ``Transition`` batch ``[T, N, ...]``. Observations are normalised
(when a ``RunningMeanStd`` is carried) with the statistics of the moment, and the same
statistics normalise ``next_obs``, so stored log-probs and values stay consistent.
Values are computed after the scan in one batched call, for ``obs`` and for ``next_obs``
(the true next observation, ``final_observation``), which is what truncation
bootstrapping needs.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
from flax import struct

from purejaxpg.core.normalize import RunningMeanStd

if TYPE_CHECKING:
    from purejaxpg.envs import VecEnv


class Transition(NamedTuple):
    obs: jax.Array  # [T, N, *obs]  observation acted on (normalised if enabled)
    action: jax.Array  # [T, N] (Discrete) or [T, N, A] (Box, unclipped sample)
    log_prob: jax.Array  # [T, N] log pi_old(a|s) at collection time
    reward: jax.Array  # [T, N]
    terminated: jax.Array  # [T, N] bool: episode ended with no future (discount 0)
    truncated: jax.Array  # [T, N] bool: time limit; bootstrap from next_value
    next_obs: jax.Array  # [T, N, *obs] final_observation (true next obs), same normalisation
    episode_step: jax.Array  # [T, N] int32: index of this step within its episode
    value: jax.Array  # [T, N] V(obs), zeros if no value function was given
    next_value: jax.Array  # [T, N] V(next_obs), zeros if no value function was given
    returned_episode: jax.Array  # [T, N] bool: an episode finished on this step
    episode_return: jax.Array  # [T, N] its return (valid where returned_episode)
    episode_length: jax.Array  # [T, N] its length (valid where returned_episode)

    @property
    def done(self) -> jax.Array:
        return self.terminated | self.truncated

    def discounts(self, gamma) -> jax.Array:
        """Per-step discount: 0 on termination, gamma otherwise (truncation included)."""
        return gamma * (1.0 - self.terminated.astype(jnp.float32))


@struct.dataclass
class EnvCarry:
    """The environment part of a train state."""

    env_state: Any  # the vectorised env's state (purejaxpg.envs.VecEnvState)
    obs: jax.Array  # [N, *obs] raw observation to act on next
    obs_rms: Optional[RunningMeanStd]  # None when observation normalisation is off


def reset(venv: "VecEnv", key, normalize_obs: bool) -> EnvCarry:
    obs, state = venv.reset(key)
    rms = RunningMeanStd.create(venv.obs_shape).update(obs) if normalize_obs else None
    return EnvCarry(state, obs, rms)


def _norm(rms, obs):
    return obs if rms is None else rms.normalize(obs)


PolicyFn = Callable[[Any, jax.Array, jax.Array], tuple]  # (params, obs, key) -> (action, log_prob)
ValueFn = Callable[[Any, jax.Array], jax.Array]  # (params, obs [B, *obs]) -> [B]


def collect(venv: "VecEnv", policy_fn: PolicyFn, params, carry: EnvCarry, key, num_steps: int,
            value_fn: Optional[ValueFn] = None):
    """Roll the policy for ``num_steps`` steps. Returns ``(carry, Transition [T, N])``."""

    def step(c: EnvCarry, k):
        k_act, k_env = jax.random.split(k)
        obs = _norm(c.obs_rms, c.obs)
        action, log_prob = policy_fn(params, obs, k_act)
        next_obs, env_state, reward, term, trunc, info = venv.step(k_env, c.env_state, action)
        rms = None if c.obs_rms is None else c.obs_rms.update(next_obs)
        tr = Transition(
            obs=obs,
            action=action,
            log_prob=log_prob,
            reward=reward,
            terminated=term,
            truncated=trunc,
            next_obs=_norm(rms, info["final_observation"]),
            episode_step=info["episode_step"],
            value=jnp.zeros_like(reward),
            next_value=jnp.zeros_like(reward),
            returned_episode=info["returned_episode"],
            episode_return=info["episode_return"],
            episode_length=info["episode_length"].astype(jnp.float32),
        )
        return EnvCarry(env_state, next_obs, rms), tr

    carry, traj = jax.lax.scan(step, carry, jax.random.split(key, num_steps))
    if value_fn is not None:
        traj = traj._replace(value=batched_apply(value_fn, params, traj.obs),
                             next_value=batched_apply(value_fn, params, traj.next_obs))
    return carry, traj


def batched_apply(fn, params, x):
    """Apply ``fn(params, [B, ...])`` to ``x`` of shape [T, N, ...] as one [T*N] batch."""
    t, n = x.shape[:2]
    return fn(params, x.reshape((t * n,) + x.shape[2:])).reshape((t, n))


def episode_metrics(traj: Transition) -> dict:
    """Mean return and length of the episodes that finished in this batch (NaN if none),
    and how many finished. Reduces [T, N] to scalars inside the program."""
    done = traj.returned_episode.astype(jnp.float32)
    n = done.sum()
    safe = jnp.maximum(n, 1.0)
    nan = jnp.float32(jnp.nan)
    return {
        "episode_return": jnp.where(n > 0, (traj.episode_return * done).sum() / safe, nan),
        "episode_length": jnp.where(n > 0, (traj.episode_length * done).sum() / safe, nan),
        "episodes": n,
    }


def policy_step(venv: "VecEnv", policy_fn: PolicyFn, params, obs_rms, obs, state, key):
    """One evaluation step: act on ``obs`` normalised with the frozen statistics, step the
    envs. ``key`` splits into (next key, action key, env key). Returns (next key, obs, state,
    reward, done (terminated or truncated), info). Shared by ``evaluate`` and purejaxpg.analysis.render."""
    key, k_act, k_env = jax.random.split(key, 3)
    action, _ = policy_fn(params, _norm(obs_rms, obs), k_act)
    obs, state, reward, term, trunc, info = venv.step(k_env, state, action)
    return key, obs, state, reward, term | trunc, info


def evaluate(venv: "VecEnv", policy_fn: PolicyFn, params, obs_rms, key) -> jax.Array:
    """Return of the first episode of each of ``venv.num_envs`` environments under the policy,
    with frozen normalisation statistics. Stops as soon as every environment has finished
    one episode (every gymnax env has a time limit). Returns [num_envs]."""
    k_reset, k_loop = jax.random.split(key)
    obs, state = venv.reset(k_reset)
    zeros = jnp.zeros(venv.num_envs, jnp.float32)
    finished = jnp.zeros(venv.num_envs, bool)

    def cond(c):
        return ~jnp.all(c[3]) & (c[5] <= venv.max_episode_steps)

    def body(c):
        obs, state, k, finished, returns, t = c
        k, obs, state, _, _, info = policy_step(venv, policy_fn, params, obs_rms, obs, state, k)
        newly = info["returned_episode"] & ~finished
        returns = jnp.where(newly, info["episode_return"], returns)
        return obs, state, k, finished | newly, returns, t + 1

    out = jax.lax.while_loop(cond, body, (obs, state, k_loop, finished, zeros, jnp.int32(0)))
    return out[4]
