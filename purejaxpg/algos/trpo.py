"""TRPO and the natural policy gradient (NPG) on the on-policy loop.

Each update collects a [num_steps, num_envs] batch, computes GAE(lambda) advantages
(standardised over the batch with ``normalize_advantages``) and moves the actor by one
natural-gradient step on the importance-weighted surrogate

    L(theta) = mean[pi_theta(a|s) / pi_old(a|s) * A] (+ ent_coef * mean entropy),

(Kakade 2001; Schulman et al. 2015, "Trust Region Policy Optimization", appendix C):

* the Fisher matrix of the batch's states is never formed: F v is the forward-over-reverse
  product of the mean KL(pi_old || pi_theta) (``core.natural.fisher_vector_product``), plus
  ``damping`` v;
* x ~ F^-1 grad L by ``cg_iters`` iterations of conjugate gradient, and the full step
  sqrt(2 max_kl / x^T F x) x, whose quadratic KL estimate is ``max_kl``;
* ``trpo`` (``line_search`` true): backtracking over step fractions 1, shrink, shrink^2, ...
  (at most ``backtrack_iters``), accepting the first that improves L while the exact mean
  KL stays within ``max_kl``; none: the actor stays. ``npg``: the full step, no search.

The critic is separate and fitted afterwards by the loop's Adam (the loop hands it only the
critic's parameters) on 0.5 (V - target)^2, target = GAE advantage + V, for ``critic_epochs``
passes over ``critic_minibatches`` shuffled minibatches. Metrics per update: ``accepted``
(its mean over updates is the accepted-step fraction), ``step_fraction``, ``kl`` (exact
mean KL after the step), ``surrogate_gain`` and ``expected_gain`` (g . step),
``cg_residual`` (relative), ``value_loss``, ``explained_variance``, ``entropy``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from purejaxpg.algos.presets import PRESETS
from purejaxpg.core import advantages as adv
from purejaxpg.core import natural, prng
from purejaxpg.core.losses import explained_variance, value_loss
from purejaxpg.engine import onpolicy
from purejaxpg.engine.program import Algorithm
from purejaxpg.engine.spec import static, traced


def check(config, hparams) -> None:
    if config.batch_size % config.critic_minibatches:
        raise ValueError(f"critic_minibatches={config.critic_minibatches} must divide num_envs x num_steps "
                         f"= {config.batch_size}")


SEARCH = {"line_search": True}
# defaults: sb3-contrib's TRPO (cg_max_steps 15, cg_damping 0.1, target_kl 0.01, line search
# shrinking factor 0.8 over at most 10 tries, 10 critic epochs, critic lr 1e-3 constant,
# GAE 0.95, advantages normalised), with its 2048-step batch as 8 envs x 256 steps and its
# critic minibatch of 128 as 16 minibatches
SPEC = onpolicy.SPEC.extend("trpo", (
    static("line_search", True, "backtracking line search (trpo); false: the full natural step (npg)"),
    static("cg_iters", 15, "conjugate-gradient iterations per update", bounds="[1, inf)"),
    static("backtrack_iters", 10, "most step fractions the line search tries", bounds="[1, inf)", when=SEARCH),
    static("critic_epochs", 10, "passes of the critic's Adam over each batch", bounds="[1, inf)"),
    static("critic_minibatches", 16, "critic minibatches per pass (must divide num_envs x num_steps)",
           bounds="[1, inf)"),
    static("normalize_advantages", True, "standardise advantages over the batch"),
    traced("max_kl", 0.01, "KL bound of a step (mean KL(pi_old || pi) over the batch)", bounds="(0, inf)"),
    traced("damping", 0.1, "added to the Fisher matrix's diagonal in CG", bounds="[0, inf)"),
    traced("backtrack_shrink", 0.8, "factor between the line search's step fractions", bounds="(0, 1)",
           when=SEARCH),
    traced("gae_lambda", 0.95, "GAE lambda", bounds="[0, 1]"),
), defaults={"num_envs": 8, "num_steps": 256, "lr": 1e-3, "anneal_lr": False, "total_timesteps": 1_000_000},
    checks=(check,))


def actor_functions(ctx, actor_params, obs, actions, old_log_prob, advantages, ent_coef):
    """(flat actor parameters, unravel, surrogate(x), kl(x)) on one batch: the surrogate
    mean[rho A] + ent_coef H and the mean KL(pi_old || pi_x), pi_old held fixed."""
    x0, unravel = ravel_pytree(actor_params)
    old = jax.tree.map(jax.lax.stop_gradient, ctx.actor.apply(actor_params, obs))

    def surrogate(x):
        dist = ctx.actor.apply(unravel(x), obs)
        ratio = jnp.exp(dist.log_prob(actions) - old_log_prob)
        return (ratio * advantages).mean() + ent_coef * dist.entropy().mean()

    def kl(x):
        return old.kl_divergence(ctx.actor.apply(unravel(x), obs)).mean()

    return x0, unravel, surrogate, kl


def actor_step(ctx, actor_params, obs, actions, old_log_prob, advantages, hp):
    """The natural-gradient (and, for TRPO, line-searched) step of the actor. Returns (new
    actor parameters, metrics)."""
    config = ctx.config
    x0, unravel, surrogate, kl = actor_functions(ctx, actor_params, obs, actions, old_log_prob, advantages,
                                                 hp["ent_coef"])
    g = jax.grad(surrogate)(x0)
    fvp = natural.fisher_vector_product(kl, x0, hp["damping"])
    ns = natural.natural_step(g, fvp, hp["max_kl"], config.cg_iters)

    def objective_and_kl(x):
        return surrogate(x), kl(x)

    if config.line_search:
        ls = natural.backtracking_line_search(objective_and_kl, x0, ns.step, hp["max_kl"], hp["backtrack_shrink"],
                                              config.backtrack_iters)
        x, metrics = ls.x, {"accepted": ls.accepted.astype(jnp.float32), "step_fraction": ls.fraction,
                            "surrogate_gain": ls.gain, "kl": ls.kl, "line_search_tries": ls.tries.astype(jnp.float32)}
    else:
        x = x0 + ns.step
        f, k = objective_and_kl(x)
        metrics = {"surrogate_gain": f - surrogate(x0), "kl": k}
    metrics.update(expected_gain=ns.expected_gain, cg_residual=ns.cg_residual, grad_norm=jnp.sqrt(g @ g))
    return unravel(x), metrics


def update(ctx, state, traj, hp, key):
    config = ctx.config
    advantages = adv.gae(traj.reward, traj.discounts(hp["gamma"]), traj.done, traj.value, traj.next_value,
                         hp["gae_lambda"])
    targets = advantages + traj.value
    if config.normalize_advantages:
        advantages = adv.normalize(advantages)
    flat = jax.tree.map(lambda x: x.reshape((config.batch_size,) + x.shape[2:]),
                        (traj.obs, traj.action, traj.log_prob, advantages, targets))
    obs, actions, old_log_prob, advantages, targets = flat
    actor, metrics = actor_step(ctx, state.params["actor"], obs, actions, old_log_prob, advantages, hp)
    metrics["entropy"] = ctx.actor.apply(state.params["actor"], obs).entropy().mean()
    state = state.replace(params={**state.params, "actor": actor})

    def loss_fn(params, batch):
        o, t = batch
        vl = value_loss(ctx.value(params, o), t)
        return hp["vf_coef"] * vl, vl

    def minibatch_step(state, batch):
        state, _, vl = onpolicy.apply_gradients(ctx, state, loss_fn, batch)
        return state, vl

    def epoch(state, k):
        perm = prng.permutation(k, config.batch_size)
        batches = jax.tree.map(lambda x: x[perm].reshape((config.critic_minibatches, -1) + x.shape[1:]),
                               (obs, targets))
        return jax.lax.scan(minibatch_step, state, batches)

    state, vl = jax.lax.scan(epoch, state, jax.random.split(key, config.critic_epochs))
    metrics["value_loss"] = vl.mean()
    metrics["explained_variance"] = explained_variance(traj.value, targets.reshape(traj.value.shape))
    return state, metrics


def make_program(config):
    return onpolicy.make_program(config, update, config.critic_epochs * config.critic_minibatches,
                                 groups=("critic",))


ALGORITHM = Algorithm("trpo", SPEC, make_program, "TRPO: natural-gradient step (CG on Fisher-vector products) "
                      "with a KL-bounded backtracking line search", PRESETS.get("trpo", {}))
NPG_SPEC = SPEC.extend("npg", defaults={"line_search": False})
NPG_ALGORITHM = Algorithm("npg", NPG_SPEC, make_program, "natural policy gradient: the KL-scaled natural step "
                          "(trpo --line-search false)", PRESETS.get("npg", {}))
