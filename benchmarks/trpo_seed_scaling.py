"""TRPO's env steps/s on CartPole-v1 against the number of seeds in one program: 10 updates
(8 envs x 256 steps each) after a compiled warm-up, program.run_updates under jit(vmap).
Prints a table and writes benchmarks/results/trpo_seed_scaling.json (date, machine, load,
git commit).

    python benchmarks/trpo_seed_scaling.py [--seeds 1,4,16] [--updates 10]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

from benchmarks import git_commit, setup


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="1,4,16")
    p.add_argument("--updates", type=int, default=10)
    p.add_argument("--json", default=os.path.join(HERE, "results", "trpo_seed_scaling.json"))
    args = p.parse_args(argv)
    setup()
    import jax

    from purejaxpg.algos import get_algo

    algo = get_algo("trpo")
    config, hp = algo.resolve({}, preset="none")
    program = algo.make_program(config)
    load_before, rows = os.getloadavg(), []
    for seeds in (int(s) for s in args.seeds.split(",")):
        keys = jax.random.split(jax.random.PRNGKey(0), seeds)
        carry = jax.jit(jax.vmap(program.init, in_axes=(0, None)))(keys, hp)
        run = jax.jit(jax.vmap(lambda c, h: program.run_updates(c, h, 0, args.updates),
                               in_axes=(program.axes(carry), None)))
        carry = jax.block_until_ready(run(carry, hp))[0]  # compile and warm up
        t = time.perf_counter()
        jax.block_until_ready(run(carry, hp))
        seconds = time.perf_counter() - t
        rows.append({"seeds": seeds, "seconds": seconds,
                     "env_steps_per_second": seeds * args.updates * config.batch_size / seconds})
        print(f"{seeds:>5} seeds  {rows[-1]['env_steps_per_second']:>10,.0f} env steps/s", flush=True)
    out = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
           "machine": f"{platform.machine()} {os.cpu_count()} cpus", "git_commit": git_commit(),
           "load_average_before": load_before, "load_average_after": os.getloadavg(),
           "updates": args.updates, "batch_per_update": config.batch_size, "rows": rows}
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)
    print(f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}; wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
