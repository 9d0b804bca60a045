"""The memory check every run passes before anything is compiled.

The estimate comes from shapes only (``jax.eval_shape`` of one run's ``init``): per run,
the carry twice (a chunk's input and output: parameters, optimiser state, env states,
replay buffers, ...) plus the program's temporaries of one update (``Program.scratch_bytes``),
times the runs per device, plus one chunk's metrics. A program above the limit (half of
the device's free memory, or of the host's on CPU, unless ``--memory-limit-mb`` says
otherwise) is refused with one line naming the biggest part of a run's state and what to
change.
"""
from __future__ import annotations

import math
import os

import jax
import numpy as np


def tree_bytes(tree) -> int:
    return sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree_util.tree_leaves(tree))


def largest_part(tree) -> tuple:
    """(name, bytes) of the largest part of a carry ``tree`` (a pytree of shapes): its leaves
    summed by the first field or key on their path (``buffer``, ``params``, ``env``, ...)."""
    parts: dict = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        names = [str(getattr(k, "name", getattr(k, "key", ""))) for k in path]  # fields and keys, not indices
        name = next((n for n in names if n), "state")
        parts[name] = parts.get(name, 0) + tree_bytes(leaf)
    return max(parts.items(), key=lambda kv: kv[1])


def fmt(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024


def available_bytes() -> int:
    """Free accelerator memory when the default device reports it, otherwise available host
    memory; a very large number if neither is known."""
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


def shared_limit_mb(limit_mb: float) -> float:
    """The limit every process applies: with several processes and no explicit limit, half
    the smallest free memory among them, so that all take the same decision (one refusing
    alone would leave the others waiting in a collective)."""
    if (limit_mb and limit_mb > 0) or jax.process_count() == 1:
        return limit_mb
    from jax.experimental import multihost_utils

    free_mb = multihost_utils.process_allgather(np.float32(available_bytes() / 2**20))
    return 0.5 * float(np.min(free_mb))


def estimate(run_carry, scratch_bytes: int, num_metrics: int, chunk_length: int, runs_per_device: int) -> dict:
    """Bytes per device of a program running ``runs_per_device`` runs whose carry has the
    shapes ``run_carry`` (one run)."""
    carry = tree_bytes(run_carry)
    per_run = 2 * carry + int(scratch_bytes) + 4 * num_metrics * chunk_length
    return {"run_carry_bytes": carry, "per_run_bytes": per_run, "per_device_bytes": per_run * runs_per_device}


def check(est: dict, run_carry, num_runs: int, num_devices: int, limit_mb: float = 0.0) -> None:
    """Refuse (one-line ValueError) a program whose estimate exceeds the limit."""
    limit = limit_mb * 2**20 if limit_mb and limit_mb > 0 else 0.5 * available_bytes()
    need = est["per_device_bytes"]
    if need <= limit:
        return
    part, part_bytes = largest_part(run_carry)
    fit = max(0, int(limit // max(1, est["per_run_bytes"]))) * num_devices
    raise ValueError(
        f"this program needs about {fmt(need)} per device ({num_runs} runs x {fmt(est['per_run_bytes'])} over "
        f"{num_devices} device(s); the largest part of a run's state is {part}, {fmt(part_bytes)}), more than the "
        f"{fmt(limit)} allowed; run fewer seeds or configurations per program (about {fit} fit)"
        f"{', lower --buffer-size' if part == 'buffer' else ''}, use more devices, or raise --memory-limit-mb")


def per_device(num_runs: int, num_devices: int, block: int) -> int:
    """Runs each device holds: ``num_runs`` padded to a multiple of devices x block."""
    step = num_devices * max(1, int(block))
    return math.ceil(num_runs / step) * max(1, int(block))
