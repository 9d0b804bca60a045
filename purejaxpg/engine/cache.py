"""JAX's persistent compilation cache, on by default for the command line and the runner,
and the compile statistics a run reports in summary.json.

Where the cache lives, first match wins:

1. ``--compile-cache DIR|off`` (the command line) or ``configure(choice)``;
2. ``PUREJAXPG_COMPILE_CACHE`` = DIR or ``off``;
3. a directory the user already gave JAX (``JAX_COMPILATION_CACHE_DIR`` or
   ``jax.config.update("jax_compilation_cache_dir", ...)``): kept as it is;
4. ``$XDG_CACHE_HOME/purejaxpg/jax``, else ``~/.cache/purejaxpg/jax``.

``off`` turns JAX's cache off in the process (``jax_enable_compilation_cache``), even
where the user had set a directory. Every program is cacheable here (minimum compile time 0 s,
no minimum entry size): a training run's small programs (init, evaluation, key splits)
add up too. JAX writes nothing for a program with host callbacks, which is why the runner
reports progress from the host between pieces of a chunk, not from inside the program.

What the cache does not save: tracing the Python functions to jaxprs, lowering them to
StableHLO and hashing that into the key happen in every process (``stats()`` times them).
The cache must be trusted: whoever can write to it can make this process run code (JAX's
own warning), so it is per user, never shared.

``import purejaxpg`` changes nothing; ``configure`` is called by the CLI (``main``) and
``runner.execute``, before the first compile. Once it has decided, a later call without a
choice keeps that decision, and nothing changes once JAX has opened a cache in this process
(JAX reads the directory at its first compile).
"""
from __future__ import annotations

import functools
import hashlib
import os
import pickle
import site
import sys
import sysconfig
import threading
import warnings
from typing import Optional

import jax

ENV = "PUREJAXPG_COMPILE_CACHE"
OFF = ("off", "none", "0", "false", "no")
EVENTS = {  # jax.monitoring event -> our name
    "/jax/compilation_cache/compile_requests_use_cache": "requests",
    "/jax/compilation_cache/cache_hits": "hits",
    "/jax/compilation_cache/cache_misses": "writes",
    "program_hit": "program_hits",  # ours: a group's programs read whole (load_programs)
}
DURATIONS = {
    "/jax/core/compile/jaxpr_trace_duration": "trace_seconds",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower_seconds",
    "/jax/core/compile/backend_compile_duration": "xla_seconds",  # XLA compile, or a cache read on a hit
    "/jax/compilation_cache/cache_retrieval_time_sec": "cache_read_seconds",
}


def default_dir() -> str:
    """``$XDG_CACHE_HOME/purejaxpg/jax``, else ``~/.cache/purejaxpg/jax``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "purejaxpg", "jax")


def resolve(choice: Optional[str] = None) -> Optional[str]:
    """The cache directory ``choice`` / the environment / JAX's setting / the default stand
    for (see the module docstring), or None for off."""
    for value in (choice, os.environ.get(ENV)):
        if value is not None and value.strip():
            value = value.strip()
            return None if value.lower() in OFF else os.path.abspath(os.path.expanduser(value))
    return _jax_dir() or default_dir()


def _jax_dir() -> Optional[str]:
    """The directory JAX's own setting names (``JAX_COMPILATION_CACHE_DIR``), if any."""
    return jax.config.jax_compilation_cache_dir


def _opened() -> bool:
    """Whether JAX has already opened a cache in this process (then its directory is fixed)."""
    try:
        from jax._src import compilation_cache
    except ImportError:  # pragma: no cover - another jax's layout
        return False
    return bool(getattr(compilation_cache, "_cache_initialized", False))


_chosen = False  # configure() has decided: a later call without a choice keeps it


def configure(choice: Optional[str] = None) -> Optional[str]:
    """Turn the persistent cache on in ``resolve(choice)`` (or off); returns the directory in
    use, None when off. Also starts counting compile events for ``stats``."""
    global _chosen
    _listen()
    if _opened() or (choice is None and _chosen):  # JAX fixed its cache at its first compile, or it is chosen
        return directory()
    path = resolve(choice)
    _chosen = True
    if path is None:
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return path


def directory() -> Optional[str]:
    """The cache directory in use (None: off)."""
    if not jax.config.jax_enable_compilation_cache:
        return None
    return jax.config.jax_compilation_cache_dir


# ---------------------------------------------------------------------------------------
# Compile statistics
# ---------------------------------------------------------------------------------------

