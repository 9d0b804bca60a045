"""The ``purejaxpg`` command.

    purejaxpg train ALGO [--SETTING VALUE ...] [--num-seeds N] [--out DIR] [--overwrite] [--chunks K] [...]
    purejaxpg train --resume DIR
    purejaxpg sweep ALGO [--grid NAME=V1,V2,...]... [--range NAME=LO:HI[:log|lin] ... --samples K] [...]
    purejaxpg sweep --resume DIR
    purejaxpg sweep ALGO --grid ... --halving eta=3[,rungs=R]
    purejaxpg pbt ALGO --population P --range NAME=LO:HI[:log|lin] ... [--ready-every U]
                  [--exploit truncation:Q] [--explore perturb:F1,F2|resample:P|none] [...]
    purejaxpg pbt --resume DIR
    purejaxpg eval DIR [--episodes N] [--greedy true|false] [--gif PATH [--gif-run C,S]]
    purejaxpg compare DIR... [--labels A,B,...] [--out DIR]
    purejaxpg list [ALGO]
    purejaxpg lab [--mdp random|chain|frozenlake] [--batch-sizes 4,16,64] [--k K] [--out DIR]

Every setting of an algorithm is a flag (``purejaxpg list ALGO`` lists them with their
kind, range and default; ``purejaxpg train ALGO --help`` too). ``train`` and ``sweep`` go
through the one runner (purejaxpg.engine.runner): seeds x configurations in one program per
static config, sharded over devices, in checkpointed chunks, with a progress bar. Bad input
is one line on stderr and exit code 2, before anything compiles; so is an --out that holds
another run (--resume continues it, --overwrite replaces it).

Exit codes: 0 done; 1 a run stopped by --stop-on-nan, or a file that could not be written;
2 bad input; 130 / 143 stopped by SIGINT / SIGTERM after saving a checkpoint (a second
signal ends the process at once).
"""
from __future__ import annotations

import argparse
import os
import sys

from purejaxpg import report
from purejaxpg.engine.spec import convert

COMMANDS = ("train", "sweep", "pbt", "eval", "compare", "list", "lab")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit code 2
        self.exit(2, f"purejaxpg: error: {message}\n")


