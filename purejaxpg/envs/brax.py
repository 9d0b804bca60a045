"""Brax's registered environments as ``brax/NAME`` environments.

Each is built with ``brax.envs.get_environment(NAME, backend=IMPL)`` (``mjx``, the default;
Brax's own ``generalized``, ``positional`` and ``spring`` pipelines are the other choices)
and wrapped by ``purejaxpg.envs.physics.PhysicsEnv`` with Brax's default time limit (1000
steps, ``brax.envs.create``'s ``episode_length``) and action repeat 1. Brax's envs end an
episode themselves where the task says so (ant, hopper, humanoid, walker2d and the
pendulums fall over): those are terminations. Names, options and the lazy import:
``purejaxpg.envs.suites``.

Importing this module imports Brax (and MuJoCo); ``purejaxpg.envs.make_env`` imports it
only when a ``brax/...`` environment is asked for. (Inside this package, ``import brax``
is Brax itself: imports are absolute.)
"""
from __future__ import annotations

from purejaxpg.envs.physics import RESETS, PhysicsEnv, positive_ints
from purejaxpg.envs.suites import parse

BACKENDS = ("mjx", "generalized", "positional", "spring")
OPTIONS = ("impl", "episode_length", "action_repeat", "reset")
EPISODE_LENGTH = 1000  # brax.envs.create's default, used by Brax's training examples


def task_names() -> list:
    """The environments registered with the installed Brax (its test env ``fast`` left out)."""
    from brax import envs

    return sorted(n for n in envs._envs if n != "fast")


def _options(name: str, kwargs: dict) -> tuple:
    _, task, opts = parse(name)
    valid = task_names()
    if task not in valid:
        raise ValueError(f"unknown Brax environment {task!r}; valid: " + ", ".join(f"brax/{t}" for t in valid))
    opts = {**opts, **kwargs}
    unknown = set(opts) - set(OPTIONS)
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)} for {name!r}; valid: {', '.join(OPTIONS)}")
    out = {"impl": str(opts.get("impl", "mjx")), "reset": str(opts.get("reset", "random"))}
    if out["impl"] not in BACKENDS:
        raise ValueError(f"impl (Brax's backend) must be one of {', '.join(BACKENDS)} for {name!r}, "
                         f"got {out['impl']!r}")
    if out["reset"] not in RESETS:
        raise ValueError(f"reset must be one of {', '.join(RESETS)} for {name!r}, got {out['reset']!r}")
    out.update(positive_ints(opts, name, {"episode_length": EPISODE_LENGTH, "action_repeat": 1}))
    return task, out


def check(name: str) -> None:
    _options(name, {})


def make(name: str, **kwargs):
    """``(env, params)`` for ``brax/NAME[@options]``; keyword arguments are options too."""
    from brax import envs

    task, opts = _options(name, kwargs)
    try:
        raw = envs.get_environment(task, backend=opts["impl"])
    except Exception as e:
        raise ValueError(f"cannot build {name!r} with backend {opts['impl']}: {type(e).__name__}: {e}") from None
    env = PhysicsEnv(raw, raw.action_size, opts["episode_length"], opts["action_repeat"], opts["reset"], name)
    return env, env.default_params
