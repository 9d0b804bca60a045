"""Workarounds for jaxlib 0.10's CPU backend, gated to where the bug is, in one place.

On this project's 2-core CPU machine jaxlib 0.10.2 hung (never finished, every thread
parked) on vmapped programs. Four workarounds were added over time; this module holds all
of them, applies them only where :func:`cpu_deadlock_prone` says the bug can happen, and
``scripts/repro_cpu_deadlocks.py`` runs the code each one avoids (``eigen``, ``async``,
``qr``, ``solve``) in fresh processes with a timeout to count hangs.

1. **LAPACK-free orthogonal initialiser** (:func:`orthogonal_init`, used by
   ``core/networks.py``). flax's ``orthogonal`` calls ``jnp.linalg.qr``; under ``vmap`` over
   seeds every layer's QR becomes one batched ``lapack_sgeqrf_ffi`` call, which splits its
   batch over XLA's intra-op thread pool (``jax::ParallelBatchMap``) and blocks the calling
   pool thread until the pieces are done. The layers' QRs are independent, XLA runs them at
   once, and when each pool thread is inside one of them nobody runs the pieces: deadlock
   (stacks: the pool's threads in ``ParallelBatchMap -> BlockingCounter::Wait``, the main
   thread in ``BlockUntilReady``). Seen as
   hung tests and benchmarks (commit 6330741: a vmapped 4-layer init hung in about 2 of 5
   runs) and reproduced again for this module (``repro ... qr``: 1 of 8 trials with the
   other three workarounds on, 0 of 5 with this one; details in the script's docstring).
   Replacement: the same Gaussian draw orthonormalised by Gram-Schmidt in plain ``jnp``
   (equal to flax's result to about 2e-5).
2. **Gauss-Jordan linear solve** (:func:`linear_solve`, used by ``lab/exact.py``).
   ``jnp.linalg.solve`` is a batched LAPACK LU (``lapack_sgetrf_ffi``) under ``vmap``, the
   same ``ParallelBatchMap`` call class. Added as a precaution (commit ccc609b, no hang had
   been seen); ``repro ... solve`` has since hung (2 of 8 trials; 0 of 5 with the
   workaround), both pool threads inside the LU kernel. Replacement: Gauss-Jordan
   elimination with partial pivoting in plain ``jnp``, behind ``lax.custom_linear_solve``
   so that it differentiates implicitly.
3. **Eigen intra-op threads off** (``--xla_cpu_multi_thread_eigen=false``, set by
   :func:`configure`). Added when vmapped training programs hung (commit 894f5c8). Those
   programs still initialised their networks with flax's QR (workaround 1 came later, on
   another branch), and 1. reproduces with this flag set, so the hangs it was added for may have been
   the QR deadlock. ``repro ... eigen`` (QR and LU avoided, the flag at XLA's default) did
   not hang in 4 trials of three 64-seed PPO runs: this one is justified only by the
   earlier, confounded observation. It costs no speed here (5%, within noise,
   benchmarks/NOTES.md), so it stays on where the bug class exists.
4. **Synchronous CPU dispatch** (``jax_cpu_enable_async_dispatch=False``, set by
   :func:`configure`). Added after a 64-seed PPO run hung with every XLA worker idle (commit
   1763a76), on a branch that did not yet have workaround 1, so that hang too may have been
   the QR deadlock. ``repro ... async`` (only this setting reverted) did not hang in 4
   trials: justified only by that one earlier observation. A training run is one long
   program, so dispatching it synchronously costs nothing. JAX applies the option only to
   single-device programs, and jax 0.10 does not read ``JAX_CPU_ENABLE_ASYNC_DISPATCH``
   from the environment (:func:`configure` does).

**The gate.** Affected: jaxlib 0.10.x running on the CPU backend. What is known: 0.10.2 on
this 2-core machine hangs (1. and 2. reproduce). What is assumed: the other 0.10 patch
releases share the kernels (the range is the minor version, not the one release), and
earlier and later releases are unaffected. No other jaxlib has been tried on a CPU: the
only other release this project ran is 0.11.2 on an H100, where these CPU kernels do not
run, so "0.11 is fixed" is an assumption to revisit when upgrading (rerun
``scripts/repro_cpu_deadlocks.py all`` on the new jaxlib). The batched-kernel
deadlock needs several concurrent batched factorisations and at most as many pool threads,
so it is likeliest on few cores, but the gate does not look at the core count: nothing shows
that more cores make it impossible. Set ``PUREJAXPG_CPU_WORKAROUNDS=on`` (or ``off``) to
force the choice, e.g. on another jaxlib that shows the same hang; ``auto`` (default)
decides as above. The choice of initialiser and solve changes numbers slightly (about 2e-5
in the initial weights), so results are reproducible only on the same side of the gate.
"""
from __future__ import annotations