def _typed(kind, name):
    def parse(text):
        try:
            return convert(name, kind, text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return parse


def _algo(argv):
    head = argv[0] if argv and not argv[0].startswith("-") else None
    if head is None:
        return None
    from purejaxpg.algos import get_algo

    return get_algo(head)


def _run_parser(command: str, algo):
    p = _Parser(prog=f"purejaxpg {command}", description=(
        "Train ALGO on many seeds in one compiled program." if command == "train" else
        "Population-based training of ALGO: every member in one compiled program; exploit and explore happen "
        "inside it every --ready-every updates (docs/pbt-and-halving.md)." if command == "pbt" else
        "Sweep ALGO's settings: every configuration x seed in one compiled program per static config."))
    if algo is None:
        p.epilog = (f"The settings of an algorithm: purejaxpg {command} ALGO --help. Continue a stopped run: "
                    f"purejaxpg {command} --resume DIR.")
    p.add_argument("algo", help="algorithm (see `purejaxpg list`)")
    run = p.add_argument_group("the run")
    if command != "pbt":
        run.add_argument("--num-seeds", type=_typed(int, "num_seeds"), default=8,
                         help="seeds per configuration (default 8)")
    run.add_argument("--seed", type=_typed(int, "seed"), default=0, help="master PRNG seed (default 0)")
    run.add_argument("--out", default=None, help=f"output directory (default runs/{'' if command == 'train' else command + '-'}"
                     "ALGO-ENV)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--json", action="store_true", help="end with one JSON line (for scripts) instead of a summary")
    run.add_argument("--preset", default="auto", help="tuned settings: auto (the env's preset, if any), none, or "
                     "ALGO/ENV (default auto)")
    run.add_argument("--overwrite", action="store_true",
                     help="--out holds another run: remove its files first (default: refuse)")
    run.add_argument("--chunks", type=_typed(int, "chunks"), default=None, metavar="K",
                     help="K equal chunks with a checkpoint after each (default: chunks of about a minute, sized "
                          "from the measured time, and a checkpoint every --checkpoint-every minutes)")
    run.add_argument("--checkpoint-every", type=_typed(float, "checkpoint_every"), default=None, metavar="MINUTES",
                     help="minutes of run time between checkpoints, and one at the end (default 10)")
    run.add_argument("--no-checkpoint", action="store_true",
                     help="keep no checkpoint: the run cannot be resumed or evaluated by `purejaxpg eval`")
    run.add_argument("--stop-on-nan", action="store_true",
                     help="stop at the next chunk boundary once a run's loss, parameters or optimiser state are "
                          "non-finite (it is reported either way)")
    run.add_argument("--block", type=_typed(int, "block"), default=0, metavar="K",
                     help="vmap K runs at a time on each device: results then do not depend on the device count, "
                          "bit for bit (default 0: all of a device's runs at once)")
    run.add_argument("--memory-limit-mb", type=_typed(float, "memory_limit_mb"), default=0.0,
                     help="refuse programs estimated above this per device (default: half the free memory)")
    run.add_argument("--progress-every", type=_typed(int, "progress_every"), default=0,
                     help="updates between progress reports (default: about 20 per run)")
    run.add_argument("--host-devices", type=_typed(int, "host_devices"), default=None, metavar="N",
                     help="on a CPU, split it into N XLA devices and shard the runs over them (default: one per "
                          "core; 1: one device)")
    run.add_argument("--compile-cache", default=None, metavar="DIR|off",
                     help="JAX's persistent compilation cache: a second identical run skips XLA's compile (default: "
                          "$PUREJAXPG_COMPILE_CACHE, else ~/.cache/purejaxpg/jax; off: none)")
    run.add_argument("--log", action="append", default=[], metavar="BACKEND",
                     help="stream metrics to tensorboard, wandb, mlflow or csv (repeatable; optional extra: "
                          "pip install -e '.[track]')")
    if command == "sweep":
        run.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2,...",
                         help="values of a setting (repeatable; the product is swept); widths as 64x64")
        run.add_argument("--range", action="append", default=[], dest="ranges", metavar="NAME=LO:HI[:log|lin]",
                         help="random search range (repeatable; with --samples)")
        run.add_argument("--samples", type=_typed(int, "samples"), default=0,
                         help="random configurations drawn from the ranges")
        run.add_argument("--halving", default=None, metavar="eta=E[,rungs=R]",
                         help="successive halving: after each rung keep the best 1/E of the configurations and "
                              "run them again with E times the env steps; the last rung runs --total-timesteps "
                              "(default: no halving; R default: as many rungs as leave one configuration)")
    if command == "pbt":
        from purejaxpg.engine.population import EXPLOIT_HELP, EXPLORE_HELP

        run.add_argument("--population", type=_typed(int, "population"), default=8,
                         help="members, each its own seed and hyperparameters (default 8)")
        run.add_argument("--range", action="append", default=[], dest="ranges", metavar="NAME=LO:HI[:log|lin]",
                         help="a traced hyperparameter to draw and explore within LO..HI (repeatable)")
        run.add_argument("--ready-every", type=_typed(int, "ready_every"), default=0, metavar="U",
                         help="updates between exploit/explore steps (default 0: about 20 per run)")
        run.add_argument("--exploit", default="truncation:0.25", help=EXPLOIT_HELP + " (default truncation:0.25)")
        run.add_argument("--explore", default="perturb:0.8,1.2", help=EXPLORE_HELP + " (default perturb:0.8,1.2)")
    _distributed().add_arguments(run)
    if algo is not None:
        group = p.add_argument_group(f"{algo.name} settings (purejaxpg list {algo.name})")
        for s in algo.spec.settings:
            group.add_argument(s.flag, dest=s.name, default=None, metavar="VALUE", help=s.describe())
    return p


