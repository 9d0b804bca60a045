"""Several processes (hosts) training one sweep: ``jax.distributed.initialize`` behind a flag.

``purejaxpg sweep ... --distributed`` (and ``train --distributed``, ``--resume DIR
--distributed``) is started once per process. Each process then sees every process's
devices in ``jax.devices()``, and ``purejaxpg.engine.sweep`` shards its batch axis over all of
them: every process builds the same global input arrays from the same host data, runs its
devices' slice, and gathers the per-run outputs with ``process_allgather``; process 0
writes the outputs, and every process writes its own shards of each Orbax checkpoint.

Where the processes find each other:

- ``--coordinator HOST:PORT --num-processes N --process-id I`` (or the environment
  variables ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``; a flag
  wins over its variable). Process ``I`` of ``N``; process 0 runs the coordinator service
  on ``PORT``, so ``HOST`` is process 0's address, reachable from every process.
- any of them left out: ``jax.distributed.initialize`` detects it on a managed cluster
  (SLURM, Open MPI, Cloud TPU, Kubernetes, ...).

On CPU, cross-process collectives go through Gloo (``jax_cpu_collectives_implementation``;
already JAX's default, set explicitly unless the user chose another through the
``JAX_CPU_COLLECTIVES_IMPLEMENTATION`` variable).
"""
from __future__ import annotations

import os
from typing import Optional

ENV = {"coordinator": "JAX_COORDINATOR_ADDRESS", "num_processes": "JAX_NUM_PROCESSES",
       "process_id": "JAX_PROCESS_ID"}


def add_arguments(parser) -> None:
    """The ``--distributed`` flags of ``purejaxpg sweep`` / ``train`` (``parser``: argparse)."""
    parser.add_argument("--distributed", action="store_true",
                        help="call jax.distributed.initialize() first: the batch spans all processes "
                             "(implied by --coordinator/--num-processes/--process-id)")
    parser.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                        help="process 0's address and a free port (default $JAX_COORDINATOR_ADDRESS, "
                             "else auto-detected on a managed cluster)")
    parser.add_argument("--num-processes", type=int, default=None, metavar="N",
                        help="processes in the run (default $JAX_NUM_PROCESSES)")
    parser.add_argument("--process-id", type=int, default=None, metavar="I",
                        help="this process, 0..N-1 (default $JAX_PROCESS_ID)")


def settings(coordinator: Optional[str] = None, num_processes: Optional[int] = None,
             process_id: Optional[int] = None, environ=None) -> dict:
    """The keyword arguments for ``jax.distributed.initialize``: each of the three from its
    flag, else its environment variable, else left out (JAX then detects it on a managed
    cluster). One-line ValueError on a malformed value."""
    environ = os.environ if environ is None else environ
    given = {"coordinator": coordinator, "num_processes": num_processes, "process_id": process_id}
    for name, var in ENV.items():
        if given[name] is None and environ.get(var, "").strip():
            given[name] = environ[var].strip()
    out = {}
    if given["coordinator"] is not None:
        addr = str(given["coordinator"])
        host, sep, port = addr.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"--coordinator expects HOST:PORT, got {addr!r}")
        out["coordinator_address"] = addr
    for name in ("num_processes", "process_id"):
        if given[name] is not None:
            try:
                out[name] = int(given[name])
            except ValueError:
                raise ValueError(f"--{name.replace('_', '-')} must be an integer, got {given[name]!r}") from None
    if out.get("num_processes", 1) < 1:
        raise ValueError(f"--num-processes must be at least 1, got {out['num_processes']}")
    if "process_id" in out and not 0 <= out["process_id"] < out.get("num_processes", out["process_id"] + 1):
        valid = f"in 0..{out['num_processes'] - 1}" if "num_processes" in out else "at least 0"
        raise ValueError(f"--process-id must be {valid}, got {out['process_id']}")
    return out


def wanted(args) -> bool:
    """Whether the parsed ``args`` ask for a distributed run."""
    return bool(args.distributed or args.coordinator is not None or args.num_processes is not None
                or args.process_id is not None)


def initialize(coordinator: Optional[str] = None, num_processes: Optional[int] = None,
               process_id: Optional[int] = None) -> dict:
    """Connect this process to the others (before JAX touches any device). Returns the
    settings used ({} when JAX auto-detected the cluster)."""
    kwargs = settings(coordinator, num_processes, process_id)
    import jax

    if not os.environ.get("JAX_CPU_COLLECTIVES_IMPLEMENTATION"):
        # cross-process collectives of the CPU backend (a no-op for accelerator backends)
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(**kwargs)
    except ValueError as e:  # e.g. a setting neither given nor detected
        raise ValueError(f"jax.distributed.initialize: {e} (give --coordinator HOST:PORT --num-processes N "
                         f"--process-id I, or run under a cluster manager JAX detects)") from None
    return kwargs
