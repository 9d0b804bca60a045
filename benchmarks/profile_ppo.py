"""Where PPO's time goes on this machine, at issue 3's CartPole setting.

1. Component costs: one update's rollout (128 steps x 4 envs, policy sampling and env step,
   values in one batched call after the scan) and its learning phase (GAE, 4 epochs x 4
   minibatches of Adam steps), each compiled alone for S seeds and timed over many calls.
2. XLA CPU threading: the whole run with purejaxpg's default (``--xla_cpu_multi_thread_eigen=
   false``) against XLA's default intra-op thread pool, in fresh subprocesses, back to back.

    python benchmarks/profile_ppo.py --seeds 8

Prints a table and writes benchmarks/results/profile_ppo-<platform>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, ROOT)

_CHILD = """
import os, sys, json, time
sys.path.insert(0, {root!r})
from purejaxpg.engine import compat
compat.configure()
import jax
from benchmarks.scaling import measure
r = measure("ppo", {seeds}, repeats=2)
print(json.dumps({{"xla_flags": os.environ.get("XLA_FLAGS", ""), "env_steps_per_second": r["env_steps_per_second"],
                  "compile_seconds": r["compile_seconds"]}}))
"""


def _timeit(fn, *args, n=50):
    import jax

    jax.block_until_ready(fn(*args))
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        out = fn(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - t0) / n, (time.process_time() - c0) / n


def components(seeds: int) -> dict:
    import jax

    from purejaxpg.algos import ppo
    from purejaxpg.algos.common import (
        Context,
        TrainState,
        build_networks,
        make_optimizer,
    )
    from purejaxpg.core import rollout
    from purejaxpg.engine.experiment import build
    from purejaxpg.envs import VecEnv

    from benchmarks.scaling import SETTINGS

    _, config, hp = build("ppo", SETTINGS["ppo"], preset="none")
    hp = {k: jax.numpy.float32(v) for k, v in hp.items()}
    venv = VecEnv(config.env, config.num_envs)
    actor, critic = build_networks(config, venv)
    tx = make_optimizer(hp, config.num_updates * ppo.grad_steps_per_update(config), config.anneal_lr)
    ctx = Context(config, venv, actor, critic, tx)

    def policy_fn(params, obs, key):
        dist = actor.apply(params["actor"], obs)
        a = dist.sample(seed=key)
        return a, dist.log_prob(a)

    def init(key):
        k1, k2, k3 = jax.random.split(key, 3)
        dummy = jax.numpy.zeros((1,) + venv.obs_shape)
        params = {"actor": actor.init(k1, dummy), "critic": critic.init(k2, dummy)}
        return TrainState(params, tx.init(params), rollout.reset(venv, k3, False), ppo.init_extra(config, hp))

    def collect(state, key):
        return rollout.collect(venv, policy_fn, state.params, state.env, key, config.num_steps,
                               lambda p, o: critic.apply(p["critic"], o))

    def learn(state, traj, key):
        return ppo.update(ctx, state, traj, hp, key)

    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    states = jax.jit(jax.vmap(init))(keys)
    collect_v = jax.jit(jax.vmap(collect))
    learn_v = jax.jit(jax.vmap(learn))
    _, traj = collect_v(states, keys)
    t_collect = _timeit(collect_v, states, keys)
    t_learn = _timeit(learn_v, states, traj, keys)
    total = t_collect[0] + t_learn[0]
    return {"seeds": seeds, "collect_ms": 1e3 * t_collect[0], "collect_cpu_ms": 1e3 * t_collect[1],
            "learn_ms": 1e3 * t_learn[0], "learn_cpu_ms": 1e3 * t_learn[1],
            "collect_fraction": t_collect[0] / total,
            "env_steps_per_second_implied": seeds * config.batch_size / total}


def threading(seeds: int) -> list:
    rows = []
    for flags in ("", "--xla_cpu_multi_thread_eigen=true"):
        env = {**os.environ, "XLA_FLAGS": flags}
        out = subprocess.run([sys.executable, "-c", _CHILD.format(root=ROOT, seeds=seeds)], env=env,
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=8)
    args = p.parse_args(argv)
    from purejaxpg.engine import compat

    compat.configure()
    import jax

    from purejaxpg.engine.experiment import versions

    load = os.getloadavg()
    comp = components(args.seeds)
    thr = threading(args.seeds)
    res = {"components": comp, "threading": thr, "load_average_before": load, "load_average_after": os.getloadavg(),
           "versions": versions()}
    path = os.path.join(HERE, "results", f"profile_ppo-{jax.devices()[0].platform}.json")
    with open(path, "w") as f:
        json.dump(res, f, indent=2)
    print(f"{args.seeds} seeds, one update: rollout {comp['collect_ms']:.2f} ms (cpu {comp['collect_cpu_ms']:.2f}), "
          f"learning {comp['learn_ms']:.2f} ms (cpu {comp['learn_cpu_ms']:.2f}); rollout share "
          f"{comp['collect_fraction']:.0%}; implied {comp['env_steps_per_second_implied']:,.0f} env steps/s")
    for r in thr:
        print(f"XLA_FLAGS={r['xla_flags'] or '(purejaxpg default: multi_thread_eigen=false)'}: "
              f"{r['env_steps_per_second']:,.0f} env steps/s, compile {r['compile_seconds']:.1f} s")
    print(f"load average before {load[0]:.2f}, after {os.getloadavg()[0]:.2f}; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
