"""Environments: gymnax 1.x behind one vectorised interface.

``make_env(name, **kwargs)`` returns ``(env, params)`` for every gymnax environment that
works offline. ``VecEnv`` batches ``num_envs`` copies, flattens observations to float32,
maps policy actions onto a Box's bounds and keeps per-episode statistics, so that an
algorithm sees::

    obs, state = venv.reset(key)                       # obs [N, *obs_shape]
    obs, state, reward, terminated, truncated, info = venv.step(key, state, action)

``info`` holds ``final_observation`` (the observation before the automatic reset, which is
the true next observation on every step), ``returned_episode`` (an episode ended on this
step), ``episode_return`` / ``episode_length`` (of that episode; valid only where
``returned_episode``) and ``episode_step`` (the index, within its episode, of the step
just taken). Each finished episode is reported exactly once, on its last step.

Observation normalisation lives in the train state (``purejaxpg.core.normalize``), not here.
"""
from __future__ import annotations

import functools
import importlib
import sys
import types
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from purejaxpg.envs.suites import SUITES, suite_of

# gymnax 1.0 imports these when it is imported, for renderers purejaxpg never calls
_PLOTTING = ("seaborn", "matplotlib.pyplot")


class _ImportedOnFirstUse(types.ModuleType):
    """Stands in for the module ``name`` in gymnax's namespace: the first attribute read
    imports the real module (``importlib.import_module``) and reads it there."""

    def __getattr__(self, attr):
        return getattr(importlib.import_module(self.__name__), attr)


def import_gymnax():
    """``import gymnax``, without importing ``_PLOTTING`` with it.

    While gymnax is imported, each of those not imported yet is a ``_ImportedOnFirstUse``
    in ``sys.modules``; afterwards they are taken out, so that gymnax's modules hold the
    stand-ins and everything else imports the real modules as before. Importing them took
    1.3-1.4 s of every process that makes an environment, more than the rest of gymnax
    (benchmarks/NOTES.md, "Start-up: gymnax's plotting imports"). tests/test_envs.py
    (test_gymnax_is_imported_without_its_plotting_modules) shows both."""
    if "gymnax" in sys.modules:
        return sys.modules["gymnax"]
    placed = [name for name in _PLOTTING if name not in sys.modules]
    for name in placed:
        sys.modules[name] = _ImportedOnFirstUse(name)
    try:
        return importlib.import_module("gymnax")
    finally:
        for name in placed:
            if isinstance(sys.modules.get(name), _ImportedOnFirstUse):
                del sys.modules[name]


# MNISTBandit needs a data download; everything else in gymnax works offline.
_UNAVAILABLE = {"MNISTBandit-bsuite": "needs a dataset download"}


# Environments added with ``register_env``: name -> factory(**kwargs) -> (env, params).
_REGISTRY: dict[str, Any] = {}


def register_env(name: str, factory) -> None:
    """Make a gymnax-API environment available under ``name`` (to every algorithm and the
    CLI of this process). ``factory(**kwargs)`` returns ``(env, params)``; the env must
    follow gymnax 1.x (``step`` returns six values and resets automatically)."""
    _REGISTRY[name] = factory


# Modules of this package that register environments when imported. They are imported
# lazily, on first use of ``env_names`` / ``check_env_name`` / ``make_env`` (not at import
# time of this module, which they import themselves), so ``--env Tabular-Random`` works
# without the caller importing ``purejaxpg.envs.tabular`` first.
_REGISTERING_MODULES = ("purejaxpg.envs.tabular",)


def _import_registering_modules() -> None:
    import importlib

    for module in _REGISTERING_MODULES:
        importlib.import_module(module)


def env_names() -> list[str]:
    """Names accepted by ``make_env``."""
    gymnax = import_gymnax()
    _import_registering_modules()
    return [n for n in gymnax.registered_envs if n not in _UNAVAILABLE] + sorted(_REGISTRY)


def check_env_name(name: str) -> None:
    """Raise ``ValueError`` naming the valid choices if ``name`` is not usable."""
    if name in _UNAVAILABLE:
        raise ValueError(f"environment {name!r} is not supported: {_UNAVAILABLE[name]}")
    suite = suite_of(name)
    if suite is not None:  # playground/..., brax/...: imports the suite only now (envs/suites.py)
        suite.load().check(name)
        return
    if ":" in name:
        _user_env(name)
        return
    valid = env_names()
    if name not in valid:
        raise ValueError(f"unknown environment {name!r}; valid names: {', '.join(valid)}, or module:attribute "
                         f"(your own gymnax-style environment), or {' or '.join(p + '/TASK' for p in SUITES)} "
                         f"(`purejaxpg list` shows the tasks)")


def _split(params, kwargs: dict) -> tuple:
    """(constructor keyword arguments, parameter replacements): keyword arguments that name a
    field of the env's ``params`` replace it, the others go to the env's constructor."""
    fields = set(getattr(params, "__dataclass_fields__", {}))
    return ({k: v for k, v in kwargs.items() if k not in fields}, {k: v for k, v in kwargs.items() if k in fields})


def _user_env(name: str):
    """``module:attribute`` -> factory(**kwargs) -> (env, params). The attribute is a gymnax
    ``Environment`` subclass (constructed with the keyword arguments that are not fields of
    its params), an instance, or a factory returning ``(env, params)``."""
    Environment = import_gymnax().environments.environment.Environment

    module, _, attr = name.partition(":")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise ValueError(f"cannot load environment {name!r}: {type(e).__name__}: {e}") from None
    if isinstance(obj, Environment):
        return lambda **kw: (obj, obj.default_params.replace(**kw))
    if isinstance(obj, type) and issubclass(obj, Environment):
        def make(**kw):
            ctor, own = _split(obj().default_params, kw)
            env = obj(**ctor)
            return env, env.default_params.replace(**own)
        return make
    if callable(obj):
        return obj
    raise ValueError(f"environment {name!r} is a {type(obj).__name__}: give a gymnax Environment subclass, an "
                     f"instance, or a factory returning (env, params)")


