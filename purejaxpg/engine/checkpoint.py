"""Orbax checkpoints of a run's complete state, checked when read back.

A run carries, per run in its batch, the whole train state — parameters, optimiser state,
normaliser statistics, env state, replay buffer, algorithm state and the PRNG keys (as raw
uint32 data) — through consecutive chunks of updates. ``CheckpointStore.save`` writes that
carry, the per-update metrics so far and each run's first non-finite update as Orbax step
``k`` (the number of chunks done) under ``DIR/checkpoints/groupG``, with a small JSON item
beside it: the run's fingerprint (engine.plan.fingerprint) and the number of updates done.

Orbax writes a step into a temporary directory and renames it when complete, and saves
here are synchronous, so a run killed at any moment (``kill -9`` included) leaves the
previous step intact; leftover temporary directories are removed when the store opens.
After the rename the store adds ``purejaxpg-files.json`` to the step: the size and SHA-256
of each of its files. Restoring checks them, so a truncated or altered file is found
before Orbax reads it, by name.

``restore_latest`` takes the newest step that reads back completely and falls back to the
one before when it does not (saying which and why); a step whose fingerprint differs from
the run's is refused, not skipped: the directory holds another run's state.

The carry is stored as its flat list of leaves (``leaf_00000``, ...); restoring needs the
same structure, which ``jax.eval_shape`` of the run's ``init`` gives without computing
anything. Leaves are ``jax.Array``s with their shardings, so a run sharded over devices
(or processes) saves and restores each shard where it lives.
"""
from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import jax
import numpy as np

MANIFEST = "purejaxpg-files.json"
_TMP = ".orbax-checkpoint-tmp"


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (a full disk, say); the previous one is intact."""


def _flat(tree) -> dict:
    return {f"leaf_{i:05d}": x for i, x in enumerate(jax.tree_util.tree_leaves(tree))}


def _rows(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` with ``n`` rows (runs): cut, or padded with copies of its last row."""
    if x.shape[0] >= n:
        return x[:n]
    return np.concatenate([x, np.repeat(x[-1:], n - x.shape[0], 0)])


@contextlib.contextmanager
def _quiet():
    """Orbax and TensorStore report a failed read or write through logging (absl, asyncio:
    "Task exception was never retrieved" with a traceback) as well as by raising; the
    runner reports it in one line, so those loggers are silenced meanwhile."""
    loggers = [logging.getLogger(n) for n in ("absl", "asyncio", "orbax", "jax._src.distributed")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # "coroutine ... was never awaited" after a failure
            try:
                yield
            finally:
                gc.collect()  # unretrieved task exceptions are logged when collected: now, while silenced
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _late_read_callback(unraisable) -> bool:
    """Whether an unraisable exception is a TensorStore read finishing after Orbax closed its
    event loop: ``RuntimeError('Event loop is closed')`` from ``call_soon_threadsafe``, with
    no object."""
    if unraisable.object is not None or not isinstance(unraisable.exc_value, RuntimeError):
        return False
    frames = traceback.extract_tb(unraisable.exc_traceback)
    return str(unraisable.exc_value) == "Event loop is closed" and bool(frames) and \
        frames[0].name == "call_soon_threadsafe"


_dropping_late_reads = False


def _drop_late_read_callbacks() -> None:
    """Once per process, put a filter in front of ``sys.unraisablehook`` that drops the
    exceptions ``_late_read_callback`` describes and passes every other one on.

    When a restore fails on a damaged file, Orbax (0.12's ``run_sync``) closes its event loop
    while TensorStore still reads the step's other files; each of those reads then finds the
    loop closed when it completes, and Python printed a traceback for every one (dozens per
    damaged step, at any moment after the runner had reported the failure in one line). The
    reads' results are not wanted. tests/test_nothing_lost.py
    (test_a_step_without_its_manifest_is_checked_by_orbax) shows it."""
    global _dropping_late_reads
    if _dropping_late_reads:
        return
    _dropping_late_reads = True
    previous = sys.unraisablehook

    def hook(unraisable):
        if not _late_read_callback(unraisable):
            previous(unraisable)

    sys.unraisablehook = hook


def _one_line(e: BaseException, limit: int = 300) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:limit]}{'...' if len(text) > limit else ''}"


def _named_file(e: BaseException, step_dir: str) -> str:
    """The file an Orbax/TensorStore error names (the innermost, i.e. the last one named that
    is a file in the step), relative to the step; "." when it names none."""
    found = "."
    for groups in re.findall(r'"(/[^"]+)"|(/[^\s"\']+)', str(e)):
        path = next(g for g in groups if g).rstrip(":,;'")
        if path.startswith(step_dir) and os.path.isfile(path):
            found = os.path.relpath(path, step_dir)
    return found


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class Restored:
    """A checkpoint read back: ``step`` (chunks done), ``meta`` (its JSON item), the carry,
    metrics {name: [runs, updates]}, first non-finite update per run, and the newer steps
    that could not be read (``skipped``: [(step, reason)])."""

    step: int
    meta: dict
    carry: Any
    metrics: dict
    first_nonfinite: np.ndarray
    skipped: list = field(default_factory=list)

    @property
    def updates(self) -> int:
        return int(self.meta["updates"])


