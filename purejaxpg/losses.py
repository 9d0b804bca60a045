"""Losses of the policy-gradient family. All take flat batches ``[B]`` (or any equal shapes)
and an optional 0/1 ``mask`` of the same shape; means are over the masked entries.

The advantage (or return) weights are treated as constants: gradients flow only through
the log-probabilities and values passed in.
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def masked_mean(x, mask=None):
    if mask is None:
        return x.mean()
    chex.assert_equal_shape([x, mask])
    return (x * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def reinforce_loss(log_probs, weights, mask=None):
    """Score-function surrogate: -mean[log pi(a|s) * w]. Its gradient is the REINFORCE
    estimate -E[grad log pi(a|s) * w] (w: return, reward-to-go or advantage)."""
    chex.assert_equal_shape([log_probs, weights])
    return -masked_mean(log_probs * jax.lax.stop_gradient(weights), mask)


def value_loss(values, targets, mask=None, old_values=None, clip_eps=None):
    """0.5 * mean (V - target)^2; with ``old_values`` and ``clip_eps``, the PPO-style
    clipped form max((V - t)^2, (V_old + clip(V - V_old, -eps, eps) - t)^2)."""
    chex.assert_equal_shape([values, targets])
    targets = jax.lax.stop_gradient(targets)
    err = (values - targets) ** 2
    if clip_eps is not None:
        chex.assert_equal_shape([values, old_values])
        clipped = old_values + jnp.clip(values - old_values, -clip_eps, clip_eps)
        err = jnp.maximum(err, (clipped - targets) ** 2)
    return 0.5 * masked_mean(err, mask)


def ppo_clip_loss(log_probs, old_log_probs, advantages, clip_eps, mask=None):
    """PPO's clipped surrogate, negated for minimisation:
    -mean min(rho * A, clip(rho, 1 - eps, 1 + eps) * A), rho = pi / pi_old.

    Returns ``(loss, aux)`` with ``aux = {"clip_fraction", "approx_kl"}``.
    """
    chex.assert_equal_shape([log_probs, old_log_probs, advantages])
    adv = jax.lax.stop_gradient(advantages)
    log_ratio = log_probs - jax.lax.stop_gradient(old_log_probs)
    ratio = jnp.exp(log_ratio)
    surrogate = jnp.minimum(ratio * adv, jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * adv)
    aux = {
        "clip_fraction": masked_mean((jnp.abs(ratio - 1.0) > clip_eps).astype(jnp.float32), mask),
        "approx_kl": jax.lax.stop_gradient(masked_mean(kl_estimate(log_ratio), mask)),
    }
    return -masked_mean(surrogate, mask), aux


def kl_estimate(log_ratio):
    """Per-sample estimate of KL(pi_old || pi) from samples of pi_old: (rho - 1) - log rho.
    Unbiased, non-negative, and its gradient vanishes where pi == pi_old."""
    return jnp.expm1(log_ratio) - log_ratio


def ppo_kl_loss(log_probs, old_log_probs, advantages, beta, mask=None):
    """Importance-weighted surrogate with an adaptive KL penalty, negated:
    -mean[rho * A - beta * KL(pi_old || pi)]. Returns ``(loss, aux)`` like
    ``ppo_clip_loss`` (``aux["approx_kl"]`` is the penalty's KL estimate)."""
    chex.assert_equal_shape([log_probs, old_log_probs, advantages])
    adv = jax.lax.stop_gradient(advantages)
    log_ratio = log_probs - jax.lax.stop_gradient(old_log_probs)
    kl = masked_mean(kl_estimate(log_ratio), mask)
    loss = -masked_mean(jnp.exp(log_ratio) * adv, mask) + beta * kl
    aux = {"clip_fraction": jnp.float32(0.0), "approx_kl": jax.lax.stop_gradient(kl)}
    return loss, aux


def adapt_kl_beta(beta, kl, target_kl):
    """Adaptive KL coefficient: double when KL > 1.5 target, halve when KL < target / 1.5."""
    return jnp.where(kl > 1.5 * target_kl, beta * 2.0, jnp.where(kl < target_kl / 1.5, beta * 0.5, beta))


def explained_variance(values, targets, mask=None):
    """1 - Var[target - V] / Var[target] (NaN-free: 0 when the targets are constant)."""
    def var(x):
        m = masked_mean(x, mask)
        return masked_mean((x - m) ** 2, mask)

    vt = var(targets)
    return jnp.where(vt > 0, 1.0 - var(targets - values) / jnp.where(vt > 0, vt, 1.0), 0.0)
