"""The on-policy loop shared by REINFORCE, A2C, PPO, TRPO/NPG and IMPALA.

One update: collect a [num_steps, num_envs] batch with the current policy (values of the
observations and of the true next observations computed alongside), then the algorithm's
own ``update(ctx, state, traj, hp, key) -> (state, metrics)``. ``make_program`` turns that
into a ``Program`` (engine.program): init, update, evaluate, act. An algorithm supplies
only its update, its extra state (``init_extra``), its optimiser steps per update (for the
learning-rate schedule), whether it needs values at collection, and which parameter
groups the loop's Adam owns (``groups``: TRPO and NPG hand it only the critic and move the
actor by their own natural-gradient step).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import optax
from flax import struct

from purejaxpg.core import rollout
from purejaxpg.core.networks import ACTIVATIONS, TORSOS, Actor, Critic
from purejaxpg.core.optim import clipped_adam
from purejaxpg.engine.program import Policy, Program
from purejaxpg.engine.spec import Spec, static, traced
from purejaxpg.envs import VecEnv, check_env_name


def check_budget(config, hparams) -> None:
    """The env exists and the run holds at least one update of num_envs x num_steps steps."""
    check_env_name(config.env)
    if config.total_timesteps < config.batch_size:
        raise ValueError(f"total_timesteps={config.total_timesteps} is smaller than one update "
                         f"(num_envs x num_steps = {config.num_envs} x {config.num_steps} = {config.batch_size})")


BUDGET = {"batch_size": lambda c: c.num_envs * c.num_steps,  # env steps per update (per run)
          "num_updates": lambda c: c.total_timesteps // (c.num_envs * c.num_steps)}  # rounded down

SPEC = Spec("onpolicy", (
    static("env", "CartPole-v1", "environment (see `purejaxpg list`)"),
    static("num_envs", 16, "parallel environments per seed", bounds="[1, inf)"),
    static("num_steps", 128, "steps per environment per update", bounds="[1, inf)"),
    static("total_timesteps", 1_000_000, "env steps per seed (rounded down to whole updates)", bounds="[1, inf)"),
    static("hidden", (64, 64), "hidden widths of actor and critic (separate networks); empty: linear"),
    static("activation", "tanh", "hidden-layer activation", choices=tuple(ACTIVATIONS)),
    static("torso", "mlp", "network torso; conv for MinAtar's 10x10xC observations", choices=TORSOS),
    static("normalize_obs", False, "running mean/std of observations per seed, in the train state"),
    static("bootstrap_truncation", True, "bootstrap time limits from V(final observation); false treats them "
           "as terminations (biased; for study)"),
    static("anneal_lr", True, "decay the learning rate linearly to 0 over all optimiser steps"),
    static("num_eval_episodes", 16, "final evaluation: one episode in each of this many envs", bounds="[1, inf)"),
    static("eval_greedy", False, "evaluate the policy's mode instead of sampling it"),
    traced("lr", 2.5e-4, "Adam step size (initial, when annealed)", bounds="(0, inf)"),
    traced("gamma", 0.99, "discount", bounds="[0, 1]"),
    traced("max_grad_norm", 0.5, "global gradient-norm clip", bounds="(0, inf)"),
    traced("adam_eps", 1e-5, "Adam epsilon", bounds="(0, inf)"),
    traced("ent_coef", 0.0, "entropy bonus coefficient", bounds="[0, inf)"),
    traced("vf_coef", 0.5, "value-loss weight", bounds="[0, inf)"),
), checks=(check_budget,), derived=BUDGET)


@struct.dataclass
class TrainState:
    params: Any  # {"actor": ..., "critic": ...}
    opt_state: Any
    env: rollout.EnvCarry
    extra: Any  # algorithm state (PPO-KL's beta, reward-scaling statistics, ...)


@dataclass(frozen=True)
class Context:
    """Everything static an algorithm's update needs."""

    config: Any
    venv: VecEnv
    actor: Actor
    critic: Critic
    tx: Any = None
    groups: Optional[tuple] = None  # the parameter groups ``tx`` steps (None: all of them)

    def policy(self, params, obs):
        return self.actor.apply(params["actor"], obs)

    def value(self, params, obs):
        return self.critic.apply(params["critic"], obs)


def build_networks(config, venv: VecEnv):
    spec = venv.action_spec
    actor = Actor(spec.num_actions, spec.discrete, tuple(config.hidden), config.activation, config.torso)
    critic = Critic(tuple(config.hidden), config.activation, config.torso)
    return actor, critic


def make_optimizer(hp: dict, total_grad_steps: int, anneal: bool):
    lr = hp["lr"]
    schedule = (lambda count: lr * (1.0 - count / total_grad_steps)) if anneal else (lambda count: lr)
    return clipped_adam(schedule, hp["max_grad_norm"], hp["adam_eps"])