class CheckpointStore:
    """``save(step, carry, metrics, first_nonfinite, meta)`` / ``restore_latest(...)`` under
    ``directory`` (keeps the last ``max_to_keep`` steps)."""

    def __init__(self, directory: str, max_to_keep: int = 2):
        import orbax.checkpoint as ocp  # imported lazily: only runs with an output directory need it

        _drop_late_read_callbacks()
        self._ocp = ocp
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, enable_async_checkpointing=False,
                                               create=True, cleanup_tmp_directories=True)
        with _quiet():
            self._mgr = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

    def steps(self) -> list:
        """Every complete step on disk, oldest first."""
        return sorted(self._mgr.all_steps())

    def latest(self) -> Optional[int]:
        """The last complete step (chunks done), or None."""
        return self._mgr.latest_step()

    def save(self, step: int, carry: Any, metrics: dict, first_nonfinite: np.ndarray, meta: dict) -> None:
        """``metrics``: {name: host array [B, updates done]}; ``first_nonfinite``: [B] int32.
        Raises ``CheckpointWriteError`` (one line) when the step cannot be written; the
        steps already on disk are left as they were."""
        tree = {"carry": _flat(carry), "metrics": {k: np.asarray(v) for k, v in metrics.items()},
                "first_nonfinite": np.asarray(first_nonfinite, np.int32)}
        args = self._ocp.args.Composite(state=self._ocp.args.StandardSave(tree), meta=self._ocp.args.JsonSave(meta))
        try:
            with _quiet():
                if int(step) in self._mgr.all_steps():  # a step of a run resumed from an older one
                    self._mgr.delete(int(step))
                self._mgr.save(int(step), args=args, force=True)
                self._mgr.wait_until_finished()
            if jax.process_index() == 0:
                self._write_manifest(int(step))
        except Exception as e:  # Orbax/TensorStore raise many types for one failed write
            self._remove_partial(int(step))
            raise CheckpointWriteError(f"could not write checkpoint {step} in {self.directory} ({_one_line(e, 160)}); "
                                       f"the previous checkpoint is intact") from None

    def _step_dir(self, step: int) -> str:
        return os.path.join(self.directory, str(step))

    def _write_manifest(self, step: int) -> None:
        from purejaxpg.engine.outputs import write_json

        root = self._step_dir(step)
        files = {}
        for dirpath, _, names in os.walk(root):
            for name in names:
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root)
                if rel != MANIFEST and ".tmp" not in name:
                    files[rel] = [os.path.getsize(path), _sha256(path)]
        write_json(os.path.join(root, MANIFEST), {"files": files})

    def _remove_partial(self, step: int) -> None:
        """Orbax's temporary directory of a failed save (and a manifest half written)."""
        if jax.process_index() != 0 or not os.path.isdir(self.directory):
            return
        for name in os.listdir(self.directory):
            if name.startswith(f"{step}{_TMP}"):
                shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)
        root = self._step_dir(step)
        if os.path.isdir(root):
            for name in os.listdir(root):
                if name.startswith(MANIFEST + ".tmp"):
                    os.remove(os.path.join(root, name))

    def verify(self, step: int) -> Optional[str]:
        """Why ``step`` cannot be read (naming the file), or None when its files are as
        written. A step without a manifest (killed between Orbax's rename and the
        manifest) is left to Orbax's own checks."""
        root = self._step_dir(step)
        path = os.path.join(root, MANIFEST)
        if not os.path.exists(path):
            return None
        try:
            with open(path) as f:
                files = json.load(f)["files"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            return f"{path}: unreadable ({_one_line(e, 80)})"
        for rel, (size, digest) in sorted(files.items()):
            p = os.path.join(root, rel)
            if not os.path.exists(p):
                return f"{p} is missing"
            actual = os.path.getsize(p)
            if actual != size:
                return f"{p} is truncated or altered ({actual} bytes, {size} written)"
            if _sha256(p) != digest:
                return f"{p} does not match its SHA-256 at writing"
        return None

    def read_meta(self, step: int) -> dict:
        with _quiet():
            out = self._mgr.restore(int(step), args=self._ocp.args.Composite(meta=self._ocp.args.JsonRestore()))
        meta = out["meta"]
        if not isinstance(meta, dict) or "updates" not in meta:
            raise ValueError("its meta item has no 'updates'")
        return meta

    def restore_latest(self, abstract_carry: Any, metric_dtypes: dict, num_rows: int, fingerprint: Optional[dict],
                       delete_unreadable: bool = False) -> Optional[Restored]:
        """The newest step that reads back completely, or None when there is no step.

        ``abstract_carry``: a pytree of ``jax.ShapeDtypeStruct`` (with ``sharding`` set to
        where each leaf should live); ``metric_dtypes``: {name: dtype}; ``num_rows``: the
        runs of the batch (metrics and ``first_nonfinite`` are cut or padded to it).
        ``fingerprint``: the run's (run.json); a step written with another is refused
        (ValueError). Newer steps that cannot be read are skipped (and deleted with
        ``delete_unreadable``, so that the resumed run can write those steps again); when
        none can be read, a one-line ValueError names the file that failed."""
        from purejaxpg.engine.plan import fingerprint_difference

        skipped = []
        for step in reversed(self.steps()):
            step_dir = self._step_dir(step)
            problem = self.verify(step)
            meta = None
            if problem is None:
                try:
                    meta = self.read_meta(step)
                except Exception as e:
                    problem = f"{os.path.join(step_dir, 'meta')}: {_one_line(e, 120)}"
            if problem is None and fingerprint is not None:
                diff = fingerprint_difference(fingerprint, meta.get("fingerprint"))
                if diff:
                    raise ValueError(f"checkpoint {step_dir} belongs to another run than its run.json ({diff}); "
                                     f"start this run again with --overwrite, or give another --out")
            if problem is None:
                try:
                    carry, metrics, first = self._restore_state(step, abstract_carry, metric_dtypes, num_rows,
                                                                int(meta["updates"]))
                    if skipped and delete_unreadable:
                        self._mgr.reload()  # the steps deleted above
                    return Restored(step, meta, carry, metrics, first, skipped)
                except Exception as e:  # a damaged step raises whatever TensorStore raised
                    problem = f"{os.path.join(step_dir, _named_file(e, step_dir))} cannot be read " \
                              f"({_one_line(e, 120)})"
            skipped.append((step, problem))
            if delete_unreadable and jax.process_index() == 0:
                shutil.rmtree(step_dir, ignore_errors=True)
        if skipped:
            self._mgr.reload()
            raise ValueError(f"no readable checkpoint in {self.directory}: "
                             + "; ".join(f"step {s}: {why}" for s, why in skipped))
        return None

    def _restore_state(self, step: int, abstract_carry: Any, metric_dtypes: dict, num_rows: int, updates: int):
        leaves, treedef = jax.tree_util.tree_flatten(abstract_carry)
        target = {"carry": _flat(leaves),
                  "metrics": {k: np.zeros((num_rows, updates), d) for k, d in metric_dtypes.items()},
                  "first_nonfinite": np.zeros((num_rows,), np.int32)}
        # strict=False: the batch axis (runs padded to a multiple of the device count) may
        # be longer or shorter than the target's on another device count; the real runs
        # come first, so truncating drops padding and padding adds runs that are dropped
        args = self._ocp.args.Composite(state=self._ocp.args.StandardRestore(target, strict=False))
        with _quiet():
            out = self._mgr.restore(int(step), args=args)["state"]
        carry = jax.tree_util.tree_unflatten(treedef, [out["carry"][k] for k in sorted(out["carry"])])
        metrics = {k: _rows(np.asarray(v), num_rows) for k, v in out["metrics"].items()}
        return carry, metrics, _rows(np.asarray(out["first_nonfinite"]), num_rows)

    def close(self) -> None:
        with _quiet():
            self._mgr.wait_until_finished()
            self._mgr.close()


def open_store(out_dir: Optional[str], gi: int) -> Optional["CheckpointStore"]:
    """Group ``gi``'s checkpoints in ``out_dir`` (None without one)."""
    if out_dir is None:
        return None
    return CheckpointStore(os.path.join(out_dir, "checkpoints", f"group{gi}"))


def _metric_dtypes(batch) -> dict:
    return {k: v.dtype for k, v in batch.metric_shapes(1).items()}


def restore_newest(store, batch, fp: Optional[dict], delete_unreadable: bool, log: Callable):
    """The newest readable checkpoint of ``store`` for ``batch`` (None when there is none);
    says which steps it skipped."""
    from purejaxpg.engine.control import wait

    restored = wait(store.restore_latest, batch.abstract, _metric_dtypes(batch), batch.padded, fp,
                     delete_unreadable)
    if restored is not None and restored.skipped:
        why = "; ".join(f"step {s}: {reason}" for s, reason in restored.skipped)
        log(f"purejaxpg: checkpoint {'; '.join(str(s) for s, _ in restored.skipped)} in {store.directory} could not "
            f"be read ({why}); using step {restored.step} ({restored.updates} updates)")
    return restored