import functools
import importlib.util
import os
import re
import warnings
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

OVERRIDE_ENV = "PUREJAXPG_CPU_WORKAROUNDS"  # auto | on | off
AFFECTED_JAXLIB = ((0, 10), (0, 11))  # [first, end) as (major, minor): the 0.10.x series
EIGEN_FLAG = "--xla_cpu_multi_thread_eigen"
ASYNC_OPTION = "jax_cpu_enable_async_dispatch"
ASYNC_ENV = "JAX_CPU_ENABLE_ASYNC_DISPATCH"

# ---------------------------------------------------------------------------------------
# The gate
# ---------------------------------------------------------------------------------------


def affected_jaxlib(version: str) -> bool:
    """Whether a jaxlib version string ("0.10.2", "0.10.3.dev20270101", "0.10.0rc1") is in
    the affected range (0.10.x; see the module docstring for what is known and assumed)."""
    m = re.match(r"\s*(\d+)\.(\d+)", version)
    if not m:
        raise ValueError(f"not a jaxlib version: {version!r}")
    first, end = AFFECTED_JAXLIB
    return first <= (int(m.group(1)), int(m.group(2))) < end


@functools.lru_cache(maxsize=None)
def installed_jaxlib_version() -> str:
    """The installed jaxlib's version, from its package metadata."""
    from importlib import metadata

    try:
        return metadata.version("jaxlib")
    except metadata.PackageNotFoundError:  # a source build without metadata
        from jaxlib.version import __version__

        return __version__


@functools.lru_cache(maxsize=None)
def accelerator_plugins() -> tuple[str, ...]:
    """PJRT plugins JAX would try before the CPU when ``JAX_PLATFORMS`` is unset (found the
    way JAX finds them: modules under the ``jax_plugins`` namespace, ``jax_plugins`` entry
    points, and libtpu), without importing them."""
    from importlib import metadata

    found = {ep.value for ep in metadata.entry_points(group="jax_plugins")}
    spec = importlib.util.find_spec("jax_plugins")
    if spec is not None and spec.submodule_search_locations:
        import pkgutil

        found |= {name for _, name, _ in pkgutil.iter_modules(spec.submodule_search_locations)}
    if importlib.util.find_spec("libtpu") is not None:
        found.add("libtpu")
    return tuple(sorted(found))


def guess_platform(jax_platforms: str, plugins: Sequence[str]) -> str | None:
    """The platform JAX's default backend will have, decided without starting it: the first
    entry of ``JAX_PLATFORMS`` when set (JAX gives the first the highest priority), "cpu"
    when it is unset and no accelerator plugin is installed, else None (unknown: a plugin
    falls back to the CPU when its hardware is missing, which only starting it can tell)."""
    first = jax_platforms.split(",")[0].strip().lower()
    if first:
        return first
    return None if plugins else "cpu"


def backends_started() -> bool:
    """Whether JAX's backends (its clients) exist yet in this process."""
    try:
        from jax._src import xla_bridge
    except ImportError:  # pragma: no cover - another jax's layout
        return False
    started = getattr(xla_bridge, "backends_are_initialized", None)
    return bool(started()) if started else False


def default_platform(start_backend: bool = False) -> str | None:
    """The default backend's platform ("cpu", "gpu", "tpu", ...): ``jax.default_backend()``
    when the backends are up; otherwise :func:`guess_platform` from ``jax_platforms`` and
    the installed plugins, and where that cannot tell, None, or (with ``start_backend``)
    ``jax.default_backend()``, which starts the backends: XLA flags and CPU-client options
    set later in this process then no longer take effect."""
    if backends_started():
        return jax.default_backend()
    guess = guess_platform(jax.config.jax_platforms or "", accelerator_plugins())
    if guess is None and start_backend:
        return jax.default_backend()
    return guess


