"""PPO on CartPole-v1 at PureJaxRL's configuration: purejaxpg against PureJaxRL's ppo.py,
both measured in this run, alternating.

The configuration is PureJaxRL's CartPole one: 4 envs x 128 steps per update, 4 epochs x 4
minibatches, separate 64x64 tanh actor and critic, Adam lr 2.5e-4 annealed, GAE(0.99, 0.95),
clip 0.2 (value clipped too), entropy 0.01, value coefficient 0.5, grad-norm clip 0.5, 5e5 env
steps per seed; ``SETTING`` below is the same for purejaxpg (``preset none``). For each seed
count, each side runs ``--repeats`` times in a fresh process, alternating (purejaxpg,
PureJaxRL, purejaxpg, PureJaxRL, ...), and the table gives medians:

* env steps/s over all seeds, compile excluded (PureJaxRL: the ``jit(vmap(make_train))``
  program's run; purejaxpg: ``runner.train``'s training scan, its final evaluation excluded);
* compile seconds (PureJaxRL: ``lower().compile()`` of the whole program; purejaxpg: the
  runner's, which also compiles the evaluation program and runs init);
* the final-return IQM across seeds, on the figure both sides have: the training return of
  the episodes that finished in the last 10 updates (purejaxpg's evaluation return, 16
  episodes of the final policy, is in the JSON too).

Every run compiles cold on both sides (purejaxpg's compilation cache is off in its runs, as
PureJaxRL keeps none). Then the second-run check: purejaxpg twice more at ``--cache-seeds``
seeds with a fresh cache directory, the first run filling it, the second reading it; its
``compile_seconds`` is what a user's second identical ``purejaxpg train`` costs.

PureJaxRL's ppo.py comes from ``--purejaxrl DIR`` (default ../shared/anchors/purejaxrl beside
this checkout, see its README); without it the benchmark says so, measures purejaxpg alone
and prints no ratio. Each PureJaxRL process imports nothing of purejaxpg and inherits this
process's environment untouched (this process never starts JAX); see
benchmarks/sides/purejaxrl_ppo.py for the one change to its initialiser that jaxlib 0.10.2
needs on this CPU.

    python benchmarks/ppo_throughput.py                                   # 1, 8, 64 seeds, 3 runs each side
    python benchmarks/ppo_throughput.py --seeds 1 --repeats 1 --total-timesteps 20480   # a quick look
    python benchmarks/ppo_throughput.py --smoke                           # does it work here?
    python benchmarks/ppo_throughput.py --seeds '' --out FILE             # the second-run check alone

Prints a table and writes benchmarks/results/ppo_throughput-<date>.json (or --out): every
run, the medians, date, machine, load average before and after, versions, git commit.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks import (
    RESULTS,
    ROOT,
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
    summary_line,
    write_json,
)

SETTING = {"env": "CartPole-v1", "num_envs": 4, "num_steps": 128, "update_epochs": 4, "num_minibatches": 4,
           "hidden": [64, 64], "activation": "tanh", "anneal_lr": True, "lr": 2.5e-4, "gamma": 0.99,
           "gae_lambda": 0.95, "clip_eps": 0.2, "clip_value": True, "ent_coef": 0.01, "vf_coef": 0.5,
           "max_grad_norm": 0.5, "normalize_advantages": True, "total_timesteps": 500_000}
DEFAULT_PUREJAXRL = os.path.normpath(os.path.join(ROOT, "..", "shared", "anchors", "purejaxrl"))


def summarize(runs: list, key_return: str) -> dict:
    finals = runs[-1][key_return]  # the same seeds and program every run: identical returns
    return {"runs": len(runs), "env_steps_per_second": median(r["env_steps_per_second"] for r in runs),
            "compile_seconds": median(r["compile_seconds"] for r in runs),
            "run_seconds": median(r["run_seconds"] for r in runs),
            "env_steps_per_second_range": [min(r["env_steps_per_second"] for r in runs),
                                           max(r["env_steps_per_second"] for r in runs)],
            "final_return_iqm": iqm(finals)}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="1,8,64", help="seed counts, comma-separated")
    p.add_argument("--repeats", type=int, default=3, help="runs of each side per seed count (alternating)")
    p.add_argument("--total-timesteps", type=int, default=500_000, help="env steps per seed")
    p.add_argument("--purejaxrl", default=DEFAULT_PUREJAXRL, help="folder with PureJaxRL's ppo.py and wrappers.py")
    p.add_argument("--timeout", type=float, default=1800, help="seconds one run may take before it counts as hung")
    p.add_argument("--cache-seeds", type=int, default=8, help="seeds of the second-run (cache) check; 0: none")
    p.add_argument("--out", default=None, help="default benchmarks/results/ppo_throughput-<date>.json")
    p.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = p.parse_args(argv)
    smoke(args, seeds="1", repeats=1, total_timesteps=2048, cache_seeds=1)

    peer = os.path.isfile(os.path.join(args.purejaxrl, "ppo.py"))
    if not peer:
        print(f"PureJaxRL not found ({args.purejaxrl}/ppo.py does not exist): measuring purejaxpg alone, no ratio. "
              f"Give a checkout with --purejaxrl DIR.", flush=True)
    setting = {**SETTING, "total_timesteps": args.total_timesteps}
    info = provenance(argv)
    info["load_average_before"] = load()

    def ours(seeds, env=None):
        return lambda: run_side([sys.executable, os.path.join(ROOT, "benchmarks", "sides", "ours.py"), "ppo",
                                 str(seeds), json.dumps(setting)], env or ours_env(), args.timeout)

    def theirs(seeds):
        return lambda: run_side([sys.executable, os.path.join(ROOT, "benchmarks", "sides", "purejaxrl_ppo.py"),
                                 args.purejaxrl, str(seeds), str(args.total_timesteps)], dict(os.environ),
                                args.timeout)

    out = out_path(args.out, os.path.join(RESULTS, f"ppo_throughput-{info['date']}.json"), args)
    seed_counts = [int(s) for s in args.seeds.split(",") if s]
    second_run, pair, rows = None, [], []

    def record():  # after every step: a long run interrupted keeps what it measured
        info["load_average_after"] = load()
        mine = rows[0]["runs"]["purejaxpg"][0] if rows else pair[0]
        peer_run = rows[0]["runs"]["PureJaxRL"][0] if rows and peer else None
        write_json(out, {**info, "complete": len(rows) == len(seed_counts), "setting": setting,
                         "purejaxrl": os.path.abspath(args.purejaxrl) if peer else None, "repeats": args.repeats,
                         "versions": {"purejaxpg": mine["versions"],
                                      **({"PureJaxRL": peer_run["versions"]} if peer_run else {})},
                         "xla_flags": {"purejaxpg": mine["xla_flags"],
                                       **({"PureJaxRL": peer_run["xla_flags"]} if peer_run else {})},
                         "second_run": second_run, "rows": rows})

    if args.cache_seeds:
        print(f"second-run check, {args.cache_seeds} seed(s), a fresh cache:", flush=True)
        with tempfile.TemporaryDirectory() as directory:
            env = {**ours_env(), "PUREJAXPG_COMPILE_CACHE": directory}
            pair = [ours(args.cache_seeds, env)() for _ in range(2)]
        for name, r in zip(("first (fills the cache)", "second (reads it)"), pair):
            print(f"  {name}: {summary_line(r)}; programs {r['compile']['programs']}", flush=True)
        second_run = {"seeds": args.cache_seeds, "compile_seconds": [r["compile_seconds"] for r in pair],
                      "compile": [r["compile"] for r in pair]}
        record()
    for seeds in seed_counts:
        print(f"{seeds} seed(s):", flush=True)
        sides = {"purejaxpg": ours(seeds), **({"PureJaxRL": theirs(seeds)} if peer else {})}
        runs = alternate(sides, args.repeats)
        row = {"seeds": seeds, "purejaxpg": summarize(runs["purejaxpg"], "train_return_last10_per_seed"),
               "runs": runs}
        row["purejaxpg"]["final_return_eval_iqm"] = iqm(runs["purejaxpg"][-1]["final_return_per_seed"])
        if peer:
            row["PureJaxRL"] = summarize(runs["PureJaxRL"], "train_return_last10_per_seed")
            row["ratio_env_steps_per_second"] = (row["purejaxpg"]["env_steps_per_second"]
                                                 / row["PureJaxRL"]["env_steps_per_second"])
            row["ratio_compile_seconds"] = row["purejaxpg"]["compile_seconds"] / row["PureJaxRL"]["compile_seconds"]
        rows.append(row)
        record()
    info.setdefault("load_average_after", load())

    print(f"\nPPO CartPole-v1, 4 envs x 128 steps, 4 x 4 minibatches, {setting['total_timesteps']:,} env steps per "
          f"seed; medians of {args.repeats} alternating runs per side")
    print(f"{'seeds':>5} | {'purejaxpg steps/s':>17} | {'PureJaxRL steps/s':>17} | {'ratio':>6} | "
          f"{'compile ours / PJR':>18} | {'IQM ours / PJR':>15}")
    for r in rows:
        o, t = r["purejaxpg"], r.get("PureJaxRL")
        ratio = f"{r['ratio_env_steps_per_second']:.2f}x" if t else "-"
        their_sps = f"{t['env_steps_per_second']:,.0f}" if t else "not run"
        their_c = f"{t['compile_seconds']:.1f}" if t else "-"
        their_iqm = f"{t['final_return_iqm']:.1f}" if t else "-"
        print(f"{r['seeds']:>5} | {o['env_steps_per_second']:>17,.0f} | {their_sps:>17} | {ratio:>6} | "
              f"{o['compile_seconds']:>8.1f} / {their_c:>6} s | {o['final_return_iqm']:>6.1f} / {their_iqm:>6}")
    if second_run:
        print(f"second identical run ({second_run['seeds']} seed(s)): compile {second_run['compile_seconds'][1]:.2f} s "
              f"(first {second_run['compile_seconds'][0]:.1f} s)")
    print(f"{info['machine']['cpu']}, {info['machine']['logical_cpus']} cpus; load average "
          f"{info['load_average_before'][0]:.2f} before, {info['load_average_after'][0]:.2f} after; commit "
          f"{info['commit']}; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
