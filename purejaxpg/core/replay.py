"""A replay buffer that lives inside the compiled program.

The buffer is a pytree (``ReplayBuffer``) carried in the train state: every leaf of
``data`` has a leading ``capacity`` axis, ``pos`` is the next slot to write and ``size``
the number of slots written so far (at most ``capacity``). ``add`` writes a batch at
``pos`` and wraps around (a ring: the oldest entries are overwritten first); ``sample``
draws uniformly, with replacement, among the ``size`` written slots only. All functions
are pure, so under ``vmap`` over seeds each seed has its own buffer; ``pos`` and ``size``
depend only on how many batches were added, so they stay unbatched there and writes
remain in-place slice updates.

``memory_bytes`` / ``check_memory`` estimate what a run's buffers take
(``capacity x transition bytes x seeds``) before anything compiles and refuse a run that
would not fit.
"""
from __future__ import annotations

import functools
import math
import os
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax import custom_batching


@struct.dataclass
class ReplayBuffer:
    data: Any  # pytree; every leaf [capacity, ...]
    pos: jax.Array  # int32 scalar: slot the next entry goes to
    size: jax.Array  # int32 scalar: slots written so far, <= capacity

    @property
    def capacity(self) -> int:
        return int(jax.tree_util.tree_leaves(self.data)[0].shape[0])


def init(example: Any, capacity: int) -> ReplayBuffer:
    """An empty buffer of ``capacity`` entries shaped like ``example`` (one entry: a pytree of
    arrays or ``jax.ShapeDtypeStruct`` without the leading axis)."""
    if int(capacity) <= 0:
        raise ValueError(f"buffer capacity must be a positive integer, got {capacity}")
    data = jax.tree_util.tree_map(lambda x: jnp.zeros((int(capacity),) + tuple(x.shape), x.dtype), example)
    return ReplayBuffer(data, jnp.int32(0), jnp.int32(0))


def add(buffer: ReplayBuffer, batch: Any) -> ReplayBuffer:
    """Write ``batch`` (every leaf [B, ...], B <= capacity) into slots pos, pos+1, ... mod
    capacity. When ``capacity`` is a multiple of B a batch never straddles the end, and the
    write is one contiguous in-place slice update (also under ``vmap``, see
    ``_write_rows``); otherwise each row goes to its own slot."""
    capacity = buffer.capacity
    b = int(jax.tree_util.tree_leaves(batch)[0].shape[0])
    if b > capacity:
        raise ValueError(f"cannot add {b} entries at once to a buffer of capacity {capacity}")

    if capacity % b == 0:
        def write(store, x):
            return _write_rows(0)(store, x.astype(store.dtype), buffer.pos)
    else:
        idx = (buffer.pos + jnp.arange(b)) % capacity

        def write(store, x):
            return store.at[idx].set(x.astype(store.dtype), unique_indices=True)

    # The write sits in a conditional whose predicate is always true. A plain write inside a
    # loop, followed by a read (the minibatch gather), lets XLA fuse the write into the read:
    # the gather recomputes the new rows from the old buffer, which must then be copied
    # whole every iteration. Nothing fuses into a conditional, whose operand is then updated
    # in place. (Reading before writing does not help: XLA cannot prove the read comes first
    # and copies too.) The predicate is unbatched under vmap, as ``size`` is.
    data = jax.lax.cond(buffer.size >= 0, lambda d: jax.tree_util.tree_map(write, d, batch), lambda d: d,
                        buffer.data)
    return ReplayBuffer(data, (buffer.pos + b) % capacity, jnp.minimum(buffer.size + b, capacity))


@functools.lru_cache(maxsize=None)
def _write_rows(axis: int):
    """``f(store, rows, pos)``: ``store`` with ``rows`` written at index ``pos`` of dimension
    ``axis`` (a dynamic-update-slice).

    JAX batches ``dynamic_update_slice`` as a scatter even when only the array is batched,
    and XLA lowers that scatter on CPU to a pass over the whole buffer. Here the batching
    rule keeps a true slice update whenever ``pos`` is the same for every batch member
    (the write position depends only on how many batches were added, so under ``vmap``
    over seeds it is), and shifts ``axis`` by one per level of ``vmap``.
    """

    @custom_batching.custom_vmap
    def write(store, rows, pos):
        start = [0] * store.ndim
        start[axis] = pos
        return jax.lax.dynamic_update_slice(store, rows, start)

    @write.def_vmap
    def _rule(axis_size, in_batched, store, rows, pos):
        store_b, rows_b, pos_b = in_batched
        if pos_b:  # a different slot per member: the generic (scatter) path
            def one(s, r, p):
                start = [0] * s.ndim
                start[axis] = p
                return jax.lax.dynamic_update_slice(s, r, start)
            return jax.vmap(one, in_axes=(0 if store_b else None, 0 if rows_b else None, 0))(store, rows, pos), True
        if not store_b:
            store = jnp.broadcast_to(store, (axis_size,) + store.shape)
        if not rows_b:
            rows = jnp.broadcast_to(rows, (axis_size,) + rows.shape)
        return _write_rows(axis + 1)(store, rows, pos), True

    return write


def sample_indices(buffer: ReplayBuffer, key: jax.Array, batch_size: int) -> jax.Array:
    """``batch_size`` slot indices, uniform over the written slots [0, size), with
    replacement. (An empty buffer gives slot 0; callers sample only after adding.)"""
    return jax.random.randint(key, (batch_size,), 0, jnp.maximum(buffer.size, 1))


def sample(buffer: ReplayBuffer, key: jax.Array, batch_size: int) -> Any:
    """A uniform batch of ``batch_size`` written entries (every leaf [batch_size, ...])."""
    idx = sample_indices(buffer, key, batch_size)
    return jax.tree_util.tree_map(lambda store: store[idx], buffer.data)


# ---- memory -----------------------------------------------------------------------

def entry_bytes(example: Any) -> int:
    """Bytes of one entry shaped like ``example``."""
    return sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree_util.tree_leaves(example))


def memory_bytes(example: Any, capacity: int, num_seeds: int = 1) -> int:
    """Bytes the buffers of ``num_seeds`` seeds take: capacity x entry bytes x seeds."""
    return int(capacity) * entry_bytes(example) * int(num_seeds)


def available_memory_bytes() -> int:
    """Memory a run may use: free accelerator memory when the default device reports it,
    otherwise available host memory (``os.sysconf``); a very large number if neither is
    known."""
    try:
        stats = jax.devices()[0].memory_stats() or {}
        if "bytes_limit" in stats:
            return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    except Exception:  # backends without memory statistics
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 2**62


def _fmt(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024


def check_memory(example: Any, capacity: int, num_seeds: int = 1,
                 limit_bytes: Optional[float] = None, fraction: float = 0.5) -> int:
    """Refuse (``ValueError``, one line) a run whose buffers would take more than
    ``limit_bytes`` — by default ``fraction`` of ``available_memory_bytes()``, leaving the
    rest for the program's other arrays and temporaries. Returns the estimate in bytes."""
    need = memory_bytes(example, capacity, num_seeds)
    limit = fraction * available_memory_bytes() if limit_bytes is None or limit_bytes <= 0 else limit_bytes
    if need > limit:
        raise ValueError(
            f"replay buffers need {_fmt(need)} ({capacity} transitions x {entry_bytes(example)} bytes x "
            f"{num_seeds} seeds), more than the {_fmt(math.floor(limit))} allowed; lower buffer_size or "
            f"the number of seeds, or raise memory_limit_mb")
    return need
