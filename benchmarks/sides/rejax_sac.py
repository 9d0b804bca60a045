"""rejax's SAC for a peer comparison, in its own process and venv; prints one JSON line.

    benchmarks/.venv-rejax/bin/python benchmarks/sides/rejax_sac.py ENV SEEDS TOTAL_STEPS '{"rejax": "config"}'

The venv holds rejax 0.1.3 (it pins gymnax 0.0.9); benchmarks/sac_throughput.py creates it.
Like ../shared/anchors/run_rejax.py: ``Algo.create(env, total_timesteps, eval_freq=total,
**config)``, ``jit(vmap(Algo.train))`` over SEEDS keys, ``lower().compile()`` timed apart
from the run (which includes rejax's own evaluations: at step 0 and at the end, 128
sampled episodes each). Reports each seed's mean return in the final evaluation.
Imports nothing of purejaxpg and changes no JAX or XLA setting.
"""
import json
import os
import sys
import time
from importlib import metadata

import jax
from rejax import get_algo


def main(argv) -> int:
    env, seeds, total = argv[0], int(argv[1]), int(float(argv[2]))
    config = json.loads(argv[3]) if len(argv) > 3 else {}
    Algo = get_algo("sac")
    algo = Algo.create(env=env, total_timesteps=total, eval_freq=total, **json.loads(json.dumps(config)))
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    t0 = time.perf_counter()
    compiled = jax.jit(jax.vmap(Algo.train, in_axes=(None, 0))).lower(algo, keys).compile()
    t1 = time.perf_counter()
    ts, (lengths, returns) = jax.block_until_ready(compiled(algo, keys))
    t2 = time.perf_counter()
    final = returns[:, -1].mean(-1)  # [seeds]: the last evaluation's 128 episodes
    versions = {pkg: metadata.version(pkg) for pkg in ("rejax", "jax", "jaxlib", "flax", "optax", "gymnax")}
    print(json.dumps({"side": "rejax", "algo": "sac", "env": env, "seeds": seeds, "env_steps_per_seed": total,
                      "config": config, "compile_seconds": round(t1 - t0, 3), "run_seconds": round(t2 - t1, 3),
                      "env_steps_per_second": seeds * total / (t2 - t1),
                      "final_return_per_seed": [float(x) for x in final],
                      "xla_flags": os.environ.get("XLA_FLAGS", ""), "versions": versions}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
