"""Env steps per second of the physics suites through purejaxpg's adapter, random actions.

Each env runs in a fresh process: ``VecEnv(name, num_envs)`` stepped ``--steps`` times with
uniform random actions in one jitted ``lax.scan`` (auto-resets included), compiled first
(timed alone), then run ``--repeats`` times; the table shows the median run. This is the
ceiling of what training can reach on the machine; the policy, the update and evaluation
come on top.

    python benchmarks/physics_env_speed.py                       # the default list, 256 envs
    python benchmarks/physics_env_speed.py --envs playground/CheetahRun --num-envs 64 --steps 50

Writes benchmarks/results/physics_env_speed.json (``--out``) with date, machine, load and
git commit.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, ROOT)
from benchmarks import git_commit, machine

DEFAULT = ("playground/CartpoleBalance", "playground/PendulumSwingup", "playground/CheetahRun",
           "brax/inverted_pendulum", "brax/ant")


def child(name: str, num_envs: int, steps: int, repeats: int) -> dict:
    from purejaxpg.engine import compat

    compat.configure()
    import jax
    import jax.numpy as jnp

    from purejaxpg.envs import VecEnv

    venv = VecEnv(name, num_envs)

    def run(key):
        obs, state = venv.reset(key)

        def step(carry, k):
            state, total = carry
            k_act, k_env = jax.random.split(k)
            action = jax.random.uniform(k_act, (num_envs, venv.action_spec.num_actions), minval=-1.0, maxval=1.0)
            _, state, reward, _, _, _ = venv.step(k_env, state, action)
            return (state, total + reward.sum()), None

        (_, total), _ = jax.lax.scan(step, (state, jnp.float32(0.0)), jax.random.split(key, steps))
        return total

    t0 = time.perf_counter()
    compiled = jax.jit(run).lower(jax.random.PRNGKey(0)).compile()
    compile_s = time.perf_counter() - t0
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(jax.random.PRNGKey(i + 1)))
        times.append(time.perf_counter() - t0)
    return {"env": name, "num_envs": num_envs, "steps": steps, "compile_seconds": compile_s, "run_seconds": times,
            "env_steps_per_second": num_envs * steps / statistics.median(times)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--envs", default=",".join(DEFAULT))
    p.add_argument("--num-envs", type=int, default=256)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=os.path.join(HERE, "results", "physics_env_speed.json"))
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        with open(args.out, "w") as f:
            json.dump(child(args.child, args.num_envs, args.steps, args.repeats), f)
        return 0
    rows = []
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    for name in args.envs.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "r.json")
            load = os.getloadavg()
            cmd = [sys.executable, os.path.abspath(__file__), "--child", name, "--num-envs", str(args.num_envs),
                   "--steps", str(args.steps), "--repeats", str(args.repeats), "--out", out]
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
            with open(out) as f:
                r = json.load(f)
        r["load_average_before"] = list(load)
        rows.append(r)
        print(f"{name:<30} {r['num_envs']:>5} envs  {r['env_steps_per_second']:>12,.0f} env steps/s  "
              f"compile {r['compile_seconds']:.0f} s  load {load[0]:.1f}", flush=True)
    result = {"started": started, "machine": machine(), "commit": git_commit(),
              "command": "python benchmarks/physics_env_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "rows": rows}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
