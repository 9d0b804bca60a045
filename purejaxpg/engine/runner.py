"""The one runner: every run, from a one-seed ``train`` to a sharded multi-process sweep.

``execute(plan, out_dir)`` validates every configuration (engine.plan) and the output
directory (a new run never mixes with another one's files: ``overwrite`` removes them),
writes ``run.json`` with the run's fingerprint, then for each group of configurations
sharing a static config (one program each):

1. checks memory from shapes alone (engine.memory), before anything is written or compiled;
2. lays the runs out on every device (engine.batch) and compiles one chunk function (any
   chunk length up to its capacity);
3. runs the updates in chunks, reporting progress from inside the program. ``--chunks K``:
   K equal chunks with a checkpoint after each. Otherwise chunks of about a minute (sized
   from the measured time of the ones before, starting with one update) and a checkpoint
   every ``checkpoint_every`` minutes of run time and at the end (engine.checkpoint);
   ``resume`` restores the newest readable checkpoint and continues bit-identically;
4. evaluates every run's final policy.

Then it writes each configuration's files and, for a sweep, the table (engine.outputs).

A run stops early, after the current chunk and its checkpoint, on SIGINT or SIGTERM (a
second one ends the process at once), with ``stop_on_nan`` once a run diverged, or after
``stop_after`` chunks; ``Result.stopped`` says why. The program records per run the first
update after which a loss, parameter or optimiser state was non-finite (engine.batch);
the summaries list those runs.

``train`` and ``sweep`` build the plan; ``resume`` reads it back from ``run.json``;
``restore`` gives ``eval`` and the GIF recorder a run's last checkpoint.
"""
from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import jax
import numpy as np

from purejaxpg.algos import get_algo
from purejaxpg.engine import cache, host, memory, outputs, population, tracking
from purejaxpg.engine import plan as plans
from purejaxpg.engine.batch import Batch, _global, prepare, program_shapes, to_host
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
from purejaxpg.engine.tracking import Tracker

CHUNK_SECONDS = 60.0  # without --chunks: chunks of about this much run time (at most the checkpoint interval)
GROWTH = 4  # ... each at most this many times longer than the one before
SIGNAL_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}
WORKER = "purejaxpg-runner"  # the thread that runs compilation, chunks and checkpoint writes


