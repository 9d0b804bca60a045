"""SAC: soft actor-critic on the off-policy loop (engine.offpolicy: the replay buffer,
learning starts, the replay ratio, Adam and the Polyak-averaged target critics).

A gradient step updates actor, critics and temperature together, from one backward pass
of the summed losses (stop-gradients keep each loss on its own parameters):

* critics: 0.5 sum_k (Q_k(s, a) - y)^2 with y = r + gamma (1 - terminated) (min_k Q'_k(s', a')
  - alpha log pi(a'|s')), a' ~ pi(.|s') from the current policy, Q' the target critics.
* actor: alpha log pi(a|s) - min_k Q_k(s, a), a ~ pi(.|s) reparameterised (a tanh-squashed
  Gaussian), the critics held constant (their values before this step's update).
* temperature: log_alpha (H - H_target) with the entropy estimate H = -mean log pi(a|s),
  H_target = -target_entropy_scale x |A|; or a fixed alpha (learn_alpha false).

Discrete action spaces use the discrete variant: a categorical policy, Q(s, .) heads, and
the expectation over actions in closed form in the target, the actor loss and the entropy
(H_target = target_entropy_scale x log |A|).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from purejaxpg.algos.presets import PRESETS
from purejaxpg.core.losses import (
    discrete_sac_actor_loss,
    discrete_soft_value,
    sac_actor_loss,
    sac_critic_loss,
    soft_td_target,
    temperature_loss,
)
from purejaxpg.core.networks import CategoricalSACActor, EnsembleQ, SquashedGaussianActor
from purejaxpg.engine import offpolicy
from purejaxpg.engine.program import Algorithm
from purejaxpg.engine.spec import static, traced
from purejaxpg.envs import VecEnv


def check(config, hparams) -> None:
    if not config.hidden:
        raise ValueError("hidden must have at least one layer for SAC")
    if not config.log_std_min < config.log_std_max:
        raise ValueError(f"log_std_min={config.log_std_min} must be below log_std_max={config.log_std_max}")


def default_entropy_scale(config) -> float:
    """0.89 x log|A| for Discrete actions (a nearly uniform policy's entropy, the common
    discrete-SAC default); 1.0 x -|A| for Box ones."""
    return 0.89 if VecEnv(config.env, 1).action_spec.discrete else 1.0


SPEC = offpolicy.SPEC.extend("sac", (
    static("num_q", 2, "critics in the ensemble; targets and the actor use their minimum", bounds="[1, inf)"),
    static("learn_alpha", True, "learn the temperature; false keeps it at init_alpha"),
    static("log_std_min", -5.0, "lower bound of the Gaussian's log-std (continuous actions)"),
    static("log_std_max", 2.0, "upper bound of the Gaussian's log-std"),
    traced("actor_lr", 3e-4, "actor learning rate", bounds="(0, inf)"),
    traced("critic_lr", 1e-3, "critics' learning rate", bounds="(0, inf)"),
    traced("alpha_lr", 1e-3, "temperature learning rate", bounds="(0, inf)"),
    traced("init_alpha", 1.0, "initial (or, with learn_alpha false, fixed) temperature", bounds="(0, inf)"),
    traced("target_entropy_scale", default_entropy_scale, "target entropy: -scale x |A| (Box), scale x log|A| "
           "(Discrete)", kind=float, default_help="0.89 for Discrete actions, 1.0 for Box"),
), checks=(check,))


def make_agent(config, venv) -> offpolicy.Agent:
    spec, hidden = venv.action_spec, tuple(config.hidden)
    if spec.discrete:
        actor = CategoricalSACActor(spec.num_actions, hidden, config.activation)
        critic = EnsembleQ(config.num_q, hidden, config.activation, spec.num_actions)
    else:
        actor = SquashedGaussianActor(spec.num_actions, hidden, config.activation, config.log_std_min,
                                      config.log_std_max)
        critic = EnsembleQ(config.num_q, hidden, config.activation)

    def q(params, obs, action=None):
        return critic.apply(params, obs) if spec.discrete else critic.apply(params, obs, action)

    def init(key, obs, action, hp):
        k_actor, k_critic = jax.random.split(key)
        critic_params = critic.init(k_critic, obs) if spec.discrete else critic.init(k_critic, obs, action)
        return {"actor": actor.init(k_actor, obs), "critic": critic_params, "log_alpha": jnp.log(hp["init_alpha"])}

    def explore(params, obs, key):
        dist = actor.apply(params["actor"], obs)
        if spec.discrete:
            a = dist.sample(seed=key)
            return a, dist.log_prob(a)
        return dist.sample_and_log_prob(key)

    def greedy(params, obs, key):
        a = actor.apply(params["actor"], obs).mode()
        return a, jnp.zeros(a.shape[0])

    def loss(params, target, batch, key, hp):
        alpha = jax.lax.stop_gradient(jnp.exp(params["log_alpha"]) if config.learn_alpha else hp["init_alpha"])
        discount = hp["gamma"] * (1.0 - batch["terminated"].astype(jnp.float32))
        obs, next_obs = batch["obs"], batch["next_obs"]
        dist = actor.apply(params["actor"], obs)
        next_dist = actor.apply(jax.lax.stop_gradient(params["actor"]), next_obs)
        if spec.discrete:
            log_pi, next_log_pi = jax.nn.log_softmax(dist.logits), jax.nn.log_softmax(next_dist.logits)
            next_v = discrete_soft_value(jnp.exp(next_log_pi), next_log_pi, q(target, next_obs).min(0), alpha)
            y = soft_td_target(batch["reward"], discount, next_v, jnp.zeros_like(next_v), alpha)
            q_all = q(params["critic"], obs)  # [K, B, A]; also the actor's Q, as a constant
            q_now = jnp.take_along_axis(q_all, batch["action"][None, :, None], axis=-1)[..., 0]
            probs = jnp.exp(log_pi)
            actor_loss = discrete_sac_actor_loss(probs, log_pi, q_all.min(0), alpha)
            entropy = -(probs * log_pi).sum(-1).mean()
            h_target = hp["target_entropy_scale"] * math.log(spec.num_actions)
        else:
            k_pi, k_next = jax.random.split(key)
            next_a, next_log_pi = next_dist.sample_and_log_prob(k_next)
            a_pi, log_pi = dist.sample_and_log_prob(k_pi)
            y = soft_td_target(batch["reward"], discount, q(target, next_obs, jax.lax.stop_gradient(next_a)).min(0),
                               next_log_pi, alpha)
            q_now = q(params["critic"], obs, batch["action"])  # [K, B]
            actor_loss = sac_actor_loss(log_pi, q(jax.lax.stop_gradient(params["critic"]), obs, a_pi).min(0), alpha)
            entropy = -log_pi.mean()
            h_target = -hp["target_entropy_scale"] * spec.num_actions
        critic_loss = sac_critic_loss(q_now, y)
        alpha_loss = temperature_loss(params["log_alpha"], entropy, h_target) if config.learn_alpha else 0.0
        metrics = {"critic_loss": critic_loss, "actor_loss": actor_loss, "alpha": alpha,
                   "entropy": jax.lax.stop_gradient(entropy), "q_mean": jax.lax.stop_gradient(q_now).mean()}
        return critic_loss + actor_loss + alpha_loss, metrics

    return offpolicy.Agent(init, explore, greedy, loss, target="critic",
                           learning_rates={"actor": "actor_lr", "critic": "critic_lr", "log_alpha": "alpha_lr"})


def make_program(config):
    return offpolicy.make_program(config, make_agent)


ALGORITHM = Algorithm("sac", SPEC, make_program, "soft actor-critic with a replay buffer in the program "
                      "(continuous and discrete)", PRESETS.get("sac", {}))