_lock = threading.Lock()
_totals: dict = {}
_listening = False


def _on_event(event: str, **kwargs) -> None:
    name = EVENTS.get(event)
    if name:
        with _lock:
            _totals[name] = _totals.get(name, 0) + 1


def _on_duration(event: str, seconds: float, **kwargs) -> None:
    name = DURATIONS.get(event)
    if name:
        with _lock:
            _totals[name] = _totals.get(name, 0.0) + float(seconds)


def _listen() -> None:
    global _listening
    with _lock:
        if _listening:
            return
        _listening = True
    jax.monitoring.register_event_listener(_on_event)
    jax.monitoring.register_event_duration_secs_listener(_on_duration)


def snapshot() -> dict:
    """The process's compile counters so far (pass to ``stats`` later)."""
    _listen()
    with _lock:
        return dict(_totals)


def delta(since: dict) -> dict:
    """The counters' growth since ``snapshot()`` returned ``since``."""
    now = snapshot()
    return {k: v - since.get(k, 0) for k, v in now.items()}


def stats(since: dict, plus: Optional[dict] = None) -> dict:
    """What was compiled since ``snapshot()`` returned ``since``: ``cache_dir`` (None: off);
    ``hits`` (executables read from the cache), ``misses`` (compiled by XLA: requests that
    were not hits), ``writes`` (of those, written to the cache); seconds spent ``trace``-ing
    (Python to jaxpr), ``lower``-ing (jaxpr to StableHLO) and in ``xla`` (XLA's compile, or
    reading the cache on a hit), each summed over the programs. ``plus``: a ``delta`` to add
    (an earlier phase of the same work)."""
    d = delta(since)
    for k, v in (plus or {}).items():
        d[k] = d.get(k, 0) + v
    path = directory()
    hits = d.get("hits", 0)
    out = {"cache_dir": path, "hits": hits if path else 0, "misses": d.get("requests", 0) - hits if path else None,
           "writes": d.get("writes", 0) if path else 0}
    for k in ("trace_seconds", "lower_seconds", "xla_seconds"):
        out[k] = round(d.get(k, 0.0), 4)
    return out


# ---------------------------------------------------------------------------------------
# The runner's programs, traced once: executables and shapes by a key of everything they
# are made from
# ---------------------------------------------------------------------------------------

PROGRAMS = "purejaxpg-programs"  # beside JAX's entries, in the same directory
FORMAT = 1  # of the stored programs; part of the key
PROGRAMS_MAX_BYTES = 2 << 30  # the least recently used go beyond this


