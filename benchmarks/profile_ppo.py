"""Where PPO's time goes on this machine, at issue 3's CartPole setting.

1. Component costs: one update's rollout (128 steps x 4 envs, policy sampling and env step,
   values in one batched call after the scan) and its learning phase (GAE, 4 epochs x 4
   minibatches of Adam steps), each compiled alone for S seeds and timed over many calls.
2. Kernels: the same two programs under ``jax.profiler``, each XLA:CPU kernel's own time
   (its children's taken out) per call, the longest ``--top`` with their shapes and the JAX
   operation they came from (the optimised HLO's metadata). The profiler adds a few
   microseconds per kernel, so the small ones read long, and it drops some events, so the
   runs per call can read low; compare kernels with each other, not totals with part 1.
3. XLA CPU threading: the whole run (``runner.train``, benchmarks/sides/ours.py) with
   ``benchmarks.setup()``'s ``--xla_cpu_multi_thread_eigen=false`` against XLA's default
   intra-op thread pool, in fresh subprocesses, alternating (``--repeats`` each, medians).

    python benchmarks/profile_ppo.py --seeds 8
    python benchmarks/profile_ppo.py --seeds 2 --total-timesteps 20480 --repeats 1   # a quick look

Prints tables and writes benchmarks/results/profile_ppo-<platform>-<date>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks import RESULTS, alternate, git_commit, load, machine, median, ours_env, run_side, setup, write_json
from benchmarks.scaling import SETTINGS


def _timeit(fn, *args, n=50):
    import jax

    jax.block_until_ready(fn(*args))
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        out = fn(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - t0) / n, (time.process_time() - c0) / n


def programs(seeds: int, total_timesteps: int):
    """One update's rollout and learning phase, each ``jit(vmap(...))`` over ``seeds``, with
    their arguments: ``(collect, (states, keys)), (learn, (states, traj, keys)), config``."""
    import jax

    from purejaxpg.algos import get_algo, ppo
    from purejaxpg.core import rollout
    from purejaxpg.engine.onpolicy import Context, TrainState, build_networks, make_optimizer
    from purejaxpg.envs import VecEnv

    config, hp = get_algo("ppo").resolve({**SETTINGS["ppo"], "total_timesteps": total_timesteps}, preset="none")
    hp = {k: jax.numpy.float32(v) for k, v in hp.items()}
    venv = VecEnv(config.env, config.num_envs)
    actor, critic = build_networks(config, venv)
    tx = make_optimizer(hp, config.num_updates * config.update_epochs * config.num_minibatches, config.anneal_lr)
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
    return (collect_v, (states, keys)), (learn_v, (states, traj, keys)), config


def components(seeds: int, total_timesteps: int) -> dict:
    (collect_v, c_args), (learn_v, l_args), config = programs(seeds, total_timesteps)
    t_collect = _timeit(collect_v, *c_args)
    t_learn = _timeit(learn_v, *l_args)
    total = t_collect[0] + t_learn[0]
    return {"seeds": seeds, "collect_ms": 1e3 * t_collect[0], "collect_cpu_ms": 1e3 * t_collect[1],
            "learn_ms": 1e3 * t_learn[0], "learn_cpu_ms": 1e3 * t_learn[1],
            "collect_fraction": t_collect[0] / total,
            "env_steps_per_second_implied": seeds * config.batch_size / total}


def own_times(xplane: str) -> dict:
    """Per XLA:CPU kernel (event name on the XLA worker threads of a ``jax.profiler`` trace),
    its time less its children's, summed over the trace, in ns; and the call counts."""
    from jax.profiler import ProfileData

    own, count = {}, {}
    for plane in ProfileData.from_file(xplane).planes:
        for line in plane.lines:
            if not line.name.startswith("tf_XLA"):
                continue
            stack = []  # [end, name] of the enclosing events
            for start, dur, name in sorted(((e.start_ns, e.duration_ns, e.name) for e in line.events),
                                           key=lambda e: (e[0], -e[1])):
                while stack and stack[-1][0] <= start:
                    stack.pop()
                if stack:
                    own[stack[-1][1]] -= dur
                own[name] = own.get(name, 0) + dur
                count[name] = count.get(name, 0) + 1
                stack.append((start + dur, name))
    return {"own_ns": own, "count": count}


