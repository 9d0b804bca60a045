"""A Brax-style physics task (MuJoCo Playground, Brax) as a gymnax 1.x environment.

Playground's and Brax's environments share one shape: ``reset(rng) -> State`` and
``step(State, action) -> State``, where ``State`` carries ``obs`` (an array or a dict of
arrays), ``reward``, ``done`` (a float: the task ended, e.g. the body fell or the
simulation diverged) and whatever the task keeps (physics data, ``metrics``, ``info``).
Neither has a time limit nor resets itself. ``PhysicsEnv`` adds what the engine's
``VecEnv`` expects of a gymnax 1.x environment:

* **a time limit**: ``max_steps_in_episode`` agent steps (the task's ``episode_length``
  divided by ``action_repeat``). Reaching it is a *truncation*; the task's own ``done`` is a
  *termination*. A step that does both reports the termination only, as the discount is 0
  either way;
* **automatic resets**: on either, the next observation comes from a fresh ``reset`` (a new
  random initial state; ``reset="first"`` instead restarts from the env's first initial
  state, which is what Brax's and Playground's training wrappers do by default and saves the
  cost of a reset per step), and ``info["final_observation"]`` holds the observation the
  step reached, the one to bootstrap a truncation from;
* **flat float32 observations**: a dict observation is flattened and concatenated in key
  order;
* **actions in [-1, 1]**: both suites take actions in [-1, 1] (a Brax env rescales them to
  its actuators itself), so the action space is that box;
* **action repeat**: the same action ``action_repeat`` times, rewards summed, stopping at a
  termination.

Nothing here imports MuJoCo, Brax or Playground: ``purejaxpg.envs.playground`` and
``purejaxpg.envs.brax`` build the task and hand it over.
"""
from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from purejaxpg.envs.gymnax import import_gymnax

import_gymnax()  # first: gymnax without its plotting modules
from gymnax.environments import environment, spaces

RESETS = ("random", "first")


@struct.dataclass
class PhysicsState(environment.EnvState):
    inner: Any  # the task's own State, as the tuple of its non-empty leaves (``PhysicsEnv.task_state``)
    first: Any = None  # reset="first": the task's first initial state, packed the same way (else None)


@struct.dataclass
class PhysicsParams(environment.EnvParams):
    max_steps_in_episode: int = 1000


def positive_ints(opts: dict, name: str, defaults: dict) -> dict:
    """The options of ``defaults`` as integers >= 1 (a default of None: only if given);
    a one-line ValueError naming ``name`` otherwise."""
    out = {}
    for key, default in defaults.items():
        if key not in opts and default is None:
            continue
        try:
            out[key] = int(opts.get(key, default))
        except (TypeError, ValueError):
            raise ValueError(f"{key} must be an integer in {name!r}, got {opts[key]!r}") from None
        if out[key] < 1:
            raise ValueError(f"{key} must be positive in {name!r}, got {out[key]}")
    return out


def flatten_obs(obs) -> jax.Array:
    """An observation (array, or dict of arrays in key order) as one float32 vector."""
    if isinstance(obs, dict):
        return jnp.concatenate([flatten_obs(obs[k]) for k in sorted(obs)])
    return jnp.asarray(obs, jnp.float32).reshape(-1)