def _override() -> bool | None:
    value = os.environ.get(OVERRIDE_ENV, "auto").strip().lower()
    if value not in ("auto", "on", "off", ""):
        raise ValueError(f"{OVERRIDE_ENV} must be auto, on or off, got {value!r}")
    return {"on": True, "off": False}.get(value)


def cpu_deadlock_prone(platform: str | None = None, jaxlib_version: str | None = None) -> bool:
    """True where the jaxlib 0.10 CPU deadlocks can happen: the installed jaxlib is in
    :data:`AFFECTED_JAXLIB` and the default backend is the CPU (``PUREJAXPG_CPU_WORKAROUNDS``
    = on/off overrides). Decides the platform with :func:`default_platform`, starting JAX's
    backends only if it cannot tell otherwise (an accelerator plugin is installed and
    ``JAX_PLATFORMS`` is unset); the callers (network init, linear solves) are tracing a
    computation, so the backends are about to start anyway. ``platform`` and
    ``jaxlib_version`` replace what is detected (tests)."""
    forced = _override()
    if forced is not None:
        return forced
    if not affected_jaxlib(jaxlib_version or installed_jaxlib_version()):
        return False
    return (platform or default_platform(start_backend=True)) == "cpu"


# ---------------------------------------------------------------------------------------
# Process settings (workarounds 3 and 4)
# ---------------------------------------------------------------------------------------


def _env_bool(name: str, default: bool) -> bool:
    text = os.environ.get(name)
    if text is None:
        return default
    if text.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if text.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {text!r}")


def configure() -> dict:
    """Apply the process settings of workarounds 3 and 4 where the deadlocks can happen.

    Contract: call once, early, before anything starts JAX's backends (before the first
    array, ``jax.devices()``, ``jit`` call...); importing jax first is fine. The CLI and the
    runner call it; so do tests/conftest.py and the scripts. Library users who import
    purejaxpg into their own program decide for themselves (``import purejaxpg`` changes
    nothing): call it, or set the two settings yourself. (Workarounds 1 and 2 need no
    call: :func:`orthogonal_init` and :func:`linear_solve` consult the gate when traced.)

    - When the platform is known not to be the CPU, or jaxlib is not in the affected range
      (or ``PUREJAXPG_CPU_WORKAROUNDS=off``), does nothing.
    - When it cannot be known without starting the backends (an accelerator plugin is
      installed and ``JAX_PLATFORMS`` is unset), applies them: both only affect JAX's CPU
      client, which on an accelerator machine runs host callbacks only.
    - Appends ``--xla_cpu_multi_thread_eigen=false`` to ``XLA_FLAGS`` unless the flag is
      already there (with any value); child processes inherit it.
    - Sets ``jax_cpu_enable_async_dispatch`` to False, or, when the environment has
      ``JAX_CPU_ENABLE_ASYNC_DISPATCH`` (true/false, 1/0), to that value: jax 0.10 declares
      this option as a flag that does not read its environment variable, so without this
      the variable would do nothing. A ``jax.config.update`` of it to True made before this
      call cannot be told from the default and is overridden: use the variable instead.
    - Idempotent. Does not start the backends. If they have already started and a setting
      would change, it changes nothing and warns (the settings are read when the CPU
      client is created, so they would not take effect).

    Returns what it changed: ``{"XLA_FLAGS": ..., "jax_cpu_enable_async_dispatch": False}``,
    a subset, or {}.
    """
    forced = _override()
    if forced is False:
        return {}
    if forced is None:
        if not affected_jaxlib(installed_jaxlib_version()):
            return {}
        if default_platform(start_backend=False) not in ("cpu", None):
            return {}
    flags = os.environ.get("XLA_FLAGS", "")
    todo = {}
    if EIGEN_FLAG not in flags:
        todo["XLA_FLAGS"] = f"{flags} {EIGEN_FLAG}=false".strip()
    want = _env_bool(ASYNC_ENV, default=False)
    if jax.config.read(ASYNC_OPTION) != want:
        todo[ASYNC_OPTION] = want
    if not todo:
        return {}
    if backends_started():
        warnings.warn(f"purejaxpg.engine.compat.configure() was called after JAX's backends started; "
                      f"{', '.join(todo)} not changed (they would not take effect in this process)",
                      RuntimeWarning, stacklevel=2)
        return {}
    if "XLA_FLAGS" in todo:
        os.environ["XLA_FLAGS"] = todo["XLA_FLAGS"]
    if ASYNC_OPTION in todo:
        jax.config.update(ASYNC_OPTION, todo[ASYNC_OPTION])
    return todo


