"""Orbax checkpoints of a chunked run's complete state.

A chunked run (``purejaxpg.engine.sweep``) carries, per run in its batch, the whole train state —
parameters, optimiser state, normaliser statistics, env state, replay buffer, algorithm
state and the PRNG keys (as raw uint32 data) — through consecutive chunks of updates.
After each chunk ``CheckpointStore.save`` writes that carry and the per-update metrics
so far as Orbax step ``k`` (the number of chunks done) under ``DIR/checkpoints``.

Orbax writes a step into a temporary directory and renames it when complete, and saves
here are synchronous, so a run killed or interrupted (Ctrl-C) at any moment leaves the
previous step intact: ``latest()`` only ever sees finished checkpoints.

The carry is stored as its flat list of leaves (``leaf_00000``, ...); restoring needs the
same structure, which ``jax.eval_shape`` of the run's ``init`` gives without computing
anything. Leaves are ``jax.Array``s with their shardings, so a run sharded over devices
(or processes) saves and restores each shard where it lives.
"""
from __future__ import annotations

import os
from typing import Any, Optional

import jax
import numpy as np


def _flat(tree) -> dict:
    return {f"leaf_{i:05d}": x for i, x in enumerate(jax.tree_util.tree_leaves(tree))}


def _rows(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` with ``n`` rows (runs): cut, or padded with copies of its last row."""
    if x.shape[0] >= n:
        return x[:n]
    return np.concatenate([x, np.repeat(x[-1:], n - x.shape[0], 0)])


class CheckpointStore:
    """``save(step, carry, metrics)`` / ``restore(step, abstract_carry, metric_names, ...)``
    under ``directory`` (keeps the last ``max_to_keep`` steps)."""

    def __init__(self, directory: str, max_to_keep: int = 2):
        import orbax.checkpoint as ocp  # imported lazily: only chunked runs need it

        self._ocp = ocp
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, enable_async_checkpointing=False,
                                               create=True)
        self._mgr = ocp.CheckpointManager(self.directory, options=options)

    def latest(self) -> Optional[int]:
        """The last complete step (chunks done), or None."""
        return self._mgr.latest_step()

    def save(self, step: int, carry: Any, metrics: dict) -> None:
        """``metrics``: {name: host array [B, updates done]}."""
        tree = {"carry": _flat(carry), "metrics": {k: np.asarray(v) for k, v in metrics.items()}}
        self._mgr.save(int(step), args=self._ocp.args.StandardSave(tree))
        self._mgr.wait_until_finished()

    def restore(self, step: int, abstract_carry: Any, metric_shapes: dict):
        """Returns (carry with the structure of ``abstract_carry``, {name: np.ndarray}).

        ``abstract_carry``: a pytree of ``jax.ShapeDtypeStruct`` (with ``sharding`` set to
        where each leaf should live); ``metric_shapes``: {name: (shape, dtype)}."""
        leaves, treedef = jax.tree_util.tree_flatten(abstract_carry)
        target = {"carry": _flat(leaves),
                  "metrics": {k: np.zeros(s, d) for k, (s, d) in metric_shapes.items()}}
        # strict=False: the batch axis (runs padded to a multiple of the device count) may
        # be longer or shorter than the target's on another device count; the real runs
        # come first, so truncating drops padding and padding adds runs that are dropped
        out = self._mgr.restore(int(step), args=self._ocp.args.StandardRestore(target, strict=False))
        carry = jax.tree_util.tree_unflatten(treedef, [out["carry"][k] for k in sorted(out["carry"])])
        return carry, {k: _rows(np.asarray(v), metric_shapes[k][0][0]) for k, v in out["metrics"].items()}

    def close(self) -> None:
        self._mgr.wait_until_finished()
        self._mgr.close()