def select(params: dict, groups: Optional[tuple]) -> dict:
    """The parameter groups ``groups`` of ``params`` (all of them for None)."""
    return params if groups is None else {g: params[g] for g in groups}


def apply_gradients(ctx: Context, state: TrainState, loss_fn, *args):
    """One optimiser step on ``loss_fn(params, *args) -> (loss, aux)``, differentiated
    with respect to the groups ``ctx.tx`` steps (``ctx.groups``; the others held fixed)."""
    if ctx.groups is None:
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, *args)
        updates, opt_state = ctx.tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return state.replace(params=params, opt_state=opt_state), loss, aux
    own = select(state.params, ctx.groups)
    (loss, aux), grads = jax.value_and_grad(lambda p: loss_fn({**state.params, **p}, *args), has_aux=True)(own)
    updates, opt_state = ctx.tx.update(grads, state.opt_state, own)
    params = {**state.params, **optax.apply_updates(own, updates)}
    return state.replace(params=params, opt_state=opt_state), loss, aux


def no_extra(config, hp):
    return ()


def make_program(config, update: Callable, grad_steps: int, init_extra: Callable = no_extra,
                 uses_values: bool = True, groups: Optional[tuple] = None) -> Program:
    """The on-policy ``Program`` of ``config`` around the algorithm's
    ``update(ctx, state, traj, hp, key) -> (state, metrics)``. ``grad_steps``: optimiser
    steps per update; ``init_extra(config, hp)``: the algorithm's own state;
    ``uses_values``: compute V(obs) and V(next_obs) at collection; ``groups``: the
    parameter groups the loop's Adam (``ctx.tx``, ``apply_gradients``) owns, e.g.
    ``("critic",)`` for an algorithm that moves the actor itself (TRPO's natural-gradient
    step); None: all (``{"actor", "critic"}``). Adam's state is kept for those groups only."""
    venv = VecEnv(config.env, config.num_envs)
    eval_env = VecEnv(config.env, config.num_eval_episodes)
    actor, critic = build_networks(config, venv)
    num_updates = config.num_updates

    def policy_fn(params, obs, key):
        dist = actor.apply(params["actor"], obs)
        action = dist.sample(seed=key)
        return action, dist.log_prob(action)

    def greedy_fn(params, obs, key):
        dist = actor.apply(params["actor"], obs)
        action = dist.mode()
        return action, dist.log_prob(action)

    def value_fn(params, obs):
        return critic.apply(params["critic"], obs)

    def setup(hparams):
        hp = {k: jnp.asarray(v, jnp.float32) for k, v in hparams.items()}
        tx = make_optimizer(hp, num_updates * grad_steps, config.anneal_lr)
        return hp, Context(config, venv, actor, critic, tx, groups)

    def init(key, hparams):
        """``(TrainState, loop key, evaluation key)``."""
        hp, ctx = setup(hparams)
        k_actor, k_critic, k_env, k_train, k_eval = jax.random.split(key, 5)
        dummy = jnp.zeros((1,) + venv.obs_shape, jnp.float32)
        params = {"actor": actor.init(k_actor, dummy), "critic": critic.init(k_critic, dummy)}
        state = TrainState(params, ctx.tx.init(select(params, groups)), rollout.reset(venv, k_env, config.normalize_obs),
                           init_extra(config, hp))
        return state, k_train, k_eval

    def step(carry, hparams, i):
        hp, ctx = setup(hparams)
        state, key, k_eval = carry
        key, k_collect, k_update = jax.random.split(key, 3)
        env, traj = rollout.collect(venv, policy_fn, state.params, state.env, k_collect, config.num_steps,
                                    value_fn if uses_values else None)
        if not config.bootstrap_truncation:
            traj = traj._replace(terminated=traj.done)
        state, metrics = update(ctx, state.replace(env=env), traj, hp, k_update)
        return (state, key, k_eval), {**rollout.episode_metrics(traj), **metrics}

    def act(carry) -> Policy:
        state, _, k_eval = carry
        return Policy(greedy_fn if config.eval_greedy else policy_fn, state.params, state.env.obs_rms, k_eval)

    def evaluate(carry, key=None):
        p = act(carry)
        return rollout.evaluate(eval_env, p.fn, p.params, p.obs_rms, p.key if key is None else key)

    def watch(carry, metrics, i):
        """Parameters, optimiser state and every loss stay finite (engine.runner reports the
        first update where one does not)."""
        state = carry[0]
        return state.params, state.opt_state, {k: v for k, v in metrics.items() if "loss" in k}

    # an update's trajectory: obs and next obs plus about a dozen scalars per step, and the
    # algorithm's copies of it (flattened, permuted minibatches): about three times that
    traj_bytes = config.batch_size * (2 * math.prod(venv.obs_shape) + 12) * 4
    return Program(config, init, step, evaluate, act, num_updates, config.batch_size, scratch_bytes=3 * traj_bytes,
                   watch=watch)
