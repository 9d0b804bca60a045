"""The ``purejaxpg`` command.

    purejaxpg train ALGO [--env ENV] [--num-seeds N] [--total-timesteps T] [--out DIR]
                         [--seed S] [--preset auto|none|ALGO/ENV] [--quiet] [--FIELD VALUE ...]
    purejaxpg sweep ALGO [--grid NAME=V1,V2,...]... [--range NAME=LO:HI[:log] ... --samples K] [--chunks K]
                         [--num-seeds N] [--out DIR] [--memory-limit-mb M] [--FIELD VALUE ...]
                         [--distributed | --coordinator HOST:PORT --num-processes N --process-id I]
    purejaxpg sweep --resume DIR         (also: purejaxpg train ALGO --chunks K ...; purejaxpg train --resume DIR)
    purejaxpg compare DIR... [--labels A,B,...] [--out DIR]
    purejaxpg eval DIR [--episodes N] [--greedy true|false] [--gif PATH [--gif-run C,S]]
    purejaxpg list
    purejaxpg lab [--mdp random|chain|frozenlake] [--states S] [--actions A] [--batch-sizes 4,16,64]
                  [--k K] [--seed S] [--lam L] [--out DIR]

``train`` writes DIR/{config.json, metrics.npz, summary.json, learning_curve.png}; ``list``
prints algorithms, environments and presets; ``lab`` measures policy-gradient estimators
against the exact gradient on a tabular MDP (``purejaxpg.lab``; writes DIR/lab.json, lab.png).

Every field of the algorithm's config and every hyperparameter can be set as
``--field-name VALUE`` (``--lr 3e-4 --num-envs 16 --hidden 64,64 --normalize-obs true``).
Bad input is reported in one line, before anything compiles.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys


def _bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _ints(text: str) -> tuple:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _int(text: str) -> int:
    v = float(text)  # accepts 1e6
    if v != int(v):
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
    return int(v)


def _parser_type(default):
    if isinstance(default, bool):
        return _bool
    if isinstance(default, int):
        return _int
    if isinstance(default, float):
        return float
    if isinstance(default, tuple):
        return _ints
    return str


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit code 2
        self.exit(2, f"purejaxpg: error: {message}\n")


def _train_parser(algo_name: str | None):
    p = _Parser(prog="purejaxpg train", description="Train ALGO on many seeds in one compiled program.")
    p.add_argument("algo", help="algorithm (see `purejaxpg list`)")
    p.add_argument("--num-seeds", type=_int, default=8, help="seeds trained together (default 8)")
    p.add_argument("--seed", type=_int, default=0, help="master PRNG seed (default 0)")
    p.add_argument("--out", default=None, help="output directory (default runs/ALGO-ENV)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--preset", default="auto",
                   help="tuned settings: auto (the env's preset, if any), none, or ALGO/ENV (default auto)")
    if algo_name is None:
        return p, {}
    from purejaxpg.algos import get_algo

    algo = get_algo(algo_name)
    config = algo.Config()
    settable = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    settable.update(algo.default_hparams(config))
    group = p.add_argument_group(f"{algo_name} config and hyperparameters")
    for name, default in settable.items():
        group.add_argument("--" + name.replace("_", "-"), dest=name, type=_parser_type(default),
                           default=None, help=f"(default {default})")
    return p, settable


def cmd_list() -> None:
    from purejaxpg.algos import algo_names
    from purejaxpg.envs import env_names

    print("algorithms:   " + ", ".join(algo_names()))
    print("environments: " + ", ".join(env_names()))
    from purejaxpg.algos.presets import preset_names

    print("presets:      " + (", ".join(preset_names()) or "(none)"))


def cmd_train(argv) -> int:
    head = argv[0] if argv and not argv[0].startswith("-") else None
    if head is not None:
        from purejaxpg.algos import algo_names

        if head not in algo_names():
            raise ValueError(f"unknown algorithm {head!r}; valid names: {', '.join(algo_names())}")
    parser, settable = _train_parser(head)
    args = parser.parse_args(argv)
    overrides = {k: getattr(args, k) for k in settable if getattr(args, k) is not None}
    from purejaxpg.engine.experiment import build, run

    _, config, _ = build(args.algo, overrides, args.preset)  # fail fast on bad values
    out = args.out or f"runs/{args.algo}-{config.env}"
    result = run(args.algo, overrides, num_seeds=args.num_seeds, seed=args.seed, out_dir=out,
                 quiet=args.quiet, preset=args.preset)
    s = result["summary"]
    fr = s["final_return"]
    print(json.dumps({"out": out, "final_return_iqm": fr["iqm"], "final_return_mean": fr["mean"],
                      "ci95": fr["ci95"], "compile_seconds": round(s["compile_seconds"], 2),
                      "run_seconds": round(s["run_seconds"], 2),
                      "env_steps_per_second": round(s["env_steps_per_second"])}))
    return 0


def cmd_lab(argv) -> int:
    """``purejaxpg lab``: policy-gradient estimators against the exact gradient (purejaxpg.lab)."""
    p = _Parser(prog="purejaxpg lab",
                description="Bias, variance and cosine of policy-gradient estimators on a tabular MDP, "
                            "against the exact gradient; writes OUT/lab.json and OUT/lab.png.")
    p.add_argument("--mdp", default="random", help="random | chain | frozenlake (default random)")
    p.add_argument("--states", type=_int, default=None,
                   help="random: number of states, the last terminal (default 6); chain: length + 1 (default 7)")
    p.add_argument("--actions", type=_int, default=None, help="random: number of actions (default 3)")
    p.add_argument("--batch-sizes", type=_ints, default=(4, 16, 64), help="episodes per batch (default 4,16,64)")
    p.add_argument("--k", type=_int, default=200, help="batches per batch size (default 200)")
    p.add_argument("--seed", type=_int, default=0, help="MDP, policy and sampling seed (default 0)")
    p.add_argument("--lam", type=float, default=0.95, help="GAE lambda (default 0.95)")
    p.add_argument("--out", default=None, help="output directory (default runs/lab-MDP)")
    args = p.parse_args(argv)
    from purejaxpg.lab import MDPS, format_table, run_lab, write_outputs

    if args.mdp not in MDPS:
        raise ValueError(f"unknown MDP {args.mdp!r}; valid: {', '.join(MDPS)}")
    result = run_lab(args.mdp, args.states, args.actions, args.batch_sizes, args.k, args.seed, args.lam)
    out = args.out or f"runs/lab-{args.mdp}"
    write_outputs(result, out)
    print(format_table(result))
    print(f"wrote {out}/lab.json and {out}/lab.png")
    return 0


# ---- sweeps, chunked runs, comparison, evaluation (purejaxpg.engine.sweep / .compare) ----------

def cmd_sweep(argv, single: bool = False) -> int:
    """``purejaxpg sweep``: configurations x seeds in one program per shape (purejaxpg.engine.sweep).
    Also ``purejaxpg train ... --chunks K`` and ``purejaxpg train --resume DIR`` (single=True)."""
    name = "train" if single else "sweep"
    if "--resume" in argv or any(a.startswith("--resume=") for a in argv):
        p = _Parser(prog=f"purejaxpg {name}", description="Continue a chunked run from its last checkpoint.")
        p.add_argument("--resume", required=True, metavar="DIR")
        p.add_argument("--quiet", action="store_true")
        _distributed().add_arguments(p)
        args = p.parse_args(argv)
        _maybe_initialize(args)
        return _report_sweep(_sweep_module().resume(args.resume, quiet=args.quiet), args.resume)
    head = argv[0] if argv and not argv[0].startswith("-") else None
    if head is not None:
        from purejaxpg.algos import algo_names

        if head not in algo_names():
            raise ValueError(f"unknown algorithm {head!r}; valid names: {', '.join(algo_names())}")
    parser, settable = _train_parser(head)
    parser.prog = f"purejaxpg {name}"
    parser.description = ("Train ALGO in checkpointed chunks." if single else
                          "Sweep ALGO's settings: every configuration x seed in one compiled program per shape.")
    if not single:
        parser.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2,...",
                            help="values of a setting (repeatable; the product is swept); widths as 64x64")
        parser.add_argument("--range", action="append", default=[], dest="ranges", metavar="NAME=LO:HI[:log]",
                            help="random search range (repeatable; with --samples)")
        parser.add_argument("--samples", type=_int, default=0, help="random configurations drawn from the ranges")
    parser.add_argument("--chunks", type=_int, default=1,
                        help="split the training scan into this many checkpointed chunks (default 1)")
    parser.add_argument("--block", type=_int, default=0, metavar="K",
                        help="vmap K runs at a time on each device (a scan over blocks): results then do not "
                             "depend on the device count, bit for bit (default 0: all of a device's runs at once)")
    if "memory_limit_mb" not in settable:  # SAC's config has it (its buffers): one flag for both checks
        parser.add_argument("--memory-limit-mb", type=float, default=0.0,
                            help="refuse programs estimated above this per device (default: half the free memory)")
    _distributed().add_arguments(parser)
    args = parser.parse_args(argv)
    _maybe_initialize(args)
    sw = _sweep_module()
    overrides = {k: getattr(args, k) for k in settable if getattr(args, k) is not None}
    grid = {} if single else sw.parse_grid(args.grid, args.algo)
    ranges = {} if single else sw.parse_ranges(args.ranges, args.algo)
    env = overrides.get("env", "env")
    out = args.out or f"runs/{'' if single else 'sweep-'}{args.algo}-{env}"
    result = sw.sweep(args.algo, out, base=overrides, grid=grid, ranges=ranges,
                      samples=0 if single else args.samples, num_seeds=args.num_seeds, seed=args.seed,
                      chunks=args.chunks, preset=args.preset, memory_limit_mb=args.memory_limit_mb or 0.0,
                      single=single, quiet=args.quiet, block=args.block)
    return _report_sweep(result, out)


def _distributed():
    from purejaxpg.engine import distributed

    return distributed


def _maybe_initialize(args) -> None:
    """``--distributed`` / ``--coordinator ...``: join the other processes (purejaxpg.engine.distributed)."""
    d = _distributed()
    if d.wanted(args):
        d.initialize(args.coordinator, args.num_processes, args.process_id)


def _sweep_module():
    from purejaxpg.engine import sweep

    return sweep


def _report_sweep(result, out) -> int:
    import jax

    if jax.process_index() != 0:  # a multi-process run: process 0 reports
        return 0
    if result["stopped"]:
        print(f"stopped; continue with --resume {out}")
        return 0
    info = result["info"]
    if len(info["table"]) > 1:
        print(_sweep_module().format_table(info["table"]))
    row = info["table"][0]
    print(json.dumps({"out": out, "configurations": info["num_configurations"], "programs": info["programs"],
                      "devices": info["devices"], "best": row["name"], "best_iqm": row["iqm"],
                      "best_iqm_ci95": row["iqm_ci95"], "compile_seconds": round(info["compile_seconds"], 2),
                      "run_seconds": round(info["run_seconds"], 2),
                      "env_steps_per_second": row["env_steps_per_second"] and round(row["env_steps_per_second"])}))
    return 0


def cmd_compare(argv) -> int:
    p = _Parser(prog="purejaxpg compare",
                description="IQM and mean with stratified bootstrap CIs, probability of improvement, performance "
                            "profiles and learning curves of finished runs (rliable's definitions).")
    p.add_argument("dirs", nargs="+", help="run directories, or sweep directories (all their configurations)")
    p.add_argument("--labels", default=None, help="comma-separated method label per DIR (default: directory names)")
    p.add_argument("--reps", type=_int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--seed", type=_int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--out", default="runs/compare", help="where compare.json and the plots go (default runs/compare)")
    args = p.parse_args(argv)
    from purejaxpg.analysis.compare import format_report, run

    labels = args.labels.split(",") if args.labels else None
    result = run(args.dirs, labels, args.out, args.reps, args.seed)
    print(format_report(result))
    print(f"wrote {args.out}/compare.json, performance_profiles.png, learning_curves.png")
    return 0


def cmd_eval(argv) -> int:
    p = _Parser(prog="purejaxpg eval", description="Load a chunked run's last checkpoint and run evaluation episodes.")
    p.add_argument("dir", help="a directory made by `purejaxpg sweep` or `purejaxpg train --chunks K`")
    p.add_argument("--episodes", type=_int, default=None, help="episodes per seed (default: the run's num_eval_episodes)")
    p.add_argument("--greedy", type=_bool, default=None, help="evaluate the policy's mode (on-policy algorithms)")
    p.add_argument("--gif", default=None, metavar="PATH",
                   help="also write one episode as a GIF (classic-control envs: CartPole-v1, Pendulum-v1, "
                        "Acrobot-v1, MountainCar-v0, MountainCarContinuous-v0)")
    p.add_argument("--gif-run", type=_ints, default=(0, 0), metavar="CONFIG_INDEX,SEED",
                   help="whose policy the GIF shows: configuration index and seed (default 0,0)")
    args = p.parse_args(argv)
    from purejaxpg.analysis.evaluate import evaluate_dir

    if args.gif:  # fail before compiling anything
        from purejaxpg.analysis.render import check_run

        check_run(args.dir, args.gif_run)
    for row in evaluate_dir(args.dir, args.episodes, args.greedy):
        per = ", ".join(f"{v:.1f}" for v in row["per_seed"])
        print(f"{row['name']}: mean {row['mean']:.2f}  iqm {row['iqm']:.2f}  ({row['episodes']} episodes x "
              f"{len(row['per_seed'])} seeds, after {row['updates']} updates)  per seed: {per}")
    if args.gif:
        from purejaxpg.analysis.render import render_run

        r = render_run(args.dir, args.gif, args.gif_run, args.greedy)
        ret = "n/a" if r["return"] is None else f"{r['return']:.1f}"
        print(f"wrote {r['path']}: {r['env']}, {r['name']} seed {r['seed']}, {r['frames']} frames "
              f"(episode return {ret})")
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = "usage: purejaxpg {train,sweep,compare,eval,lab,list} ...  (purejaxpg COMMAND --help)"
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip() if argv else usage)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    try:
        if cmd == "list":
            cmd_list()
            return 0
        chunked = ("--chunks", "--resume", "--distributed", "--coordinator", "--num-processes", "--process-id")
        if cmd == "sweep" or (cmd == "train" and any(a.split("=")[0] in chunked for a in rest)):
            return cmd_sweep(rest, single=cmd == "train")
        if cmd == "train":
            return cmd_train(rest)
        if cmd == "lab":
            return cmd_lab(rest)
        if cmd == "compare":
            return cmd_compare(rest)
        if cmd == "eval":
            return cmd_eval(rest)
    except ValueError as e:
        print(f"purejaxpg: error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # argparse: --help (0) or a usage error (2, one line already printed)
        return e.code if isinstance(e.code, int) else 2
    print(f"purejaxpg: error: unknown command {cmd!r}; {usage}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
