"""PureJaxRL's PPO for a peer comparison, in its own process; prints one JSON line.

    python benchmarks/sides/purejaxrl_ppo.py PUREJAXRL_DIR SEEDS [TOTAL_STEPS_PER_SEED] [ENV] [--flax-qr]

``PUREJAXRL_DIR`` holds PureJaxRL's ``ppo.py`` (and ``wrappers.py``), used as they are: the
copy in ../shared/anchors/purejaxrl (see its README) or a checkout. Runs ``make_train`` at
PureJaxRL's CartPole configuration (4 envs x 128 steps, 4 epochs x 4 minibatches, lr 2.5e-4
annealed, ...; the configuration of ../shared/anchors/run_purejaxrl.py) for SEEDS seeds in
one ``jit(vmap(train))`` program, timing ``lower().compile()`` and the run separately.
Reports each seed's training return over the last 10 updates (the episodes that finished
there), as run_purejaxrl.py does, per seed.

Imports nothing of purejaxpg and changes no JAX or XLA setting: PureJaxRL runs as its
users run it, with one exception. Its networks are initialised with flax's ``orthogonal``,
whose ``jnp.linalg.qr`` becomes, under ``vmap`` over seeds, one batched LAPACK QR per layer;
jaxlib 0.10.2 splits each over XLA's CPU thread pool and blocks a pool thread waiting for
the pieces, so concurrent layers' QRs can deadlock on 2 cores. Here it hung in 6 of 6 runs
(2 seeds, load 7-10: 3 with XLA's defaults, 2 with ``--xla_cpu_multi_thread_eigen=false``,
1 with that and synchronous dispatch): the process idle in ``block_until_ready`` for ever;
with the replacement below it finished every time. So before ``ppo.py`` is
imported, ``flax.linen.initializers.orthogonal`` is replaced by the same draw (a Gaussian
matrix's Q factor with diag(R) > 0) computed by Gram-Schmidt in plain jnp, as purejaxpg's own
initialiser does. It runs once per seed, before training, inside the timed program as
before; ``--flax-qr`` keeps flax's. The caller passes its environment unchanged.
"""
import json
import os
import sys
import time

import flax.linen.initializers
import jax
import jax.numpy as jnp
import numpy as np

FLAX_QR = "--flax-qr" in sys.argv


def orthogonal(scale=1.0, column_axis=-1):
    """flax's ``orthogonal`` without LAPACK: Gram-Schmidt (twice) on the same Gaussian draw."""
    def columns(a):
        def step(q, j):
            v = a[:, j]
            v = v - q @ (q.T @ v)
            v = v - q @ (q.T @ v)
            return q.at[:, j].set(v / jnp.sqrt(jnp.sum(v * v))), None

        return jax.lax.scan(step, jnp.zeros_like(a), jnp.arange(a.shape[1]))[0]

    def init(key, shape, dtype=jnp.float32):
        n_cols = shape[column_axis]
        n_rows = int(np.prod(shape)) // n_cols
        q = columns(jax.random.normal(key, (n_cols, n_rows) if n_rows < n_cols else (n_rows, n_cols), jnp.float32))
        if n_rows < n_cols:
            q = q.T
        q = jnp.moveaxis(q.reshape(tuple(np.delete(shape, column_axis)) + (n_cols,)), -1, column_axis)
        return (scale * q).astype(dtype)

    return init


if not FLAX_QR:
    flax.linen.initializers.orthogonal = orthogonal
sys.path.insert(0, os.path.abspath(sys.argv[1]))
from ppo import make_train


def main(argv) -> int:
    argv = [a for a in argv if a != "--flax-qr"]
    seeds = int(argv[1])
    total = float(argv[2]) if len(argv) > 2 else 5e5
    env_name = argv[3] if len(argv) > 3 else "CartPole-v1"
    envs, steps = 4, 128
    config = {"LR": 2.5e-4, "NUM_ENVS": envs, "NUM_STEPS": steps, "TOTAL_TIMESTEPS": total, "UPDATE_EPOCHS": 4,
              "NUM_MINIBATCHES": 4, "GAMMA": 0.99, "GAE_LAMBDA": 0.95, "CLIP_EPS": 0.2, "ENT_COEF": 0.01,
              "VF_COEF": 0.5, "MAX_GRAD_NORM": 0.5, "ACTIVATION": "tanh", "ENV_NAME": env_name, "ANNEAL_LR": True,
              "DEBUG": False}
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    t0 = time.perf_counter()
    compiled = jax.jit(jax.vmap(make_train(config))).lower(keys).compile()
    t1 = time.perf_counter()
    out = jax.block_until_ready(compiled(keys))
    t2 = time.perf_counter()
    m = out["metrics"]
    r = m["returned_episode_returns"][:, -10:]  # [seeds, 10 updates, steps, envs]
    done = m["returned_episode"][:, -10:]
    per_seed = (jnp.where(done, r, 0.0).reshape(seeds, -1).sum(1) / jnp.maximum(done.reshape(seeds, -1).sum(1), 1))
    num_updates = int(total) // (envs * steps)
    versions = {}
    for pkg in ("jax", "jaxlib", "flax", "optax", "distrax", "gymnax"):
        try:
            from importlib import metadata

            versions[pkg] = metadata.version(pkg)
        except Exception:
            versions[pkg] = None
    print(json.dumps({"side": "purejaxrl", "ppo_py": os.path.join(os.path.abspath(argv[0]), "ppo.py"),
                      "orthogonal_init": "flax (LAPACK QR)" if FLAX_QR else "Gram-Schmidt (LAPACK-free, see docstring)", "env": env_name,
                      "seeds": seeds, "env_steps_per_seed": num_updates * envs * steps,
                      "compile_seconds": round(t1 - t0, 3), "run_seconds": round(t2 - t1, 3),
                      "env_steps_per_second": seeds * num_updates * envs * steps / (t2 - t1),
                      "train_return_last10_per_seed": [float(x) for x in per_seed],
                      "xla_flags": os.environ.get("XLA_FLAGS", ""), "versions": versions}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
