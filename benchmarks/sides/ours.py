"""One purejaxpg run for a peer comparison, in its own process; prints one JSON line.

    python benchmarks/sides/ours.py ALGO SEEDS '{"setting": value, ...}'

Trains through ``runner.train`` (preset none: exactly the given settings) and reports its
timings (``compile_seconds``: tracing and compiling the chunk and evaluation programs and
running init; ``compile``: the compilation cache's statistics, as in summary.json;
``run_seconds``: the training scan alone; ``eval_seconds``: the final evaluation), env steps/s over all seeds (compile and evaluation excluded), the final return
of every seed (evaluation episodes of the final policy) and its training return over the
last 10 updates (episodes finished there, weighted by count: the figure PureJaxRL's
``run_purejaxrl.py`` reports), the XLA flags in force and the versions.
"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from benchmarks import setup

setup()  # before JAX's backend starts

import numpy as np

from purejaxpg.engine import outputs, runner


def main(argv) -> int:
    algo, seeds, overrides = argv[0], int(argv[1]), json.loads(argv[2]) if len(argv) > 2 else {}
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    result = runner.train(algo, overrides, num_seeds=seeds, quiet=True, preset="none")
    g = result.groups[0]
    final = g.final[0]  # [S]
    ret, n = g.metrics["episode_return"][0][:, -10:], g.metrics["episodes"][0][:, -10:]  # [S, 10]
    train_final = np.nansum(np.nan_to_num(ret) * n, axis=1) / np.maximum(n.sum(axis=1), 1)
    print(json.dumps({
        "side": "purejaxpg", "algo": algo, "seeds": seeds, "settings": {k: list(v) if isinstance(v, tuple) else v
                                                                          for k, v in overrides.items()},
        "env_steps_per_seed": g.updates_run * g.batch.program.env_steps_per_update,
        "compile_seconds": round(g.timings["compile_seconds"], 3), "compile": g.timings["compile"],
        "run_seconds": round(g.timings["run_seconds"], 3),
        "eval_seconds": round(g.timings["eval_seconds"], 3), "env_steps_per_second": g.env_steps_per_second,
        "final_return_per_seed": [float(x) for x in final],
        "train_return_last10_per_seed": [float(x) for x in train_final],
        "xla_flags": os.environ.get("XLA_FLAGS", ""), "versions": outputs.versions()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
