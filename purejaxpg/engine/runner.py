"""The one runner: every run, from a one-seed ``train`` to a sharded multi-process sweep.

``execute(plan, out_dir)`` validates every configuration (engine.plan), then for each group
of configurations sharing a static config (one program each):

1. checks memory from shapes alone (engine.memory), before anything compiles;
2. lays the runs out on every device (engine.batch) and compiles a chunk of updates;
3. runs the chunks, reporting progress from inside the program, and after each chunk saves
   the complete carry and the metrics so far (engine.checkpoint) when there is an output
   directory; ``resume`` restores the last checkpoint and continues bit-identically;
4. evaluates every run's final policy.

Then it writes each configuration's files and, for a sweep, the table (engine.outputs).
``train`` and ``sweep`` build the plan; ``resume`` reads it back from ``run.json``;
``restore`` gives ``eval`` and the GIF recorder a run's last checkpoint.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from purejaxpg.algos import get_algo
from purejaxpg.engine import host, memory, outputs, tracking
from purejaxpg.engine.batch import Batch, prepare, to_host
from purejaxpg.engine.plan import Group, Plan, configurations, groups
from purejaxpg.engine.progress import ProgressBar, cadence
from purejaxpg.engine.tracking import Tracker


def chunk_lengths(num_updates: int, chunks: int) -> list:
    """``chunks`` pieces of ``ceil(num_updates / chunks)`` updates, the last one shorter if
    needed (a second compiled function)."""
    if chunks > num_updates:
        raise ValueError(f"chunks={chunks} is more than the run's {num_updates} updates")
    n = math.ceil(num_updates / chunks)
    return [n] * (num_updates // n) + ([num_updates % n] if num_updates % n else [])


@dataclass
class GroupResult:
    """One program's runs: metrics {name: [C, S, U]}, ``final`` [C, S] final returns (None
    when stopped before the end), the final carry, timings."""

    group: Group
    batch: Batch
    carry: Any
    metrics: dict
    final: Optional[np.ndarray]
    chunks: int
    chunks_done: int
    resumed_from_chunk: int
    updates_run: int
    timings: dict
    memory: dict

    @property
    def env_steps_per_second(self) -> Optional[float]:
        steps = self.batch.num_runs * self.updates_run * self.batch.program.env_steps_per_update
        return steps / self.timings["run_seconds"] if self.timings["run_seconds"] > 0 else None


@dataclass
class Result:
    """What ``execute`` returns: the plan, each group's result, and (when finished) each
    configuration's summary and the table of all of them, best IQM first."""

    plan: Plan
    out_dir: Optional[str]
    groups: list
    stopped: bool
    summaries: dict = field(default_factory=dict)  # configuration name -> summary.json's content
    table: list = field(default_factory=list)


def _checkpoints(out_dir, gi):
    if out_dir is None:
        return None
    from purejaxpg.engine.checkpoint import CheckpointStore

    return CheckpointStore(os.path.join(out_dir, "checkpoints", f"group{gi}"))


def _check_memory(program, hparam_names, num_runs: int, block: int, limit_mb: float, chunk: int) -> dict:
    """engine.memory's check, from the shapes of one run."""
    hp = {k: jax.ShapeDtypeStruct((), jnp.float32) for k in hparam_names}
    one = jax.eval_shape(program.init, jax.ShapeDtypeStruct((2,), jnp.uint32), hp)
    metrics = jax.eval_shape(program.update, one, hp, jax.ShapeDtypeStruct((), jnp.int32))[1]
    d = jax.device_count()
    est = memory.estimate(one, program.scratch_bytes, len(metrics), chunk, memory.per_device(num_runs, d, block))
    memory.check(est, one, num_runs, d, memory.shared_limit_mb(limit_mb))
    return est


