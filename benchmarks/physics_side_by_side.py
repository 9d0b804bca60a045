"""purejaxpg beside brax.training on a physics task: PPO and SAC, 1 and 8 seeds.

brax.training's PPO and SAC are run as MuJoCo Playground's training scripts
(``learning/train_jax_ppo.py``, ``train_jax_sac.py``) run them: ``ppo.train`` / ``sac.train``
with the Playground task (``registry.load(TASK, config_overrides={"impl": "jax"})``, wrapped by
``mujoco_playground.wrapper.wrap_for_brax_training``) and the published settings of
``mujoco_playground.config.dm_control_suite_params`` (``brax_ppo_config``, ``brax_sac_config``)
where purejaxpg's preset does not set them; purejaxpg runs the same task through
``playground/TASK`` with its preset (``--preset``: the CPU version by default, ``gpu`` for
the published one). Both sides get the same numbers where both have the knob:

* environments, env steps per update, minibatches (Brax: ``batch_size x num_minibatches``
  sequences of ``unroll_length``), epochs, discount, learning rate, entropy cost, clip
  range, observation normalisation, the time limit; SAC's envs, gradient steps per env step,
  minibatch, replay size and random steps first;
* networks: Brax's are given purejaxpg's ``hidden`` and activation for policy, value and Q
  (Playground's own defaults differ between policy and value, which purejaxpg cannot);
* the budget: purejaxpg's ``total_timesteps`` is set to the env steps Brax actually takes
  (Brax rounds up to whole epochs);
* evaluation: one at the end, ``num_eval_episodes`` episodes each side (Brax's ``num_evals=1``,
  ``num_eval_envs``), stochastic policy for PPO (Brax's default ``deterministic_eval=False``,
  purejaxpg's ``eval_greedy`` false), the mean action for SAC on both sides.

brax 0.14.2's trainers call ``jax.device_put_replicated``, which jax 0.10 removed from its
namespace while keeping the function (``jax._src.api.device_put_replicated``): the Brax side
puts the name back before training, nothing else is changed.

Differences that stay: the algorithms' own details (Brax's tanh-squashed Gaussian with a
learned state-dependent std for PPO, purejaxpg's clipped Gaussian with a state-independent
one; Brax's constant ``reward_scaling`` vs purejaxpg's ``scale_rewards``; Brax's layer norm in
SAC's Q networks; GAE over Brax's ``unroll_length`` segments vs purejaxpg's whole
``num_steps``), and resets: Brax's wrapper restarts finished episodes from a cached first
state (re-randomised ``num_resets_per_eval`` times), purejaxpg draws a fresh initial state
for each episode (``@reset=first`` would copy Brax).

8 seeds: purejaxpg trains them in one program (``runner.train(num_seeds=8)``); brax.training
trains one seed per call, so 8 calls, each building the env and compiling. Every
measurement is a fresh process (cold compiles, nothing shared); the two sides alternate
(which goes first swaps each repeat) and the table shows medians over ``--repeats``.
Compilation caches (``--cache``): ``off`` (the default) keeps JAX's persistent cache off on
both sides, so every measurement compiles everything, as a first run on a new machine does;
``shared`` gives each side its own persistent cache for the whole benchmark (purejaxpg:
``PUREJAXPG_COMPILE_CACHE``; Brax: ``JAX_COMPILATION_CACHE_DIR``, every program cached), so
Brax's 8 calls compile once and later repeats read from it: what each side costs once a user
has its cache, and the cheap way to compare final returns at a full budget.
Compile time is what JAX reports (``/jax/core/compile/*_duration`` events: tracing, lowering,
XLA compile), summed over the whole measurement; "excl. compile" subtracts it from the wall
time. Env steps/s counts training env steps over wall time without compile.

    python benchmarks/physics_side_by_side.py --algo ppo --seeds 1,8 --repeats 2
    python benchmarks/physics_side_by_side.py --algo sac --seeds 1,8 --repeats 1
    python benchmarks/physics_side_by_side.py --seeds 8 --cache shared      # final returns, full budget
    python benchmarks/physics_side_by_side.py --smoke     # does it work here? (1 seed, one epoch of Brax's)

Writes benchmarks/results/physics_side_by_side-ALGO.json (``--out``) with date, machine,
load averages before and after each measurement, versions and the git commit.
"""
from __future__ import annotations

import argparse
import dataclasses
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
from benchmarks import SMOKE_HELP, git_commit, machine, out_path, smoke, smoke_steps

COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration",
                  "/jax/core/compile/backend_compile_duration")