def _resume_parser(command: str):
    p = _Parser(prog=f"purejaxpg {command}", description="Continue a run from its newest readable checkpoint.")
    p.add_argument("--resume", required=True, metavar="DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="end with one JSON line (for scripts) instead of a summary")
    p.add_argument("--stop-on-nan", action="store_true",
                   help="stop at the next chunk boundary once a run has diverged")
    p.add_argument("--compile-cache", default=None, metavar="DIR|off", help="as for a new run")
    _distributed().add_arguments(p)
    return p


def _distributed():
    from purejaxpg.engine import distributed

    return distributed


def cmd_run(command: str, argv) -> int:
    """``train`` and ``sweep``: build the plan, run it (purejaxpg.engine.runner), report."""
    if any(a.split("=")[0] == "--resume" for a in argv):
        args = _resume_parser(command).parse_args(argv)
        _maybe_initialize(args)
        from purejaxpg.engine import runner

        try:
            result = runner.resume(args.resume, quiet=args.quiet, stop_on_nan=args.stop_on_nan)
        except runner.Finished as e:
            print(f"purejaxpg: {e}")
            return 0
        return report.finished(result, args.resume, args.json)
    if not argv or argv[0].startswith("-") and not {"-h", "--help"} & set(argv):
        raise ValueError(f"give the algorithm first: purejaxpg {command} ALGO [options] (`purejaxpg list`: the "
                         f"algorithms), or purejaxpg {command} --resume DIR")
    algo = _algo(argv)
    args = _run_parser(command, algo).parse_args(argv)
    name = argv[0]  # as given: a registered name or module:attribute (algo.name is its display name)
    _maybe_initialize(args)
    from purejaxpg.engine import plan as plans
    from purejaxpg.engine import runner, search

    overrides = {s.name: getattr(args, s.name) for s in algo.spec.settings if getattr(args, s.name) is not None}
    env = algo.resolve(overrides, args.preset)[0].env  # bad values fail here, before anything is built
    options = dict(seed=args.seed, chunks=args.chunks, checkpoint_every=_checkpoint_every(args), block=args.block,
                   preset=args.preset, memory_limit_mb=args.memory_limit_mb, progress_every=args.progress_every,
                   log=tuple(args.log))
    run = dict(quiet=args.quiet, overwrite=args.overwrite, stop_on_nan=args.stop_on_nan)
    if command == "train":
        out = args.out or f"runs/{algo.name}-{env}"
        result = runner.train(name, overrides, args.num_seeds, out, **run, **options)
    elif command == "pbt":
        out = args.out or f"runs/pbt-{algo.name}-{env}"
        ranges = plans.parse_ranges(args.ranges, name)
        result = search.pbt(name, out, overrides, args.population, ranges, args.ready_every, args.exploit,
                            args.explore, **run, **options)
    elif args.halving:
        out = args.out or f"runs/sweep-{algo.name}-{env}"
        grid = plans.parse_grid(args.grid, name)
        ranges = plans.parse_ranges(args.ranges, name)
        eta, rungs = plans.parse_halving(args.halving)
        result = search.halving(name, out, overrides, grid, ranges, args.samples, args.num_seeds, eta, rungs,
                                **run, **options)
        return report.halving(result, out, args.json)
    else:
        out = args.out or f"runs/sweep-{algo.name}-{env}"
        grid = plans.parse_grid(args.grid, name)
        ranges = plans.parse_ranges(args.ranges, name)
        result = runner.sweep(name, out, overrides, grid, ranges, args.samples, args.num_seeds, **run, **options)
    return report.finished(result, out, args.json)


def _checkpoint_every(args) -> float:
    """--checkpoint-every / --no-checkpoint as the plan's minutes (0: none)."""
    if args.no_checkpoint and args.checkpoint_every is not None:
        raise ValueError("--checkpoint-every and --no-checkpoint contradict each other; give one")
    if args.checkpoint_every is not None and args.chunks is not None:
        raise ValueError("--checkpoint-every applies without --chunks (--chunks K saves after each of K chunks); "
                         "give one")
    if args.checkpoint_every is not None and not args.checkpoint_every > 0:
        raise ValueError(f"--checkpoint-every must be a positive number of minutes (--no-checkpoint for none), "
                         f"got {args.checkpoint_every}")
    return 0.0 if args.no_checkpoint else 10.0 if args.checkpoint_every is None else args.checkpoint_every


def _maybe_initialize(args) -> None:
    """``--distributed`` / ``--coordinator ...``: join the other processes (engine.distributed)."""
    d = _distributed()
    if d.wanted(args):
        d.initialize(args.coordinator, args.num_processes, args.process_id)


def cmd_list(argv) -> int:
    p = _Parser(prog="purejaxpg list", description="The algorithms, environments, suites and presets; with ALGO, "
                "its settings (kind, range, default).")
    p.add_argument("algo", nargs="?", help="an algorithm: list its settings")
    args = p.parse_args(argv)
    if args.algo:
        from purejaxpg.algos import get_algo

        algo = get_algo(args.algo)
        print(f"{algo.name}: {algo.summary}")
        width = max(len(s.name) for s in algo.spec.settings)
        for s in algo.spec.settings:
            print(f"  {s.name:<{width}}  {s.describe()}")
        return 0
    from purejaxpg.algos import algo_names, get_algo
    from purejaxpg.envs import env_names

    print("algorithms:   " + ", ".join(algo_names()))
    print("environments: " + ", ".join(env_names()))
    from purejaxpg.envs.suites import describe  # imports no suite: says whether each is installed

    print("suites:       " + "\n              ".join(describe()))
    presets = [f"{n}/{e}" for n in algo_names() for e in get_algo(n).presets]
    print("presets:      " + (", ".join(presets) or "(none)"))
    return 0


def cmd_lab(argv) -> int:
    """``purejaxpg lab``: policy-gradient estimators against the exact gradient (purejaxpg.lab)."""
    p = _Parser(prog="purejaxpg lab",
                description="Bias, variance and cosine of policy-gradient estimators on a tabular MDP, "
                            "against the exact gradient; writes OUT/lab.json and OUT/lab.png.")
    p.add_argument("--mdp", default="random", help="random | chain | frozenlake (default random)")
    p.add_argument("--states", type=_typed(int, "states"), default=None,
                   help="random: number of states, the last terminal (default 6); chain: length + 1 (default 7)")
    p.add_argument("--actions", type=_typed(int, "actions"), default=None, help="random: number of actions (default 3)")
    p.add_argument("--batch-sizes", type=_typed(tuple, "batch_sizes"), default=(4, 16, 64),
                   help="episodes per batch (default 4,16,64)")
    p.add_argument("--k", type=_typed(int, "k"), default=200, help="batches per batch size (default 200; the off-policy section takes 4 k)")
    p.add_argument("--seed", type=_typed(int, "seed"), default=0, help="MDP, policy and sampling seed (default 0)")
    p.add_argument("--lam", type=_typed(float, "lam"), default=0.95, help="GAE lambda (default 0.95)")
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


def cmd_compare(argv) -> int:
    p = _Parser(prog="purejaxpg compare",
                description="IQM and mean with stratified bootstrap CIs, probability of improvement, performance "
                            "profiles and learning curves of finished runs (rliable's definitions).")
    p.add_argument("dirs", nargs="+", help="run directories, or sweep directories (all their configurations)")
    p.add_argument("--labels", default=None, help="comma-separated method label per DIR (default: directory names)")
    p.add_argument("--reps", type=_typed(int, "reps"), default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--seed", type=_typed(int, "seed"), default=0, help="bootstrap seed (default 0)")
    p.add_argument("--out", default="runs/compare", help="where compare.json and the plots go (default runs/compare)")
    args = p.parse_args(argv)
    from purejaxpg.analysis.compare import format_report, run

    result = run(args.dirs, args.labels.split(",") if args.labels else None, args.out, args.reps, args.seed)
    print(format_report(result))
    print(f"wrote {args.out}/compare.json, performance_profiles.png, learning_curves.png")
    return 0


def cmd_eval(argv) -> int:
    p = _Parser(prog="purejaxpg eval", description="Load a run's last checkpoint and play evaluation episodes.")
    p.add_argument("dir", help="a directory made by `purejaxpg train` or `purejaxpg sweep`")
    p.add_argument("--episodes", type=_typed(int, "episodes"), default=None,
                   help="episodes per seed (default: the run's num_eval_episodes)")
    p.add_argument("--greedy", type=_typed(bool, "greedy"), default=None,
                   help="evaluate the policy's mode (true) or sample it (false); default: as the run did")
    p.add_argument("--gif", default=None, metavar="PATH",
                   help="also write one episode as a GIF (classic-control envs: CartPole-v1, Pendulum-v1, "
                        "Acrobot-v1, MountainCar-v0, MountainCarContinuous-v0)")
    p.add_argument("--gif-run", type=_typed(tuple, "gif_run"), default=(0, 0), metavar="CONFIG_INDEX,SEED",
                   help="whose policy the GIF shows: configuration index and seed (default 0,0)")
    args = p.parse_args(argv)
    from purejaxpg.analysis.evaluate import evaluate_dir

    if args.gif:  # fail before compiling anything
        from purejaxpg.analysis.render import check_run

        if not args.gif.lower().endswith(".gif"):
            raise ValueError(f"--gif writes a GIF: give a path ending in .gif, got {args.gif!r}")
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


def _compile_cache(argv):
    """The value of ``--compile-cache`` in ``argv`` (read before argparse, like
    ``--host-devices``: it must act before the first compile), or None."""
    for i, a in enumerate(argv):
        if a.split("=")[0] == "--compile-cache":
            value = a.split("=", 1)[1] if "=" in a else (argv[i + 1] if i + 1 < len(argv) else "")
            if not value.strip() or value.startswith("--"):
                raise ValueError("--compile-cache needs a directory or off")
            return value
    return None


def _host_devices(argv):
    """The value of ``--host-devices`` in ``argv`` (read before argparse: it must act before
    JAX's backend starts), or None."""
    for i, a in enumerate(argv):
        if a.split("=")[0] == "--host-devices":
            value = a.split("=", 1)[1] if "=" in a else (argv[i + 1] if i + 1 < len(argv) else "")
            n = convert("host_devices", int, value)
            if n < 1:
                raise ValueError(f"--host-devices must be at least 1, got {value!r}")
            return n
    return None


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = f"usage: purejaxpg {{{','.join(COMMANDS)}}} ...  (purejaxpg COMMAND --help)"
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip() if argv else usage)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    from purejaxpg.engine import cache, host

    try:  # before anything starts JAX's backend: the jaxlib 0.10 CPU settings, one device per core
        host.configure(_host_devices(rest))
        cache.configure(_compile_cache(rest))  # before the first compile
    except ValueError as e:
        print(f"purejaxpg: error: {e}", file=sys.stderr)
        return 2
    if cmd not in COMMANDS:
        print(f"purejaxpg: error: unknown command {cmd!r}; {usage}", file=sys.stderr)
        return 2
    try:
        if cmd in ("train", "sweep", "pbt"):
            return cmd_run(cmd, rest)
        return {"eval": cmd_eval, "compare": cmd_compare, "list": cmd_list, "lab": cmd_lab}[cmd](rest)
    except ValueError as e:
        print(f"purejaxpg: error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # argparse: --help (0) or a usage error (2, one line already printed)
        return e.code if isinstance(e.code, int) else 2
    except KeyboardInterrupt as e:  # a signal in a run without checkpoints, or outside a run
        from purejaxpg.engine.control import SIGNAL_NAMES, worker_busy

        signum = getattr(e, "signum", 2)
        print(f"purejaxpg: stopped by {SIGNAL_NAMES.get(signum, 'SIGINT')}; nothing was saved", file=sys.stderr)
        if worker_busy():
            # XLA is still running the interrupted chunk in the runner's worker thread: the
            # interpreter cannot shut down around it, so the process ends here
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(128 + signum)
        return 128 + signum
    except BrokenPipeError:  # `purejaxpg list | head`: the reader has gone; nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # and nothing at exit
        return 141
    except OSError as e:  # a full disk, a read-only directory, ...: the checkpoint before is intact
        print(f"purejaxpg: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
