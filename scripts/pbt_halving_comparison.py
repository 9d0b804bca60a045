"""Issue 20's comparison: PBT, successive halving and a plain sweep with PPO, each picking
a configuration; each pick re-evaluated by training it again with fresh seeds.

Per repetition (master seed 1000 x rep), with T = --total-timesteps env steps per run:

* full grid (the reference, 108 T): 27 configurations (lr x clip_eps x ent_coef, 3 values
  each) x 4 seeds, the best by final-return IQM; run once (repetition 0);
* halving (about 16 T): the same 27 x 4 with ``--halving eta=3`` (4 rungs: 27, 9, 3, 1
  configurations at T/27, T/9, T/3, T; each rung from scratch);
* plain sweep at the same budget (16 T): 4 configurations drawn from the grid x 4 seeds;
* PBT (16 T): 16 members x T, lr 1e-4:1e-2 (log), clip_eps 0.1:0.3, ent_coef 0:0.05 drawn
  and explored, truncation:0.25, perturb:0.8,1.2, a ready step every 1/20 of the run. Its
  pick is the best member's final hyperparameters (a fixed configuration: the schedule
  PBT found is not replayed).

Each pick is trained again with --eval-seeds fresh seeds (master seed 10000 + rep) at T:
its final-return IQM and 95% bootstrap CI. Over repetitions: the mean of the re-evaluated
IQMs per procedure and a 95% bootstrap CI of that mean.

    python scripts/pbt_halving_comparison.py                          # CartPole-v1, 8 repetitions
    python scripts/pbt_halving_comparison.py --reps 2 --envs CartPole-v1 --total-timesteps 100000

Writes benchmarks/results/pbt_halving_comparison.COMMIT.json after every repetition (with
the command, the machine, the load average and the git commit).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from benchmarks import git_commit

GRID = {"lr": [1e-4, 1e-3, 1e-2], "clip_eps": [0.1, 0.2, 0.3], "ent_coef": [0.0, 0.01, 0.05]}
RANGES = {"lr": (1e-4, 1e-2, "log"), "clip_eps": (0.1, 0.3, "lin"), "ent_coef": (0.0, 0.05, "lin")}


def reevaluate(picks: dict, base: dict, seeds: int, seed: int) -> dict:
    """Train each pick {procedure: hparams} again with ``seeds`` fresh seeds, one program."""
    from purejaxpg.engine import runner
    from purejaxpg.engine.plan import Plan, config_name

    names = list(picks)
    plan = Plan("ppo", base, tuple(picks[n] for n in names), seeds, seed=seed, single=False, checkpoint_every=0)
    res = runner.execute(plan, None, quiet=True)
    out = {}
    for j, n in enumerate(names):
        s = res.summaries[config_name(picks[n], j)]["final_return"]
        out[n] = {"hparams": picks[n], "iqm": s["iqm"], "iqm_ci95": s["iqm_ci95"], "mean": s["mean"]}
    return out


def one_repetition(env: str, T: int, rep: int, seeds: int, eval_seeds: int, full: bool) -> dict:
    import numpy as np

    from purejaxpg.engine import runner, search
    from purejaxpg.engine.plan import configurations

    base = {"env": env, "total_timesteps": T}
    seed = 1000 * rep
    out = {"rep": rep, "seed": seed}
    points = configurations(GRID, {}, 0, 0, "ppo")
    if full:
        t = time.time()
        r = runner.sweep("ppo", None, base, GRID, num_seeds=seeds, seed=seed, quiet=True, checkpoint_every=0)
        best = r.table[0]
        n = r.groups[0].group.config.num_updates * r.groups[0].group.config.batch_size
        out["full_grid"] = {"best": best["swept"], "iqm": best["iqm"], "iqm_ci95": best["iqm_ci95"],
                            "env_steps": len(points) * seeds * n, "seconds": time.time() - t,
                            "table": [{"swept": row["swept"], "iqm": row["iqm"], "iqm_ci95": row["iqm_ci95"]}
                                      for row in r.table]}
    t = time.time()
    h = search.halving("ppo", None, base, GRID, num_seeds=seeds, eta=3, seed=seed, quiet=True, checkpoint_every=0)
    out["halving"] = {"best": h.best["swept"], "iqm": h.best["iqm"], "env_steps": h.env_steps,
                      "full_grid_env_steps": h.full_grid_env_steps,
                      "fraction_of_full_grid": h.env_steps / h.full_grid_env_steps, "schedule": h.schedule,
                      "seconds": time.time() - t}
    run_steps = h.full_grid_env_steps // (len(points) * seeds)  # T rounded down to whole updates
    t = time.time()
    rng = np.random.default_rng(seed + 7)
    chosen = [points[i] for i in rng.choice(len(points), 4, replace=False)]
    from purejaxpg.engine.plan import Plan

    plan = Plan("ppo", base, tuple(chosen), seeds, seed=seed, single=False, checkpoint_every=0)
    s = runner.execute(plan, None, quiet=True)
    out["plain_sweep"] = {"configurations": chosen, "best": s.table[0]["swept"], "iqm": s.table[0]["iqm"],
                          "env_steps": 4 * seeds * run_steps,
                          "seconds": time.time() - t}
    t = time.time()
    p = search.pbt("ppo", None, base, 16, RANGES, seed=seed, quiet=True, checkpoint_every=0)
    part = p.summaries["run"]["pbt"]
    out["pbt"] = {"best": part["best_final_hparams"], "best_member_final_return": part["best_final_return"],
                  "members_final_return": part["final_return_per_member"], "exploited": part["exploited"],
                  "env_steps": 16 * p.groups[0].batch.program.num_updates * p.groups[0].batch.program.env_steps_per_update,
                  "seconds": time.time() - t}
    out["budget_env_steps"] = 16 * run_steps
    picks = {k: out[k]["best"] for k in ("halving", "plain_sweep", "pbt")}
    if full:
        picks["full_grid"] = out["full_grid"]["best"]
    t = time.time()
    out["reevaluated"] = reevaluate(picks, base, eval_seeds, 10_000 + rep)
    out["reevaluation_seconds"] = time.time() - t
    return out


def summarize(reps: list) -> dict:
    import numpy as np

    out = {}
    for proc in ("halving", "plain_sweep", "pbt", "full_grid"):
        v = np.asarray([r["reevaluated"][proc]["iqm"] for r in reps if proc in r["reevaluated"]], float)
        if not len(v):
            continue
        rng = np.random.default_rng(0)
        boots = rng.choice(v, (2000, len(v))).mean(1)
        out[proc] = {"reps": len(v), "mean_reevaluated_iqm": float(v.mean()),
                     "ci95": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))],
                     "per_rep": v.tolist()}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--envs", default="CartPole-v1")
    p.add_argument("--reps", type=int, default=8)
    p.add_argument("--total-timesteps", type=int, default=100_000)
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--eval-seeds", type=int, default=16)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    from purejaxpg.engine import host

    host.configure()
    commit = git_commit()
    path = args.out or os.path.join(ROOT, "benchmarks", "results", f"pbt_halving_comparison.{commit}.json")
    result = {"command": "python scripts/pbt_halving_comparison.py " + " ".join(argv or sys.argv[1:]),
              "commit": commit, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": f"{platform.machine()} {os.cpu_count()} cpus", "grid": GRID, "ranges": RANGES,
              "total_timesteps": args.total_timesteps, "seeds": args.seeds, "eval_seeds": args.eval_seeds,
              "envs": {}}
    for env in args.envs.split(","):
        reps = []
        for rep in range(args.reps):
            load = os.getloadavg()
            r = one_repetition(env, args.total_timesteps, rep, args.seeds, args.eval_seeds, full=rep == 0)
            r["load_before"], r["load_after"] = load, os.getloadavg()
            reps.append(r)
            result["envs"][env] = {"repetitions": reps, "summary": summarize(reps)}
            if "full_grid" in reps[0]:
                fg = reps[0]["full_grid"]
                result["envs"][env]["halving_acceptance"] = [
                    {"rep": x["rep"], "fraction_of_full_grid": x["halving"]["fraction_of_full_grid"],
                     "reevaluated_iqm": x["reevaluated"]["halving"]["iqm"], "full_grid_best_iqm_ci95": fg["iqm_ci95"],
                     "within": fg["iqm_ci95"][0] <= x["reevaluated"]["halving"]["iqm"] <= fg["iqm_ci95"][1]}
                    for x in reps]
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            with open(path, "w") as f:
                json.dump(result, f, indent=2)
            print(env, "rep", rep, json.dumps(result["envs"][env]["summary"]), flush=True)
    print("wrote", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
