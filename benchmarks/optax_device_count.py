"""Does a run's result depend on the device count? optax's Adam against core/optim.py's.

Why core/optim.py exists: optax's ``chain(clip_by_global_norm, scale_by_adam,
scale_by_learning_rate)`` made a run's parameters depend on how many devices the sweep was
sharded over. This runs the same 8 runs (a small MLP regression, 30 updates each, its own
data per run) the way the sweep does (``jit(shard_map(...))`` over a 1-D mesh of every
device, 2 runs vmapped at a time, the blocks in a loop), once per device count, each in a
fresh process with ``--xla_force_host_platform_device_count=N``, and compares every final
parameter bit for bit with the first count's. Optimisers: optax's chain (what optim.py
replaces), ``clipped_adam`` (optim.py), and two parts of the chain alone (which part
matters).

    python benchmarks/optax_device_count.py               # 1 and 4 devices
    python benchmarks/optax_device_count.py --devices 1,2,4

Prints a table; writes benchmarks/results/optax_device_count.json (date, machine, load
averages, git commit). tests/test_determinism.py runs it and asserts the finding.

Result on the project's 2-core VM, jax/jaxlib 0.10.2, optax 0.2.8, 2026-11-30: optax's chain
differs between 1 and 4 devices (w1: 105 of 1024 values, up to 1.2e-7), clipped_adam is
bit-identical; scale_by_adam alone is identical in this program, clip_by_global_norm with
plain SGD differs, and so does the chain when the clip never triggers (1e9).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, ROOT)

from benchmarks import git_commit, machine

RUNS, BLOCK, STEPS = 8, 2, 30
OPTIMISERS = ("optax", "clipped_adam", "optax_adam_only", "optax_clip_sgd", "optax_clip_inactive")


def optimisers():
    import optax

    from purejaxpg.core.optim import clipped_adam

    sched = lambda count: 3e-3 * (1.0 - count / (2 * STEPS))
    adam = optax.scale_by_adam(eps=1e-5)
    lr = optax.scale_by_learning_rate(sched)
    return {"optax": optax.chain(optax.clip_by_global_norm(0.5), adam, lr),
            "clipped_adam": clipped_adam(sched, 0.5, 1e-5),
            "optax_adam_only": optax.chain(adam, lr),
            "optax_clip_sgd": optax.chain(optax.clip_by_global_norm(0.5), lr),
            "optax_clip_inactive": optax.chain(optax.clip_by_global_norm(1e9), adam, lr)}


def child(out_path: str) -> int:
    """The runs on this process's devices; final parameters to ``out_path`` (npz)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    def run(key, opt):
        k1, k2, k3 = jax.random.split(key, 3)
        p = {"w1": jax.random.normal(k1, (4, 32)) * 0.5, "b1": jnp.zeros(32),
             "w2": jax.random.normal(k2, (32, 1)) * 0.2, "b2": jnp.zeros(1)}

        def mlp(p, x):
            return jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]

        def step(carry, i):
            p, s = carry
            x = jax.random.normal(jax.random.fold_in(k3, i), (64, 4))
            g = jax.grad(lambda p: jnp.mean((mlp(p, x) - 5 * jnp.sin(3 * x[:, :1])) ** 2))(p)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        return jax.lax.scan(step, (p, opt.init(p)), jnp.arange(STEPS))[0][0]

    def blocked(f):  # as engine.batch.blocked_vmap: BLOCK runs vmapped at a time
        def g(keys):
            out = jax.lax.map(jax.vmap(f), keys.reshape((-1, BLOCK) + keys.shape[1:]))
            return jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), out)
        return g

    mesh = Mesh(np.asarray(jax.devices()), ("batch",))  # as engine.batch.prepare's mesh
    keys = jax.device_put(jax.random.split(jax.random.PRNGKey(0), RUNS), NamedSharding(mesh, P("batch")))
    out = {"devices": jax.device_count()}
    for name, opt in optimisers().items():
        f = jax.jit(jax.shard_map(blocked(lambda k, opt=opt: run(k, opt)), mesh=mesh, in_specs=P("batch"),
                                  out_specs=P("batch"), check_vma=False))
        out.update({f"{name}/{k}": np.asarray(v) for k, v in f(keys).items()})
    np.savez(out_path, **out)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--devices", default="1,4", help="host device counts; each is compared with the first")
    p.add_argument("--out", default=os.path.join(HERE, "results", "optax_device_count.json"))
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args.child)
    import numpy as np

    counts = [int(n) for n in args.devices.split(",")]
    load_before = os.getloadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    arrays = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in counts:
            path = os.path.join(tmp, f"d{n}.npz")
            flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={n}".strip()
            env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": flags,
                   "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", path], env=env, cwd=ROOT,
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"{n} devices failed:\n{proc.stderr[-3000:]}")
            with np.load(path) as z:
                arrays[n] = {k: z[k] for k in z.files}
            assert int(arrays[n]["devices"]) == n, (n, arrays[n]["devices"])

    base = counts[0]
    comparisons = {}
    for n in counts[1:]:
        for name in OPTIMISERS:
            leaves = {}
            for k in sorted(k for k in arrays[base] if k.startswith(name + "/")):
                a, b = arrays[base][k], arrays[n][k]
                leaves[k.split("/", 1)[1]] = {"differing": int(np.sum(a != b)), "size": int(a.size),
                                              "max_abs_diff": float(np.max(np.abs(a - b)))}
            comparisons[f"{name}: {base} vs {n} devices"] = {
                "optimiser": name, "devices": [base, n],
                "bit_identical": all(v["differing"] == 0 for v in leaves.values()), "leaves": leaves}
    result = {"date": started.isoformat(timespec="seconds"), "machine": machine(), "commit": git_commit(),
              "setting": {"runs": RUNS, "block": BLOCK, "updates": STEPS, "devices": counts},
              "comparisons": comparisons, "load_average_before": load_before, "load_average_after": os.getloadavg()}
    from purejaxpg.engine.outputs import versions

    result["versions"] = versions()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)

    print(f"{'optimiser':<20} {'devices':>8} {'bit-identical':>14}  differing values (max |diff|) per leaf")
    for c in comparisons.values():
        detail = ", ".join(f"{k} {v['differing']}/{v['size']} ({v['max_abs_diff']:.2g})" for k, v in c["leaves"].items())
        print(f"{c['optimiser']:<20} {'%d vs %d' % tuple(c['devices']):>8} {str(c['bit_identical']):>14}  {detail}")
    print(f"load average before {load_before[0]:.2f}, after {result['load_average_after'][0]:.2f}; "
          f"commit {result['commit']}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
