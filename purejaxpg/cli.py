"""The ``purejaxpg`` command.

    purejaxpg train ALGO [--env ENV] [--num-seeds N] [--total-timesteps T] [--out DIR]
                         [--seed S] [--preset auto|none|ALGO/ENV] [--quiet] [--FIELD VALUE ...]
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
    from .algos import get_algo

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
    from .algos import algo_names
    from .envs import env_names

    print("algorithms:   " + ", ".join(algo_names()))
    print("environments: " + ", ".join(env_names()))
    from .presets import preset_names

    print("presets:      " + (", ".join(preset_names()) or "(none)"))


def cmd_train(argv) -> int:
    head = argv[0] if argv and not argv[0].startswith("-") else None
    if head is not None:
        from .algos import algo_names

        if head not in algo_names():
            raise ValueError(f"unknown algorithm {head!r}; valid names: {', '.join(algo_names())}")
    parser, settable = _train_parser(head)
    args = parser.parse_args(argv)
    overrides = {k: getattr(args, k) for k in settable if getattr(args, k) is not None}
    from .experiment import build, run

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
    from .lab import MDPS, format_table, run_lab, write_outputs

    if args.mdp not in MDPS:
        raise ValueError(f"unknown MDP {args.mdp!r}; valid: {', '.join(MDPS)}")
    result = run_lab(args.mdp, args.states, args.actions, args.batch_sizes, args.k, args.seed, args.lam)
    out = args.out or f"runs/lab-{args.mdp}"
    write_outputs(result, out)
    print(format_table(result))
    print(f"wrote {out}/lab.json and {out}/lab.png")
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = "usage: purejaxpg {train,list,lab} ...  (purejaxpg train --help, purejaxpg lab --help)"
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip() if argv else usage)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    try:
        if cmd == "list":
            cmd_list()
            return 0
        if cmd == "train":
            return cmd_train(rest)
        if cmd == "lab":
            return cmd_lab(rest)
    except ValueError as e:
        print(f"purejaxpg: error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # argparse: --help (0) or a usage error (2, one line already printed)
        return e.code if isinstance(e.code, int) else 2
    print(f"purejaxpg: error: unknown command {cmd!r}; {usage}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
