"""The one runner: every run, from a one-seed ``train`` to a sharded multi-process sweep.

``execute(plan, out_dir)`` validates every configuration (engine.plan) and the output
directory (a new run never mixes with another one's files), writes ``run.json`` with the
run's fingerprint, then for each group of configurations sharing a static config (one
program each): checks memory from shapes alone (engine.memory); lays the runs out on every
device and compiles one chunk function, or reads it from the cache (engine.batch,
engine.cache); runs the updates in chunks (engine.control: ``--chunks K`` equal ones with a
checkpoint after each, else chunks of about a minute and a checkpoint every
``checkpoint_every`` minutes and at the end; ``resume`` continues bit-identically from the
newest readable checkpoint); evaluates every run's final policy. Then it writes each
configuration's files and, for a sweep, the table (engine.outputs).

A run stops early, after the current chunk and its checkpoint, on SIGINT or SIGTERM, with
``stop_on_nan`` once a run diverged, or after ``stop_after`` chunks (``Result.stop``).
``train`` and ``sweep`` build the plan; ``resume`` reads it back from ``run.json``;
``restore`` gives ``eval`` and the GIF recorder a run's last checkpoint.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import jax
import numpy as np

from purejaxpg.algos import get_algo
from purejaxpg.engine import cache, host, memory, outputs, population, tracking
from purejaxpg.engine.batch import prepare, program_shapes, to_global, to_host
from purejaxpg.engine.checkpoint import open_store, restore_newest
from purejaxpg.engine.control import (
    CHUNK_SECONDS,
    NONFINITE,
    SIGNAL,
    Chunker,
    Interrupted,
    Stop,
    agree,
    any_process,
    chunk_lengths,
    pieces,
    report_due,
    stop_code,
    sync,
    wait,
)
from purejaxpg.engine.plan import (
    Group,
    Plan,
    configurations,
    fingerprint,
    fingerprint_difference,
    groups,
    stored_fingerprint,
)
from purejaxpg.engine.progress import ProgressBar, cadence
from purejaxpg.engine.results import GroupResult, Result, sweep_info
from purejaxpg.engine.tracking import Tracker


def _check_memory(program, hparam_names, num_runs: int, block: int, limit_mb: float, chunk: int,
                  shapes: Optional[tuple] = None) -> dict:
    """engine.memory's check, from the shapes of one run (``program_shapes``)."""
    one, metrics = shapes or program_shapes(program, hparam_names)
    d = jax.device_count()
    est = memory.estimate(one, program.scratch_bytes, len(metrics), chunk, memory.per_device(num_runs, d, block))
    memory.check(est, one, num_runs, d, memory.shared_limit_mb(limit_mb))
    return est


def make_program(plan: Plan, config):
    """The program of one run of ``config`` (a population member's with ``plan.pbt``)."""
    program = get_algo(plan.algo).make_program(config)
    return population.wrap(program, plan.pbt.get("ranges", {})) if plan.pbt else program


def population_step(plan: Plan, program) -> Optional[tuple]:
    """engine.population's ``(ready, step)`` for ``plan`` (None without a population)."""
    if not plan.pbt:
        return None
    return population.mixer(plan.pbt, program.num_updates, plan.seed, plan.num_seeds)


@dataclass
class Checked:
    """What ``check_group`` found out about a group before anything is written."""

    program: Any
    fixed: Optional[list]  # fixed chunk lengths (None: sized from measured time)
    capacity: int  # the longest chunk
    memory: dict  # engine.memory's estimate
    key: Optional[str]  # of its stored programs (engine.cache; None: not stored)
    stored: Optional[dict]  # the programs an earlier process stored under ``key``
    shapes: tuple  # program_shapes: one run's carry and metrics
    seconds: float  # spent tracing shapes and reading the stored programs (counted as compile time)
    counters: dict  # cache.delta: what was traced and read meanwhile


