"""The on-policy training loop shared by REINFORCE, A2C and PPO.

``make_onpolicy_train(config, algo)`` builds ``train(key, hparams)``: the whole run — env
reset, ``num_updates`` x (collect a [num_steps, num_envs] batch; algorithm update), then an
evaluation of the final policy — as one pure function, to be ``jit``-ed and ``vmap``-ed.
``algo`` supplies only what is particular to it: ``grad_steps_per_update(config)``,
``init_extra(config, hp)`` (algorithm state such as PPO-KL's beta) and
``update(ctx, state, traj, hp, key) -> (state, metrics)``.
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
from purejaxpg.core.networks import Actor, Critic
from purejaxpg.core.optim import clipped_adam
from purejaxpg.envs import VecEnv, check_env_name


class UpdateBudget:
    """What every algorithm's config shares: an update is ``num_envs x num_steps`` env steps,
    a run ``total_timesteps`` env steps per seed. Mixed into the config dataclasses, which
    define those fields and ``env``."""

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def num_updates(self) -> int:
        return self.total_timesteps // self.batch_size

    def check_budget(self, positive=()) -> None:
        """One-line errors for an unknown env, a field of ``positive`` (plus num_envs and
        num_steps) that is not a positive integer, or a budget smaller than one update."""
        check_env_name(self.env)
        for name in ("num_envs", "num_steps", *positive):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.total_timesteps < self.batch_size:
            raise ValueError(
                f"total_timesteps={self.total_timesteps} is smaller than one update "
                f"(num_envs x num_steps = {self.num_envs} x {self.num_steps} = {self.batch_size})")


@dataclass(frozen=True)
class OnPolicyConfig(UpdateBudget):
    """Static settings: they fix array shapes and the program's structure."""

    env: str = "CartPole-v1"
    num_envs: int = 16  # parallel environments per seed
    num_steps: int = 128  # steps per environment per update (T)
    total_timesteps: int = 1_000_000  # env steps per seed (rounded down to whole updates)
    hidden: tuple = (64, 64)  # hidden widths of actor and critic (separate networks); () is linear
    activation: str = "tanh"
    torso: str = "mlp"  # "conv" for MinAtar's 10x10xC observations
    normalize_obs: bool = False  # running mean/std per seed, kept in the train state
    bootstrap_truncation: bool = True  # False: treat time limits as terminations (biased; for study)
    anneal_lr: bool = True  # linear decay to 0 over all optimiser steps
    num_eval_episodes: int = 16  # final evaluation: one episode in each of this many envs
    eval_greedy: bool = False  # evaluate the mode of the policy instead of sampling
    progress_every: int = 0  # host callback cadence in updates; 0 picks about 20 per run

    def validate(self) -> None:
        self.check_budget(("num_eval_episodes",))
        if any(int(h) <= 0 for h in self.hidden):
            raise ValueError(f"hidden widths must be positive, got {self.hidden} (empty: a linear policy)")


BASE_HPARAMS = {
    "lr": 2.5e-4,  # Adam step size (initial, when annealed)
    "gamma": 0.99,
    "max_grad_norm": 0.5,  # global gradient-norm clip
    "adam_eps": 1e-5,
    "ent_coef": 0.0,  # entropy bonus
    "vf_coef": 0.5,  # value-loss weight
}


def check_hparams(hparams: dict, defaults: dict) -> dict:
    """Fill defaults, refuse unknown names and non-finite or out-of-range values."""
    unknown = set(hparams) - set(defaults)
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {sorted(unknown)}; valid: {', '.join(sorted(defaults))}")
    out = {**defaults, **hparams}
    for k, v in out.items():
        arr = jnp.asarray(v)
        if not bool(jnp.all(jnp.isfinite(arr))):
            raise ValueError(f"hyperparameter {k} must be finite, got {v}")
    for k in ("lr", "max_grad_norm", "adam_eps"):
        if k in out and not bool(jnp.all(jnp.asarray(out[k]) > 0)):
            raise ValueError(f"hyperparameter {k} must be > 0, got {out[k]}")
    if "gamma" in out and not bool(jnp.all((jnp.asarray(out["gamma"]) >= 0) & (jnp.asarray(out["gamma"]) <= 1))):
        raise ValueError(f"gamma must lie in [0, 1], got {out['gamma']}")
    return out


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

    def policy(self, params, obs):
        return self.actor.apply(params["actor"], obs)

    def value(self, params, obs):
        return self.critic.apply(params["critic"], obs)


def make_optimizer(hp: dict, total_grad_steps: int, anneal: bool):
    lr = hp["lr"]
    schedule = (lambda count: lr * (1.0 - count / total_grad_steps)) if anneal else (lambda count: lr)
    return clipped_adam(schedule, hp["max_grad_norm"], hp["adam_eps"])


