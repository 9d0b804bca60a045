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


KL_BETA_RANGE = (1e-6, 1e6)


def adapt_kl_beta(beta, kl, target_kl):
    """Adaptive KL coefficient: double when KL > 1.5 target, halve when KL < target / 1.5.

    Kept inside ``KL_BETA_RANGE``: a policy that stays well inside the target for a few
    hundred updates would otherwise halve beta to exactly 0 in float32, from which doubling
    can never bring it back."""
    new = jnp.where(kl > 1.5 * target_kl, beta * 2.0, jnp.where(kl < target_kl / 1.5, beta * 0.5, beta))
    return jnp.clip(new, *KL_BETA_RANGE)


def explained_variance(values, targets, mask=None):
    """1 - Var[target - V] / Var[target] (NaN-free: 0 when the targets are constant)."""
    def var(x):
        m = masked_mean(x, mask)
        return masked_mean((x - m) ** 2, mask)

    vt = var(targets)
    # Constant targets are detected exactly (every selected target equals the first selected
    # one): vt alone is not 0 for them, since the float32 mean of 0.1s is off by an ulp.
    sel = jnp.ones(targets.shape, bool) if mask is None else mask > 0
    first = targets.reshape(-1)[jnp.argmax(sel.reshape(-1))]
    varies = jnp.any(sel & (targets != first)) & (vt > 0)
    return jnp.where(varies, 1.0 - var(targets - values) / jnp.where(varies, vt, 1.0), 0.0)


# ---- SAC ----------------------------------------------------------------------------
# Shapes: B transitions, K critics in the ensemble, A discrete actions. Each loss lets
# gradients reach only the quantity it trains; the caller decides which parameters a
# quantity depends on (the actor loss, for instance, is given Q-values computed with
# the critic's parameters held constant, so only the actor moves).

def soft_td_target(reward, discount, next_q, next_log_prob, alpha):
    """Soft Bellman target y = r + discount * (Q'(s', a') - alpha * log pi(a'|s')), a' ~ pi(.|s'),
    with ``discount`` = gamma * (1 - terminated) and Q' the minimum over the target critics.
    All [B]; returned as a constant."""
    chex.assert_equal_shape([reward, discount, next_q, next_log_prob])
    return jax.lax.stop_gradient(reward + discount * (next_q - alpha * next_log_prob))


def discrete_soft_value(probs, log_probs, q, alpha):
    """V(s) = sum_a pi(a|s) (Q(s, a) - alpha * log pi(a|s)), the exact expectation over a
    discrete policy. [B, A] inputs -> [B]."""
    chex.assert_equal_shape([probs, log_probs, q])
    return (probs * (q - alpha * log_probs)).sum(-1)


def sac_critic_loss(q, target):
    """0.5 * sum over critics of the mean squared error to the target. q [K, B], target [B]."""
    chex.assert_rank(q, 2)
    chex.assert_equal_shape([q[0], target])
    return 0.5 * ((q - jax.lax.stop_gradient(target)[None]) ** 2).mean(-1).sum()


def sac_actor_loss(log_prob, q, alpha):
    """mean[alpha * log pi(a|s) - Q(s, a)] with a ~ pi(.|s) reparameterised, so gradients flow
    through both terms into the policy; alpha is a constant here. [B] each."""
    chex.assert_equal_shape([log_prob, q])
    return (jax.lax.stop_gradient(alpha) * log_prob - q).mean()


def discrete_sac_actor_loss(probs, log_probs, q, alpha):
    """mean_s sum_a pi(a|s) (alpha * log pi(a|s) - Q(s, a)): the expectation over actions in
    closed form, Q and alpha constants. [B, A] each."""
    chex.assert_equal_shape([probs, log_probs, q])
    alpha = jax.lax.stop_gradient(alpha)
    return (probs * (alpha * log_probs - jax.lax.stop_gradient(q))).sum(-1).mean()


def temperature_loss(log_alpha, entropy, target_entropy):
    """log_alpha * (H - H_target), H the policy's (estimated) entropy as a constant.
    Its gradient H - H_target raises alpha while the entropy is below target and lowers it
    above (continuous SAC: H = -mean log pi(a|s), the usual -log_alpha (log pi + H_target))."""
    return log_alpha * (jax.lax.stop_gradient(entropy) - target_entropy)


def polyak_update(target, online, tau):
    """target <- (1 - tau) * target + tau * online, leaf by leaf."""
    return jax.tree_util.tree_map(lambda t, o: t + tau * (o - t), target, online)
