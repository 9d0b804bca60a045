"""MuJoCo Playground's DM Control suite as ``playground/TASK`` environments.

Each task is loaded with ``mujoco_playground.registry.load(TASK, config_overrides={"impl":
IMPL})`` (``jax``, the default: pure JAX MJX, runs anywhere and vmaps; ``warp``: MJX on
NVIDIA Warp, meant for GPUs) and wrapped by ``purejaxpg.envs.physics.PhysicsEnv`` with the
task's own ``episode_length`` and ``action_repeat`` (from its default config, as
Playground's training script passes them to Brax's wrappers: 1000 control steps, repeat 1
for every DM Control task). Names, options and the lazy import: ``purejaxpg.envs.suites``.

Importing this module imports MuJoCo, MJX and Playground; ``purejaxpg.envs.make_env``
imports it only when a ``playground/...`` environment is asked for.
"""
from __future__ import annotations

from purejaxpg.envs.physics import RESETS, PhysicsEnv, positive_ints
from purejaxpg.envs.suites import parse

IMPLS = ("jax", "warp")
OPTIONS = ("impl", "episode_length", "action_repeat", "reset")


def task_names() -> list:
    """The DM Control tasks of the installed Playground."""
    from mujoco_playground import dm_control_suite

    return list(dm_control_suite.ALL_ENVS)


def _options(name: str, kwargs: dict) -> tuple:
    """(task, options): the name's ``@`` options, then keyword arguments; checked."""
    _, task, opts = parse(name)
    valid = task_names()
    if task not in valid:
        raise ValueError(f"unknown Playground task {task!r}; valid: " + ", ".join(f"playground/{t}" for t in valid))
    opts = {**opts, **kwargs}
    unknown = set(opts) - set(OPTIONS)
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)} for {name!r}; valid: {', '.join(OPTIONS)}")
    out = {"impl": str(opts.get("impl", "jax")), "reset": str(opts.get("reset", "random"))}
    if out["impl"] not in IMPLS:
        raise ValueError(f"impl must be one of {', '.join(IMPLS)} for {name!r}, got {out['impl']!r}")
    if out["reset"] not in RESETS:
        raise ValueError(f"reset must be one of {', '.join(RESETS)} for {name!r}, got {out['reset']!r}")
    out.update(positive_ints(opts, name, {"episode_length": None, "action_repeat": None}))
    return task, out


def check(name: str) -> None:
    """One-line ValueError unless ``name`` is a usable ``playground/...`` environment."""
    _options(name, {})


def make(name: str, **kwargs):
    """``(env, params)`` for ``playground/TASK[@options]``; keyword arguments are options too."""
    from mujoco_playground import registry

    task, opts = _options(name, kwargs)
    config = registry.get_default_config(task)
    try:
        raw = registry.load(task, config_overrides={"impl": opts["impl"]})
    except Exception as e:  # Playground/MJX say why in their own words; keep it to one line
        raise ValueError(f"cannot load {name!r} with impl={opts['impl']}: {type(e).__name__}: {e}") from None
    env = PhysicsEnv(raw, raw.action_size, opts.get("episode_length", int(config.episode_length)),
                     opts.get("action_repeat", int(config.get("action_repeat", 1))), opts["reset"], name,
                     shared_buffers=opts["impl"] == "warp")
    return env, env.default_params