def check_group(plan: Plan, group: Group) -> Checked:
    """The program, chunking, memory estimate and stored programs of one group; refuses
    (one line) a program above the memory limit. Nothing compiles. Where an earlier process
    stored this group's programs (engine.cache), nothing is traced either."""
    t0, counters = time.perf_counter(), cache.snapshot()
    program = make_program(plan, group.config)
    U = program.num_updates
    fixed = chunk_lengths(U, plan.chunks) if plan.chunks else None
    capacity = max(fixed) if fixed else U
    num_runs = len(group.hparams) * plan.num_seeds
    key = cache.program_key(plan, group.config, {
        "program": "runner", "hparams": sorted(group.hparams[0]), "configs": len(group.hparams),
        "seeds": plan.num_seeds, "block": plan.block, "capacity": capacity, "pbt": repr(plan.pbt)})
    stored = cache.load_programs(key)
    shapes = stored["shapes"] if stored else program_shapes(program, list(group.hparams[0]))
    mem = _check_memory(program, group.hparams[0], num_runs, plan.block, plan.memory_limit_mb, capacity, shapes)
    return Checked(program, fixed, capacity, mem, key, stored, shapes, time.perf_counter() - t0,
                   cache.delta(counters))


def run_group(plan: Plan, gi: int, group: Group, out_dir: Optional[str], resume: bool,
              stop_after: Optional[int], log: Callable, quiet: bool, stop: Stop = None, fp: Optional[dict] = None,
              stop_on_nan: bool = False, warn: Callable = None, checked: Optional[Checked] = None) -> GroupResult:
    stop = stop or Stop(saving=False)
    warn = warn or log
    checked = checked or check_group(plan, group)
    program, fixed, capacity, mem = checked.program, checked.fixed, checked.capacity, checked.memory
    stored = checked.stored
    U = program.num_updates
    num_runs = len(group.hparams) * plan.num_seeds
    saving = out_dir is not None and (fixed is not None or plan.checkpoint_every > 0)
    store = open_store(out_dir, gi) if saving else None
    interval = plan.checkpoint_every * 60.0
    bar = ProgressBar(U, num_runs, program.env_steps_per_update, enabled=not quiet)
    trackers = []  # opened once it is known whether the run continues (their files are then appended to)

    def report(i, metrics):
        bar.report(i, metrics)
        for t in trackers:
            t.report(i, metrics)

    every = cadence(U, plan.progress_every)
    reporting = (not quiet or bool(plan.log)) and jax.process_index() == 0
    t0, counters = time.perf_counter() - checked.seconds, cache.snapshot()
    batch = prepare(program, group.hparams, plan.num_seeds, plan.seed, plan.block, capacity=capacity,
                    shapes=checked.shapes,
                    compiled=stored["compiled"] if stored else None, population=population_step(plan, program))
    restored = restore_newest(store, batch, fp, True, warn) if (resume and store is not None) else None
    done = restored.updates if restored else 0
    if resume and not restored:
        log(f"no checkpoint of {'this program' if gi else 'this run'} in {out_dir} yet: it starts from update 0")
    if plan.log:
        settings = {"algo": plan.algo, "num_seeds": plan.num_seeds, "seed": plan.seed, **outputs.versions()}
        trackers.append(Tracker(plan.log, out_dir, plan.single, group, plan.num_seeds, program.env_steps_per_update,
                                settings, append=bool(done)))
    chunks_done = restored.step if restored else 0
    if fixed is not None and done not in np.cumsum([0] + fixed):
        raise ValueError(f"checkpoint {store.directory}/{chunks_done} holds {done} updates, not where one of this "
                         f"run's {len(fixed)} chunks ends")
    before = cache.snapshot()
    programs = wait(batch.compiled)
    steps, evaluate = programs["steps"], programs["evaluate"]
    # only fresh compiles are stored: jaxlib 0.10.2's CPU executables read from JAX's cache and
    # serialised again fail when run ("Function ... not found")
    fresh = stored is None and not cache.delta(before).get("hits", 0)
    stored_now = fresh and wait(cache.save_programs, checked.key, checked.shapes, programs)
    metrics = {}
    if restored:
        carry = restored.carry
        metrics = {k: [v] for k, v in restored.metrics.items()}
        first = to_global(restored.first_nonfinite, batch.keys.sharding)
        log(f"resumed from {store.directory} after chunk {chunks_done} ({done} of {U} updates)")
    else:
        carry = programs["init"](batch.keys, batch.hparams)
        first = batch.no_nonfinite()
    carry = wait(jax.block_until_ready, carry)
    first_host = to_host(first)
    timings = {"compile_seconds": time.perf_counter() - t0, "run_seconds": 0.0, "checkpoint_seconds": 0.0,
               "eval_seconds": 0.0,
               "compile": {**cache.stats(counters, checked.counters), "programs": "read" if stored else "written" if stored_now
                           else None}}

    first_chunk, start_done, saved_at = chunks_done, done, (done if restored else None)
    chunker = Chunker(U, fixed, (min(CHUNK_SECONDS, interval) if store is not None else None))
    last_save = time.perf_counter()
    reason = signum = None

    def save():
        nonlocal saved_at, last_save
        t = time.perf_counter()
        meta = {"fingerprint": fp, "group": gi, "updates": done, "chunks": chunks_done}
        wait(store.save, chunks_done, carry, {n: np.concatenate(v, 1) for n, v in metrics.items()}, first_host, meta)
        timings["checkpoint_seconds"] += time.perf_counter() - t
        saved_at, last_save = done, time.perf_counter()

    bar.first = bar.done = done
    bar.start()
    stop.announce = bar.write if not quiet else stop.announce
    try:
        while True:
            diverged = bool((first_host[:num_runs] >= 0).any())
            local = stop_code(stop.signum, stop_on_nan and diverged and done < U,
                               stop_after is not None and chunks_done >= stop_after and done < U)
            halt, n, _ = agree(local, chunker.next(done) if done < U else 0, False)
            if halt:
                reason = "signal" if halt > SIGNAL else "nonfinite" if halt == NONFINITE else "stop_after"
                signum = halt - SIGNAL if halt > SIGNAL else None
                if store is not None and saved_at != done and done > 0:
                    save()
                break
            if done >= U:
                break
            t = time.perf_counter()
            for a, b in pieces(done, n, every, U) if reporting else [(done, done + n)]:
                carry, m, first = wait(lambda c, f, a, b: jax.block_until_ready(steps(c, batch.hparams, a, b, f)),
                                        carry, first, batch.scalar(a), batch.scalar(b - a))
                for name, v in m.items():
                    metrics.setdefault(name, []).append(np.array(to_host(v)[:, :b - a]))
                if reporting and report_due(b - 1, every, U):
                    report(b - 1, {name: v[-1][:, -1] for name, v in metrics.items()})
            dt = time.perf_counter() - t
            timings["run_seconds"] += dt
            first_host = to_host(first)
            done, chunks_done = done + n, chunks_done + 1
            chunker.record(n, dt)
            if store is not None:
                due = fixed is not None or done == U or time.perf_counter() - last_save >= interval
                if agree(False, 0, due)[2]:
                    save()
    except KeyboardInterrupt:
        bar.close()
        _close(trackers)
        if store is not None:
            store.close()
            if not isinstance(sys.exc_info()[1], Interrupted):
                log(f"interrupted: the last checkpoint (chunk {chunks_done}) in {store.directory} is usable; "
                    f"continue with --resume")
        raise
    except BaseException:
        bar.close()
        _close(trackers)
        if store is not None:
            store.close()
        raise
    bar.close(leave=reason is None)
    _close(trackers)
    if store is not None:
        store.close()
    if fixed is not None and len(fixed) > 1:
        log(f"{chunks_done}/{len(fixed)} chunks done")

    C, S, B = len(group.hparams), plan.num_seeds, num_runs
    metrics = {n: np.concatenate(v, 1)[:B].reshape((C, S, -1)) for n, v in metrics.items()}
    final = None
    if reason is None:
        t = time.perf_counter()
        final = wait(lambda: to_host(evaluate(carry)).mean(-1)[:B].reshape(C, S))
        timings["eval_seconds"] = time.perf_counter() - t
    return GroupResult(group, batch, carry, metrics, final, plan.chunks, chunks_done, first_chunk, done - start_done,
                       timings, mem, first_host[:B].reshape(C, S), done, store.directory if store else None, reason,
                       signum)