def kernels(seeds: int, total_timesteps: int, top: int, calls: int = 20) -> dict:
    """The longest kernels of the rollout and the learning phase (see the module docstring),
    from ``calls`` calls of each under the profiler."""
    import glob
    import re
    import tempfile

    import jax

    out = {}
    for name, (fn, args) in zip(("rollout", "learning"), programs(seeds, total_timesteps)[:2]):
        hlo = fn.lower(*args).compile().as_text()
        jax.block_until_ready(fn(*args))
        with tempfile.TemporaryDirectory() as d:
            jax.profiler.start_trace(d)
            for _ in range(calls):
                res = fn(*args)
            jax.block_until_ready(res)
            jax.profiler.stop_trace()
            t = own_times(glob.glob(os.path.join(d, "**", "*.xplane.pb"), recursive=True)[0])
        rows = []
        for op, ns in sorted(t["own_ns"].items(), key=lambda kv: -kv[1])[:top]:
            m = re.search(r"%" + re.escape(op) + r" = (\S+) .*?op_name=\"([^\"]+)\"", hlo)
            rows.append({"kernel": op, "us_per_call": ns / calls / 1e3, "runs_per_call": t["count"][op] / calls,
                         "shape": m.group(1) if m else "", "op_name": m.group(2) if m else ""})
        out[name] = {"total_us_per_call": sum(t["own_ns"].values()) / calls / 1e3, "top": rows}
    return out


def threading(seeds: int, total_timesteps: int, repeats: int) -> dict:
    """Whole runs in fresh processes, alternating: setup()'s flag against XLA's default."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sides", "ours.py")
    setting = json.dumps({**SETTINGS["ppo"], "total_timesteps": total_timesteps})
    timeout = 3600

    def side(flags):
        return lambda: run_side([sys.executable, script, "ppo", str(seeds), setting],
                                {**ours_env(), "XLA_FLAGS": flags}, timeout)

    runs = alternate({"multi_thread_eigen=false (setup())": side("--xla_cpu_multi_thread_eigen=false"),
                      "multi_thread_eigen=true (XLA's default)": side("--xla_cpu_multi_thread_eigen=true")}, repeats)
    return {name: {"env_steps_per_second": median(r["env_steps_per_second"] for r in rs),
                   "compile_seconds": median(r["compile_seconds"] for r in rs),
                   "runs": [{k: r[k] for k in ("env_steps_per_second", "compile_seconds", "load_before")} for r in rs]}
            for name, rs in runs.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--total-timesteps", type=int, default=SETTINGS["ppo"]["total_timesteps"],
                   help="env steps per seed of the whole runs (part 3)")
    p.add_argument("--repeats", type=int, default=3, help="whole runs of each threading setting (part 3)")
    p.add_argument("--top", type=int, default=15, help="kernels listed per program (part 2)")
    p.add_argument("--out", default=None, help="default benchmarks/results/profile_ppo-<platform>-<date>.json")
    args = p.parse_args(argv)
    setup()
    import jax

    from purejaxpg.engine import host

    host.straight_threefry()  # as the runner lowers its programs

    from purejaxpg.engine.outputs import versions

    before = load()
    comp = components(args.seeds, args.total_timesteps)
    kern = kernels(args.seeds, args.total_timesteps, args.top)
    thr = threading(args.seeds, args.total_timesteps, args.repeats)
    res = {"date": time.strftime("%Y-%m-%d", time.gmtime()), "commit": git_commit(), "machine": machine(),
           "components": comp, "kernels": kern, "threading": thr, "load_average_before": before, "load_average_after": load(),
           "versions": versions()}
    path = args.out or os.path.join(RESULTS, f"profile_ppo-{jax.devices()[0].platform}-{res['date']}.json")
    write_json(path, res)
    print(f"{args.seeds} seeds, one update: rollout {comp['collect_ms']:.2f} ms (cpu {comp['collect_cpu_ms']:.2f}), "
          f"learning {comp['learn_ms']:.2f} ms (cpu {comp['learn_cpu_ms']:.2f}); rollout share "
          f"{comp['collect_fraction']:.0%}; implied {comp['env_steps_per_second_implied']:,.0f} env steps/s")
    for name, k in kern.items():
        print(f"{name}: kernels' own time {k['total_us_per_call']:,.0f} us per call (under the profiler); longest:")
        for r in k["top"]:
            print(f"  {r['us_per_call']:9.1f} us  x{r['runs_per_call']:<6g} {r['kernel']:26s} {r['shape']:24s} "
                  f"{r['op_name'][-60:]}")
    for name, r in thr.items():
        print(f"{name}: {r['env_steps_per_second']:,.0f} env steps/s, compile {r['compile_seconds']:.1f} s "
              f"(median of {len(r['runs'])})")
    print(f"load average before {before[0]:.2f}, after {load()[0]:.2f}; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
