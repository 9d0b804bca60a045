"""Returns and advantages over a time-major batch.

Every function takes arrays with time as the leading axis, ``[T, ...]`` (typically
``[T, N]`` for N environments), and works elementwise over the trailing axes.

How episode ends are encoded, everywhere:

* ``discounts[t]``: 0 where step t terminated, gamma otherwise (also on truncation);
* ``dones[t]``: the episode ended at step t, by termination or truncation, so step t+1
  belongs to a new episode and nothing flows back across it;
* ``next_values[t]``: V of the true next observation of step t (``final_observation``),
  used to bootstrap wherever the return is cut: at a truncation (discount gamma) and at
  the end of the batch. At a termination it is multiplied by a discount of 0.

With ``next_values`` all zero these are plain Monte-Carlo quantities.
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def _check(*arrays):
    chex.assert_rank(arrays[0], {1, 2, 3})
    chex.assert_equal_shape(arrays)


def _continues(dones: jax.Array) -> jax.Array:
    """1 where the return of step t continues into step t+1 inside the batch, else 0."""
    cont = 1.0 - jnp.asarray(dones).astype(jnp.float32)
    return cont.at[-1].set(0.0)  # the batch ends: nothing after step T-1


def reward_to_go(rewards, discounts, dones, next_values=None) -> jax.Array:
    """Discounted reward-to-go, bootstrapped where the return is cut.

    G_t = r_t + d_t * (G_{t+1} if the episode continues inside the batch else V'_t).

    Args:
      rewards, discounts, dones: [T, ...].
      next_values: [T, ...] or None (then zero: pure Monte-Carlo).
    Returns:
      [T, ...] float32.
    """
    if next_values is None:
        next_values = jnp.zeros_like(rewards)
    _check(rewards, discounts, dones, next_values)
    cont = _continues(dones)

    def step(g_next, x):
        r, d, c, nv = x
        g = r + d * (c * g_next + (1.0 - c) * nv)
        return g, g

    _, g = jax.lax.scan(step, jnp.zeros_like(rewards[0]), (rewards, discounts, cont, next_values), reverse=True)
    return g


def episode_start_values(x, dones, first=None) -> jax.Array:
    """Broadcast, along each episode, the value that ``x`` takes at the episode's first step.

    Used for the whole-episode return: ``episode_start_values(reward_to_go(...), dones)``.
    Step 0 counts as a first step (the episode may have started before the batch: the
    caller masks such pieces using ``episode_step``).

    Args:
      x, dones: [T, ...].
    Returns:
      [T, ...]
    """
    _check(x, dones)
    starts = jnp.concatenate([jnp.ones_like(dones[:1], bool), dones[:-1].astype(bool)], axis=0)

    def step(carry, inp):
        xi, s = inp
        carry = jnp.where(s, xi, carry)
        return carry, carry

    _, out = jax.lax.scan(step, x[0], (x, starts))
    return out


def gae(rewards, discounts, dones, values, next_values, lambda_) -> jax.Array:
    """Generalised advantage estimation.

    delta_t = r_t + d_t V'_t - V_t;  A_t = delta_t + d_t * lambda * c_t * A_{t+1},
    where c_t is 0 where the episode ends at t (or the batch ends), else 1.
    lambda = 0 gives the one-step TD advantage; lambda = 1 gives G_t - V_t.

    Args:
      rewards, discounts, dones, values, next_values: [T, ...].
      lambda_: scalar (may be traced).
    Returns:
      advantages [T, ...]; value targets are ``advantages + values``.
    """
    _check(rewards, discounts, dones, values, next_values)
    deltas = rewards + discounts * next_values - values
    cont = _continues(dones)

    def step(a_next, x):
        delta, d, c = x
        a = delta + d * lambda_ * c * a_next
        return a, a

    _, adv = jax.lax.scan(step, jnp.zeros_like(rewards[0]), (deltas, discounts, cont), reverse=True)
    return adv


def nstep_targets(rewards, discounts, dones, next_values, n: int) -> jax.Array:
    """n-step bootstrapped targets, cut at episode ends and at the end of the batch.

    G^(1)_t = r_t + d_t V'_t;  G^(m)_t = r_t + d_t * (G^(m-1)_{t+1} if the episode continues
    inside the batch else V'_t). ``n`` is static.

    Args:
      rewards, discounts, dones, next_values: [T, ...].
    Returns:
      [T, ...]
    """
    _check(rewards, discounts, dones, next_values)
    if int(n) < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    cont = _continues(dones)
    g = rewards + discounts * next_values
    for _ in range(int(n) - 1):
        shifted = jnp.concatenate([g[1:], jnp.zeros_like(g[:1])], axis=0)
        g = rewards + discounts * (cont * shifted + (1.0 - cont) * next_values)
    return g


def discount_weights(gamma, episode_step) -> jax.Array:
    """gamma ** t for the step's index t within its episode (the factor the discounted
    policy-gradient theorem puts in front of each term)."""
    return jnp.power(gamma, episode_step.astype(jnp.float32))


def complete_episode_mask(dones, episode_step=None) -> jax.Array:
    """1 for steps whose episode ends inside the batch (and, if ``episode_step`` is given,
    also started inside it), else 0. [T, ...] -> [T, ...] float32."""
    chex.assert_rank(dones, {1, 2, 3})

    def step(ends_later, d):
        ends = d | ends_later
        return ends, ends

    _, ends = jax.lax.scan(step, jnp.zeros_like(dones[0], bool), dones.astype(bool), reverse=True)
    mask = ends
    if episode_step is not None:
        chex.assert_equal_shape([dones, episode_step])
        t = jnp.arange(dones.shape[0]).reshape((-1,) + (1,) * (dones.ndim - 1))
        mask = mask & (episode_step <= t)
    return mask.astype(jnp.float32)


def normalize(x, mask=None, eps: float = 1e-8) -> jax.Array:
    """Standardise ``x`` to zero mean and unit std over all entries (or the masked ones)."""
    if mask is None:
        mask = jnp.ones_like(x)
    chex.assert_equal_shape([x, mask])
    n = jnp.maximum(mask.sum(), 1.0)
    mean = (x * mask).sum() / n
    var = (((x - mean) ** 2) * mask).sum() / n
    return (x - mean) / (jnp.sqrt(var) + eps) * mask


def vtrace(rewards, discounts, dones, values, next_values, log_rhos, rho_bar=1.0, c_bar=1.0, lambda_=1.0):
    """V-trace targets and policy-gradient advantages (Espeholt et al. 2018, IMPALA, eq. 1
    and section 4.2) for a batch collected by a behaviour policy mu and evaluated for pi.

    rho_t = min(rho_bar, pi/mu), c_t = lambda min(c_bar, pi/mu) (``log_rhos`` = log pi - log mu);
    delta_t = rho_t (r_t + d_t V'_t - V_t);
    v_t - V_t = delta_t + d_t c_t (v_{t+1} - V_{t+1}) while the episode continues inside
    the batch (cut, as everywhere here, at episode ends and the batch's end);
    A_t = rho_t (r_t + d_t v'_t - V_t), v'_t = v_{t+1} where the episode continues, else V'_t.

    With pi = mu and rho_bar, c_bar >= 1 the targets are GAE(lambda) + V (lambda = 1: the
    n-step returns bootstrapped at the batch's end). Weights are constants: call it on
    stopped values and log-ratios.

    Args:
      rewards, discounts, dones, values, next_values, log_rhos: [T, ...].
      rho_bar, c_bar, lambda_: scalars (may be traced).
    Returns:
      (targets v [T, ...], advantages A [T, ...]).
    """
    _check(rewards, discounts, dones, values, next_values, log_rhos)
    ratio = jnp.exp(log_rhos)
    rho = jnp.minimum(rho_bar, ratio)
    c = lambda_ * jnp.minimum(c_bar, ratio)
    cont = _continues(dones)
    deltas = rho * (rewards + discounts * next_values - values)

    def step(acc_next, x):
        delta, d, ci, k = x
        acc = delta + d * ci * k * acc_next
        return acc, acc

    _, acc = jax.lax.scan(step, jnp.zeros_like(rewards[0]), (deltas, discounts, c, cont), reverse=True)
    targets = values + acc
    following = jnp.concatenate([targets[1:], next_values[-1:]], axis=0)
    next_targets = jnp.where(cont > 0, following, next_values)
    return targets, rho * (rewards + discounts * next_targets - values)
