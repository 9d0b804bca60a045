"""TRPO on CartPole-v1: purejaxpg's one compiled program against sb3-contrib's TRPO (PyTorch,
the optional ``bench`` extra: ``pip install torch==2.13.0 sb3-contrib``), in one run.

Both with the same networks (separate 64x64 tanh actor and critic, sb3's MlpPolicy) and the
same batches: 8 envs x 256 steps = 2048 env steps per update, 15 CG iterations, damping
0.1, max_kl 0.01, line search 0.8 x 10, 10 critic epochs of 16 minibatches of 128 at Adam
lr 1e-3, GAE(0.99, 0.95) (purejaxpg's trpo defaults; sb3's TRPO with n_envs 8, n_steps
256, batch_size 128 and its defaults otherwise). sb3 steps gymnasium's CartPole-v1 in a
DummyVecEnv, one process, torch on ``--torch-threads`` threads (default 1).

Env steps/s of training, compile or setup excluded: purejaxpg with 1 and 16 seeds in one
program; sb3 for one seed, and for 16 seeds as 16 runs one after another (the total steps
over the total time). Prints a table and writes benchmarks/results/trpo_vs_sb3.json (date,
machine, load average, git commit, versions).

    python benchmarks/trpo_vs_sb3.py [--ours-steps 100000] [--sb3-steps 10240] [--sb3-runs 16]
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
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, ROOT)

from benchmarks import git_commit, setup

SB3_KWARGS = dict(n_steps=256, batch_size=128, gamma=0.99, gae_lambda=0.95, learning_rate=1e-3, cg_max_steps=15,
                  cg_damping=0.1, line_search_shrinking_factor=0.8, line_search_max_iter=10, n_critic_updates=10,
                  target_kl=0.01, normalize_advantage=True)


def sb3_run(env_steps: int, seed: int, threads: int) -> dict:
    import torch
    from sb3_contrib import TRPO
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(threads)
    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    model = TRPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0,
                 policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[64, 64]), activation_fn=torch.nn.Tanh), **SB3_KWARGS)
    t = time.perf_counter()
    model.learn(total_timesteps=env_steps)
    seconds = time.perf_counter() - t
    rewards = [ep["r"] for ep in model.ep_info_buffer]
    return {"env_steps": int(model.num_timesteps), "seconds": seconds,
            "last_episode_returns_mean": float(sum(rewards) / len(rewards)) if rewards else None}


def ours(num_seeds: int, env_steps: int) -> dict:
    from purejaxpg.engine import runner

    r = runner.train("trpo", {"env": "CartPole-v1", "total_timesteps": env_steps}, num_seeds=num_seeds, quiet=True,
                     preset="none")
    g = r.groups[0]
    return {"seeds": num_seeds, "env_steps_per_seed": g.updates_run * g.batch.program.env_steps_per_update,
            "compile_seconds": g.timings["compile_seconds"], "run_seconds": g.timings["run_seconds"],
            "env_steps_per_second": g.env_steps_per_second,
            "final_return_mean": float(g.final.mean())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ours-steps", type=int, default=100_000, help="env steps per seed of purejaxpg's runs")
    p.add_argument("--sb3-steps", type=int, default=10_240, help="env steps of each sb3 run (5 updates)")
    p.add_argument("--sb3-runs", type=int, default=16, help="sb3 runs one after another for the 16-seed row")
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--json", default=os.path.join(HERE, "results", "trpo_vs_sb3.json"))
    args = p.parse_args(argv)
    setup()
    import jax
    import sb3_contrib
    import torch

    load_before = os.getloadavg()
    rows = {}
    for seeds in (1, 16):
        rows[f"purejaxpg_{seeds}"] = ours(seeds, args.ours_steps)
    runs = [sb3_run(args.sb3_steps, seed, args.torch_threads) for seed in range(args.sb3_runs)]
    steps, seconds = sum(r["env_steps"] for r in runs), sum(r["seconds"] for r in runs)
    rows["sb3_1"] = {"seeds": 1, **runs[0], "env_steps_per_second": runs[0]["env_steps"] / runs[0]["seconds"]}
    rows[f"sb3_{args.sb3_runs}"] = {"seeds": args.sb3_runs, "env_steps": steps, "seconds": seconds,
                                    "env_steps_per_second": steps / seconds, "runs": runs}
    ratio = {"1": rows["purejaxpg_1"]["env_steps_per_second"] / rows["sb3_1"]["env_steps_per_second"],
             "16": rows["purejaxpg_16"]["env_steps_per_second"] / rows[f"sb3_{args.sb3_runs}"]["env_steps_per_second"]}
    out = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
           "machine": f"{platform.machine()} {os.cpu_count()} cpus", "git_commit": git_commit(),
           "load_average_before": load_before, "load_average_after": os.getloadavg(),
           "command": "python benchmarks/trpo_vs_sb3.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "versions": {"jax": jax.__version__, "torch": torch.__version__, "sb3_contrib": sb3_contrib.__version__},
           "sb3_kwargs": {**SB3_KWARGS, "n_envs": 8, "net_arch": "pi 64x64, vf 64x64, tanh",
                          "torch_threads": args.torch_threads},
           "rows": rows, "ratio_purejaxpg_over_sb3": ratio}
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)
    print(f"{'run':<28} {'seeds':>5} {'env steps/s':>12}")
    for name, r in rows.items():
        print(f"{name:<28} {r['seeds']:>5} {r['env_steps_per_second']:>12,.0f}")
    print(f"ratio purejaxpg / sb3: 1 seed {ratio['1']:.1f}x, 16 seeds {ratio['16']:.1f}x; load average before "
          f"{load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}; wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