def run_group(plan: Plan, gi: int, group: Group, out_dir: Optional[str], resume: bool,
              stop_after: Optional[int], log: Callable, quiet: bool) -> GroupResult:
    program = get_algo(plan.algo).make_program(group.config)
    lengths = chunk_lengths(program.num_updates, plan.chunks)
    num_runs = len(group.hparams) * plan.num_seeds
    mem = _check_memory(program, group.hparams[0], num_runs, plan.block, plan.memory_limit_mb, max(lengths))
    store = _checkpoints(out_dir, gi)
    done_chunks = (store.latest() or 0) if (resume and store is not None) else 0
    first_update = sum(lengths[:done_chunks])
    bar = ProgressBar(program.num_updates, num_runs, program.env_steps_per_update, enabled=not quiet,
                      first_update=first_update)
    reporters = [] if quiet else [bar]
    if plan.log:
        settings = {"algo": plan.algo, "num_seeds": plan.num_seeds, "seed": plan.seed, **outputs.versions()}
        reporters.append(Tracker(plan.log, out_dir, plan.single, group, plan.num_seeds, program.env_steps_per_update,
                                 settings, append=bool(done_chunks)))

    def report(i, metrics):
        for r in reporters:
            r.report(i, metrics)

    batch = prepare(program, group.hparams, plan.num_seeds, plan.seed, plan.block,
                    report=report if reporters else None, every=cadence(program.num_updates, plan.progress_every))

    t0 = time.perf_counter()
    for n in sorted(set(lengths[done_chunks:])):
        batch.chunk(n)
    evaluate = batch.evaluate.lower(batch.abstract).compile()
    metrics = {}
    if done_chunks:
        shapes = {k: ((batch.padded, first_update), v.dtype) for k, v in batch.metric_shapes(1).items()}
        carry, restored = store.restore(done_chunks, batch.abstract, shapes)
        metrics = {k: [v] for k, v in restored.items()}
        log(f"resumed from {store.directory} after chunk {done_chunks}/{len(lengths)} ({first_update} updates)")
    else:
        carry = batch.init(batch.keys, batch.hparams)
    carry = jax.block_until_ready(carry)
    timings = {"compile_seconds": time.perf_counter() - t0, "run_seconds": 0.0, "checkpoint_seconds": 0.0,
               "eval_seconds": 0.0}

    first_chunk = done_chunks
    bar.start()
    try:
        for k in range(done_chunks, len(lengths)):
            if stop_after is not None and k >= stop_after:
                break
            start = sum(lengths[:k])
            t = time.perf_counter()
            carry, m = batch.chunk(lengths[k])(carry, batch.hparams, batch.start(start))
            carry = jax.block_until_ready(carry)
            timings["run_seconds"] += time.perf_counter() - t
            for name, v in m.items():
                metrics.setdefault(name, []).append(to_host(v))
            done_chunks = k + 1
            if store is not None:
                t = time.perf_counter()
                store.save(done_chunks, carry, {n: np.concatenate(v, 1) for n, v in metrics.items()})
                timings["checkpoint_seconds"] += time.perf_counter() - t
    except KeyboardInterrupt:
        _close(reporters)
        if store is not None:
            store.close()
            log(f"interrupted: the last checkpoint (chunk {done_chunks}) in {store.directory} is usable; "
                f"continue with --resume")
        raise
    _close(reporters)
    if store is not None:
        store.close()
    if len(lengths) > 1:
        log(f"{done_chunks}/{len(lengths)} chunks done")

    C, S, B = len(group.hparams), plan.num_seeds, num_runs
    metrics = {n: np.concatenate(v, 1)[:B].reshape((C, S, -1)) for n, v in metrics.items()}
    final = None
    if done_chunks == len(lengths):
        t = time.perf_counter()
        final = to_host(evaluate(carry)).mean(-1)[:B].reshape(C, S)
        timings["eval_seconds"] = time.perf_counter() - t
    return GroupResult(group, batch, carry, metrics, final, len(lengths), done_chunks, first_chunk,
                       sum(lengths[first_chunk:done_chunks]), timings, mem)


def _close(reporters) -> None:
    for r in reporters:
        r.close()


