"""A new on-policy algorithm in one file: the fixed-KL-penalty surrogate of the PPO paper
(Schulman et al. 2017, section 4 and table 1, "fixed KL" rows) with full-batch epochs.

Each update takes ``epochs`` gradient steps on the whole batch, on

    -E[rho A] + kl_coef KL(pi_old || pi) + vf_coef (V - target)^2 - ent_coef H(pi),

rho = pi(a|s) / pi_old(a|s), A from GAE(lambda). Unlike ``ppo --surrogate kl`` the
coefficient is fixed (traced, so a sweep over it compiles once) and there are no
minibatches. Use it without touching the package (docs/extending.md):

    PYTHONPATH=examples purejaxpg train klpg:ALGORITHM --env CartPole-v1 --kl-coef 1.0
"""
import jax
import jax.numpy as jnp

from purejaxpg.core import advantages as adv
from purejaxpg.core.losses import ppo_kl_loss, value_loss
from purejaxpg.core.rollout import batched_apply
from purejaxpg.engine import onpolicy
from purejaxpg.engine.program import Algorithm
from purejaxpg.engine.spec import static, traced

SPEC = onpolicy.SPEC.extend("klpg", (
    static("epochs", 4, "gradient steps on the whole batch per update", bounds="[1, inf)"),
    traced("kl_coef", 1.0, "weight of KL(pi_old || pi)", bounds="[0, inf)"),
    traced("gae_lambda", 0.95, "GAE lambda", bounds="[0, 1]"),
), defaults={"num_envs": 8, "num_steps": 128, "lr": 1e-3, "ent_coef": 0.01})


def update(ctx, state, traj, hp, key):
    advantages = adv.gae(traj.reward, traj.discounts(hp["gamma"]), traj.done, traj.value, traj.next_value,
                         hp["gae_lambda"])
    targets = advantages + traj.value
    advantages = adv.normalize(advantages)
    obs = traj.obs.reshape((-1,) + traj.obs.shape[2:])
    actions = traj.action.reshape((-1,) + traj.action.shape[2:])

    def loss_fn(params):
        dist = ctx.policy(params, obs)
        log_prob = dist.log_prob(actions).reshape(advantages.shape)
        pg, aux = ppo_kl_loss(log_prob, traj.log_prob, advantages, hp["kl_coef"])
        vl = value_loss(batched_apply(ctx.value, params, traj.obs), targets)
        entropy = dist.entropy().mean()
        return pg + hp["vf_coef"] * vl - hp["ent_coef"] * entropy, {"value_loss": vl, "entropy": entropy, **aux}

    def epoch(state, _):
        state, loss, aux = onpolicy.apply_gradients(ctx, state, loss_fn)
        return state, {"loss": loss, **aux}

    state, metrics = jax.lax.scan(epoch, state, None, length=ctx.config.epochs)
    return state, jax.tree_util.tree_map(jnp.mean, metrics)


def make_program(config):
    return onpolicy.make_program(config, update, grad_steps=config.epochs)


ALGORITHM = Algorithm("klpg", SPEC, make_program, "policy gradient with a fixed KL penalty, full-batch epochs", {})