def check_out_dir(out_dir: str, overwrite: bool) -> list:
    """What an earlier run left in ``out_dir`` (every process must agree); refuses, in one
    line, to start a new run among it unless ``overwrite``."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"--out {out_dir} is a file, not a directory; give another --out")
    found = outputs.previous_run(out_dir)
    if jax.process_count() > 1 and any_process(bool(found)) and not found:
        found = ["run.json"]  # another process sees a run there
    if found and not overwrite:
        shown = ", ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
        raise ValueError(f"{out_dir} holds another run ({shown}); continue it with --resume {out_dir}, replace it "
                         f"with --overwrite, or give another --out")
    return found


def _close(reporters) -> None:
    for r in reporters:
        r.close()


def execute(plan: Plan, out_dir: Optional[str] = None, resume: bool = False, quiet: bool = False,
            stop_after: Optional[int] = None, overwrite: bool = False, stop_on_nan: bool = False) -> Result:
    """Run ``plan`` (see the module docstring). ``out_dir`` None: nothing is written and no
    checkpoint is kept. ``resume``: continue the run in ``out_dir`` from its checkpoints;
    otherwise ``out_dir`` must not hold another run unless ``overwrite`` (its files are
    removed first). ``stop_after``: stop after that many chunks of each group, as an
    interruption would (the checkpoints stay). ``stop_on_nan``: stop at the first chunk
    boundary after a run diverged."""
    host.configure()  # the jaxlib 0.10 CPU settings, a device per core; a no-op once the backend runs
    cache.configure()  # JAX's persistent compilation cache (PUREJAXPG_COMPILE_CACHE); kept once JAX opened one
    quiet = quiet or jax.process_index() != 0  # several processes: process 0 reports
    log = (lambda *a: None) if quiet else (lambda msg: print(msg, flush=True))
    warn = (lambda *a: None) if jax.process_index() != 0 else (lambda msg: print(msg, file=sys.stderr, flush=True))
    group_list = groups(plan)
    checked = [check_group(plan, g) for g in group_list]  # fail before writing or compiling anything
    tracking.check(plan.log, out_dir)
    fp = fingerprint(plan, group_list)
    writer = out_dir is not None and jax.process_index() == 0
    if out_dir is not None and resume:
        diff = fingerprint_difference(stored_fingerprint(out_dir) or fp, fp, ("run.json", "this installation"))
        if diff:
            raise ValueError(f"{out_dir} cannot be resumed here ({diff}): the resumed run would not be the one "
                             f"started; resume it where it was started, or start it again with --overwrite")
        done = "summary.json" if plan.single else "sweep.json"  # written after the run's last update
        if os.path.exists(os.path.join(out_dir, done)):
            raise Finished(f"{out_dir} holds a finished run ({done}): nothing to resume; `purejaxpg eval {out_dir}` "
                           f"evaluates it, --overwrite starts it again")
    elif out_dir is not None:
        found = check_out_dir(out_dir, overwrite)
        sync("purejaxpg-out-dir-checked")
        if writer and found:
            outputs.remove_previous_run(out_dir, found)
            log(f"--overwrite: removed the previous run's {len(found)} file(s) and folder(s) from {out_dir}")
        made = writer and not os.path.isdir(out_dir)
        if writer:
            plan.write(out_dir, fp)
        sync("purejaxpg-out-dir-ready")
    if len(group_list) > 1:
        log(f"{len(group_list)} programs: the configurations differ in static (shape-changing) settings")
    saving = out_dir is not None and (plan.chunks is not None or plan.checkpoint_every > 0)
    results = []
    with Stop(saving) as stop:
        try:
            for gi, g in enumerate(group_list):
                results.append(run_group(plan, gi, g, out_dir, resume, stop_after, log, quiet, stop, fp, stop_on_nan,
                                         warn, checked[gi]))
                if results[-1].stop is not None:
                    last = results[-1]
                    return Result(plan, out_dir, results, stopped=True, stop=last.stop, signum=last.signum,
                                  num_programs=len(group_list))
        except KeyboardInterrupt:
            if writer and not resume and not saving:  # nothing was saved: the same command can start again
                outputs.remove_previous_run(out_dir, ["run.json"])
                if made and not os.listdir(out_dir):
                    os.rmdir(out_dir)
            raise
    result = Result(plan, out_dir, results, stopped=False, num_programs=len(group_list))
    for r in results:
        for c, name in enumerate(r.group.names):
            timings = {**r.timings, "env_steps_per_second": r.env_steps_per_second}
            s = outputs.summary(plan.algo, r.group.config, plan.num_seeds, r.final[c], timings, r.group.swept[c],
                                bool(r.resumed_from_chunk), name, r.first_nonfinite[c])
            result.summaries[name] = s
            result.table.append(outputs.sweep_row(name, r.group.swept[c], s))
            if writer:
                outputs.write_run(out_dir if plan.single else os.path.join(out_dir, name), plan, r.group.config,
                                  r.group.hparams[c], {k: v[c] for k, v in r.metrics.items()}, r.final[c], s)
    result.table.sort(key=lambda row: -np.inf if row["iqm"] is None else row["iqm"], reverse=True)
    if plan.pbt:
        result.lineage = population.record(result, out_dir if writer else None)
    if writer and not plan.single:
        outputs.write_sweep(out_dir, sweep_info(result), plan)
    return result


def train(algo: str, overrides: Optional[dict] = None, num_seeds: int = 8, out_dir: Optional[str] = None,
          resume: bool = False, quiet: bool = False, stop_after: Optional[int] = None, overwrite: bool = False,
          stop_on_nan: bool = False, **options) -> Result:
    """One configuration of ``algo`` for ``num_seeds`` seeds. ``options``: the other fields of
    ``Plan`` (seed, chunks, checkpoint_every, block, preset, memory_limit_mb, progress_every)."""
    plan = Plan(algo, dict(overrides or {}), ({},), num_seeds, single=True, **options)
    return execute(plan, out_dir, resume, quiet, stop_after, overwrite, stop_on_nan)


def sweep(algo: str, out_dir: Optional[str], base: Optional[dict] = None, grid: Optional[dict] = None,
          ranges: Optional[dict] = None, samples: int = 0, num_seeds: int = 8, quiet: bool = False,
          stop_after: Optional[int] = None, overwrite: bool = False, stop_on_nan: bool = False,
          **options) -> Result:
    """Every configuration of a grid (and ``samples`` draws of ``ranges``) x ``num_seeds``
    seeds; one program per static config."""
    points = configurations(grid or {}, ranges or {}, samples, options.get("seed", 0), algo)
    plan = Plan(algo, dict(base or {}), tuple(points), num_seeds, single=False, ranges=dict(ranges or {}), **options)
    return execute(plan, out_dir, False, quiet, stop_after, overwrite, stop_on_nan)


def resume(out_dir: str, quiet: bool = False, stop_after: Optional[int] = None, stop_on_nan: bool = False) -> Result:
    """Continue the run in ``out_dir`` from its newest readable checkpoints (the same plan,
    the same programs: the result is bit-identical to an uninterrupted run). A finished run
    raises ``Finished`` and stays as it is (resuming it would only write its outputs again)."""
    return execute(Plan.read(out_dir), out_dir, True, quiet, stop_after, stop_on_nan=stop_on_nan)


class Finished(ValueError):
    """``resume`` of a run that has finished: there is nothing to do (the command line says
    so and exits 0, so that a job script can resume whatever state a run is in)."""


def restore(out_dir: str, group_index: int, config_override: Optional[dict] = None):
    """(group, batch, carry, updates done) from the newest readable checkpoint of group
    ``group_index`` of the run in ``out_dir``, which must carry the fingerprint of its
    run.json; ``config_override`` may change evaluation-only settings
    (``num_eval_episodes``, ``eval_greedy``)."""
    plan = Plan.read(out_dir)
    fp = stored_fingerprint(out_dir)
    g = groups(plan, config_override)[group_index]
    program = make_program(plan, g.config)
    batch = prepare(program, g.hparams, plan.num_seeds, plan.seed, plan.block,
                    population=population_step(plan, program))
    directory = os.path.join(out_dir, "checkpoints", f"group{group_index}")
    if not os.path.isdir(directory):
        raise ValueError(f"{out_dir}: no checkpoint ({directory} does not exist"
                         + ("; the run was made with --no-checkpoint)" if plan.chunks is None and
                            not plan.checkpoint_every else ")"))
    store = open_store(out_dir, group_index)
    try:
        restored = restore_newest(store, batch, fp, False,
                            lambda msg: print(msg, file=sys.stderr, flush=True) if jax.process_index() == 0 else None)
    finally:
        store.close()
    if restored is None:
        raise ValueError(f"{out_dir}: group {group_index} has no checkpoint yet")
    return g, batch, restored.carry, restored.updates