def execute(plan: Plan, out_dir: Optional[str] = None, resume: bool = False, quiet: bool = False,
            stop_after: Optional[int] = None) -> Result:
    """Run ``plan`` (see the module docstring). ``out_dir`` None: nothing is written and no
    checkpoint is kept. ``stop_after``: stop after that many chunks of each group, as an
    interruption would (the checkpoints stay)."""
    host.configure()  # the jaxlib 0.10 CPU settings, a device per core; a no-op once the backend runs
    quiet = quiet or jax.process_index() != 0  # several processes: process 0 reports
    log = (lambda *a: None) if quiet else (lambda msg: print(msg, flush=True))
    group_list = groups(plan)
    for g in group_list:  # fail before writing or compiling anything
        chunk_lengths(g.config.num_updates, plan.chunks)
    tracking.check(plan.log, out_dir)
    writer = out_dir is not None and jax.process_index() == 0
    if writer and not resume:
        plan.write(out_dir)
    if len(group_list) > 1:
        log(f"{len(group_list)} programs: the configurations differ in static (shape-changing) settings")
    results = []
    for gi, g in enumerate(group_list):
        results.append(run_group(plan, gi, g, out_dir, resume, stop_after, log, quiet))
        if results[-1].final is None:
            return Result(plan, out_dir, results, stopped=True)
    result = Result(plan, out_dir, results, stopped=False)
    for r in results:
        for c, name in enumerate(r.group.names):
            timings = {**r.timings, "env_steps_per_second": r.env_steps_per_second}
            s = outputs.summary(plan.algo, r.group.config, plan.num_seeds, r.final[c], timings, r.group.swept[c],
                                bool(r.resumed_from_chunk))
            result.summaries[name] = s
            result.table.append(outputs.sweep_row(name, r.group.swept[c], s))
            if writer:
                outputs.write_run(out_dir if plan.single else os.path.join(out_dir, name), plan, r.group.config,
                                  r.group.hparams[c], {k: v[c] for k, v in r.metrics.items()}, r.final[c], s)
    result.table.sort(key=lambda row: -np.inf if row["iqm"] is None else row["iqm"], reverse=True)
    if writer and not plan.single:
        outputs.write_sweep(out_dir, sweep_info(result), plan)
    return result


def sweep_info(result: Result) -> dict:
    """sweep.json: the table and the totals."""
    rs = result.groups
    return {"algo": result.plan.algo, "num_seeds": result.plan.num_seeds, "num_configurations": len(result.table),
            "programs": len(rs), "devices": jax.device_count(),
            "compile_seconds": sum(r.timings["compile_seconds"] for r in rs),
            "run_seconds": sum(r.timings["run_seconds"] for r in rs),
            "programs_compiled": sum(r.batch.programs_compiled for r in rs),
            "memory_per_device_bytes": max(r.memory["per_device_bytes"] for r in rs),
            "table": result.table}


def train(algo: str, overrides: Optional[dict] = None, num_seeds: int = 8, out_dir: Optional[str] = None,
          resume: bool = False, quiet: bool = False, stop_after: Optional[int] = None, **options) -> Result:
    """One configuration of ``algo`` for ``num_seeds`` seeds. ``options``: the other fields of
    ``Plan`` (seed, chunks, block, preset, memory_limit_mb, progress_every)."""
    plan = Plan(algo, dict(overrides or {}), ({},), num_seeds, single=True, **options)
    return execute(plan, out_dir, resume, quiet, stop_after)


def sweep(algo: str, out_dir: Optional[str], base: Optional[dict] = None, grid: Optional[dict] = None,
          ranges: Optional[dict] = None, samples: int = 0, num_seeds: int = 8, quiet: bool = False,
          stop_after: Optional[int] = None, **options) -> Result:
    """Every configuration of a grid (and ``samples`` draws of ``ranges``) x ``num_seeds``
    seeds; one program per static config."""
    points = configurations(grid or {}, ranges or {}, samples, options.get("seed", 0), algo)
    plan = Plan(algo, dict(base or {}), tuple(points), num_seeds, single=False, ranges=dict(ranges or {}), **options)
    return execute(plan, out_dir, False, quiet, stop_after)


def resume(out_dir: str, quiet: bool = False, stop_after: Optional[int] = None) -> Result:
    """Continue the run in ``out_dir`` from its last checkpoints (the same plan, the same
    programs: the result is bit-identical to an uninterrupted run)."""
    return execute(Plan.read(out_dir), out_dir, True, quiet, stop_after)


def restore(out_dir: str, group_index: int, config_override: Optional[dict] = None):
    """(group, batch, carry, updates done) from the last checkpoint of group ``group_index``
    of the run in ``out_dir``; ``config_override`` may change evaluation-only settings
    (``num_eval_episodes``, ``eval_greedy``)."""
    plan = Plan.read(out_dir)
    g = groups(plan, config_override)[group_index]
    program = get_algo(plan.algo).make_program(g.config)
    batch = prepare(program, g.hparams, plan.num_seeds, plan.seed, plan.block)
    store = _checkpoints(out_dir, group_index)
    k = store.latest()
    if not k:
        store.close()
        raise ValueError(f"{out_dir}: group {group_index} has no checkpoint yet")
    done = sum(chunk_lengths(program.num_updates, plan.chunks)[:k])
    shapes = {n: ((batch.padded, done), v.dtype) for n, v in batch.metric_shapes(1).items()}
    carry, _ = store.restore(k, batch.abstract, shapes)
    store.close()
    return g, batch, carry, done
