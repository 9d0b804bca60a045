"""Reproduce what each jaxlib 0.10 CPU workaround of ``purejaxpg/engine/compat.py`` avoids.

    python scripts/repro_cpu_deadlocks.py CASE [CASE ...] [--trials N] [--timeout S]
        [--repeats R] [--workaround off|on] [--stacks] [--out PATH]

CASE is ``qr``, ``solve``, ``eigen``, ``async`` or ``all``. Each trial is a fresh Python
process (JAX_PLATFORMS=cpu) that compiles one vmapped program and runs it ``--repeats``
times; a trial that has not finished after ``--timeout`` seconds counts as hung and is
killed (with ``--stacks``, gdb first records which native functions its threads are in).
With ``--workaround off`` (default) the case's own workaround is reverted and the other
three stay on, so a hang is attributable to that one setting:

- ``qr``: flax's orthogonal initialiser (``jnp.linalg.qr``): Actor and Critic (64x64 MLPs,
  6 layers) initialised under ``vmap`` over 64 seeds, ``PUREJAXPG_CPU_WORKAROUNDS=off``.
- ``solve``: ``jnp.linalg.solve`` (LAPACK LU): exact gradient and policy-gradient-theorem
  gradient of 64 random 64-state MDPs under ``vmap`` (several independent batched solves).
- ``eigen``: ``--xla_cpu_multi_thread_eigen=true`` (XLA's default): PPO on CartPole-v1,
  64 seeds in one ``jit(vmap(train))`` program (the program class the flag was added for).
- ``async``: ``jax_cpu_enable_async_dispatch=True`` (JAX's default): the same PPO program.

``--workaround on`` runs the same programs with all four workarounds (the control). Prints
a table; writes JSON (trials, times, stacks summary, load average, machine, commit) to
``--out`` (default benchmarks/results/repro_cpu_deadlocks.json).

Observed on the project's 2-core AMD EPYC VM, jax/jaxlib 0.10.2, 2026-11-30 02:15-02:42 UTC,
shared machine (1-min load 2.4-4.1), results/repro_cpu_deadlocks.json; a trial that hung
was killed after 30 s, normal trials took 6 s (qr, solve) and 24-31 s (eigen, async):

- qr, workaround off: hung in 1 of 8 trials (20 runs each); gdb: two threads in
  ``lapack_sgeqrf_ffi -> ParallelBatchMap -> BlockingCounter::Wait``, the main thread in
  ``BlockUntilReady``. Before that, with this script and asynchronous dispatch still on
  (jax 0.10 ignores ``JAX_CPU_ENABLE_ASYNC_DISPATCH``, which a first version relied on):
  1 of 4; ad hoc (a 4-layer vmapped init, 5 runs per process, async dispatch on): 4 of 8.
  Workaround on: 0 of 5.
- solve, workaround off: hung in 2 of 8 trials; gdb: two threads in ``lapack_sgetrf_ffi ->
  ParallelBatchMap -> BlockingCounter::Wait``. Ad hoc (4 independent batched 64x64 solves,
  async on): 2 of 7; with 16x16 matrices 0 of 4. Workaround on: 0 of 5. The Gauss-Jordan
  solve had been a precaution; these are the first observed LU hangs.
- eigen, workaround off (QR and LU avoided): 0 of 4 trials (3 runs of the 64-seed PPO
  program each).
- async, workaround off (QR and LU avoided): 0 of 4 trials (3 runs each).

So the two LAPACK workarounds prevent a hang that reproduces within a few trials, while
the Eigen and async settings prevented nothing observable here: the hangs they were added
for were seen before the LAPACK-free initialiser existed on their branch (commits 894f5c8
and 1763a76 do not contain 6330741) and may have been the QR deadlock. They stay on (no
measurable cost) justified by those earlier observations only; see compat.py.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, ROOT)

from benchmarks import git_commit, machine

CASES = ("qr", "solve", "eigen", "async")
DEFAULT_TIMEOUT = {"qr": 45, "solve": 45, "eigen": 150, "async": 150}  # normal trials here: ~6 s / ~35 s
DEFAULT_REPEATS = {"qr": 20, "solve": 20, "eigen": 3, "async": 3}


# ---------------------------------------------------------------------------------------
# The programs (run in the child process)
# ---------------------------------------------------------------------------------------


def _qr_program():
    import jax
    import jax.numpy as jnp

    from purejaxpg.core.networks import Actor, Critic

    actor, critic = Actor(2, True, (64, 64)), Critic((64, 64))
    x = jnp.zeros((1, 4))

    def init(key):
        k1, k2 = jax.random.split(key)
        return actor.init(k1, x), critic.init(k2, x)

    f = jax.jit(jax.vmap(init))
    return lambda r: f(jax.random.split(jax.random.PRNGKey(r), 64))


def _solve_program():
    import jax
    import jax.numpy as jnp

    from purejaxpg.envs.tabular import MDP
    from purejaxpg.lab import exact

    B, S, A = 64, 64, 4

    def grads(mdp, theta):
        return exact.exact_grad(mdp, theta), exact.theorem_grad(mdp, theta)

    f = jax.jit(jax.vmap(grads))

    def run(r):
        k = jax.random.split(jax.random.PRNGKey(r), 3)
        mdp = MDP(P=jax.nn.softmax(jax.random.normal(k[0], (B, S, A, S)), -1),
                  R=jax.random.normal(k[1], (B, S, A)), d0=jnp.full((B, S), 1.0 / S),
                  gamma=jnp.full((B,), 0.9), terminal=jnp.zeros((B, S), bool))
        return f(mdp, jax.random.normal(k[2], (B, S, A)))

    return run


def _ppo_program():
    import jax

    from purejaxpg.algos import get_algo

    algo = get_algo("ppo")
    config, hp = algo.resolve({"env": "CartPole-v1", "total_timesteps": 8192, "num_envs": 4, "num_steps": 128})
    f = jax.jit(jax.vmap(algo.make_program(config).train, in_axes=(0, None)))
    return lambda r: f(jax.random.split(jax.random.PRNGKey(r), 64), hp)


PROGRAMS = {"qr": _qr_program, "solve": _solve_program, "eigen": _ppo_program, "async": _ppo_program}


def child(case: str, repeats: int, async_dispatch: bool) -> int:
    import jax

    from purejaxpg.engine import compat

    # jax 0.10 does not read JAX_CPU_ENABLE_ASYNC_DISPATCH from the environment: set it here
    jax.config.update("jax_cpu_enable_async_dispatch", async_dispatch)
    t0 = time.perf_counter()
    run = PROGRAMS[case]()
    print(json.dumps({"event": "start", "lapack_free": compat.cpu_deadlock_prone(),
                      "xla_flags": os.environ.get("XLA_FLAGS", ""),
                      "async_dispatch": jax.config.read("jax_cpu_enable_async_dispatch")}), flush=True)
    for r in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(run(r))
        print(json.dumps({"event": "repeat", "r": r, "seconds": time.perf_counter() - t}), flush=True)
    print(json.dumps({"event": "done", "seconds": time.perf_counter() - t0}), flush=True)
    return 0


# ---------------------------------------------------------------------------------------
# The trials (parent)
# ---------------------------------------------------------------------------------------


def trial_setup(case: str, workaround: str) -> tuple[dict, bool]:
    """The child's environment and async-dispatch setting: all four workarounds on, except
    ``case``'s when ``workaround`` is off."""
    off = workaround == "off"
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "PUREJAXPG_CPU_WORKAROUNDS": "off" if off and case in ("qr", "solve") else "on",
           "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=" + ("true" if off and case == "eigen" else "false")}
    return env, off and case == "async"


