"""Searches beyond a grid, on the runner: population-based training (``pbt``, its
population inside one program: engine.population) and successive halving (``halving``: a
sweep per rung, the best 1/eta of each going on)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import jax
import numpy as np

from purejaxpg.algos import get_algo
from purejaxpg.engine import outputs, population, runner
from purejaxpg.engine import plan as plans
from purejaxpg.engine.plan import Plan, configurations
from purejaxpg.engine.results import Result


def pbt(algo: str, out_dir: Optional[str], overrides: Optional[dict] = None, population_size: int = 8,
        ranges: Optional[dict] = None, ready_every: int = 0, exploit: str = "truncation:0.25",
        explore: str = "perturb:0.8,1.2", quiet: bool = False, stop_after: Optional[int] = None,
        overwrite: bool = False, stop_on_nan: bool = False, **options) -> Result:
    """Population-based training (engine.population): ``population_size`` members of one
    configuration, member m with seed key m and the ``ranges``' hyperparameters drawn from
    it; every ``ready_every`` updates (0: about 20 times per run) the bottom members copy a
    top member's state (``exploit``) and change their hyperparameters (``explore``)."""
    settings = {"population": int(population_size), "ready_every": int(ready_every), "exploit": exploit,
                "explore": explore, "ranges": {k: list(v) for k, v in (ranges or {}).items()}}
    spec = get_algo(algo).spec
    population.check_settings(settings, spec)
    both = set(settings["ranges"]) & set(overrides or {})
    if both:
        raise ValueError(f"{sorted(both)} given both as a setting and as --range; give one")
    plan = Plan(algo, dict(overrides or {}), ({},), int(population_size), single=True, pbt=settings, **options)
    return runner.execute(plan, out_dir, False, quiet, stop_after, overwrite, stop_on_nan)


@dataclass
class HalvingResult:
    """Successive halving: each rung's sweep (``rungs``: Results), the table of every
    configuration at its last rung (best first: later rungs, then IQM) and the env steps
    spent against those of the full grid at the full budget."""

    rungs: list
    table: list
    env_steps: int
    full_grid_env_steps: int
    schedule: list
    stopped: bool = False
    stop: Optional[str] = None
    signum: Optional[int] = None

    @property
    def best(self) -> dict:
        return self.table[0]


def halving(algo: str, out_dir: Optional[str], base: Optional[dict] = None, grid: Optional[dict] = None,
            ranges: Optional[dict] = None, samples: int = 0, num_seeds: int = 8, eta: int = 3, rungs: int = 0,
            quiet: bool = False, stop_after: Optional[int] = None, overwrite: bool = False,
            stop_on_nan: bool = False, **options) -> HalvingResult:
    """Successive halving over a grid (or random samples): rung r runs its configurations
    x ``num_seeds`` seeds as a sweep (``OUT/rungR``) with ``total_timesteps / eta**(R-1-r)``
    env steps each, from scratch; the best ``1/eta`` by final-return IQM go on to the next
    rung (engine.plan.halving_rungs). Writes ``OUT/halving.json`` and ``OUT/table.txt``."""
    import shutil

    base = dict(base or {})
    points = configurations(grid or {}, ranges or {}, samples, options.get("seed", 0), algo)
    config = get_algo(algo).resolve(base, options.get("preset", "auto"))[0]
    schedule = plans.halving_rungs(len(points), eta, config.total_timesteps, config.batch_size, rungs)
    if out_dir is not None:
        old = [f for f in sorted(os.listdir(out_dir)) if f == "halving.json" or f.startswith("rung")] \
            if os.path.isdir(out_dir) else []
        if old and not overwrite:
            raise ValueError(f"{out_dir} holds another halving run ({', '.join(old[:4])}); replace it with "
                             f"--overwrite, or give another --out")
        for f in old:
            path = os.path.join(out_dir, f)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    survivors = list(range(len(points)))
    last: dict = {}
    results, spent = [], 0
    for r, (count, steps) in enumerate(schedule):
        survivors = survivors[:count]
        rung_points = tuple(points[k] for k in survivors)
        plan = Plan(algo, {**base, "total_timesteps": steps}, rung_points, num_seeds, single=False,
                    ranges=dict(ranges or {}), **options)
        res = runner.execute(plan, None if out_dir is None else os.path.join(out_dir, f"rung{r}"), False, quiet, stop_after,
                      overwrite, stop_on_nan)
        results.append(res)
        if res.stopped:
            return HalvingResult(results, [], spent, 0, schedule, True, res.stop, res.signum)
        run_steps = res.groups[0].group.config.num_updates * res.groups[0].group.config.batch_size
        spent += len(rung_points) * num_seeds * run_steps
        for j, k in enumerate(survivors):
            row = next(row for row in res.table if row["name"] == plans.config_name(rung_points[j], j))
            last[k] = {**row, "name": plans.config_name(points[k], k), "configuration": k, "last_rung": r,
                       "env_steps_per_run": run_steps}
        order = sorted(survivors, key=lambda k: (-np.inf if last[k]["iqm"] is None else -last[k]["iqm"], k))
        survivors = order
    table = sorted(last.values(), key=lambda row: (-row["last_rung"], -np.inf if row["iqm"] is None else -row["iqm"],
                                                   row["configuration"]))
    full = len(points) * num_seeds * config.num_updates * config.batch_size
    out = HalvingResult(results, table, spent, full, schedule)
    if out_dir is not None and jax.process_index() == 0:
        outputs.write_json(os.path.join(out_dir, "halving.json"), {
            "algo": algo, "eta": eta, "rungs": len(schedule), "num_configurations": len(points),
            "num_seeds": num_seeds, "schedule": [{"rung": r, "configurations": c, "env_steps_per_run": s}
                                                 for r, (c, s) in enumerate(schedule)],
            "env_steps": spent, "full_grid_env_steps": full, "fraction_of_full_grid": spent / full,
            "best": table[0]["name"], "table": table})
        text = outputs.format_table(table, extra=("last_rung",))
        with outputs.atomic_path(os.path.join(out_dir, "table.txt")) as tmp, open(tmp, "w") as f:
            f.write(text + "\n")
    return out