def preset_name(env: str, preset: str) -> str:
    """purejaxpg's preset argument for ``--preset`` cpu (the env's default) or gpu."""
    return "auto" if preset == "cpu" else f"{env}/gpu"


def settings(algo: str, env: str, preset: str, total_timesteps: int = 0) -> dict:
    """purejaxpg's resolved settings (config and traced values) for ``env`` under ``preset``."""
    from purejaxpg.algos import get_algo

    config, hp = get_algo(algo).resolve({"env": env, **({"total_timesteps": total_timesteps} if total_timesteps
                                                        else {})}, preset_name(env, preset))
    return {**dataclasses.asdict(config), **hp}


def brax_kwargs(algo: str, s: dict) -> dict:
    """brax.training's arguments for purejaxpg's settings ``s``, the rest from Playground."""
    from mujoco_playground.config import dm_control_suite_params as params

    task = s["env"].split("/", 1)[1].split("@")[0]
    if algo == "ppo":
        rl = params.brax_ppo_config(task).to_dict()
        unroll = 32 if s["num_steps"] % 32 == 0 else s["num_steps"]
        sequences = s["num_envs"] * s["num_steps"] // unroll
        rl.update(num_envs=s["num_envs"], unroll_length=unroll, num_minibatches=s["num_minibatches"],
                  batch_size=sequences // s["num_minibatches"], num_updates_per_batch=s["update_epochs"],
                  discounting=s["gamma"], learning_rate=s["lr"], entropy_cost=s["ent_coef"],
                  clipping_epsilon=s["clip_eps"], gae_lambda=s["gae_lambda"],
                  normalize_observations=s["normalize_obs"])
    else:
        rl = params.brax_sac_config(task).to_dict()
        rl.update(num_envs=s["num_envs"], grad_updates_per_step=s["grad_steps"], batch_size=s["minibatch_size"],
                  max_replay_size=s["buffer_size"], min_replay_size=s["learning_starts"], discounting=s["gamma"],
                  learning_rate=s["critic_lr"], normalize_observations=s["normalize_obs"], tau=s["tau"])
        rl.pop("num_resets_per_eval", None)  # not an argument of sac.train
    rl.update(num_timesteps=s["total_timesteps"], num_evals=1)
    rl.pop("network_factory", None)
    return rl


