"""Process settings the command line and the runner apply before JAX's backend starts: the
jaxlib 0.10 CPU workarounds (``compat.configure``), on a CPU one XLA device per core, and
JAX's Threefry hash lowered for the CPU as straight-line code (``straight_threefry``).

XLA runs a CPU program's operations on one core at a time here (the intra-op thread pool is
off, ``compat``), so one CPU device uses one core. Splitting the host into as many XLA
devices as it has cores (``--xla_force_host_platform_device_count``) lets the runner shard
its runs over all of them, still one SPMD program (engine.batch). The number: ``devices``
if given (``--host-devices N``; 1 keeps one device), else ``PUREJAXPG_HOST_DEVICES``, else
the cores this process may use. Nothing changes where the user set the XLA flag, where the
backend is not the CPU, or once the backend has started (then a request for a device count
that cannot take effect warns).

A run's floats depend on how many runs one device holds (XLA compiles a reduction for the
vmapped batch size), so the same command on machines with different core counts agrees to
rounding, not bit for bit, unless ``--block K`` fixes the runs vmapped at a time
(engine.batch); with ``--block`` the results are the same on any number of devices.
"""
from __future__ import annotations

import os
import warnings
from typing import Optional

from purejaxpg.engine import compat

DEVICE_FLAG = "--xla_force_host_platform_device_count"
DEVICES_ENV = "PUREJAXPG_HOST_DEVICES"


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def vector_isa() -> str:
    """The widest x86 vector instructions of this CPU, which XLA:CPU and YNNPACK compile for:
    "avx512", "avx2", or "" (another CPU, or no /proc/cpuinfo). The same program's floats
    differ between an AVX-512 and an AVX2 host in the last bits, so summary.json records it
    and tests pin bit-exact results per instruction set (docs/development.md)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(f.read().split())
    except OSError:
        return ""
    return "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else ""


def straight_threefry() -> bool:
    """Lower JAX's Threefry-2x32 hash (every ``jax.random`` draw, split and fold-in) for the
    CPU as straight-line code, as JAX does for GPUs, instead of its CPU default: a loop over
    the five groups of four rounds. The hash is integer arithmetic, so the bits are the same
    (tests/test_host.py); what changes is that a draw becomes one fused kernel instead of a
    loop of small ones, at every step of a rollout and in every initialiser: PPO on
    CartPole-v1 at 1 seed ran 6-17% faster and compiled 1-2 s sooner, at 8 seeds -1 to +8%
    and 2-4.5 s (benchmarks/NOTES.md, "Threefry on the CPU"). Takes JAX's own straight-line
    rule for other platforms (``jax._src``); where a JAX release lacks it, nothing changes.
    Idempotent; affects programs lowered after the call. Returns whether the rule is in place."""
    try:
        from jax._src.random.threefry2x32 import _threefry2x32_lowering_rule as straight
        from jax.extend.random import threefry2x32_p
        from jax.interpreters import mlir

        mlir.register_lowering(threefry2x32_p, straight, platform="cpu", inline=False)
    except (ImportError, AttributeError, TypeError):
        return False
    return True


def configure(devices: Optional[int] = None) -> dict:
    """Apply the process settings (see the module docstring); idempotent. Returns what
    changed: compat's settings and ``{"host_devices": n}`` when the device count was set."""
    straight_threefry()
    changed = compat.configure()
    wanted = devices if devices is not None else int(os.environ.get(DEVICES_ENV, 0) or 0) or None
    if DEVICE_FLAG in os.environ.get("XLA_FLAGS", "") or compat.default_platform(start_backend=False) != "cpu":
        return changed
    n = wanted if wanted is not None else cores()
    if n <= 1:
        return changed
    if compat.backends_started():
        if wanted is not None:
            warnings.warn(f"{n} host devices were asked for after JAX's backend started; the process keeps its "
                          f"devices", RuntimeWarning, stacklevel=2)
        return changed
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {DEVICE_FLAG}={n}".strip()
    return {**changed, "host_devices": n}
