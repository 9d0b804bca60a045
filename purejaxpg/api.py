"""The Python API: ``purejaxpg.train``, ``purejaxpg.sweep`` and ``purejaxpg.load``.

They go through the same runner as the command line (``purejaxpg.engine.runner``): the same
validation, devices, chunks and checkpoints, and the same files when ``out`` is given.

>>> import jax, purejaxpg
>>> run = purejaxpg.train("ppo", env="CartPole-v1", num_seeds=2, total_timesteps=8192, hidden=(16,), quiet=True)
>>> run.metrics["episode_return"].shape     # [seeds, updates]
(2, 16)
>>> sorted(run.summary["final_return"])
['ci95', 'iqm', 'iqm_ci95', 'mean', 'num_nonfinite', 'per_seed']
>>> obs, state = run.venv(num_envs=3).reset(jax.random.PRNGKey(0))
>>> run.act(obs, seed=1).shape            # seed 1's final policy on 3 observations
(3,)
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from purejaxpg.engine.plan import Plan

OPTIONS = {f.name for f in dataclasses.fields(Plan)} - {"algo", "base", "points", "num_seeds", "single", "ranges"}


@dataclass
class Run:
    """One configuration's results: ``summary`` (the keys of summary.json), ``metrics``
    ({name: [num_seeds, num_updates]} and ``env_steps`` [num_updates]), ``final_return``
    [num_seeds], ``params`` (final parameters, leading axis: seeds), and what acting needs."""

    algo: str
    name: str
    config: Any
    hparams: dict
    summary: dict
    metrics: dict
    final_return: np.ndarray
    params: Any
    program: Any = field(repr=False)
    carry: Any = field(repr=False)  # every seed's final carry (leading axis: seeds, see Program.axes)
    out: Optional[str] = None

    def venv(self, num_envs: int = 1):
        """The run's environment, ``num_envs`` copies (``purejaxpg.envs.VecEnv``)."""
        from purejaxpg.envs import VecEnv

        return VecEnv(self.config.env, num_envs)

    def policy(self, seed: int = 0):
        """Seed ``seed``'s final policy as its evaluation plays it (``engine.program.Policy``:
        fn, params, frozen observation statistics, the run's evaluation key)."""
        return self.program.act(_seeds(self.program.axes(self.carry), self.carry, seed))

    def act(self, obs, seed: int = 0, key=None):
        """Actions of seed ``seed``'s final policy for observations ``obs`` [N, *obs_shape], as
        the run's evaluation plays it (greedy or sampled, observations normalised with the
        frozen statistics). ``key``: for sampled policies (default: the run's evaluation key).
        Pure in its arguments (jit-able)."""
        p = self.policy(seed)
        obs = obs if p.obs_rms is None else p.obs_rms.normalize(obs)
        return p.fn(p.params, obs, p.key if key is None else key)[0]

    def plot(self, path: Optional[str] = None):
        """The learning curve (mean training return across seeds, 95% bootstrap band); written
        to ``path`` when given. Returns the matplotlib figure."""
        from purejaxpg.analysis.plotting import learning_curve_figure

        fig = learning_curve_figure({self.algo: (self.metrics["env_steps"], self.metrics["episode_return"])},
                                    title=f"{self.algo} on {self.config.env}")
        if path:
            fig.savefig(path)
        return fig

    def save(self, out: str) -> str:
        """Write the run's result files (config.json, metrics.npz, summary.json,
        learning_curve.png): what ``purejaxpg compare`` reads. ``load`` and ``purejaxpg eval``
        also need the run's plan and checkpoint, which ``train(..., out=DIR)`` writes."""
        from purejaxpg.engine import outputs

        plan = Plan(self.algo, {}, ({},), len(self.final_return))
        metrics = {k: v for k, v in self.metrics.items() if k != "env_steps"}
        outputs.write_run(out, plan, self.config, self.hparams, metrics, self.final_return, self.summary)
        return out


def _seeds(axes, carry, index):
    """``carry`` of the runs ``index`` selects (an int or a slice) along the batch axis."""
    import jax

    return jax.tree_util.tree_map(lambda a, x: x if a is None else x[index], axes, carry, is_leaf=lambda a: a is None)


@dataclass
class Sweep:
    """A sweep's results: ``table`` (rows sorted by final-return IQM, as sweep.json) and
    ``runs`` {configuration name: Run}."""

    table: list
    runs: dict
    out: Optional[str] = None

    @property
    def best(self) -> Run:
        return self.runs[self.table[0]["name"]]


