"""Benchmarks of purejaxpg (``python -m benchmarks``, ``python benchmarks/ppo_throughput.py``, ...).

This module holds what every benchmark shares and imports neither JAX nor purejaxpg, so that
a process that only orchestrates others (the peer comparisons start every measured run in a
fresh subprocess) leaves JAX's settings and the environment alone:

* ``setup()``: the jaxlib-0.10 CPU workarounds, applied before JAX's backend starts, by every
  benchmark process that runs purejaxpg (never by one that runs a peer);
* the record every result file carries (``provenance``: date, machine, load average, git
  commit, command) and the helpers to run one side of a comparison in a subprocess and
  alternate the sides (A B A B).
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import time
from typing import Callable, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.join(ROOT, "benchmarks")
RESULTS = os.path.join(HERE, "results")


def setup() -> None:
    """The settings purejaxpg's processes need (``purejaxpg.engine.compat.configure``: on
    jaxlib 0.10's CPU backend, XLA's Eigen intra-op threads off and synchronous dispatch),
    applied before JAX's backend starts, as the CLI does. Peer processes do not call it."""
    from purejaxpg.engine import compat

    compat.configure()


def git_commit() -> str:
    """``git rev-parse HEAD`` of this checkout, with ``-dirty`` when tracked files differ
    from it; "unknown" outside a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], cwd=ROOT).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def machine() -> dict:
    """CPU model (with its family/model numbers and widest vector instructions, as the VM's
    model name may be generic), logical cores, memory, OS: what a reader needs to place the
    figures."""
    cpu, info = platform.processor() or platform.machine(), {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    cpu = info.get("model name", cpu)
    from purejaxpg.engine import host

    try:
        mem_gib = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    except (ValueError, OSError, AttributeError):
        mem_gib = None
    return {"cpu": cpu, "cpu_family_model": f"{info['cpu family']}/{info['model']}" if "cpu family" in info else None,
            "vector": host.vector_isa() or None, "logical_cpus": os.cpu_count(),
            "memory_gib": None if mem_gib is None else round(mem_gib, 1),
            "platform": platform.platform(), "python": platform.python_version()}


def load() -> list:
    """The 1-, 5- and 15-minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def provenance(argv) -> dict:
    """Date (UTC), time, machine, git commit and the command: the head of every result file."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return {"date": now.date().isoformat(), "time_utc": now.strftime("%H:%M:%S"), "machine": machine(),
            "commit": git_commit(), "command": " ".join(["python"] + [os.path.relpath(sys.argv[0], ROOT)] + list(argv))}


SMOKE_HELP = ("every step of the benchmark at the smallest budget, results written to the current directory: "
              "checks that it works here in a minute or two; its figures mean nothing")


def smoke(args, **small) -> None:
    """With ``--smoke`` (``SMOKE_HELP``), set ``small`` on ``args``: the settings that make the
    run the smallest one that still goes through every step. The docs test runs each
    documented benchmark command so."""
    if args.smoke:
        for name, value in small.items():
            setattr(args, name, value)


def smoke_steps(algo: str, overrides: dict, preset: str = "auto", updates: int = 1) -> int:
    """Env steps per seed for ``updates`` updates after the warm-up (off-policy: random
    actions until ``learning_starts``) of ``algo`` with ``overrides`` on ``preset``."""
    from purejaxpg.algos import get_algo

    config, _ = get_algo(algo).resolve(overrides, preset)
    return config.batch_size * (getattr(config, "num_warmup_updates", 0) + updates)


def out_path(given: Optional[str], default: str, args) -> str:
    """Where a result file goes: ``given`` (``--out``), else ``default``; under ``--smoke``
    the default's file name in the current directory, so that a check leaves the committed
    results alone."""
    if given:
        return given
    return os.path.join(os.getcwd(), os.path.basename(default)) if args.smoke else default


def write_json(path: str, obj) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def iqm(values) -> Optional[float]:
    """Interquartile mean, the definition of ``purejaxpg.analysis.stats.iqm`` (drop
    floor(n/4) values at each end); here so that orchestrating processes import no purejaxpg."""
    xs = sorted(float(v) for v in values)
    if not xs:
        return None
    cut = len(xs) // 4
    kept = xs[cut:len(xs) - cut]
    return sum(kept) / len(kept)


def median(values) -> Optional[float]:
    xs = sorted(float(v) for v in values)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def ours_env() -> dict:
    """The environment of a purejaxpg side: this checkout first on PYTHONPATH (the venv may
    hold another checkout installed in editable mode), and the compilation cache off unless
    ``PUREJAXPG_COMPILE_CACHE`` is set: every run compiles cold, as the peers' runs do (they
    keep no cache), so compile times compare like with like; a cached second run is
    measured on its own (docs/performance.md)."""
    env = dict(os.environ)
    env.setdefault("PUREJAXPG_COMPILE_CACHE", "off")
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_side(cmd: list, env: dict, timeout: float) -> dict:
    """Run one side of a comparison in a fresh process; its last stdout line is a JSON object.
    Adds ``load_before`` and the process's wall time."""
    before, t0 = load(), time.perf_counter()
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{' '.join(cmd)}: no result within {timeout:.0f} s (hung or too slow); "
                           f"raise --timeout if the machine is just busy") from None
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    result = json.loads(lines[-1])
    result.update(load_before=before, process_seconds=round(time.perf_counter() - t0, 2))
    return result


def alternate(sides: dict, repeats: int, log: Callable = print) -> dict:
    """Run every side ``repeats`` times, alternating (A B A B ...), so that a change of load
    hits all sides alike. ``sides``: name -> function() -> result dict. Returns name -> list."""
    out = {name: [] for name in sides}
    for rep in range(repeats):
        for name, fn in sides.items():
            out[name].append(fn())
            log(f"  [{rep + 1}/{repeats}] {name}: " + summary_line(out[name][-1]))
    return out


def summary_line(r: dict) -> str:
    parts = []
    if "env_steps_per_second" in r:
        parts.append(f"{r['env_steps_per_second']:,.0f} env steps/s")
    for key, label in (("compile_seconds", "compile"), ("run_seconds", "run")):
        if key in r:
            parts.append(f"{label} {r[key]:.1f} s")
    parts.append(f"load {r['load_before'][0]:.2f}")
    return ", ".join(parts)
