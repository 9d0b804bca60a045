"""PPO throughput on CartPole-v1 at PureJaxRL's configuration (issue 3), against PureJaxRL's
figures on the 2-core CPU the issue names.

The setting is ``benchmarks.scaling.SETTINGS["ppo"]``: 4 envs x 128 steps per update, 4 epochs
x 4 minibatches, separate 64x64 tanh actor and critic, Adam lr 2.5e-4 annealed, GAE(0.99,
0.95), clip 0.2, entropy 0.01, value coefficient 0.5, grad-norm clip 0.5, 5e5 env steps per
seed. Compile seconds and env steps/s (all seeds, compile excluded) per seed count.

    python benchmarks/ppo_throughput.py                 # 1, 8, 64 seeds, 2 timed runs each

Prints a table and writes benchmarks/results/ppo_throughput-<platform>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

from purejaxpg.engine import compat

compat.configure()  # jaxlib 0.10 CPU settings, before JAX's backend starts

# PureJaxRL ppo.py at the same configuration on a 2-core CPU (issue 3): env steps/s, all seeds.
REFERENCE_CPU = {1: 72_000, 8: 94_000, 64: 100_000}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="1,8,64")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)

    import jax

    from purejaxpg.engine.experiment import versions

    from benchmarks.scaling import measure

    platform = jax.devices()[0].platform
    load_before = os.getloadavg()
    rows = [measure("ppo", int(s), repeats=args.repeats) for s in args.seeds.split(",")]
    out = args.out or os.path.join(HERE, "results", f"ppo_throughput-{platform}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"rows": rows, "reference_purejaxrl_cpu_2core": REFERENCE_CPU, "load_average_before": load_before,
                   "load_average_after": os.getloadavg(), "versions": versions()}, f, indent=2)
    print(f"{'seeds':>6}{'compile s':>11}{'env steps/s':>14}{'PureJaxRL':>11}{'ratio':>8}{'return IQM':>12}")
    for r in rows:
        ref = REFERENCE_CPU.get(r["seeds"]) if platform == "cpu" else None
        sps = r["env_steps_per_second"]
        ref_txt, ratio = (f"{ref:,}", f"{sps / ref:.2f}x") if ref else ("-", "-")
        print(f"{r['seeds']:>6}{r['compile_seconds']:>11.1f}{sps:>14,.0f}{ref_txt:>11}{ratio:>8}"
              f"{r['final_return_iqm']:>12.1f}")
    print(f"{versions()['device']}; load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