@functools.lru_cache(maxsize=None)
def _package_digest() -> str:
    """sha256 of every .py file of this package (paths and contents)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    h = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                h.update(os.path.relpath(path, root).encode() + b"\0")
                with open(path, "rb") as f:
                    h.update(f.read() + b"\0")
    return h.hexdigest()


def _loaded_modules() -> str:
    """Name, file, size and modification time of every module loaded from a file (jax,
    flax, gymnax, the user's own algorithm or env module, ...), the standard library's
    aside: an edit anywhere changes it."""
    rows = []
    paths = sysconfig.get_paths()
    stdlib = os.path.join(paths["stdlib"], "")
    packages = tuple(os.path.join(p, "") for p in {paths["purelib"], paths["platlib"], *site.getsitepackages()})
    for name, module in sorted(list(sys.modules.items()), key=lambda kv: kv[0]):
        path = getattr(module, "__file__", None)
        if path and (not path.startswith(stdlib) or path.startswith(packages)):  # Python's own: in sys.version
            try:
                st = os.stat(path)
            except OSError:
                continue
            rows.append(f"{name}:{path}:{st.st_size}:{st.st_mtime_ns}")
    return "\n".join(rows)


def _from_files(plan, config) -> bool:
    """Whether the code of this plan's programs lives in files the key can see: the
    algorithm is the package's or ``module:attribute`` of a module with a file, and an env
    added with ``register_env`` has its factory in a module with a file (not a notebook)."""
    from purejaxpg.algos import REGISTRY
    from purejaxpg.envs import gymnax as envs

    if plan.algo not in REGISTRY and not getattr(sys.modules.get(plan.algo.split(":")[0]), "__file__", None):
        return False
    factory = envs._REGISTRY.get(getattr(config, "env", None))
    if factory is not None:
        module = sys.modules.get(getattr(factory, "__module__", None) or "")
        if module is None or not getattr(module, "__file__", None) or module.__name__ == "__main__":
            return False
    return True


def program_key(plan, config, parts: dict) -> Optional[str]:
    """The key of one group's programs, or None where they are not stored (the cache is off,
    several processes, code the key cannot see): the package's sources, every loaded
    module's file (size and time), JAX's configuration, the XLA_/JAX_/PUREJAXPG_ environment,
    the devices, Python, the algorithm, its static config and ``parts`` (runs, block,
    chunk capacity...)."""
    if directory() is None or jax.process_count() > 1 or not _from_files(plan, config):
        return None
    devices = [(d.id, d.platform, getattr(d, "device_kind", ""), d.process_index) for d in jax.devices()]
    env = sorted((k, v) for k, v in os.environ.items() if k.startswith(("XLA_", "JAX_", "PUREJAXPG_", "TF_")))
    h = hashlib.sha256()
    for part in (FORMAT, sys.version, _package_digest(), _loaded_modules(),
                 sorted((k, repr(v)) for k, v in jax.config.values.items()), env, devices,
                 jax.devices()[0].client.platform_version, plan.algo, repr(config), sorted(parts.items())):
        h.update(repr(part).encode() + b"\0")
    return h.hexdigest()


def _evict(folder: str, max_bytes: int) -> None:
    """Delete the least recently used stored programs until ``folder`` holds at most
    ``max_bytes`` (a read counts as a use: ``load_programs`` touches the file)."""
    entries = []
    for name in os.listdir(folder):
        if name.endswith(".pkl"):
            try:
                st = os.stat(os.path.join(folder, name))
            except OSError:
                continue
            entries.append((st.st_mtime, st.st_size, name))
    total = sum(size for _, size, _ in entries)
    for _, size, name in sorted(entries):
        if total <= max_bytes:
            break
        try:
            os.remove(os.path.join(folder, name))
        except OSError:
            pass
        total -= size


def _program_path(key: str) -> str:
    return os.path.join(directory(), PROGRAMS, key + ".pkl")


@functools.lru_cache(maxsize=None)
def load_lapack() -> None:
    """Load jaxlib's LAPACK kernels into this process, on the CPU backend. JAX loads them
    when it lowers a LAPACK operation (a Cholesky, a solve, ...), and a stored program runs
    without being lowered: a program that calls LAPACK (MJX's constraint solver does, so
    every ``playground/`` and ``brax/`` task) would call kernels that are not there, and the
    process would die of a segmentation fault (tests/test_cache.py). Lowering a 1x1
    Cholesky (nothing is compiled) loads them all."""
    if jax.default_backend() == "cpu":
        jax.jit(jax.numpy.linalg.cholesky).lower(jax.ShapeDtypeStruct((1, 1), "float32"))


def load_programs(key: Optional[str]) -> Optional[dict]:
    """What ``save_programs`` stored under ``key``: {"shapes": ..., "compiled": {name:
    jax.stages.Compiled}}, or None (not there, unreadable, or the cache is off)."""
    if key is None or directory() is None:
        return None
    path = _program_path(key)
    if not os.path.exists(path):
        return None
    from jax.experimental import serialize_executable

    load_lapack()
    try:
        with open(path, "rb") as f:
            stored = pickle.load(f)
        compiled = {name: serialize_executable.deserialize_and_load(*blob) for name, blob in stored["compiled"].items()}
    except Exception as e:  # a damaged or foreign entry: compile as if it were not there
        warnings.warn(f"purejaxpg: ignoring the stored programs {path} ({type(e).__name__}: {e})", RuntimeWarning,
                      stacklevel=2)
        return None
    try:
        os.utime(path)  # recently used (_evict)
    except OSError:
        pass
    _on_event("program_hit")
    return {"shapes": stored["shapes"], "compiled": compiled}


def save_programs(key: Optional[str], shapes, compiled: dict) -> bool:
    """Store one group's shapes and compiled programs under ``key`` (written whole or not
    at all); False where they cannot be stored."""
    if key is None or directory() is None:
        return False
    from jax.experimental import serialize_executable

    path = _program_path(key)
    try:
        blob = pickle.dumps({"shapes": shapes,
                             "compiled": {n: serialize_executable.serialize(c) for n, c in compiled.items()}})
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(blob)
        os.replace(tmp, path)
        _evict(os.path.dirname(path), PROGRAMS_MAX_BYTES)
    except Exception as e:  # not serialisable here, a full disk, ...: the run goes on
        warnings.warn(f"purejaxpg: could not store the compiled programs in {path} ({type(e).__name__}: {e})",
                      RuntimeWarning, stacklevel=2)
        return False
    return True