# ---------------------------------------------------------------------------------------
# Workaround 1: orthogonal initialiser
# ---------------------------------------------------------------------------------------


def _orthonormal_columns(a):
    """Q of the QR decomposition of ``a`` [m, k] (m >= k) with diag(R) > 0, by Gram-Schmidt
    with re-orthogonalisation (CGS2), in plain jnp: no LAPACK call."""

    def step(q, j):
        v = a[:, j]
        v = v - q @ (q.T @ v)  # columns >= j of q are still zero
        v = v - q @ (q.T @ v)  # second pass: orthogonal to float32 precision
        return q.at[:, j].set(v / jnp.sqrt(jnp.sum(v * v))), None

    q, _ = jax.lax.scan(step, jnp.zeros_like(a), jnp.arange(a.shape[1]))
    return q


def gram_schmidt_orthogonal(scale: float = 1.0, column_axis: int = -1):
    """Orthogonal initialiser, the same draw as ``flax.linen.initializers.orthogonal`` (a
    Gaussian matrix's Q factor with diag(R) > 0, so Haar-distributed) without its
    ``jnp.linalg.qr``. Gram-Schmidt on a [<=fan, fan] matrix costs nothing next to training."""

    def init(key, shape, dtype=jnp.float32):
        if len(shape) < 2:
            raise ValueError(f"orthogonal init needs at least 2 dimensions, got shape {shape}")
        n_cols = shape[column_axis]
        n_rows = int(np.prod(shape)) // n_cols
        matrix_shape = (n_cols, n_rows) if n_rows < n_cols else (n_rows, n_cols)
        q = _orthonormal_columns(jax.random.normal(key, matrix_shape, jnp.float32))
        if n_rows < n_cols:
            q = q.T
        q = jnp.moveaxis(q.reshape(tuple(np.delete(shape, column_axis)) + (n_cols,)), -1, column_axis)
        return (scale * q).astype(dtype)

    return init


def orthogonal_init(scale: float = 1.0, column_axis: int = -1):
    """An orthogonal initialiser: :func:`gram_schmidt_orthogonal` where
    :func:`cpu_deadlock_prone`, else flax's (LAPACK/cuSOLVER QR). Decided when called."""
    if cpu_deadlock_prone():
        return gram_schmidt_orthogonal(scale, column_axis)
    import flax.linen as nn

    return nn.initializers.orthogonal(scale, column_axis)


# ---------------------------------------------------------------------------------------
# Workaround 2: linear solve
# ---------------------------------------------------------------------------------------


def _eliminate(A, b):
    """x with A x = b ([S, S], [S]): Gauss-Jordan elimination with partial pivoting in
    plain array ops."""

    n = A.shape[0]
    rows = jnp.arange(n)

    def step(k, M):
        p = jnp.argmax(jnp.where(rows >= k, jnp.abs(M[:, k]), -1.0))  # pivot row
        M = M.at[jnp.stack([k, p])].set(M[jnp.stack([p, k])])
        pivot = M[k] / M[k, k]
        return (M - jnp.outer(M[:, k], pivot)).at[k].set(pivot)

    return jax.lax.fori_loop(0, n, step, jnp.concatenate([A, b[:, None]], axis=1))[:, n]


def gauss_jordan_solve(A, b):
    """A^-1 b ([S, S], [S]) without LAPACK, differentiable in A and b (implicitly: one
    more elimination with A^T)."""
    return jax.lax.custom_linear_solve(lambda x: A @ x, b, solve=lambda _, r: _eliminate(A, r),
                                       transpose_solve=lambda _, r: _eliminate(A.T, r))


def linear_solve(A, b):
    """A^-1 b ([S, S], [S]): :func:`gauss_jordan_solve` where :func:`cpu_deadlock_prone`,
    else ``jnp.linalg.solve``. Decided at trace time."""
    if cpu_deadlock_prone():
        return gauss_jordan_solve(A, b)
    return jnp.linalg.solve(A, b)
