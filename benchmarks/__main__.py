"""One command for purejaxpg's benchmarks.

    python -m benchmarks                 # quick mode: CPU, a few minutes
    python -m benchmarks --mode full     # full mode: for a GPU (seeds up to 4096)
    python -m benchmarks --algos ppo --seeds 1,64 --no-baselines
    python -m benchmarks --algos ppo,sac --seeds 1 --total-timesteps 2048 --repeats 1   # a quick look
    python -m benchmarks --smoke         # does it work here? (1 seed, 2 updates per row, results here)

For REINFORCE, PPO and SAC (settings in benchmarks/scaling.py) it measures env steps/s of
whole training (compile excluded), compile seconds, final-return IQM and peak memory
against the number of seeds in one program, and PPO against the number of environments
per seed, all through ``runner.train``; then the classic single-process baselines (benchmarks/baselines.py: textbook
REINFORCE on gymnasium CartPole with PyTorch, and with NumPy) in the same process, and
reports our speed as a ratio to the PyTorch one measured in the same run (no ratio when torch
is missing). Writes
benchmarks/results/<device>-<date>.json (hardware, versions and the command recorded) and
benchmarks/results/<device>-<date>.png (steps/s against seeds, log-log).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks import RESULTS, SMOKE_HELP, git_commit, load, machine, setup, smoke_steps

MODES = {
    # seeds per algorithm, envs-per-seed values for PPO (1 seed), baseline env steps
    "quick": {"seeds": {"ppo": [1, 4, 16, 64], "reinforce": [1, 16, 64], "sac": [1, 4]},
              "envs": [16, 64], "baseline_steps": 50_000},
    "full": {"seeds": {"ppo": [1, 16, 64, 256, 1024, 2048, 4096], "reinforce": [1, 16, 64, 256, 1024, 4096],
                       "sac": [1, 16, 64, 256, 1024, 4096]},
             "envs": [4, 16, 64, 256, 1024], "baseline_steps": 50_000},
}


def device_name() -> str:
    import jax

    d = jax.devices()[0]
    kind = getattr(d, "device_kind", "") or platform.processor() or "cpu"
    name = f"{d.platform}-{kind}".lower().replace(" ", "_")
    return "".join(c for c in name if c.isalnum() or c in "-_.")


def plot(path, rows, baselines):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for algo in sorted({r["algo"] for r in rows if r["kind"] == "seeds"}):
        pts = sorted((r["seeds"], r["env_steps_per_second"]) for r in rows if r["algo"] == algo and r["kind"] == "seeds")
        ax.plot(*zip(*pts), marker="o", label=f"purejaxpg {algo}")
    for b in baselines.values():
        if "env_steps_per_second" in b:
            ax.axhline(b["env_steps_per_second"], ls="--", color="gray")
            ax.annotate(b["name"].split(" (")[0], (1, b["env_steps_per_second"]), fontsize=7, va="bottom")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("seeds in one program")
    ax.set_ylabel("env steps / s (all seeds, compile excluded)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=sorted(MODES), default="quick")
    p.add_argument("--algos", default="ppo,reinforce,sac")
    p.add_argument("--seeds", default=None, help="override the mode's seed counts (all algorithms)")
    p.add_argument("--repeats", type=int, default=1, help="timed runs per row (median reported)")
    p.add_argument("--no-baselines", action="store_true")
    p.add_argument("--total-timesteps", type=int, default=None,
                   help="env steps per seed for every row instead of the settings' (a quick look)")
    p.add_argument("--out-dir", default=None, help="default benchmarks/results")
    p.add_argument("--host-devices", type=int, default=1,
                   help="CPU only: split the host into this many XLA devices; the runner shards each program's "
                        "seeds over them (one SPMD program; uses more than one core)")
    p.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = p.parse_args(argv)
    args.out_dir = args.out_dir or (os.getcwd() if args.smoke else RESULTS)
    if args.host_devices > 1:  # before JAX starts its backend
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   f" --xla_force_host_platform_device_count={args.host_devices}").strip()
    setup()

    import jax

    from purejaxpg.engine.outputs import versions

    from benchmarks import baselines as bl
    from benchmarks.scaling import SETTINGS, format_rows, measure

    mode = MODES[args.mode]
    if args.smoke:  # one seed, the first envs value, two updates after any warm-up per row, a short baseline
        mode = {"seeds": {a: s[:1] for a, s in mode["seeds"].items()}, "envs": mode["envs"][:1], "baseline_steps": 1000}
        args.seeds, args.repeats = None, 1
    algos = [a for a in args.algos.split(",") if a]
    load_before = load()

    def budget(algo, overrides):
        if args.smoke:
            return {**overrides, "total_timesteps": smoke_steps(algo, {**SETTINGS[algo], **overrides}, "none", 2)}
        return {**overrides, **({"total_timesteps": args.total_timesteps} if args.total_timesteps else {})}

    rows = []
    for algo in algos:
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else mode["seeds"][algo]
        for n in seeds:
            rows.append({"kind": "seeds", **measure(algo, n, budget(algo, {}), repeats=args.repeats)})
            print(format_rows(rows[-1:]).splitlines()[-1], flush=True)
        if algo == "ppo":
            for e in mode["envs"]:
                rows.append({"kind": "envs", **measure("ppo", 1, budget("ppo", {"num_envs": e}), repeats=args.repeats)})
                print(format_rows(rows[-1:]).splitlines()[-1], flush=True)

    results = {}
    if not args.no_baselines:
        for name, fn in (("torch", bl.torch_reinforce), ("numpy", bl.numpy_reinforce)):
            try:
                results[name] = fn(mode["baseline_steps"])
            except ImportError as e:  # torch is optional
                results[name] = {"name": name, "skipped": str(e)}
    torch_sps = results.get("torch", {}).get("env_steps_per_second")

    date = datetime.date.today().isoformat()
    suffix = f"-{args.host_devices}dev" if args.host_devices > 1 else ""
    stem = os.path.join(args.out_dir, f"{device_name()}-{date}{suffix}")
    os.makedirs(args.out_dir, exist_ok=True)
    out = {"command": "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv),
           "mode": args.mode, "host_devices": args.host_devices, "date": date,
           "device": str(jax.devices()[0]), "versions": versions(), "machine": machine(), "commit": git_commit(),
           "load_average_before": load_before, "load_average_after": load(),
           "rows": rows, "baselines": results}
    with open(stem + ".json", "w") as f:
        json.dump(out, f, indent=2)
    plot(stem + ".png", rows, results)

    print(f"\n{out['versions']['device']} ({out['versions']['machine']}), mode {args.mode}, "
          f"seeds sharded over {jax.device_count()} device(s) by the runner")
    print(format_rows(rows, torch_sps))
    for b in results.values():
        if "env_steps_per_second" in b:
            print(f"baseline {b['name']}: {b['env_steps_per_second']:,.0f} env steps/s, "
                  f"final return {b['final_return_mean']:.1f} after {b['env_steps']} steps")
        else:
            print(f"baseline {b['name']}: skipped ({b['skipped']})")
    print(f"wrote {stem}.json and {stem}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
