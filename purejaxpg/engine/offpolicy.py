"""The off-policy loop: a replay buffer inside the compiled program (SAC).

One update

1. steps ``num_envs`` environments ``num_steps`` times (uniform random actions while
   fewer than ``learning_starts`` env steps have been taken, then the agent's exploration
   policy) and writes the ``num_envs x num_steps`` transitions into the buffer (a ring per
   run, in the carry; truncated episodes keep the observation before the reset as their
   next observation, so they bootstrap);
2. takes ``grad_steps`` gradient steps, each on ``minibatch_size`` transitions drawn
   uniformly from the buffer (replay ratio = grad_steps / (num_envs x num_steps)): one
   gradient of the agent's summed losses, Adam on all parameters at once with a learning
   rate per parameter group, then the target parameters move by Polyak averaging (``tau``).

Observations are stored raw; with ``normalize_obs`` a running mean/std (in the carry)
normalises them whenever a network sees them, so old and new entries are treated alike.
An algorithm supplies an ``Agent``: its parameters, how it acts, and its loss.
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.flatten_util import ravel_pytree

from purejaxpg.core import prng, replay, rollout
from purejaxpg.core.losses import polyak_update
from purejaxpg.core.networks import ACTIVATIONS
from purejaxpg.core.normalize import RunningMeanStd
from purejaxpg.core.optim import clipped_adam
from purejaxpg.engine.onpolicy import BUDGET, check_budget
from purejaxpg.engine.program import Policy, Program
from purejaxpg.engine.spec import Spec, static, traced
from purejaxpg.envs import VecEnv


def check(config, hparams) -> None:
    check_budget(config, hparams)
    if config.buffer_size < max(config.minibatch_size, config.batch_size):
        raise ValueError(f"buffer_size={config.buffer_size} is smaller than minibatch_size={config.minibatch_size} "
                         f"or the env steps of one update (num_envs x num_steps = {config.batch_size})")
    if config.num_warmup_updates >= config.num_updates:
        raise ValueError(f"learning_starts={config.learning_starts} leaves no update for learning: random actions "
                         f"fill the first {config.num_warmup_updates} of {config.num_updates} updates "
                         f"({config.batch_size} env steps each); lower it or raise total_timesteps")


# Random numbers inside the program: "philox4x32" is purejaxpg.core.prng's counter-based
# generator (unrolled, it fuses with its consumers; it compiles when partitioned over
# devices); "threefry2x32" is jax.random's default.
RNG_IMPLS = ("philox4x32", "threefry2x32")
# XLA:CPU options for these programs: each matmul goes to YNNPACK on its own, where by default
# XLA fuses the elementwise work around it (activation gradients, reductions) into YNNPACK
# graphs that run it slower than XLA's own loops. SAC at rejax's Pendulum settings runs about
# 20% faster; PPO's programs do not gain (benchmarks/NOTES.md, "Compile options").
CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}

SPEC = Spec("offpolicy", (
    static("env", "Pendulum-v1", "environment (see `purejaxpg list`)"),
    static("num_envs", 1, "parallel environments per seed", bounds="[1, inf)"),
    static("num_steps", 1, "env steps per environment per update", bounds="[1, inf)"),
    static("grad_steps", 1, "gradient steps per update; replay ratio = grad_steps / (num_envs x num_steps)",
           bounds="[1, inf)"),
    static("total_timesteps", 20_000, "env steps per seed (rounded down to whole updates)", bounds="[1, inf)"),
    static("buffer_size", 100_000, "transitions kept per seed (a ring: the oldest go first)", bounds="[1, inf)"),
    static("minibatch_size", 256, "transitions per gradient step", bounds="[1, inf)"),
    static("learning_starts", 1_000, "env steps per seed of uniform random actions before learning",
           bounds="[0, inf)"),
    static("hidden", (256, 256), "hidden widths of every network"),
    static("activation", "relu", "hidden-layer activation", choices=tuple(ACTIVATIONS)),
    static("normalize_obs", False, "running mean/std of observations per seed, in the train state"),
    static("bootstrap_truncation", True, "bootstrap time limits from the stored final observation; false "
           "treats them as terminations (biased; for study)"),
    static("num_eval_episodes", 16, "final evaluation: one episode in each of this many envs", bounds="[1, inf)"),
    static("eval_greedy", True, "evaluate the policy's mode (tanh of the mean; argmax) instead of sampling"),
    static("rng_impl", "philox4x32", "random number generator inside the program", choices=RNG_IMPLS),
    traced("gamma", 0.99, "discount", bounds="[0, 1]"),
    traced("tau", 0.005, "Polyak step of the target parameters per gradient step", bounds="(0, 1]"),
    traced("adam_eps", 1e-8, "Adam epsilon", bounds="(0, inf)"),
), checks=(check,), derived={
    **BUDGET,
    "num_warmup_updates": lambda c: math.ceil(c.learning_starts / (c.num_envs * c.num_steps)),
    "replay_ratio": lambda c: c.grad_steps / (c.num_envs * c.num_steps),
})


class Agent(NamedTuple):
    """What an off-policy algorithm supplies. ``params`` is a dict of parameter groups."""

    init: Callable  # (key, obs [1, *obs], action [1, ...], hp) -> params
    explore: Callable  # (params, obs, key) -> (action, log_prob): the behaviour policy
    greedy: Callable  # (params, obs, key) -> (action, log_prob): evaluated with eval_greedy
    loss: Callable  # (params, target, batch, key, hp) -> (loss, metrics); stop-gradients keep parts apart
    target: str  # the parameter group tracked by Polyak-averaged target parameters
    learning_rates: dict  # parameter group -> the hyperparameter that is its learning rate


@struct.dataclass
class State:
    params: Any
    target: Any
    opt_state: Any  # Adam over all of params as one flat vector
    env: rollout.EnvCarry
    buffer: replay.ReplayBuffer
    obs_rms: Optional[RunningMeanStd]  # None when observation normalisation is off


def buffer_entry(venv: VecEnv) -> dict:
    """Shapes and dtypes of one stored transition."""
    spec = venv.action_spec
    obs = jax.ShapeDtypeStruct(venv.obs_shape, jnp.float32)
    action = jax.ShapeDtypeStruct((), jnp.int32) if spec.discrete else jax.ShapeDtypeStruct((spec.num_actions,),
                                                                                            jnp.float32)
    scalar = jax.ShapeDtypeStruct((), jnp.float32)
    return {"obs": obs, "action": action, "reward": scalar, "terminated": jax.ShapeDtypeStruct((), jnp.bool_),
            "next_obs": obs}


def make_program(config, make_agent: Callable) -> Program:
    """The off-policy ``Program`` of ``config``; ``make_agent(config, venv) -> Agent``."""
    venv = VecEnv(config.env, config.num_envs)
    eval_env = VecEnv(config.env, config.num_eval_episodes)
    spec = venv.action_spec
    if not spec.discrete and not (np.all(np.isfinite(spec.low)) and np.all(np.isfinite(spec.high))):
        raise ValueError(f"{config.env}: an off-policy agent needs a Box action space with finite bounds")
    agent = make_agent(config, venv)
    num_warmup, normalize = config.num_warmup_updates, config.normalize_obs
    impl = prng.impl() if config.rng_impl == "philox4x32" else config.rng_impl

    def wrap(data):
        return jax.random.wrap_key_data(data, impl=impl)

    def norm(rms, obs):
        return obs if rms is None else rms.normalize(obs)

    def random_policy(params, obs, key):
        n = obs.shape[0]
        if spec.discrete:
            return jax.random.randint(key, (n,), 0, spec.num_actions), jnp.zeros(n)
        return jax.random.uniform(key, (n, spec.num_actions), minval=-1.0, maxval=1.0), jnp.zeros(n)

    def acting(fn):  # policy params are (params, obs_rms): observations are normalised here
        return lambda p, obs, key: fn(p[0], norm(p[1], obs), key)

    def collect(state: State, key, policy):
        env, traj = rollout.collect(venv, policy, (state.params, state.obs_rms), state.env, key, config.num_steps)
        terminated = traj.terminated if config.bootstrap_truncation else traj.done
        flat = lambda x: x.reshape((-1,) + x.shape[2:])
        entries = {"obs": flat(traj.obs), "action": flat(traj.action), "reward": flat(traj.reward),
                   "terminated": flat(terminated), "next_obs": flat(traj.next_obs)}
        rms = state.obs_rms.update(entries["next_obs"]) if normalize else None
        state = state.replace(env=env, buffer=replay.add(state.buffer, entries), obs_rms=rms)
        return state, rollout.episode_metrics(traj)

    def optimizer(params, hp):
        """Adam over the flat parameter vector, each group with its own learning rate."""
        lr = ravel_pytree({g: jax.tree_util.tree_map(lambda p: jnp.full(p.shape, hp[agent.learning_rates[g]]), v)
                           for g, v in params.items()})[0]
        return clipped_adam(lambda count: lr, None, hp["adam_eps"])

    def grad_step(state: State, key, hp):
        k_sample, k_loss = jax.random.split(key)
        batch = replay.sample(state.buffer, k_sample, config.minibatch_size)
        if normalize:
            batch = {**batch, "obs": state.obs_rms.normalize(batch["obs"]),
                     "next_obs": state.obs_rms.normalize(batch["next_obs"])}
        grads, metrics = jax.grad(agent.loss, has_aux=True)(state.params, state.target, batch, k_loss, hp)
        flat, unravel = ravel_pytree(state.params)
        updates, opt_state = optimizer(state.params, hp).update(ravel_pytree(grads)[0], state.opt_state)
        params = unravel(flat + updates)
        target = polyak_update(state.target, params[agent.target], hp["tau"])
        return state.replace(params=params, opt_state=opt_state, target=target), metrics

    def learn(state, key, hp):
        key, k_collect, k_grad = jax.random.split(key, 3)
        state, ep = collect(state, k_collect, acting(agent.explore))
        if config.grad_steps == 1:
            state, m = grad_step(state, k_grad, hp)
        else:
            state, m = jax.lax.scan(lambda s, k: grad_step(s, k, hp), state, jax.random.split(k_grad, config.grad_steps))
            m = jax.tree_util.tree_map(lambda x: x.mean(0), m)
        return state, key, {**ep, **m}

    def warmup(state, key, hp):  # random actions, no learning: the learning metrics are NaN
        key, k_collect = jax.random.split(key)
        state, ep = collect(state, k_collect, random_policy)
        shapes = jax.eval_shape(learn, state, key, hp)[2]
        return state, key, {**ep, **{k: jnp.full(v.shape, jnp.nan, v.dtype) for k, v in shapes.items() if k not in ep}}

    def init(key, hparams):
        """``(State, loop key data, evaluation key data)``; keys are raw uint32 (checkpointable)."""
        hp = {k: jnp.asarray(v, jnp.float32) for k, v in hparams.items()}
        key = wrap(jax.random.bits(key, (2,), jnp.uint32))
        k_params, k_env, k_train, k_eval = jax.random.split(key, 4)
        obs = jnp.zeros((1,) + venv.obs_shape, jnp.float32)
        action = jnp.zeros((1,), jnp.int32) if spec.discrete else jnp.zeros((1, spec.num_actions))
        params = agent.init(k_params, obs, action, hp)
        env = rollout.reset(venv, k_env, False)
        rms = RunningMeanStd.create(venv.obs_shape).update(env.obs) if normalize else None
        opt_state = optimizer(params, hp).init(ravel_pytree(params)[0])
        state = State(params, params[agent.target], opt_state, env, replay.init(buffer_entry(venv), config.buffer_size),
                      rms)
        return state, jax.random.key_data(k_train), jax.random.key_data(k_eval)

    def update(carry, hparams, i):
        """A warm-up update (random actions) while ``i < num_warmup_updates``, then learning;
        ``i`` is the same for every run, so the conditional stays one under vmap."""
        hp = {k: jnp.asarray(v, jnp.float32) for k, v in hparams.items()}
        state, key_data, k_eval = carry
        if num_warmup:
            state, key, metrics = jax.lax.cond(i < num_warmup, warmup, learn, state, wrap(key_data), hp)
        else:
            state, key, metrics = learn(state, wrap(key_data), hp)
        return (state, jax.random.key_data(key), k_eval), metrics

    def act(carry) -> Policy:
        state, _, k_eval = carry
        # rollout.evaluate normalises observations itself with the frozen statistics
        return Policy(agent.greedy if config.eval_greedy else agent.explore, state.params, state.obs_rms, wrap(k_eval))

    def evaluate(carry, key=None):
        p = act(carry)
        return rollout.evaluate(eval_env, p.fn, p.params, p.obs_rms, p.key if key is None else key)

    def carry_axes(carry):
        """The buffer's write position and size stay unbatched (see replay.add)."""
        state = jax.tree_util.tree_map(lambda _: 0, carry[0])
        return state.replace(buffer=state.buffer.replace(pos=None, size=None)), 0, 0

    def watch(carry, metrics, i):
        """Parameters, target parameters, optimiser state and, once learning has started, the
        losses stay finite (the replay buffer is not scanned; warm-up losses are NaN by design)."""
        state = carry[0]
        learning = i >= num_warmup
        losses = {k: jnp.where(learning, v, 0.0) for k, v in metrics.items() if "loss" in k}
        return state.params, state.target, state.opt_state, losses

    entry = replay.entry_bytes(buffer_entry(venv))
    return Program(config, init, update, evaluate, act, config.num_updates, config.batch_size, carry_axes,
                   scratch_bytes=4 * config.minibatch_size * entry, watch=watch, cpu_compiler_options=CPU_OPTIONS)