def _stacks(pid: int) -> dict:
    """Which native functions the hung process's threads are in (gdb), in brief."""
    if not shutil.which("gdb"):
        return {"error": "gdb not found"}
    try:
        out = subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "thread apply all bt 40"],
                             capture_output=True, text=True, timeout=120).stdout
    except subprocess.TimeoutExpired:
        return {"error": "gdb timed out"}
    threads = out.split("\nThread ")
    summary = {"threads": len(threads) - 1}
    for name in ("lapack_\\w+_ffi", "ParallelBatchMap", "BlockingCounter::Wait", "BlockUntilReady"):
        hits = sorted({m for t in threads[1:] for m in re.findall(name, t)})
        summary[name.replace("\\w+", "*")] = {h: sum(h in t for t in threads[1:]) for h in hits}
    return summary


def run_trial(case: str, workaround: str, repeats: int, timeout: float, stacks: bool) -> dict:
    env, async_dispatch = trial_setup(case, workaround)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", case, "--repeats", str(repeats),
           "--async-dispatch", str(async_dispatch).lower()]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        status = "ok" if proc.returncode == 0 else "error"
    except subprocess.TimeoutExpired:
        status = "hung"
        info = _stacks(proc.pid) if stacks else None
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    result = {"status": status, "seconds": time.perf_counter() - t0,
              "repeats_done": sum(e["event"] == "repeat" for e in events),
              "start": next((e for e in events if e["event"] == "start"), None)}
    if status == "hung" and stacks:
        result["stacks"] = info
    if status == "error":
        result["stderr_tail"] = err[-2000:]
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("cases", nargs="*", help=f"{', '.join(CASES)} or all")
    p.add_argument("--trials", type=int, default=5, help="fresh processes per case")
    p.add_argument("--timeout", type=float, default=None, help="seconds before a trial counts as hung "
                   f"(default per case: {DEFAULT_TIMEOUT})")
    p.add_argument("--repeats", type=int, default=None, help=f"program runs per trial (default {DEFAULT_REPEATS})")
    p.add_argument("--workaround", choices=("off", "on"), default="off",
                   help="off: revert the case's workaround (reproduce); on: all workarounds (control)")
    p.add_argument("--stacks", action="store_true", help="record hung trials' native stacks with gdb")
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "repro_cpu_deadlocks.json"))
    p.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    p.add_argument("--async-dispatch", choices=("true", "false"), default="false", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args.child, args.repeats or DEFAULT_REPEATS[args.child], args.async_dispatch == "true")
    cases = list(CASES) if "all" in args.cases or not args.cases else args.cases
    bad = [c for c in cases if c not in CASES]
    if bad:
        p.error(f"unknown case {bad[0]!r}; valid: {', '.join(CASES)}, all")

    from purejaxpg.engine import compat

    load_before = os.getloadavg()
    report = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": machine(), "commit": git_commit(), "jaxlib": compat.installed_jaxlib_version(),
              "workaround": args.workaround, "load_average_before": load_before, "cases": {}}
    for case in cases:
        timeout = args.timeout or DEFAULT_TIMEOUT[case]
        repeats = args.repeats or DEFAULT_REPEATS[case]
        trials = []
        for i in range(args.trials):
            r = run_trial(case, args.workaround, repeats, timeout, args.stacks)
            trials.append(r)
            print(f"{case} trial {i + 1}/{args.trials}: {r['status']} after {r['seconds']:.1f} s "
                  f"({r['repeats_done']}/{repeats} runs)" + (f" {r['stacks']}" if "stacks" in r else ""), flush=True)
        report["cases"][case] = {"workaround": args.workaround, "repeats": repeats, "timeout": timeout,
                                 "hung": sum(t["status"] == "hung" for t in trials),
                                 "errors": sum(t["status"] == "error" for t in trials), "trials": trials}
    report["load_average_after"] = os.getloadavg()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)

    print(f"\n{'case':<6} {'workaround':<10} {'hung':>9} {'errors':>6} {'ok trial (s), median':>21}")
    for case, c in report["cases"].items():
        ok = sorted(t["seconds"] for t in c["trials"] if t["status"] == "ok")
        med = f"{ok[len(ok) // 2]:.1f}" if ok else "-"
        print(f"{case:<6} {c['workaround']:<10} {c['hung']:>3} of {len(c['trials']):<3} {c['errors']:>6} {med:>21}")
    print(f"jaxlib {report['jaxlib']}, {report['machine']['cores']} cores, load average before "
          f"{load_before[0]:.2f}, after {report['load_average_after'][0]:.2f}, commit {report['commit']}; "
          f"wrote {args.out}")
    return 1 if any(c["errors"] for c in report["cases"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