class PhysicsEnv(environment.Environment):
    """``task`` (Brax-style ``reset``/``step``) with a time limit, automatic resets and flat
    observations, as a gymnax 1.x environment (``step`` returns six values and resets).

    ``episode_length``: the task's time limit in its own control steps; with
    ``action_repeat`` > 1 an agent step is ``action_repeat`` of them, so an episode lasts
    ``ceil(episode_length / action_repeat)`` agent steps. ``action_size``: the number of
    actuators. ``name``: shown in errors and summaries. ``shared_buffers``: the task's State
    may hold arrays shared by all the envs of a vmap (MJX on Warp); a vmapped reset is traced
    once to find them."""

    def __init__(self, task, action_size: int, episode_length: int, action_repeat: int = 1,
                 reset: str = "random", name: str = "physics", shared_buffers: bool = False):
        super().__init__()
        if reset not in RESETS:
            raise ValueError(f"reset must be one of {', '.join(RESETS)}, got {reset!r}")
        if int(episode_length) < 1 or int(action_repeat) < 1:
            raise ValueError(f"episode_length and action_repeat must be positive, got {episode_length}, "
                             f"{action_repeat}")
        self.task = task
        self.action_size = int(action_size)
        self.action_repeat = int(action_repeat)
        self.reset_mode = reset
        self._name = name
        self._params = PhysicsParams(max_steps_in_episode=math.ceil(int(episode_length) / self.action_repeat))
        # The task's reset and step, each behind a jit of its own: JAX traces a jitted function
        # once per input shape and reuses that trace, and a physics step is slow to trace (MJX's:
        # about half a second) while the runner's shape checks and programs call it many times
        # (benchmarks/NOTES.md, "Tracing a physics task"). ``inline`` puts the traced operations
        # into the calling program, which is then op for op what calling the task directly gives
        # (the same numbers; tests/test_physics.py).
        self._task_reset, self._task_step = jax.jit(task.reset, inline=True), jax.jit(task.step, inline=True)
        abstract = jax.eval_shape(self._task_reset, jax.random.PRNGKey(0))
        self.obs_size = int(jax.eval_shape(flatten_obs, abstract.obs).shape[0])
        # The task's State is carried as its non-empty leaves that hold one value per env:
        # MJX data has zero-size arrays (no contacts, no mocap bodies), which orbax cannot
        # checkpoint, and MJX on Warp keeps its contact buffers and counters shared by all the
        # envs of a vmap (they come out of a vmapped reset without a batch axis; a batch axis
        # there makes Warp refuse them). Those buffers are rewritten by every physics step, so
        # they are not carried: each step starts from fresh zeros.
        leaves, self._treedef = jax.tree_util.tree_flatten(abstract)
        self._leaves = [(tuple(x.shape), x.dtype) for x in leaves]
        self._per_env = [True] * len(leaves)
        if shared_buffers:
            two = jax.eval_shape(jax.vmap(self._task_reset), jax.random.split(jax.random.PRNGKey(0), 2))
            self._per_env = [tuple(b.shape) == (2,) + shape
                             for b, (shape, _) in zip(jax.tree_util.tree_leaves(two), self._leaves)]
        self._carried = [own and math.prod(shape) > 0 for own, (shape, _) in zip(self._per_env, self._leaves)]

    @property
    def name(self) -> str:
        return self._name

    @property
    def default_params(self) -> PhysicsParams:
        return self._params

    def action_space(self, params=None):
        return spaces.Box(-1.0, 1.0, (self.action_size,), jnp.float32)

    def observation_space(self, params=None):
        return spaces.Box(-jnp.inf, jnp.inf, (self.obs_size,), jnp.float32)

    @staticmethod
    def _task_key(key):
        """A raw (uint32) key for the task: Playground keeps its key in the state, and a typed
        key there (SAC draws with core/prng.py's Philox) would be a leaf of a key dtype."""
        if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
            return jax.random.bits(key, (2,), jnp.uint32)
        return key

    def _pack(self, inner) -> tuple:
        return tuple(x for x, kept in zip(jax.tree_util.tree_leaves(inner), self._carried) if kept)

    def task_state(self, state: PhysicsState):
        """The task's own State inside ``state`` (one env's; ``jax.vmap`` it for a batch)."""
        packed = iter(state.inner)
        leaves = [next(packed) if kept else jnp.zeros(shape, dtype)
                  for kept, (shape, dtype) in zip(self._carried, self._leaves)]
        return jax.tree_util.tree_unflatten(self._treedef, leaves)

    def reset(self, key, params=None):
        inner = self._pack(self._task_reset(self._task_key(key)))
        first = inner if self.reset_mode == "first" else None
        return self._obs(inner), PhysicsState(time=jnp.int32(0), inner=inner, first=first)

    def _obs(self, packed) -> jax.Array:
        return flatten_obs(self.task_state(PhysicsState(time=0, inner=packed)).obs)

    def _advance(self, inner, action):
        """``action_repeat`` task steps; rewards summed; a termination stops the repeat."""
        if self.action_repeat == 1:
            new = self._task_step(inner, action)
            return new, jnp.asarray(new.reward, jnp.float32), jnp.asarray(new.done) > 0.5

        def body(carry, _):
            s, total, ended = carry
            new = self._task_step(s, action)
            # an ended env keeps its state; a buffer shared by all envs is the step's
            s = jax.tree_util.tree_unflatten(self._treedef, [
                jnp.where(ended, old, nxt).astype(jnp.result_type(nxt)) if own else nxt
                for old, nxt, own in zip(jax.tree_util.tree_leaves(s), jax.tree_util.tree_leaves(new), self._per_env)])
            total = total + jnp.where(ended, 0.0, jnp.asarray(new.reward, jnp.float32))
            return (s, total, ended | (jnp.asarray(new.done) > 0.5)), None

        (s, total, ended), _ = jax.lax.scan(body, (inner, jnp.float32(0.0), jnp.bool_(False)), None,
                                            length=self.action_repeat)
        return s, total, ended

    def step(self, key, state: PhysicsState, action, params=None):
        params = self._params if params is None else params
        action = jnp.asarray(action, jnp.float32).reshape(self.action_size)
        inner, reward, terminated = self._advance(self.task_state(state), action)
        inner = self._pack(inner)
        time = state.time + 1
        truncated = (time >= params.max_steps_in_episode) & ~terminated
        done = terminated | truncated
        final_obs = self._obs(inner)
        restart = state.first if self.reset_mode == "first" else self._pack(self._task_reset(self._task_key(key)))
        # the task's State after a reset, field by field where the episode ended
        inner = jax.tree.map(lambda r, s: jnp.where(done, r, s).astype(jnp.result_type(s)), restart, inner)
        obs = self._obs(inner)
        new_state = PhysicsState(time=jnp.where(done, 0, time).astype(jnp.int32), inner=inner, first=state.first)
        info = {"final_observation": final_obs}
        return obs, new_state, reward, terminated, truncated, info
