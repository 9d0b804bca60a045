"""One process of the 2-process sweep in tests/test_distributed.py (not a test module).

    python tests/distributed_worker.py PROCESS_ID NUM_PROCESSES PORT WORKDIR [--resume]

1. ``purejaxpg sweep ... --coordinator 127.0.0.1:PORT --num-processes N --process-id I``
   (the command line a user runs on each host), into WORKDIR/full, in 2 checkpointed chunks;
2. every process restores that run's last checkpoint (its own shards) and the parameters
   are gathered;
3. with ``--resume``: the same sweep again into WORKDIR/part, stopped after chunk 1 (as an
   interruption would) and resumed from its checkpoint by all processes; and into
   WORKDIR/part2, stopped after chunk 1 (the test resumes it in one process).

Process 0 writes WORKDIR/result.npz: the final parameters restored in 2., those of the
resumed run in 3., and the process/device counts.
"""
import os
import sys

import numpy as np

ARGS = ["ppo", "--env", "CartPole-v1", "--num-envs", "4", "--num-steps", "16", "--total-timesteps", "256",
        "--hidden", "16", "--update-epochs", "1", "--num-minibatches", "2", "--num-eval-episodes", "2",
        "--grid", "lr=1e-3,3e-3", "--num-seeds", "3", "--chunks", "2", "--block", "2", "--quiet"]


def main():
    pid, n, port, work = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    resume = "--resume" in sys.argv[5:]
    if resume:  # 3. compiles the programs of 1. again: let them come from the compilation cache
        os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(work, "jax-cache")
        os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "-1"
    from purejaxpg.engine import compat

    compat.configure()  # as the CLI will (before JAX's backend starts)
    from purejaxpg.cli import main as cli

    full = os.path.join(work, "full")
    rc = cli(["sweep", *ARGS, "--out", full, "--coordinator", f"127.0.0.1:{port}", "--num-processes", str(n),
              "--process-id", str(pid)])
    assert rc == 0, f"purejaxpg sweep exited with {rc}"
    import jax

    from purejaxpg.engine import runner
    from purejaxpg.engine.batch import to_host

    assert jax.process_count() == n, jax.process_count()

    _, batch, carry, updates = runner.restore(full, 0)
    assert updates == 4, updates
    restored = [to_host(x)[:batch.num_runs] for x in jax.tree_util.tree_leaves(carry[0].params)]

    results = {"processes": jax.process_count(), "devices": jax.device_count(),
               **{f"restored{i}": x for i, x in enumerate(restored)}}
    if resume:
        results.update({f"resumed{i}": x for i, x in enumerate(stop_and_resume(work))})
    if pid == 0:
        np.savez(os.path.join(work, "result.npz"), **results)


def stop_and_resume(work):
    import jax

    from purejaxpg.engine import runner
    from purejaxpg.engine.batch import to_host

    part = os.path.join(work, "part")
    base = {"env": "CartPole-v1", "num_envs": 4, "num_steps": 16, "total_timesteps": 256, "hidden": (16,),
            "update_epochs": 1, "num_minibatches": 2, "num_eval_episodes": 2}
    for out in (part, os.path.join(work, "part2")):  # part2 is resumed by the test, in one process
        stopped = runner.sweep("ppo", out, base=base, grid={"lr": [1e-3, 3e-3]}, num_seeds=3, chunks=2, block=2,
                               quiet=True, stop_after=1)
        assert stopped.stopped
    r, = runner.resume(part, quiet=True).groups
    assert r.resumed_from_chunk == 1 and r.chunks_done == 2
    return [to_host(x)[:r.batch.num_runs] for x in jax.tree_util.tree_leaves(r.carry[0].params)]


if __name__ == "__main__":
    main()
