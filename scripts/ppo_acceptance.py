"""Issue 3's learning acceptance runs for PPO, each 16 seeds in one compiled program, with
the presets of ``purejaxpg.algos.presets`` (the same path as ``purejaxpg train ppo``):

* CartPole-v1, ``ppo`` and ``ppo-kl``: final-return IQM >= 475 within 5e5 env steps per seed;
* Acrobot-v1: IQM >= -100 within 5e5;
* Pendulum-v1: IQM >= -250 within 1e6;
* Breakout-MinAtar: IQM >= 25 within 1e7 (minutes on a GPU; long on a 2-core CPU).

A seed's final return is the mean over 16 evaluation episodes of its final policy.

    python scripts/ppo_acceptance.py                          # all runs
    python scripts/ppo_acceptance.py --only cartpole,acrobot  # a subset
    python scripts/ppo_acceptance.py --only cartpole --seeds 2 --total-timesteps 8192 --json /tmp/pa.json  # smoke

Prints one line per run and a verdict; writes benchmarks/results/ppo_acceptance-<device>.json
and the usual run directories (config, metrics, summary, learning curve) under --out.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from benchmarks import git_commit, setup

setup()  # before JAX's backend starts

from purejaxpg.algos import get_algo
from purejaxpg.engine import runner

RUNS = {
    "cartpole": ("ppo", "CartPole-v1", 500_000, 475.0),
    "cartpole-kl": ("ppo-kl", "CartPole-v1", 500_000, 475.0),
    "acrobot": ("ppo", "Acrobot-v1", 500_000, -100.0),
    "pendulum": ("ppo", "Pendulum-v1", 1_000_000, -250.0),
    "breakout": ("ppo", "Breakout-MinAtar", 10_000_000, 25.0),
}


def _f(v) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default=",".join(RUNS), help=f"comma-separated subset of {', '.join(RUNS)}")
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--total-timesteps", type=int, default=None, help="instead of the presets' (a smoke test)")
    p.add_argument("--out", default=os.path.join(ROOT, "runs", "ppo-acceptance"))
    p.add_argument("--json", default=None, help="default benchmarks/results/ppo_acceptance-<platform>.json")
    args = p.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - set(RUNS)
    if unknown:
        raise SystemExit(f"unknown run(s) {sorted(unknown)}; valid: {', '.join(RUNS)}")

    import jax

    path = args.json or os.path.join(ROOT, "benchmarks", "results",
                                     f"ppo_acceptance-{jax.devices()[0].platform}.json")
    results = json.load(open(path)) if os.path.exists(path) else {}
    ok = True
    for name in names:
        algo, env, budget, threshold = RUNS[name]
        overrides = {"env": env, **({"total_timesteps": args.total_timesteps} if args.total_timesteps else {})}
        config, _ = get_algo(algo).resolve(overrides)
        if config.num_updates * config.batch_size > budget:
            raise SystemExit(f"{name}: the preset uses {config.total_timesteps} env steps, over the budget {budget}")
        out = runner.train(algo, overrides, num_seeds=args.seeds, out_dir=os.path.join(args.out, name), quiet=True)
        s = out.summaries["run"]
        fr = s["final_return"]
        passed = fr["iqm"] is not None and fr["iqm"] >= threshold
        ok &= passed
        results[name] = {"algo": algo, "env": env, "seeds": args.seeds, "env_steps_per_seed": s["total_timesteps"],
                         "threshold_iqm": threshold, "passed": passed, "final_return": fr,
                         "compile_seconds": s["compile_seconds"], "run_seconds": s["run_seconds"],
                         "env_steps_per_second": s["env_steps_per_second"], "device": s["versions"]["device"],
                         "load_average_after": os.getloadavg(), "commit": git_commit()}
        print(f"{algo:7s} {env:17s} {args.seeds} seeds x {s['total_timesteps']:.1e} steps: IQM {_f(fr['iqm'])} "
              f"(mean {_f(fr['mean'])}, 95% CI {_f(fr['ci95'][0])}..{_f(fr['ci95'][1])}) "
              f"{'>=' if passed else '<'} {threshold:.0f} {'PASS' if passed else 'FAIL'} | compile "
              f"{s['compile_seconds']:.1f}s run {s['run_seconds']:.1f}s {s['env_steps_per_second']:,.0f} steps/s",
              flush=True)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(results, f, indent=2)
    print("acceptance: " + ("PASS" if ok else "FAIL") + f"; wrote {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