def brax_steps(algo: str, rl: dict) -> int:
    """The env steps brax.training takes for ``rl`` (it rounds up to whole epochs)."""
    import math

    if algo == "ppo":
        per = rl["batch_size"] * rl["unroll_length"] * rl["num_minibatches"] * rl["action_repeat"]
        resets = max(rl.get("num_resets_per_eval", 0), 1)
        return math.ceil(rl["num_timesteps"] / (per * resets)) * per * resets
    prefill = -(-rl["min_replay_size"] // rl["num_envs"]) * rl["num_envs"] * rl["action_repeat"]
    per = rl["num_envs"] * rl["action_repeat"]
    return prefill + -(-(rl["num_timesteps"] - prefill) // per) * per


def child(args) -> dict:
    """One measurement in this (fresh) process."""
    from purejaxpg.engine import compat

    compat.configure()
    import jax
    import numpy as np

    compile_seconds = [0.0]

    def listener(event, duration, **kw):
        if event in COMPILE_EVENTS:
            compile_seconds[0] += duration

    jax.monitoring.register_event_duration_secs_listener(listener)
    s = settings(args.algo, args.env, args.preset, args.total_timesteps)
    rl = brax_kwargs(args.algo, s)
    steps = brax_steps(args.algo, rl)
    hidden, activation = tuple(s["hidden"]), s["activation"]
    if args.side == "purejaxpg":
        from purejaxpg.engine import runner

        t0 = time.perf_counter()
        r = runner.train(args.algo, {"env": args.env, "total_timesteps": steps}, num_seeds=args.seeds, quiet=True,
                         preset=preset_name(args.env, args.preset))
        wall = time.perf_counter() - t0
        finals = [float(x) for x in np.asarray(r.groups[0].final).reshape(-1)]
        extra = {"runner_timings": r.groups[0].timings}
    else:
        import functools

        from jax._src import api as jax_api

        # brax 0.14.2's trainers call jax.device_put_replicated, which jax 0.10 took out of its
        # namespace (the function itself is still there): put the name back for brax alone.
        if not hasattr(jax, "device_put_replicated"):
            jax.device_put_replicated = jax_api.device_put_replicated
        from brax.training.agents.ppo import networks as ppo_networks
        from brax.training.agents.ppo import train as ppo
        from brax.training.agents.sac import networks as sac_networks
        from brax.training.agents.sac import train as sac
        from flax import linen
        from mujoco_playground import registry, wrapper

        task = args.env.split("/", 1)[1].split("@")[0]
        act = {"tanh": linen.tanh, "relu": linen.relu, "silu": linen.swish, "elu": linen.elu,
               "gelu": linen.gelu}[activation]
        if args.algo == "ppo":
            train_fn, nets = ppo.train, functools.partial(
                ppo_networks.make_ppo_networks, policy_hidden_layer_sizes=hidden, value_hidden_layer_sizes=hidden,
                activation=act)
            kw = {"deterministic_eval": bool(s["eval_greedy"])}
        else:
            train_fn, nets = sac.train, functools.partial(
                sac_networks.make_sac_networks, hidden_layer_sizes=hidden, activation=act, q_network_layer_norm=True)
            kw = {"deterministic_eval": bool(s["eval_greedy"])}
        finals = []
        t0 = time.perf_counter()
        for seed in range(args.seeds):
            env = registry.load(task, config_overrides={"impl": "jax"})
            eval_env = registry.load(task, config_overrides={"impl": "jax"})
            _, _, metrics = train_fn(environment=env, eval_env=eval_env, network_factory=nets, seed=seed,
                                     wrap_env_fn=wrapper.wrap_for_brax_training,
                                     num_eval_envs=s["num_eval_episodes"], **rl, **kw)
            finals.append(float(metrics["eval/episode_reward"]))
        wall = time.perf_counter() - t0
        extra = {"brax_kwargs": {k: v for k, v in rl.items()}}
    return {"side": args.side, "algo": args.algo, "env": args.env, "seeds": args.seeds, "env_steps_per_seed": steps,
            "wall_seconds": wall, "compile_seconds": compile_seconds[0],
            "env_steps_per_second": steps * args.seeds / max(wall - compile_seconds[0], 1e-9),
            "final_returns": finals, "hidden": list(hidden), "activation": activation, **extra}


def uptime() -> str:
    """``uptime``'s line (time, load averages), or the load averages where it is missing."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def iqm(xs):
    xs = sorted(xs)
    n = len(xs)
    cut = n // 4
    mid = xs[cut:n - cut] if n >= 4 else xs
    return sum(mid) / len(mid)


def cache_env(choice: str, side: str, where: str) -> dict:
    """The environment of one measurement's process for ``--cache`` ``choice``."""
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_COMPILATION_CACHE_DIR", "PUREJAXPG_COMPILE_CACHE")}
    if choice == "off":
        return {**env, "PUREJAXPG_COMPILE_CACHE": "off"}
    directory = os.path.join(where, side)
    if side == "purejaxpg":
        return {**env, "PUREJAXPG_COMPILE_CACHE": directory}
    return {**env, "JAX_COMPILATION_CACHE_DIR": directory, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1"}


def measure(args, side: str, seeds: int, caches: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "r.json")
        cmd = [sys.executable, os.path.abspath(__file__), "--child", side, "--algo", args.algo, "--env", args.env,
               "--preset", args.preset, "--seeds-child", str(seeds), "--out", out,
               "--total-timesteps", str(args.total_timesteps)]
        load = os.getloadavg()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=args.timeout,
                              env=cache_env(args.cache, side, caches))
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
        with open(out) as f:
            r = json.load(f)
    r.update(load_average_before=list(load), load_average_after=list(os.getloadavg()))
    print(f"  {side:<9} {seeds} seed(s): wall {r['wall_seconds']:.0f} s, compile {r['compile_seconds']:.0f} s, "
          f"final {[round(x, 1) for x in r['final_returns']]}, load {load[0]:.1f}", flush=True)
    return r


def summarize(runs: list) -> list:
    rows = []
    for seeds in sorted({r["seeds"] for r in runs}):
        for side in ("purejaxpg", "brax"):
            mine = [r for r in runs if r["seeds"] == seeds and r["side"] == side]
            if not mine:
                continue
            med = lambda k: statistics.median(r[k] for r in mine)
            finals = [x for r in mine for x in r["final_returns"]]
            rows.append({"side": side, "seeds": seeds, "n": len(mine), "wall_seconds": med("wall_seconds"),
                         "compile_seconds": med("compile_seconds"),
                         "wall_excl_compile_seconds": statistics.median(r["wall_seconds"] - r["compile_seconds"]
                                                                        for r in mine),
                         "env_steps_per_second": med("env_steps_per_second"),
                         "final_return_mean": sum(finals) / len(finals), "final_return_iqm": iqm(finals),
                         "final_return_min": min(finals), "env_steps_per_seed": mine[0]["env_steps_per_seed"]})
    return rows


def print_table(result: dict) -> None:
    print(f"{result['algo']} on {result['env']} ({result['preset']} preset, compilation cache "
          f"{result.get('cache', 'off')}), "
          f"{result['rows'][0]['env_steps_per_seed']:,} env steps per seed; medians of {result['repeats']} repeat(s)")
    print(f"{'':<10} {'seeds':>5} {'wall s':>8} {'compile s':>10} {'excl. compile s':>16} {'env steps/s':>12} "
          f"{'final mean':>11} {'IQM':>7} {'min':>7}")
    for r in result["rows"]:
        print(f"{r['side']:<10} {r['seeds']:>5} {r['wall_seconds']:>8.0f} {r['compile_seconds']:>10.0f} "
              f"{r['wall_excl_compile_seconds']:>16.0f} {r['env_steps_per_second']:>12,.0f} "
              f"{r['final_return_mean']:>11.1f} {r['final_return_iqm']:>7.1f} {r['final_return_min']:>7.1f}")
    print(f"machine {result['machine']['cpu']} x {result['machine']['logical_cpus']}; commit {result['commit']}; "
          f"{result['started']} to {result['finished']}")
    print(f"uptime at start: {result['uptime_first']}")
    print(f"uptime at end:   {result['uptime_last']}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algo", choices=("ppo", "sac"), default="ppo")
    p.add_argument("--env", default="playground/CartpoleBalance",
                   help="a Playground task, playground/TASK (Brax's side takes Playground's published settings)")
    p.add_argument("--preset", choices=("cpu", "gpu"), default="cpu", help="purejaxpg's preset of the env")
    p.add_argument("--seeds", default="1,8", help="seed counts to measure (default 1,8)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--total-timesteps", type=int, default=0, help="env steps per seed (default: the preset's)")
    p.add_argument("--cache", choices=("off", "shared"), default="off",
                   help="off: every measurement compiles cold; shared: a persistent cache per side (see above)")
    p.add_argument("--timeout", type=float, default=4 * 3600, help="seconds per measurement")
    p.add_argument("--out", default=None, help="default benchmarks/results/physics_side_by_side-ALGO[-cache-shared].json")
    p.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    p.add_argument("--child", choices=("purejaxpg", "brax"), help=argparse.SUPPRESS)
    p.add_argument("--seeds-child", type=int, default=1, help=argparse.SUPPRESS)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if not args.env.startswith("playground/"):
        raise SystemExit(f"--env {args.env}: a Playground task is needed (playground/TASK): brax.training's side "
                         "takes its settings from Playground's published ones, which exist for those tasks only")
    if args.child:
        args.side, args.seeds = args.child, args.seeds_child
        with open(args.out, "w") as f:
            json.dump(child(args), f)
        return 0
    if args.smoke:  # one seed, one update after any warm-up (Brax rounds that up to one epoch)
        smoke(args, seeds="1", repeats=1,
              total_timesteps=smoke_steps(args.algo, {"env": args.env}, preset_name(args.env, args.preset)))
    from purejaxpg.envs.suites import SUITES

    if not SUITES["playground"].installed():
        raise SystemExit("needs the mujoco extra: pip install -e '.[mujoco]'")
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    load_first = os.getloadavg()
    uptime_first = uptime()
    print(f"started {started}; uptime: {uptime_first}", flush=True)
    runs = []
    with tempfile.TemporaryDirectory() as caches:
        for rep in range(args.repeats):
            for seeds in [int(x) for x in args.seeds.split(",")]:
                order = ("purejaxpg", "brax") if (rep + seeds) % 2 == 0 else ("brax", "purejaxpg")
                for side in order:
                    runs.append(measure(args, side, seeds, caches))
    from importlib import metadata

    result = {"algo": args.algo, "env": args.env, "preset": args.preset, "repeats": args.repeats, "cache": args.cache,
              "started": started, "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": machine(), "load_first": list(load_first), "uptime_first": uptime_first,
              "uptime_last": uptime(), "commit": git_commit(),
              "command": "python benchmarks/physics_side_by_side.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "versions": {m: metadata.version(m) for m in ("jax", "jaxlib", "brax", "mujoco", "mujoco-mjx",
                                                           "playground")},
              "rows": summarize(runs), "runs": runs}
    suffix = "" if args.cache == "off" else f"-cache-{args.cache}"
    out = out_path(args.out, os.path.join(HERE, "results", f"physics_side_by_side-{args.algo}{suffix}.json"), args)
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    print_table(result)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
