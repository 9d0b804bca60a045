"""What the runner returns: each program's runs (``GroupResult``) and the whole run
(``Result``), and sweep.json's content."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import jax
import numpy as np

from purejaxpg.engine.batch import Batch
from purejaxpg.engine.plan import Group, Plan


@dataclass
class GroupResult:
    """One program's runs: metrics {name: [C, S, U]}, ``final`` [C, S] final returns (None
    when stopped before the end), ``first_nonfinite`` [C, S] (-1: the run stayed finite),
    the final carry, timings."""

    group: Group
    batch: Batch
    carry: Any
    metrics: dict
    final: Optional[np.ndarray]
    chunks: Optional[int]  # fixed chunks of the plan (None: sized from measured time)
    chunks_done: int
    resumed_from_chunk: int
    updates_run: int
    timings: dict
    memory: dict
    first_nonfinite: Optional[np.ndarray] = None
    updates_done: int = 0
    checkpoint: Optional[str] = None  # where its checkpoints are
    stop: Optional[str] = None  # why it stopped early: "signal", "nonfinite", "stop_after"
    signum: Optional[int] = None  # the signal that stopped it (in any process)

    @property
    def env_steps_per_second(self) -> Optional[float]:
        steps = self.batch.num_runs * self.updates_run * self.batch.program.env_steps_per_update
        return steps / self.timings["run_seconds"] if self.timings["run_seconds"] > 0 else None

    @property
    def diverged(self) -> list:
        """[(configuration name, seed, first non-finite update)] of this group."""
        if self.first_nonfinite is None:
            return []
        return [(self.group.names[c], int(s), int(self.first_nonfinite[c, s]))
                for c, s in zip(*np.nonzero(self.first_nonfinite >= 0))]


@dataclass
class Result:
    """What ``execute`` returns: the plan, each group's result, and (when finished) each
    configuration's summary and the table of all of them, best IQM first. ``stopped``:
    ended early; ``stop`` says why ("signal", with ``signum``; "nonfinite"; "stop_after")."""

    plan: Plan
    out_dir: Optional[str]
    groups: list
    stopped: bool
    summaries: dict = field(default_factory=dict)  # configuration name -> summary.json's content
    table: list = field(default_factory=list)
    stop: Optional[str] = None
    signum: Optional[int] = None
    num_programs: int = 1
    lineage: Optional[dict] = None  # a population's lineage.json (engine.population)

    @property
    def diverged(self) -> list:
        return [d for r in self.groups for d in r.diverged]

    @property
    def num_runs(self) -> int:
        return sum(r.batch.num_runs for r in self.groups)

    def resume_command(self) -> str:
        return f"purejaxpg {'pbt' if self.plan.pbt else 'train' if self.plan.single else 'sweep'} --resume {self.out_dir}"


def sweep_info(result: Result) -> dict:
    """sweep.json: the table and the totals."""
    rs = result.groups
    return {"algo": result.plan.algo, "num_seeds": result.plan.num_seeds, "num_configurations": len(result.table),
            "programs": len(rs), "devices": jax.device_count(),
            "compile_seconds": sum(r.timings["compile_seconds"] for r in rs),
            "run_seconds": sum(r.timings["run_seconds"] for r in rs),
            "programs_compiled": sum(r.batch.programs_compiled for r in rs),
            "memory_per_device_bytes": max(r.memory["per_device_bytes"] for r in rs),
            "num_runs": result.num_runs,
            "num_diverged": len(result.diverged),
            "diverged": [{"configuration": n, "seed": s, "update": u} for n, s, u in result.diverged],
            "table": result.table}
