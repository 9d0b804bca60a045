"""Environment suites that live in optional packages: ``SUITE/TASK[@OPTION...]`` names.

``playground/CartpoleBalance`` (MuJoCo Playground's DM Control suite, ``purejaxpg.envs.playground``)
and ``brax/ant`` (Brax's environments, ``purejaxpg.envs.brax``) are resolved here, on first
use: this module imports nothing heavy, and a suite's packages (MuJoCo, MJX, Brax,
Playground) are imported only when one of its environments is asked for.

Options follow the task, each after an ``@``: ``key=value``, or a bare value for the
physics implementation::

    playground/CheetahRun@warp                 # MJX on Warp (an NVIDIA GPU); default jax
    playground/CartpoleBalance@reset=first     # restart from the first initial state
    brax/ant@generalized                       # Brax's generalized pipeline; default mjx
    brax/hopper@mjx@episode_length=500

Keys: ``impl`` (``jax`` or ``warp`` for Playground; Brax's ``backend``: ``mjx``,
``generalized``, ``positional``, ``spring``), ``episode_length``, ``action_repeat`` (integers)
and ``reset`` (``random`` or ``first``; see ``purejaxpg.envs.physics``). The name with its
options is the environment's whole identity, so it travels through configs, sweeps
(``--grid env=playground/CheetahRun@jax,playground/CheetahRun@warp``), checkpoints and
``purejaxpg eval`` unchanged. In Python, ``make_env("playground/CheetahRun", impl="warp")``
does the same.
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

INSTALL = "pip install 'purejaxpg[mujoco]'  (from a checkout: pip install -e '.[mujoco]')"


@dataclass(frozen=True)
class Suite:
    prefix: str  # the part before the "/"
    module: str  # the purejaxpg module that builds its environments
    packages: tuple  # top-level modules it needs
    title: str
    tasks: tuple  # its task names as of the versions the mujoco extra pins (the module checks the installed ones)

    def installed(self) -> bool:
        return all(importlib.util.find_spec(p) is not None for p in self.packages)

    def load(self):
        """The suite's module (imports its packages); ValueError saying how to install them."""
        if not self.installed():
            missing = [p for p in self.packages if importlib.util.find_spec(p) is None]
            raise ValueError(f"{self.prefix}/... environments need {', '.join(missing)}: {INSTALL}")
        return importlib.import_module(self.module)


SUITES = {
    "playground": Suite(
        "playground", "purejaxpg.envs.playground", ("mujoco", "mujoco_playground"),
        "MuJoCo Playground, DM Control suite (MJX physics)",
        ("AcrobotSwingup", "AcrobotSwingupSparse", "BallInCup", "CartpoleBalance", "CartpoleBalanceSparse",
         "CartpoleSwingup", "CartpoleSwingupSparse", "CheetahRun", "FingerSpin", "FingerTurnEasy", "FingerTurnHard",
         "FishSwim", "HopperHop", "HopperStand", "HumanoidStand", "HumanoidWalk", "HumanoidRun", "PendulumSwingup",
         "PointMass", "ReacherEasy", "ReacherHard", "SwimmerSwimmer6", "WalkerRun", "WalkerStand", "WalkerWalk")),
    "brax": Suite(
        "brax", "purejaxpg.envs.brax", ("mujoco", "brax"), "Brax environments (MJX physics by default)",
        ("ant", "halfcheetah", "hopper", "humanoid", "humanoidstandup", "inverted_double_pendulum",
         "inverted_pendulum", "pusher", "reacher", "swimmer", "walker2d")),
}


def suite_of(name: str):
    """The ``Suite`` a name such as ``playground/CartpoleBalance@warp`` belongs to, or None."""
    prefix, sep, _ = name.partition("/")
    return SUITES.get(prefix) if sep else None


def parse(name: str) -> tuple:
    """``SUITE/TASK@opt@key=value`` -> (suite, task, {key: text}); a bare option is ``impl``."""
    prefix, _, rest = name.partition("/")
    task, *opts = rest.split("@")
    options = {}
    for opt in opts:
        key, sep, value = opt.partition("=")
        key, value = (key, value) if sep else ("impl", key)
        if not key or not value:
            raise ValueError(f"bad option {opt!r} in environment {name!r}; write {prefix}/{task}@key=value")
        if key in options:
            raise ValueError(f"option {key!r} given twice in environment {name!r}")
        options[key] = value
    return SUITES[prefix], task, options


def describe() -> list:
    """Lines for ``purejaxpg list``: each suite, whether it is installed, its tasks."""
    lines = []
    for s in SUITES.values():
        state = "installed" if s.installed() else f"not installed: {INSTALL}"
        lines.append(f"{s.prefix}/TASK[@IMPL]  {s.title}; {state}")
        lines.append("    " + ", ".join(s.tasks))
    return lines