def _env_name(env) -> Optional[str]:
    """A name for ``env``: a registered name or ``module:attribute`` as given; a gymnax
    ``Environment`` instance is registered for this process under a generated name."""
    if env is None or isinstance(env, str):
        return env
    if not all(hasattr(env, a) for a in ("reset", "step", "default_params")):
        raise ValueError(f"env must be a name (`purejaxpg list`), 'module:attribute' or a gymnax Environment, got "
                         f"{type(env).__name__} {env!r}")
    from purejaxpg.envs import register_env

    name = f"{type(env).__name__}@{id(env):x}"
    register_env(name, lambda **kw: (env, env.default_params.replace(**kw)))
    return name


def _split(algo: str, env, settings: dict):
    options = {k: settings.pop(k) for k in list(settings) if k in OPTIONS}
    name = _env_name(env)
    if name is not None:
        settings["env"] = name
    return settings, options


def _runs(result, algo: str) -> dict:
    from purejaxpg.algos import get_algo

    runs, S = {}, result.plan.num_seeds
    for r in result.groups:
        program = get_algo(algo).make_program(r.group.config)
        env_steps = (np.arange(program.num_updates) + 1) * program.env_steps_per_update
        for c, name in enumerate(r.group.names):
            carry = _seeds(r.batch.axes, r.carry, slice(c * S, (c + 1) * S))
            runs[name] = Run(algo, name, r.group.config, r.group.hparams[c], result.summaries[name],
                             {**{k: v[c] for k, v in r.metrics.items()}, "env_steps": env_steps}, r.final[c],
                             carry[0].params, program, carry, result.out_dir)
    return runs


def train(algo: str, env=None, num_seeds: int = 8, out: Optional[str] = None, quiet: bool = False,
          overwrite: bool = False, **settings) -> Run:
    """Train ``algo`` for ``num_seeds`` seeds in one compiled program and return the ``Run``.

    ``env``: a name (``purejaxpg list``), ``module:attribute``, or a gymnax ``Environment``
    instance. ``settings``: the algorithm's settings (``purejaxpg list ALGO``) and the run's
    options (seed, chunks, checkpoint_every, block, preset, memory_limit_mb, progress_every,
    log). ``out``: where to write the run's files and checkpoints (nothing is written
    without it); a directory holding another run is refused unless ``overwrite``."""
    from purejaxpg.engine import runner

    settings, options = _split(algo, env, dict(settings))
    result = runner.train(algo, settings, num_seeds, out_dir=out, quiet=quiet, overwrite=overwrite, **options)
    return next(iter(_runs(result, algo).values()))


def sweep(algo: str, env=None, grid: Optional[dict] = None, ranges: Optional[dict] = None, samples: int = 0,
          num_seeds: int = 8, out: Optional[str] = None, quiet: bool = False, overwrite: bool = False,
          **settings) -> Sweep:
    """Every configuration of ``grid`` ({name: [values]}) and ``samples`` draws of ``ranges``
    ({name: (low, high, "log" | "lin")}) x ``num_seeds`` seeds, one program per static config.

    >>> import purejaxpg
    >>> s = purejaxpg.sweep("ppo", env="CartPole-v1", grid={"lr": [1e-3, 3e-3]}, num_seeds=2,
    ...                     total_timesteps=4096, hidden=(16,), quiet=True)
    >>> [len(s.table), sorted(s.runs)]
    [2, ['c000_lr=0.001', 'c001_lr=0.003']]
    """
    from purejaxpg.engine import runner

    settings, options = _split(algo, env, dict(settings))
    result = runner.sweep(algo, out, settings, grid, ranges, samples, num_seeds, quiet=quiet, overwrite=overwrite,
                          **options)
    return Sweep(result.table, _runs(result, algo), out)


def load(out: str, config_index: int = 0) -> Run:
    """Reopen a finished run (or one configuration of a sweep) from its directory: its
    summary, metrics and final parameters from the files and the last checkpoint."""
    import json

    from purejaxpg.algos import get_algo
    from purejaxpg.engine import runner
    from purejaxpg.engine.plan import Plan, groups, locate

    plan = Plan.read(out)
    gi, c = locate(groups(plan), config_index)
    g, batch, carry, _ = runner.restore(out, gi)
    path = out if plan.single else os.path.join(out, g.names[c])
    if not os.path.exists(os.path.join(path, "summary.json")):
        raise ValueError(f"{path} holds no summary.json: the run has not finished (resume it first)")
    with open(os.path.join(path, "summary.json")) as f:
        summary = json.load(f)
    metrics = dict(np.load(os.path.join(path, "metrics.npz")))
    final = metrics.pop("final_return")
    carry = _seeds(batch.axes, carry, slice(c * plan.num_seeds, (c + 1) * plan.num_seeds))
    return Run(plan.algo, g.names[c], g.config, g.hparams[c], summary, metrics, final, carry[0].params,
               get_algo(plan.algo).make_program(g.config), carry, out)