def chunk_lengths(num_updates: int, chunks: int) -> list:
    """``chunks`` pieces of ``ceil(num_updates / chunks)`` updates, the last one shorter if
    needed."""
    if chunks > num_updates:
        raise ValueError(f"chunks={chunks} is more than the run's {num_updates} updates")
    n = math.ceil(num_updates / chunks)
    return [n] * (num_updates // n) + ([num_updates % n] if num_updates % n else [])


class Chunker:
    """The length of each next chunk: ``fixed`` lengths (``--chunks K``), or, with a target
    of ``seconds`` per chunk, from the measured time per update of the chunk before (the
    first chunk is one update; each at most ``GROWTH`` times the one before). Without
    checkpoints (``seconds`` None) the rest of the run is one chunk."""

    def __init__(self, num_updates: int, fixed: Optional[list], seconds: Optional[float]):
        self.num_updates, self.fixed, self.seconds = num_updates, fixed, seconds
        self.last = None  # (updates, seconds) of the last chunk

    def record(self, n: int, seconds: float) -> None:
        self.last = (n, seconds)

    def next(self, done: int) -> int:
        left = self.num_updates - done
        if self.fixed is not None:
            ends = np.cumsum([0] + self.fixed)
            k = int(np.searchsorted(ends, done))
            if k >= len(self.fixed) or ends[k] != done:
                raise ValueError(f"{done} updates done is not where a chunk of this run ends")
            return self.fixed[k]
        if self.seconds is None:
            return left
        if self.last is None:
            return min(1, left)
        n, dt = self.last
        per_update = max(dt, 1e-9) / n
        return int(max(1, min(left, GROWTH * n, math.floor(self.seconds / per_update))))


def report_due(i: int, every: int, num_updates: int) -> bool:
    """Whether progress is reported after update ``i``: every ``every`` updates and after the
    last one."""
    return (i + 1) % every == 0 or i == num_updates - 1


def pieces(start: int, n: int, every: int, num_updates: int) -> list:
    """Updates ``start .. start + n - 1`` as [(first, end)) pieces that end where progress is
    reported (``report_due``): the runner runs a chunk piece by piece and reports from the host
    between them, so that the chunk program has no host callback (JAX's persistent cache
    does not keep programs with callbacks) and is the same program with or without
    progress. The pieces' results are those of the whole chunk, bit for bit."""
    end = start + n
    cuts = sorted({e for e in range((start // every + 1) * every, end + 1, every)} | {end} |
                  ({num_updates} if start < num_updates <= end else set()))
    return list(zip([start] + cuts[:-1], cuts))


class _Stop:
    """SIGINT / SIGTERM while a run is in progress: the first asks for a stop after the
    current chunk and its checkpoint (``signum``) and puts back the default handlers, so a
    second one ends the process at once. Without checkpoints there is nothing to wait for:
    the first raises ``Interrupted`` right away. Installed only in the main thread."""

    def __init__(self, saving: bool):
        self.signum = None
        self.saving = saving
        self.announce: Callable = lambda msg: print(msg, file=sys.stderr, flush=True)
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in SIGNAL_NAMES:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:
            return
        self.signum = signum
        for s in self._old:
            signal.signal(s, signal.SIG_DFL)
        if not self.saving:
            raise Interrupted(signum)
        if jax.process_index() == 0:
            self.announce(f"purejaxpg: {SIGNAL_NAMES[signum]}: stopping after the current chunk and its checkpoint "
                          f"({'Ctrl-C' if signum == signal.SIGINT else 'the signal'} again ends it at once)")

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)
        return False


class Interrupted(KeyboardInterrupt):
    """SIGINT / SIGTERM in a run that keeps no checkpoint: nothing to save, so it ends now."""

    def __init__(self, signum: int):
        super().__init__(SIGNAL_NAMES.get(signum, str(signum)))
        self.signum = signum


def _wait(fn, *args):
    """``fn(*args)`` in a worker thread, the main thread waiting in short slices, so that a
    signal is handled within a fraction of a second even while XLA compiles or runs a chunk
    (its handler only runs in the main thread, between Python bytecodes)."""
    if threading.current_thread() is not threading.main_thread():
        return fn(*args)
    box = {}
    done = threading.Event()

    def target():
        try:
            box["value"] = fn(*args)
        except BaseException as e:  # handed to the caller
            box["error"] = e
        finally:
            done.set()
            _BUSY.discard(done)

    _BUSY.add(done)
    threading.Thread(target=target, name=WORKER, daemon=True).start()
    while not done.wait(0.1):
        pass
    if "error" in box:
        raise box["error"]
    return box["value"]


_BUSY: set = set()  # the unfinished work of _wait's threads


def worker_busy() -> bool:
    """Whether a worker thread of ``_wait`` is still running (a signal interrupted the
    wait: XLA may be in the middle of a chunk). Thread.is_alive cannot tell: a join
    interrupted by an exception leaves it False for a thread still running."""
    return bool(_BUSY)


def _any(flag: bool) -> bool:
    """Whether ``flag`` is set in any process."""
    return bool(_agree(int(flag), 0, False)[0])


def _agree(stop: int, n_next: int, save: bool) -> tuple:
    """With several processes every one must take the same decision: the largest ``stop``
    code of any process (0: go on), process 0's chunk length and checkpoint timing."""
    if jax.process_count() == 1:
        return stop, n_next, save
    from jax.experimental import multihost_utils

    x = np.asarray(multihost_utils.process_allgather(np.asarray([int(stop), n_next, int(save)], np.int32)))
    x = x.reshape(jax.process_count(), 3)
    return int(x[:, 0].max()), int(x[0, 1]), bool(x[0, 2])


# why a run stops, as ``_agree`` codes (the largest wins: a signal over the others)
_STOP_AFTER, _NONFINITE, _SIGNAL = 1, 2, 100


def _stop_code(signum: Optional[int], nonfinite: bool, stop_after: bool) -> int:
    return _SIGNAL + signum if signum is not None else _NONFINITE if nonfinite else _STOP_AFTER if stop_after else 0


def _sync(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


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


def _checkpoints(out_dir, gi):
    if out_dir is None:
        return None
    from purejaxpg.engine.checkpoint import CheckpointStore

    return CheckpointStore(os.path.join(out_dir, "checkpoints", f"group{gi}"))


def _check_memory(program, hparam_names, num_runs: int, block: int, limit_mb: float, chunk: int,
                  shapes: Optional[tuple] = None) -> dict:
    """engine.memory's check, from the shapes of one run (``program_shapes``)."""
    one, metrics = shapes or program_shapes(program, hparam_names)
    d = jax.device_count()
    est = memory.estimate(one, program.scratch_bytes, len(metrics), chunk, memory.per_device(num_runs, d, block))
    memory.check(est, one, num_runs, d, memory.shared_limit_mb(limit_mb))
    return est


def _metric_dtypes(batch: Batch) -> dict:
    return {k: v.dtype for k, v in batch.metric_shapes(1).items()}


def _restore(store, batch: Batch, fp: Optional[dict], delete_unreadable: bool, log: Callable):
    """The newest readable checkpoint of ``store`` for ``batch`` (None when there is none);
    says which steps it skipped."""
    restored = _wait(store.restore_latest, batch.abstract, _metric_dtypes(batch), batch.padded, fp,
                     delete_unreadable)
    if restored is not None and restored.skipped:
        why = "; ".join(f"step {s}: {reason}" for s, reason in restored.skipped)
        log(f"purejaxpg: checkpoint {'; '.join(str(s) for s, _ in restored.skipped)} in {store.directory} could not "
            f"be read ({why}); using step {restored.step} ({restored.updates} updates)")
    return restored


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
              stop_after: Optional[int], log: Callable, quiet: bool, stop: _Stop = None, fp: Optional[dict] = None,
              stop_on_nan: bool = False, warn: Callable = None, checked: Optional[Checked] = None) -> GroupResult:
    stop = stop or _Stop(saving=False)
    warn = warn or log
    checked = checked or check_group(plan, group)
    program, fixed, capacity, mem = checked.program, checked.fixed, checked.capacity, checked.memory
    stored = checked.stored
    U = program.num_updates
    num_runs = len(group.hparams) * plan.num_seeds
    saving = out_dir is not None and (fixed is not None or plan.checkpoint_every > 0)
    store = _checkpoints(out_dir, gi) if saving else None
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
    restored = _restore(store, batch, fp, True, warn) if (resume and store is not None) else None
    done = restored.updates if restored else 0
    if plan.log:
        settings = {"algo": plan.algo, "num_seeds": plan.num_seeds, "seed": plan.seed, **outputs.versions()}
        trackers.append(Tracker(plan.log, out_dir, plan.single, group, plan.num_seeds, program.env_steps_per_update,
                                settings, append=bool(done)))
    chunks_done = restored.step if restored else 0
    if fixed is not None and done not in np.cumsum([0] + fixed):
        raise ValueError(f"checkpoint {store.directory}/{chunks_done} holds {done} updates, not where one of this "
                         f"run's {len(fixed)} chunks ends")
    before = cache.snapshot()
    programs = _wait(batch.compiled)
    steps, evaluate = programs["steps"], programs["evaluate"]
    # only fresh compiles are stored: jaxlib 0.10.2's CPU executables read from JAX's cache and
    # serialised again fail when run ("Function ... not found")
    fresh = stored is None and not cache.delta(before).get("hits", 0)
    stored_now = fresh and _wait(cache.save_programs, checked.key, checked.shapes, programs)
    metrics = {}
    if restored:
        carry = restored.carry
        metrics = {k: [v] for k, v in restored.metrics.items()}
        first = _global(restored.first_nonfinite, batch.keys.sharding)
        log(f"resumed from {store.directory} after chunk {chunks_done} ({done} of {U} updates)")
    else:
        carry = programs["init"](batch.keys, batch.hparams)
        first = batch.no_nonfinite()
    carry = _wait(jax.block_until_ready, carry)
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
        _wait(store.save, chunks_done, carry, {n: np.concatenate(v, 1) for n, v in metrics.items()}, first_host, meta)
        timings["checkpoint_seconds"] += time.perf_counter() - t
        saved_at, last_save = done, time.perf_counter()

    bar.first = bar.done = done
    bar.start()
    stop.announce = bar.write if not quiet else stop.announce
    try:
        while True:
            diverged = bool((first_host[:num_runs] >= 0).any())
            local = _stop_code(stop.signum, stop_on_nan and diverged and done < U,
                               stop_after is not None and chunks_done >= stop_after and done < U)
            halt, n, _ = _agree(local, chunker.next(done) if done < U else 0, False)
            if halt:
                reason = "signal" if halt > _SIGNAL else "nonfinite" if halt == _NONFINITE else "stop_after"
                signum = halt - _SIGNAL if halt > _SIGNAL else None
                if store is not None and saved_at != done and done > 0:
                    save()
                break
            if done >= U:
                break
            t = time.perf_counter()
            for a, b in pieces(done, n, every, U) if reporting else [(done, done + n)]:
                carry, m, first = _wait(lambda c, f, a, b: jax.block_until_ready(steps(c, batch.hparams, a, b, f)),
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
                if _agree(False, 0, due)[2]:
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
        final = _wait(lambda: to_host(evaluate(carry)).mean(-1)[:B].reshape(C, S))
        timings["eval_seconds"] = time.perf_counter() - t
    return GroupResult(group, batch, carry, metrics, final, plan.chunks, chunks_done, first_chunk, done - start_done,
                       timings, mem, first_host[:B].reshape(C, S), done, store.directory if store else None, reason,
                       signum)


def check_out_dir(out_dir: str, overwrite: bool) -> list:
    """What an earlier run left in ``out_dir`` (every process must agree); refuses, in one
    line, to start a new run among it unless ``overwrite``."""
    found = outputs.previous_run(out_dir)
    if jax.process_count() > 1 and _any(bool(found)) and not found:
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
    elif out_dir is not None:
        found = check_out_dir(out_dir, overwrite)
        _sync("purejaxpg-out-dir-checked")
        if writer and found:
            outputs.remove_previous_run(out_dir, found)
            log(f"--overwrite: removed the previous run's {len(found)} file(s) and folder(s) from {out_dir}")
        if writer:
            plan.write(out_dir, fp)
        _sync("purejaxpg-out-dir-ready")
    if len(group_list) > 1:
        log(f"{len(group_list)} programs: the configurations differ in static (shape-changing) settings")
    saving = out_dir is not None and (plan.chunks is not None or plan.checkpoint_every > 0)
    results = []
    with _Stop(saving) as stop:
        for gi, g in enumerate(group_list):
            results.append(run_group(plan, gi, g, out_dir, resume, stop_after, log, quiet, stop, fp, stop_on_nan,
                                     warn, checked[gi]))
            if results[-1].stop is not None:
                last = results[-1]
                return Result(plan, out_dir, results, stopped=True, stop=last.stop, signum=last.signum,
                              num_programs=len(group_list))
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
        result.lineage = pbt_outputs(result, out_dir if writer else None)
    if writer and not plan.single:
        outputs.write_sweep(out_dir, sweep_info(result), plan)
    return result


def pbt_outputs(result: Result, out_dir: Optional[str]) -> dict:
    """A population's lineage (lineage.json, pbt.png) and its part of summary.json: the
    settings, the best member and its final hyperparameters. Written when ``out_dir``."""
    r, plan = result.groups[0], result.plan
    metrics = {k: v[0] for k, v in r.metrics.items()}  # [P, U]
    final = r.final[0]
    ranges = {k: tuple(v) for k, v in plan.pbt.get("ranges", {}).items()}
    info = population.lineage(metrics, final, ranges, r.batch.program.env_steps_per_update)
    best = int(np.nanargmax(final)) if np.isfinite(final).any() else 0
    hp_final = {k: float(metrics[f"hp_{k}"][best, -1]) for k in sorted(ranges)}
    part = {"population": plan.num_seeds, "ready_every": population.ready_every(plan.pbt, r.batch.program.num_updates),
            "exploit": plan.pbt["exploit"], "explore": plan.pbt["explore"], "ranges": info["ranges"],
            "ready_updates": info["ready_updates"], "best_member": best, "best_final_return": float(final[best]),
            "best_final_hparams": hp_final, "final_return_per_member": [float(v) for v in final],
            "exploited": int(sum(p["parent"] != m["member"] for m in info["members"] for p in m["parents"]))}
    name = r.group.names[0]
    result.summaries[name]["pbt"] = part
    if out_dir is not None:
        population.write_outputs(out_dir, metrics, final, ranges, r.batch.program.env_steps_per_update)
        outputs.write_json(os.path.join(out_dir, "summary.json"), result.summaries[name])
    return info


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
    return execute(plan, out_dir, False, quiet, stop_after, overwrite, stop_on_nan)


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
        res = execute(plan, None if out_dir is None else os.path.join(out_dir, f"rung{r}"), False, quiet, stop_after,
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


def resume(out_dir: str, quiet: bool = False, stop_after: Optional[int] = None, stop_on_nan: bool = False) -> Result:
    """Continue the run in ``out_dir`` from its newest readable checkpoints (the same plan,
    the same programs: the result is bit-identical to an uninterrupted run)."""
    return execute(Plan.read(out_dir), out_dir, True, quiet, stop_after, stop_on_nan=stop_on_nan)


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
    store = _checkpoints(out_dir, group_index)
    try:
        restored = _restore(store, batch, fp, False,
                            lambda msg: print(msg, file=sys.stderr, flush=True) if jax.process_index() == 0 else None)
    finally:
        store.close()
    if restored is None:
        raise ValueError(f"{out_dir}: group {group_index} has no checkpoint yet")
    return g, batch, restored.carry, restored.updates
