"""IMPALA's learner on the on-policy loop: an actor-critic that learns from stale data with
V-trace (Espeholt et al. 2018, "IMPALA: Scalable Distributed Deep-RL with Importance
Weighted Actor-Learner Architectures", section 4).

Each update collects a [num_steps, num_envs] batch with the current policy (the behaviour
policy mu: its log-probabilities are stored) and takes one Adam step on that batch together
with the last ``replay_batches`` (K) batches, which the train state keeps (a ring buffer of
K batches per seed; K = 0: on-policy). Data collected by an older policy is corrected by
V-trace, with the *current* policy pi and critic V:

    rho_t = min(rho_bar, pi/mu),  c_t = lambda min(c_bar, pi/mu),
    v_t = V(s_t) + sum_k (prod_{i<k} gamma c_i) rho_k (r_k + gamma V(s_{k+1}) - V(s_k)),
    loss = -mean[rho_t (r_t + gamma v_{t+1} - V(s_t)) log pi(a_t|s_t)]
           + vf_coef 0.5 mean[(v_t - V(s_t))^2] - ent_coef mean[H(pi(.|s_t))]

(``core.advantages.vtrace``; episode ends and truncations as everywhere in the package).
With K = 0 and pi = mu the targets are GAE(lambda) + V and the loss is A2C's. The replayed
batches keep the observations as they were normalised when collected.

Metrics: ``rho_mean`` and ``rho_clipped`` (the fraction of clipped ratios) over the
replayed batches, ``policy_loss``, ``value_loss``, ``entropy``, ``explained_variance`` of
the current batch.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from purejaxpg.algos.presets import PRESETS
from purejaxpg.core import advantages as adv
from purejaxpg.core.losses import explained_variance, masked_mean, reinforce_loss, value_loss
from purejaxpg.core.rollout import batched_apply
from purejaxpg.engine import onpolicy
from purejaxpg.engine.program import Algorithm
from purejaxpg.engine.spec import static, traced

SPEC = onpolicy.SPEC.extend("impala", (
    static("replay_batches", 4, "K: earlier batches kept in the train state and learned from again (0: on-policy)",
           bounds="[0, inf)"),
    static("normalize_advantages", False, "standardise the policy-gradient advantages over the batch"),
    traced("rho_bar", 1.0, "clip of the importance ratio in the TD errors and the advantages", bounds="(0, inf)"),
    traced("c_bar", 1.0, "clip of the importance ratio in the trace", bounds="(0, inf)"),
    traced("vtrace_lambda", 1.0, "lambda of the trace (1: IMPALA's V-trace)", bounds="[0, 1]"),
), defaults={"num_envs": 16, "num_steps": 32, "lr": 3e-3, "ent_coef": 0.01})


class Stored(struct.PyTreeNode):
    """What V-trace needs of a batch: [T, N, ...] each (a ring of K of them: [K, T, N, ...])."""

    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array  # log mu(a|s): the behaviour policy's, at collection
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    next_obs: jax.Array


@struct.dataclass
class Extra:
    replay: Any  # Stored with a leading K axis (None for K = 0)
    pushed: jax.Array  # int32: batches written so far (slot of the next: pushed % K)


def stored(traj) -> Stored:
    return Stored(traj.obs, traj.action, traj.log_prob, traj.reward, traj.terminated, traj.truncated, traj.next_obs)


def make_init_extra(venv):
    def init_extra(config, hp):
        K, T, N = config.replay_batches, config.num_steps, config.num_envs
        if K == 0:
            return Extra(None, jnp.int32(0))
        obs = jnp.zeros((K, T, N) + venv.obs_shape, jnp.float32)
        spec = venv.action_spec
        action = jnp.zeros((K, T, N), jnp.int32) if spec.discrete else jnp.zeros((K, T, N, spec.num_actions))
        z = jnp.zeros((K, T, N), jnp.float32)
        f = jnp.zeros((K, T, N), bool)
        return Extra(Stored(obs, action, z, z, f, f, obs), jnp.int32(0))

    return init_extra


def learning_batch(config, extra: Extra, current: Stored):
    """The current batch and the replayed ones side by side on the env axis, [T, (K+1) N, ...],
    and a [T, (K+1) N] mask that is 0 on slots not yet written and 1 elsewhere; also the
    0/1 [T, (K+1) N] indicator of replayed steps."""
    T, N, K = config.num_steps, config.num_envs, config.replay_batches
    if K == 0:
        ones = jnp.ones((T, N), jnp.float32)
        return current, ones, jnp.zeros_like(ones)
    side = lambda c, r: jnp.concatenate([c, jnp.moveaxis(r, 0, 1).reshape((T, K * N) + r.shape[3:])], axis=1)
    data = jax.tree.map(side, current, extra.replay)
    valid = (jnp.arange(K) < jnp.minimum(extra.pushed, K)).astype(jnp.float32)
    mask = jnp.concatenate([jnp.ones((T, N)), jnp.broadcast_to(jnp.repeat(valid, N), (T, K * N))], axis=1)
    replayed = jnp.concatenate([jnp.zeros((T, N)), jnp.ones((T, K * N))], axis=1)
    return data, mask, replayed


def push(config, extra: Extra, current: Stored) -> Extra:
    if config.replay_batches == 0:
        return extra
    slot = extra.pushed % config.replay_batches
    replay = jax.tree.map(lambda r, c: jax.lax.dynamic_update_index_in_dim(r, c, slot, 0), extra.replay, current)
    return Extra(replay, extra.pushed + 1)


def update(ctx, state, traj, hp, key):
    config = ctx.config
    current = stored(traj)
    data, mask, replayed = learning_batch(config, state.extra, current)
    T, M = mask.shape
    discounts = hp["gamma"] * (1.0 - data.terminated.astype(jnp.float32))
    done = data.terminated | data.truncated
    flat_obs = data.obs.reshape((T * M,) + data.obs.shape[2:])
    flat_action = data.action.reshape((T * M,) + data.action.shape[2:])

    def loss_fn(params):
        dist = ctx.policy(params, flat_obs)
        log_prob = dist.log_prob(flat_action).reshape(T, M)
        values = batched_apply(ctx.value, params, data.obs)
        next_values = jax.lax.stop_gradient(batched_apply(ctx.value, params, data.next_obs))
        log_rho = jax.lax.stop_gradient(log_prob - data.log_prob)
        targets, advantages = adv.vtrace(data.reward, discounts, done, jax.lax.stop_gradient(values), next_values,
                                         log_rho, hp["rho_bar"], hp["c_bar"], hp["vtrace_lambda"])
        if config.normalize_advantages:
            advantages = adv.normalize(advantages, mask)
        pg = reinforce_loss(log_prob, advantages, mask)
        vl = value_loss(values, targets, mask)
        entropy = masked_mean(dist.entropy().reshape(T, M), mask)
        ratio = jnp.exp(log_rho)
        on_replay = mask * replayed
        n = config.num_envs
        return pg + hp["vf_coef"] * vl - hp["ent_coef"] * entropy, {
            "policy_loss": pg, "value_loss": vl, "entropy": entropy,
            "rho_mean": masked_mean(ratio, on_replay),
            "rho_clipped": masked_mean((ratio > hp["rho_bar"]).astype(jnp.float32), on_replay),
            "explained_variance": explained_variance(jax.lax.stop_gradient(values[:, :n]), targets[:, :n]),
        }

    state, loss, aux = onpolicy.apply_gradients(ctx, state, loss_fn)
    return state.replace(extra=push(config, state.extra, current)), {**aux, "loss": loss}


def make_program(config):
    from purejaxpg.envs import VecEnv

    venv = VecEnv(config.env, config.num_envs)
    return onpolicy.make_program(config, update, grad_steps=1, init_extra=make_init_extra(venv), uses_values=False)


ALGORITHM = Algorithm("impala", SPEC, make_program, "IMPALA's V-trace actor-critic, learning again from the last "
                      "K batches kept in the train state", PRESETS.get("impala", {}))