def make_env(name: str, **kwargs: Any):
    """Build an environment and its parameters: a gymnax name, a name added with
    ``register_env``, ``module:attribute`` (your own gymnax-style environment), or a suite's
    ``playground/TASK`` / ``brax/NAME`` (options after ``@``: ``purejaxpg.envs.suites``).

    Keyword arguments that name a field of the environment's ``EnvParams`` (for example
    ``max_steps_in_episode``) replace that parameter; the rest go to the constructor.
    """
    gymnax = import_gymnax()
    check_env_name(name)
    if suite_of(name) is not None:
        return _suite_env(name, **kwargs)
    if ":" in name:
        return _user_env(name)(**kwargs)
    if name in _REGISTRY:
        return _REGISTRY[name](**kwargs)
    probe_env, probe_params = gymnax.make(name)
    ctor, own = _split(probe_params, kwargs)
    env, params = (probe_env, probe_params) if not ctor else gymnax.make(name, **ctor)
    return env, params.replace(**own) if own else params


@functools.lru_cache(maxsize=16)
def _suite_env(name: str, **kwargs: Any):
    """A suite's environment, built once per process for each name and options: loading a
    physics model takes a second or more, and the training and evaluation envs of a program
    (and every later program of the process) then share one object, whose jitted reset and
    step JAX traces once (``purejaxpg.envs.physics``)."""
    return suite_of(name).load().make(name, **kwargs)


class ActionSpec(NamedTuple):
    """What a policy head needs to know about the action space."""

    discrete: bool
    num_actions: int  # Discrete: number of actions; Box: flattened action dimension
    low: np.ndarray | None  # Box bounds (float32, shape [num_actions]); None for Discrete
    high: np.ndarray | None


def action_spec(env, params) -> ActionSpec:
    space = env.action_space(params)
    if hasattr(space, "n"):
        return ActionSpec(True, int(space.n), None, None)
    shape = tuple(space.shape)
    dim = int(np.prod(shape)) if shape else 1
    low = np.broadcast_to(np.asarray(space.low, np.float32), (dim,)).copy()
    high = np.broadcast_to(np.asarray(space.high, np.float32), (dim,)).copy()
    return ActionSpec(False, dim, low, high)


def rescale_action(action: jax.Array, low, high) -> jax.Array:
    """Map an action in [-1, 1] (clipped first) affinely onto [low, high]."""
    action = jnp.clip(action, -1.0, 1.0)
    return low + 0.5 * (action + 1.0) * (high - low)


@struct.dataclass
class VecEnvState:
    env_state: Any
    episode_return: jax.Array  # [N] float32, return of the running episode so far
    episode_length: jax.Array  # [N] int32, steps taken in the running episode


class VecEnv:
    """``num_envs`` copies of a gymnax environment, stepped together.

    Policy actions for a Box space are taken to live in [-1, 1] per dimension and are
    clipped and rescaled to the Box's bounds here, at the environment, so that the
    algorithm can store and score the unclipped sample.
    """

    def __init__(self, name: str, num_envs: int, **env_kwargs: Any):
        if int(num_envs) <= 0:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs}")
        self.name = name
        self.num_envs = int(num_envs)
        self.env, self.params = make_env(name, **env_kwargs)
        self.action_spec = action_spec(self.env, self.params)
        obs_shape = self.env.observation_space(self.params).shape
        self.obs_shape = tuple(obs_shape) if len(obs_shape) else (1,)
        self.max_episode_steps = int(self.params.max_steps_in_episode)

    def _obs(self, obs: jax.Array) -> jax.Array:
        return jnp.asarray(obs, jnp.float32).reshape((-1,) + self.obs_shape)

    def _env_action(self, action: jax.Array) -> jax.Array:
        spec = self.action_spec
        if spec.discrete:
            return action
        space_shape = self.env.action_space(self.params).shape
        scaled = rescale_action(action, jnp.asarray(spec.low), jnp.asarray(spec.high))
        return scaled.reshape((-1,) + tuple(space_shape))

    def reset(self, key: jax.Array):
        keys = jax.random.split(key, self.num_envs)
        obs, env_state = jax.vmap(self.env.reset, in_axes=(0, None))(keys, self.params)
        state = VecEnvState(
            env_state,
            jnp.zeros(self.num_envs, jnp.float32),
            jnp.zeros(self.num_envs, jnp.int32),
        )
        return self._obs(obs), state

    def step(self, key: jax.Array, state: VecEnvState, action: jax.Array):
        keys = jax.random.split(key, self.num_envs)
        obs, env_state, reward, terminated, truncated, info = jax.vmap(
            self.env.step, in_axes=(0, 0, 0, None)
        )(keys, state.env_state, self._env_action(action), self.params)
        reward = jnp.asarray(reward, jnp.float32).reshape(self.num_envs)
        terminated = jnp.asarray(terminated, bool).reshape(self.num_envs)
        truncated = jnp.asarray(truncated, bool).reshape(self.num_envs)
        done = terminated | truncated
        ep_return = state.episode_return + reward
        ep_length = state.episode_length + 1
        out_info = {
            "final_observation": self._obs(info["final_observation"]),
            "returned_episode": done,
            "episode_return": ep_return,
            "episode_length": ep_length,
            "episode_step": state.episode_length,
        }
        new_state = VecEnvState(
            env_state,
            jnp.where(done, 0.0, ep_return),
            jnp.where(done, 0, ep_length),
        )
        return self._obs(obs), new_state, reward, terminated, truncated, out_info