def build_networks(config, venv: VecEnv):
    spec = venv.action_spec
    actor = Actor(spec.num_actions, spec.discrete, tuple(config.hidden), config.activation, config.torso)
    critic = Critic(tuple(config.hidden), config.activation, config.torso)
    return actor, critic


def progress_cadence(config) -> int:
    # ~200 us per call and seed on 2 CPU cores (benchmarks/progress_overhead.py): 100 calls per
    # run cost 8-12% of a 4-s 16-seed A2C run; 20 keep it near 2% there, well under on 1e6-step runs
    return config.progress_every or max(1, math.ceil(config.num_updates / 20))


def make_onpolicy_train(config, algo, callback: Optional[Callable] = None):
    """Build ``train(key, hparams) -> dict`` (pure; jit/vmap-able).

    Output: ``{"state": TrainState, "metrics": {name: [num_updates]},
    "eval_returns": [num_eval_episodes]}``. ``callback(update_index, metrics)``, if
    given, is called from inside the program every ``progress_cadence(config)`` updates.
    """
    config.validate()
    venv = VecEnv(config.env, config.num_envs)
    eval_env = VecEnv(config.env, config.num_eval_episodes)
    actor, critic = build_networks(config, venv)
    num_updates = config.num_updates
    every = progress_cadence(config)
    uses_values = getattr(algo, "uses_values", lambda c: True)(config)

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
        tx = make_optimizer(hp, num_updates * algo.grad_steps_per_update(config), config.anneal_lr)
        return hp, Context(config, venv, actor, critic, tx)

    def init(key, hparams):
        """The carry a run starts from: ``(TrainState, loop key, evaluation key)``."""
        hp, ctx = setup(hparams)
        k_actor, k_critic, k_env, k_train, k_eval = jax.random.split(key, 5)
        dummy = jnp.zeros((1,) + venv.obs_shape, jnp.float32)
        params = {"actor": actor.init(k_actor, dummy), "critic": critic.init(k_critic, dummy)}
        state = TrainState(params, ctx.tx.init(params), rollout.reset(venv, k_env, config.normalize_obs),
                           algo.init_extra(config, hp))
        return state, k_train, k_eval

    def run_updates(carry, hparams, start, n: int):
        """Updates ``start .. start + n - 1`` (``n`` static, ``start`` traced and unbatched):
        ``init`` then ``run_updates`` over consecutive chunks is the whole training scan."""
        hp, ctx = setup(hparams)
        state, key, k_eval = carry

        def update_step(carry, i):
            state, key = carry
            key, k_collect, k_update = jax.random.split(key, 3)
            env, traj = rollout.collect(venv, policy_fn, state.params, state.env, k_collect,
                                        config.num_steps, value_fn if uses_values else None)
            if not config.bootstrap_truncation:
                traj = traj._replace(terminated=traj.done)
            state, metrics = algo.update(ctx, state.replace(env=env), traj, hp, k_update)
            metrics = {**rollout.episode_metrics(traj), **metrics}
            if callback is not None:
                jax.lax.cond(((i + 1) % every == 0) | (i + 1 == num_updates),
                             lambda: jax.debug.callback(callback, i, metrics), lambda: None)
            return (state, key), metrics

        (state, key), metrics = jax.lax.scan(update_step, (state, key), start + jnp.arange(n))
        return (state, key, k_eval), metrics

    def eval_policy(carry):
        """``(policy_fn, params, obs_rms, key)``: how ``evaluate`` plays the policy in ``carry``
        (also used by purejaxpg.analysis.render to record an episode the same way)."""
        state, _, k_eval = carry
        return (greedy_fn if config.eval_greedy else policy_fn), state.params, state.env.obs_rms, k_eval

    def evaluate(carry, key=None):
        """[num_eval_episodes] returns of the policy in ``carry`` (with its evaluation key)."""
        act, params, obs_rms, k_eval = eval_policy(carry)
        return rollout.evaluate(eval_env, act, params, obs_rms, k_eval if key is None else key)

    def train(key, hparams):
        carry = init(key, hparams)
        carry, metrics = run_updates(carry, hparams, 0, num_updates)
        return {"state": carry[0], "metrics": metrics, "eval_returns": evaluate(carry)}

    # The pieces of ``train`` for chunked runs with checkpoints (purejaxpg.engine.sweep).
    train.init, train.run_updates, train.evaluate = init, run_updates, evaluate
    train.num_updates = num_updates
    train.eval_policy = eval_policy
    return train


def apply_gradients(ctx: Context, state: TrainState, loss_fn, *args):
    """One optimiser step on ``loss_fn(params, *args) -> (loss, aux)``."""
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, *args)
    updates, opt_state = ctx.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return state.replace(params=params, opt_state=opt_state), loss, aux

