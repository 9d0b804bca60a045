"""REINFORCE: grad J = E[ sum_t grad log pi(a_t|s_t) * w_t ].

Choices (all static config):

* ``returns``: ``"reward_to_go"`` (w_t from G_t = sum_{k>=t} gamma^(k-t) r_k) or ``"whole"``
  (every step of an episode weighted by the episode's return G_0, the textbook form).
* ``baseline``: ``"none"``, ``"mean"`` (batch mean of the returns) or ``"value"`` (a learned
  V(s_t), fitted to the reward-to-go). A baseline that depends only on s_t leaves the
  estimate unbiased because E[grad log pi(a|s)] = 0; the batch mean is a constant up to
  an O(1/B) coupling.
* ``normalize``: standardise the weights over the batch (the textbook's "return
  normalisation"): a per-batch positive rescaling and shift, which changes step size
  and adds a mean baseline.
* ``gamma_weighting``: multiply the reward-to-go weight of step t of an episode by
  gamma^t. Only then is the reward-to-go estimate the gradient of the discounted
  objective J = E[G_0]; without it (the usual deep-RL practice) it is a biased estimate of
  that gradient, weighting late states as much as early ones. The whole return needs no
  such factor: E[sum_t grad log pi(a_t|s_t) G_0] is already grad J (G_0 = sum_t gamma^t r_t
  carries the discount), so ``gamma_weighting`` has no effect with ``returns="whole"``
  (multiplying G_0 by gamma^t would discount twice: in expectation gamma^t G_0 ~ gamma^(2t) G_t).

A batch is T steps of N environments, so episodes cross update boundaries. ``boundary``:

* ``"drop"``: steps whose weight cannot be computed from this batch are masked out — for
  reward-to-go, the unfinished tail piece of each environment; for whole returns, also
  the head piece of an episode that started in an earlier batch. What remains is an
  on-policy Monte-Carlo estimate, unbiased (apart from the usual dependence of the state
  distribution on the recent policies). Needs ``num_steps`` comfortably longer than
  episodes, or most data is thrown away.
* ``"bootstrap"`` (only with ``baseline="value"``): the unfinished tail is completed by the
  learned value V(s_T), and time-limit truncations by V(final_observation). Uses every
  step, at the price of the value function's bias on those steps.

Time-limit truncations without a value function count as episode ends.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from purejaxpg.algos.presets import PRESETS
from purejaxpg.core import advantages as adv
from purejaxpg.core.losses import explained_variance, masked_mean, reinforce_loss, value_loss
from purejaxpg.core.rollout import batched_apply
from purejaxpg.engine import onpolicy
from purejaxpg.engine.program import Algorithm
from purejaxpg.engine.spec import static


def check(config, hparams) -> None:
    if config.boundary == "bootstrap" and config.baseline != "value":
        raise ValueError("boundary bootstrap needs baseline value (a learned V to bootstrap from)")


SPEC = onpolicy.SPEC.extend("reinforce", (
    static("returns", "reward_to_go", "weight of grad log pi(a_t|s_t): the reward-to-go G_t or the whole "
           "return G_0", choices=("reward_to_go", "whole")),
    static("baseline", "value", "subtracted from the weights", choices=("none", "mean", "value")),
    static("boundary", "bootstrap", "episodes cut by the batch's end: dropped, or completed by V",
           choices=("drop", "bootstrap")),
    static("normalize", True, "standardise the weights over the batch"),
    static("gamma_weighting", False, "multiply reward-to-go weights by gamma^t (the discounted objective's "
           "gradient)"),
), defaults={
    "num_envs": 8, "num_steps": 256,
    # lr from scripts/tune_foundation.py on CartPole-v1 (defaults otherwise; 16 seeds x 1e6
    # steps, benchmarks/results/foundation_tuning.1edba71.json): final-return IQM 426 at 2e-3, 484-489
    # at 3e-3, 500 at 4e-3 (min seed 485), 500 at 5e-3 but a seed collapsing to 215, 369 at
    # 7e-3; 1e-3 (the earlier default) gave 241 in scripts/foundation_acceptance.py.
    "lr": 4e-3,
}, checks=(check,))


def weights_and_mask(config, traj, gamma, value=None):
    """The per-step policy-gradient weights w_t, the mask of usable steps, the value targets
    (reward-to-go) and their mask. All [T, N]."""
    discounts = traj.discounts(gamma)
    done = traj.done
    bootstrap = config.boundary == "bootstrap"
    next_value = traj.next_value if bootstrap else None
    rtg = adv.reward_to_go(traj.reward, discounts, done, next_value)
    rtg_mask = jnp.ones_like(rtg) if bootstrap else adv.complete_episode_mask(done)
    if config.returns == "whole":
        g = adv.episode_start_values(rtg, done)
        t = jnp.arange(done.shape[0])[:, None]
        mask = rtg_mask * (traj.episode_step <= t)
    else:
        g, mask = rtg, rtg_mask
    if config.baseline == "mean":
        g = g - masked_mean(g, mask)
    elif config.baseline == "value":
        g = g - value
    if config.gamma_weighting and config.returns == "reward_to_go":  # G_0 is already discounted
        g = g * adv.discount_weights(gamma, traj.episode_step)
    if config.normalize:
        g = adv.normalize(g, mask)
    return g, mask, rtg, rtg_mask


def update(ctx, state, traj, hp, key):
    config = ctx.config
    weights, mask, targets, target_mask = weights_and_mask(config, traj, hp["gamma"], traj.value)

    def loss_fn(params):
        dist = ctx.policy(params, traj.obs.reshape((-1,) + traj.obs.shape[2:]))
        log_probs = dist.log_prob(traj.action.reshape((-1,) + traj.action.shape[2:])).reshape(weights.shape)
        entropy = masked_mean(dist.entropy().reshape(weights.shape), mask)
        pg = reinforce_loss(log_probs, weights, mask)
        loss = pg - hp["ent_coef"] * entropy
        aux = {"policy_loss": pg, "entropy": entropy}
        if config.baseline == "value":
            values = batched_apply(ctx.value, params, traj.obs)
            vl = value_loss(values, targets, target_mask)
            loss = loss + hp["vf_coef"] * vl
            aux["value_loss"] = vl
            aux["explained_variance"] = explained_variance(jax.lax.stop_gradient(values), targets, target_mask)
        return loss, aux

    state, loss, aux = onpolicy.apply_gradients(ctx, state, loss_fn)
    return state, {**aux, "loss": loss, "used_fraction": mask.mean()}


def make_program(config):
    return onpolicy.make_program(config, update, grad_steps=1, uses_values=config.baseline == "value")


ALGORITHM = Algorithm("reinforce", SPEC, make_program, "Monte-Carlo policy gradient (reward-to-go, baselines)",
                      PRESETS.get("reinforce", {}))
