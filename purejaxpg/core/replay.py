"""A replay buffer that lives inside the compiled program.

The buffer is a pytree (``ReplayBuffer``) carried in the train state: every leaf of
``data`` has a leading ``capacity`` axis, ``pos`` is the next slot to write and ``size``
the number of slots written so far (at most ``capacity``). ``add`` writes a batch at
``pos`` and wraps around (a ring: the oldest entries are overwritten first); ``sample``
draws uniformly, with replacement, among the ``size`` written slots only. All functions
are pure, so under ``vmap`` over seeds each seed has its own buffer; ``pos`` and ``size``
depend only on how many batches were added, so they stay unbatched there and writes
remain in-place slice updates.

``entry_bytes`` is the size of one transition; the runner's memory check (engine.memory)
counts every run's buffers before anything compiles.
"""
from __future__ import annotations

import functools
from typing import Any

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
