"""PPO: several epochs of minibatch updates per batch on an importance-weighted surrogate.

Two surrogates share everything else (``surrogate``, static):

* ``"clip"`` (``purejaxpg train ppo``): the clipped surrogate with the pessimistic min,
  -E[min(rho A, clip(rho, 1-eps, 1+eps) A)], rho = pi(a|s) / pi_old(a|s).
* ``"kl"`` (``purejaxpg train ppo --surrogate kl``, or ``ppo-kl``): -E[rho A] + beta KL(pi_old || pi); beta is adapted
  after every update against ``target_kl``: doubled when the update's KL exceeds
  1.5 x target, halved when it is below target / 1.5. beta lives in the train state.

The implementation details that matter, each a config field or hyperparameter with the
usual default: orthogonal init (networks.py), Adam eps 1e-5, linear LR annealing over
all optimiser steps (epochs x minibatches x updates), GAE(gamma 0.99, lambda 0.95),
``update_epochs`` passes over the [num_steps x num_envs] batch shuffled into
``num_minibatches`` minibatches, per-minibatch advantage normalisation, optional value
clipping (``clip_value``), global grad-norm clipping, entropy bonus, separate actor and
critic networks. For continuous actions: state-independent log-std, observation
normalisation (``normalize_obs``) and reward scaling by the running std of the discounted
return (``scale_rewards``), both with statistics in the train state (per seed); actions
are clipped to the bounds at the env while the unclipped sample is stored and scored.
Truncations bootstrap from V(final_observation).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from purejaxpg.algos.presets import PRESETS
from purejaxpg.core import advantages as adv
from purejaxpg.core import prng
from purejaxpg.core.losses import adapt_kl_beta, explained_variance, ppo_clip_loss, ppo_kl_loss, value_loss
from purejaxpg.core.normalize import RunningMeanStd
from purejaxpg.engine import onpolicy
from purejaxpg.engine.program import Algorithm
from purejaxpg.engine.spec import static, traced


def check(config, hparams) -> None:
    if config.batch_size % config.num_minibatches:
        raise ValueError(f"num_minibatches={config.num_minibatches} must divide num_envs x num_steps "
                         f"= {config.batch_size}")


KL = {"surrogate": "kl"}
SPEC = onpolicy.SPEC.extend("ppo", (
    static("surrogate", "clip", "clip: the clipped surrogate; kl: the KL-penalised one (adaptive beta)",
           choices=("clip", "kl")),
    static("update_epochs", 4, "passes over each batch", bounds="[1, inf)"),
    static("num_minibatches", 4, "minibatches per pass (must divide num_envs x num_steps)", bounds="[1, inf)"),
    static("normalize_advantages", True, "standardise advantages per minibatch"),
    static("clip_value", True, "clip the value update to clip_eps around the old values"),
    static("scale_rewards", False, "divide rewards by the running std of the discounted return"),
    traced("gae_lambda", 0.95, "GAE lambda", bounds="[0, 1]"),
    traced("clip_eps", 0.2, "clip range of the probability ratio (and of the value, with clip_value)",
           bounds="(0, 1]"),
    traced("target_kl", 0.01, "the KL per update the penalty aims at", bounds="(0, inf)", when=KL),
    traced("kl_beta", 1.0, "initial KL penalty coefficient", bounds="(0, inf)", when=KL),
), defaults={"num_envs": 4, "num_steps": 128, "total_timesteps": 500_000, "ent_coef": 0.01},
    checks=(check,))


@struct.dataclass
class Extra:
    beta: jax.Array  # KL penalty coefficient (ppo-kl; unused by the clipped surrogate)
    discounted_return: jax.Array  # [N] running discounted return per env, for reward scaling
    return_rms: RunningMeanStd  # its running variance


def init_extra(config, hp):
    beta = hp["kl_beta"] if config.surrogate == "kl" else 0.0
    return Extra(jnp.asarray(beta, jnp.float32), jnp.zeros(config.num_envs, jnp.float32), RunningMeanStd.create(()))


def scale_rewards(extra: Extra, reward, done, gamma):
    """Divide [T, N] rewards by the running std of the discounted return, updating it step by
    step (per env, reset at episode ends). Returns (extra, scaled rewards)."""

    def step(carry, x):
        ret, rms = carry
        r, d = x
        ret = ret * gamma + r
        rms = rms.update(ret)
        return (jnp.where(d, 0.0, ret), rms), r / jnp.sqrt(rms.var + 1e-8)

    (ret, rms), scaled = jax.lax.scan(step, (extra.discounted_return, extra.return_rms), (reward, done))
    return extra.replace(discounted_return=ret, return_rms=rms), scaled


def update(ctx, state, traj, hp, key):
    config = ctx.config
    extra = state.extra
    if config.scale_rewards:
        extra, reward = scale_rewards(extra, traj.reward, traj.done, hp["gamma"])
        traj = traj._replace(reward=reward)
    advantages = adv.gae(traj.reward, traj.discounts(hp["gamma"]), traj.done, traj.value, traj.next_value,
                         hp["gae_lambda"])
    targets = advantages + traj.value
    flat = jax.tree.map(lambda x: x.reshape((config.batch_size,) + x.shape[2:]),
                        (traj.obs, traj.action, traj.log_prob, traj.value, advantages, targets))
    beta = extra.beta

    def loss_fn(params, batch):
        obs, action, old_log_prob, old_value, advantage, target = batch
        dist = ctx.policy(params, obs)
        log_prob = dist.log_prob(action)
        entropy = dist.entropy().mean()
        if config.normalize_advantages:
            advantage = adv.normalize(advantage)
        if config.surrogate == "clip":
            pg, aux = ppo_clip_loss(log_prob, old_log_prob, advantage, hp["clip_eps"])
        else:
            pg, aux = ppo_kl_loss(log_prob, old_log_prob, advantage, beta)
        value = ctx.value(params, obs)
        vl = value_loss(value, target, old_values=old_value if config.clip_value else None,
                        clip_eps=hp["clip_eps"] if config.clip_value else None)
        loss = pg + hp["vf_coef"] * vl - hp["ent_coef"] * entropy
        return loss, {"policy_loss": pg, "value_loss": vl, "entropy": entropy, **aux}

    def minibatch_step(state, batch):
        state, loss, aux = onpolicy.apply_gradients(ctx, state, loss_fn, batch)
        return state, {**aux, "loss": loss}

    def epoch(state, k):
        perm = prng.permutation(k, config.batch_size)
        batches = jax.tree.map(
            lambda x: x[perm].reshape((config.num_minibatches, -1) + x.shape[1:]), flat)
        return jax.lax.scan(minibatch_step, state, batches)

    state, metrics = jax.lax.scan(epoch, state, jax.random.split(key, config.update_epochs))
    metrics = jax.tree.map(jnp.mean, metrics)
    if config.surrogate == "kl":
        extra = extra.replace(beta=adapt_kl_beta(beta, metrics["approx_kl"], hp["target_kl"]))
        metrics["beta"] = beta
    metrics["explained_variance"] = explained_variance(traj.value, targets)
    return state.replace(extra=extra), metrics


def make_program(config):
    return onpolicy.make_program(config, update, config.update_epochs * config.num_minibatches, init_extra)


ALGORITHM = Algorithm("ppo", SPEC, make_program, "PPO, clipped or KL-penalised surrogate (--surrogate)",
                      PRESETS.get("ppo", {}))
# ppo-kl: PPO with surrogate=kl by default (the same spec and program)
KL_ALGORITHM = Algorithm("ppo-kl", SPEC.extend("ppo-kl", defaults={"surrogate": "kl"}), make_program,
                         "PPO with the adaptive KL penalty (ppo --surrogate kl)", PRESETS.get("ppo-kl", {}))
