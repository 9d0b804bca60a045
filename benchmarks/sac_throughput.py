"""SAC on Pendulum-v1 at rejax's settings: purejaxpg against rejax 0.1.3, both measured in
this run, alternating.

The setting is rejax's own (configs/gymnax/pendulum.yaml, sac section; ../shared/anchors/
README.md): 8 seeds in one program, 1 env, 1e4 env steps per seed, one gradient step per env
step on a minibatch of 256, a buffer of 1e4, learning after 256 steps, 64x64 swish networks
(actor, twin critics), Adam lr 0.01 for actor, critics and temperature, gamma 0.99, Polyak
0.98 (purejaxpg's tau 0.02), target entropy -|A|, initial temperature 1, observations
normalised by running statistics, log-std bounded to [-10, 2]. ``OURS`` maps it onto
purejaxpg's settings (preset none). Where the two still differ:

* warm-up: purejaxpg takes uniform random actions for the first 256 steps, rejax acts with
  its (untrained) policy;
* time limits: purejaxpg bootstraps truncated episodes from the final observation, rejax
  (gymnax 0.0.9's ``done``) treats Pendulum's 200-step limit as a termination;
* the log-std bound: a smooth tanh squash into [-10, 2] here, a clip in rejax;
* one backward pass of the summed losses here, three optimiser updates (actor, critics,
  temperature) there; the maths of each loss is the same (the actor and temperature see
  the critics before this step's update in both);
* evaluation: both sample 128 episodes of the final policy (``eval_greedy false``).
  rejax's run time includes its evaluations (at step 0 and at the end); for purejaxpg the
  table's run time is training plus the final evaluation (``run_seconds + eval_seconds``).

Each side runs ``--repeats`` times in a fresh process, alternating (purejaxpg, rejax, ...);
the table gives medians of run and compile seconds and each side's final-return mean and IQM
across seeds. rejax runs in its own venv (rejax 0.1.3 pins gymnax 0.0.9), by default
benchmarks/.venv-rejax, created on first use with ``pip install rejax==0.1.3 gymnax==0.0.9``
and jax/jaxlib pinned to this venv's versions (the same compiler on both sides); ``--no-rejax``
or a failed install measures purejaxpg alone and prints no ratio.

    python benchmarks/sac_throughput.py                                  # 8 seeds x 1e4 steps, 3 runs each side
    python benchmarks/sac_throughput.py --repeats 1 --total-timesteps 1000   # a quick look
    python benchmarks/sac_throughput.py --smoke      # does it work here? (uses the rejax venv only if it exists)

Prints a table and writes benchmarks/results/sac_throughput-<date>.json (or --out).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from importlib import metadata

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks import (
    HERE,
    RESULTS,
    SMOKE_HELP,
    alternate,
    iqm,
    load,
    median,
    ours_env,
    out_path,
    provenance,
    run_side,
    smoke,
    write_json,
)

REJAX = {"agent_kwargs": {"activation": "swish"}, "num_envs": 1, "buffer_size": 10_000, "fill_buffer": 256,
         "batch_size": 256, "learning_rate": 0.01, "num_epochs": 1, "gamma": 0.99, "polyak": 0.98,
         "target_entropy_ratio": None, "normalize_observations": True}
OURS = {"env": "Pendulum-v1", "num_envs": 1, "num_steps": 1, "grad_steps": 1, "buffer_size": 10_000,
        "learning_starts": 256, "minibatch_size": 256, "hidden": [64, 64], "activation": "silu",
        "actor_lr": 0.01, "critic_lr": 0.01, "alpha_lr": 0.01, "gamma": 0.99, "tau": 0.02, "num_q": 2,
        "learn_alpha": True, "init_alpha": 1.0, "target_entropy_scale": 1.0, "normalize_obs": True,
        "log_std_min": -10.0, "log_std_max": 2.0, "adam_eps": 1e-8, "num_eval_episodes": 128, "eval_greedy": False}
REJAX_PACKAGES = ["rejax==0.1.3", "gymnax==0.0.9"]


def rejax_python(venv: str, create: bool) -> str | None:
    """The python of the rejax venv, created (with jax and jaxlib pinned to this venv's) when
    missing; None (with a message) when it cannot be had."""
    python = os.path.join(venv, "bin", "python")
    if os.path.exists(python):
        return python
    if not create:
        print(f"rejax venv {venv} does not exist", flush=True)
        return None
    pins = [f"{p}=={metadata.version(p)}" for p in ("jax", "jaxlib")]
    print(f"creating {venv}: pip install {' '.join(REJAX_PACKAGES + pins)} (once)", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q"] + REJAX_PACKAGES + pins, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"could not create the rejax venv ({e}); measuring purejaxpg alone", flush=True)
        return None
    return python


def summarize(runs: list, with_eval: bool) -> dict:
    seconds = [r["run_seconds"] + (r["eval_seconds"] if with_eval else 0.0) for r in runs]
    final = runs[-1]["final_return_per_seed"]
    return {"runs": len(runs), "run_seconds": median(seconds), "run_seconds_all": seconds,
            "compile_seconds": median(r["compile_seconds"] for r in runs),
            "env_steps_per_second": median(r["env_steps_per_second"] for r in runs),
            "final_return_mean": sum(final) / len(final), "final_return_iqm": iqm(final),
            "final_return_per_seed_by_run": [r["final_return_per_seed"] for r in runs]}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--total-timesteps", type=int, default=10_000, help="env steps per seed")
    p.add_argument("--repeats", type=int, default=3, help="runs of each side (alternating)")
    p.add_argument("--rejax-venv", default=os.path.join(HERE, ".venv-rejax"))
    p.add_argument("--no-rejax", action="store_true", help="measure purejaxpg alone")
    p.add_argument("--timeout", type=float, default=1800, help="seconds one run may take before it counts as hung")
    p.add_argument("--out", default=None, help="default benchmarks/results/sac_throughput-<date>.json")
    p.add_argument("--smoke", action="store_true", help=SMOKE_HELP + " (creates no rejax venv)")
    args = p.parse_args(argv)
    smoke(args, seeds=2, total_timesteps=512, repeats=1)

    python = None if args.no_rejax else rejax_python(args.rejax_venv, create=not args.smoke)
    if python is None:
        print("rejax not measured: no ratio.", flush=True)
    ours = {**OURS, "total_timesteps": args.total_timesteps}
    info = provenance(argv)
    info["load_average_before"] = load()
    rejax_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # its venv, nothing of this checkout
    sides = {"purejaxpg": lambda: run_side([sys.executable, os.path.join(HERE, "sides", "ours.py"), "sac",
                                            str(args.seeds), json.dumps(ours)], ours_env(), args.timeout)}
    if python:
        sides["rejax"] = lambda: run_side([python, os.path.join(HERE, "sides", "rejax_sac.py"), "Pendulum-v1",
                                           str(args.seeds), str(args.total_timesteps), json.dumps(REJAX)],
                                          rejax_env, args.timeout)
    runs = alternate(sides, args.repeats)
    info["load_average_after"] = load()
    table = {"purejaxpg": summarize(runs["purejaxpg"], with_eval=True)}
    if python:
        table["rejax"] = summarize(runs["rejax"], with_eval=False)
        table["speedup_run_seconds"] = table["rejax"]["run_seconds"] / table["purejaxpg"]["run_seconds"]
        table["ratio_compile_seconds"] = table["purejaxpg"]["compile_seconds"] / table["rejax"]["compile_seconds"]
    result = {**info, "seeds": args.seeds, "env_steps_per_seed": args.total_timesteps, "repeats": args.repeats,
              "settings": {"purejaxpg": ours, "rejax": REJAX if python else None},
              "versions": {name: rs[0]["versions"] for name, rs in runs.items()},
              "xla_flags": {name: rs[0]["xla_flags"] for name, rs in runs.items()},
              "summary": table, "runs": runs}
    out = out_path(args.out, os.path.join(RESULTS, f"sac_throughput-{info['date']}.json"), args)
    write_json(out, result)

    print(f"\nSAC Pendulum-v1, {args.seeds} seeds x {args.total_timesteps:,} env steps, 1 gradient step per env step; "
          f"medians of {args.repeats} alternating runs per side")
    names = list(table)[:2] if python else ["purejaxpg"]
    rows = [("", *names),
            ("run time (s), median", *(f"{table[n]['run_seconds']:.1f}" for n in names)),
            ("compile (s), median", *(f"{table[n]['compile_seconds']:.1f}" for n in names)),
            ("env steps/s, all seeds", *(f"{table[n]['env_steps_per_second']:,.0f}" for n in names)),
            ("final return, mean", *(f"{table[n]['final_return_mean']:.1f}" for n in names)),
            ("final return, IQM", *(f"{table[n]['final_return_iqm']:.1f}" for n in names))]
    w = max(len(r[0]) for r in rows)
    for r in rows:
        print(f"{r[0]:<{w}}  " + "  ".join(f"{c:>12}" for c in r[1:]))
    if python:
        print(f"purejaxpg is {table['speedup_run_seconds']:.2f}x faster than rejax (median run time; purejaxpg's "
              f"includes its final evaluation, rejax's its two)")
    print(f"{info['machine']['cpu']}, {info['machine']['logical_cpus']} cpus; load average "
          f"{info['load_average_before'][0]:.2f} before, {info['load_average_after'][0]:.2f} after; commit "
          f"{info['commit']}; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
