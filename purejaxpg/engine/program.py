"""The algorithm interface: an ``Algorithm`` is a spec and a way to build a ``Program``.

::

    algo = get_algo("ppo")                           # Algorithm
    config, hparams = algo.resolve({"lr": 1e-3})    # static config / traced floats (engine.spec)
    program = algo.make_program(config)              # Program: pure functions of one run
    carry = program.init(key, hparams)               # everything a run carries between updates
    carry, metrics = program.run_updates(carry, hparams, 0, program.num_updates)
    returns = program.evaluate(carry)                # [num_eval_episodes]

Every function of a ``Program`` is pure and describes one run (one seed, one
configuration): the runner (``engine.runner``) ``vmap``s it over seeds x configurations,
shards that axis over devices, cuts the updates into checkpointed chunks and reports
progress. Two loops build programs: ``engine.onpolicy`` (REINFORCE, A2C, PPO) and
``engine.offpolicy`` (SAC); an algorithm file supplies only what is particular to it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from purejaxpg.engine.spec import Spec


class Policy(NamedTuple):
    """How a run's policy acts at evaluation: ``fn(params, obs, key) -> (action, log_prob)``
    on observations normalised with the frozen ``obs_rms`` (None: raw), and the run's
    evaluation key. ``rollout.evaluate`` and the GIF recorder both play it."""

    fn: Callable
    params: Any
    obs_rms: Any
    key: Any


@dataclass(frozen=True)
class Program:
    """One run of one static config, as pure functions (jit- and vmap-able).

    init(key uint32[2], hparams) -> carry
        parameters, optimiser state, normaliser statistics, env state, buffers, keys.
    update(carry, hparams, i) -> (carry, metrics)
        update number ``i`` (an int32 scalar, the same for every run); ``metrics`` is a dict
        of scalars, reduced inside the program (memory does not grow with env steps).
    evaluate(carry, key=None) -> [num_eval_episodes] returns of the current policy
        (with the run's own evaluation key unless ``key`` is given).
    act(carry) -> Policy: what ``evaluate`` plays.
    carry_axes(carry) -> a pytree of 0 / None: the vmap axis of each leaf of a batch of
        carries (None: the same for every run, e.g. a replay buffer's write position).
    watch(carry, metrics, i) -> a pytree (optional): what must stay finite after update
        ``i`` (parameters, optimiser state, losses, gradient norms); the runner records, per
        run, the first update after which any of it is NaN or infinite. Default: the whole
        carry. A program with large buffers in its carry should watch only its parameters
        and optimiser state (checked after every update).
    cpu_compiler_options: XLA options (by name, as ``Lowered.compile(compiler_options=...)``
        takes them) for this program's compiles on the CPU backend; other backends ignore them.
    """

    config: Any
    init: Callable
    update: Callable
    evaluate: Callable
    act: Callable
    num_updates: int
    env_steps_per_update: int
    carry_axes: Optional[Callable] = None
    scratch_bytes: int = 0  # per run: the largest temporaries of one update (memory estimate)
    watch: Optional[Callable] = None
    cpu_compiler_options: Optional[dict] = None

    def watched(self, carry, metrics, i):
        """What must stay finite after update ``i`` (``watch``, or the whole carry)."""
        return carry if self.watch is None else self.watch(carry, metrics, i)

    def axes(self, carry):
        if self.carry_axes is None:
            return jax.tree_util.tree_map(lambda _: 0, carry)
        return self.carry_axes(carry)

    def run_updates(self, carry, hparams, start, n: int):
        """Updates ``start .. start + n - 1`` as one ``lax.scan`` (``n`` static); metrics
        [n] each. ``init`` then ``run_updates`` over consecutive chunks is the whole run."""
        def body(c, i):
            return self.update(c, hparams, i)

        return jax.lax.scan(body, carry, start + jnp.arange(n, dtype=jnp.int32))

    def train(self, key, hparams) -> dict:
        """The whole run: ``{"carry", "metrics" ({name: [num_updates]}), "eval_returns"}``.
        Pure: ``jax.jit(jax.vmap(program.train, in_axes=(0, None)))(keys, hparams)`` trains
        many seeds; the runner does the same with devices, chunks and progress."""
        carry = self.init(key, hparams)
        carry, metrics = self.run_updates(carry, hparams, 0, self.num_updates)
        return {"carry": carry, "metrics": metrics, "eval_returns": self.evaluate(carry)}


@dataclass(frozen=True)
class Algorithm:
    """An algorithm: its ``spec`` (every setting, engine.spec) and ``make_program(config)``.
    ``summary``: one line for ``purejaxpg list``; ``presets``: {env: settings} applied
    before the user's own (``resolve``)."""

    name: str
    spec: Spec
    make_program: Callable[[Any], Program]
    summary: str
    presets: dict

    def preset(self, env: str, choice: str = "auto") -> dict:
        """The settings ``choice`` stands for: ``auto`` (``env``'s preset, if any), ``none``,
        or an env name / ``ALGO/ENV``."""
        if choice == "none":
            return {}
        if choice == "auto":
            return dict(self.presets.get(env, {}))
        name = choice.split("/", 1)[1] if choice.startswith(self.name + "/") else choice
        if name not in self.presets:
            valid = ", ".join(["auto", "none"] + [f"{self.name}/{e}" for e in self.presets])
            raise ValueError(f"unknown preset {choice!r} for {self.name}; valid: {valid}")
        return dict(self.presets[name])

    def resolve(self, overrides: Optional[dict] = None, preset: str = "auto"):
        """(config, hparams): the preset for the chosen env, then ``overrides``, validated."""
        overrides = dict(overrides or {})
        env = overrides.get("env", self.spec["env"].default)
        return self.spec.resolve(overrides, base=self.preset(str(env).strip(), preset))
