"""A property of the whole command line, tested on random input (hypothesis).

For random combinations of flags and values of every command (train, sweep, eval, compare,
list, lab, and --resume): either the command refuses, with exit code 2, exactly one line on
stderr and no traceback, or it accepts, and what it accepted validates. Nothing compiles or
trains: an accepted ``train``/``sweep`` stops where the runner would start on the first
program (``runner.run_group``; its ``run.json`` must read back and validate; the memory
check, which traces each program, is left to tests/test_cli.py's cases), ``eval``
where it would restore a checkpoint, ``compare`` after loading the runs, ``lab`` after
building its MDP, and a distributed run before connecting to the other processes.
"""
import json
import shutil
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from purejaxpg import cli
from purejaxpg.algos import algo_names, get_algo
from purejaxpg.engine import plan as plans
from purejaxpg.engine import runner

EXAMPLES = 200


class Accepted(Exception):
    """Raised where an accepted command would start real work."""


NUMBERS = ["0", "1", "2", "3", "-1", "-0", "1e3", "2.5", "1e-3", "nan", "inf", "-inf", "1e40", "x", "", "0x10",
           "true", "9" * 25]


def _values(setting):
    """Values for one setting: valid ones (its default, others inside its bounds) three times
    in four, edge cases and invalid text otherwise."""
    from purejaxpg.engine.spec import format_value

    kind = setting.kind
    if kind is bool:
        valid = st.sampled_from(["true", "false"])
        edge = st.sampled_from(["1", "0", "yes", "maybe", ""])
    elif kind is str:
        valid = st.sampled_from(list(setting.choices) or ["CartPole-v1", "Acrobot-v1", "Pendulum-v1"])
        edge = st.sampled_from(["nope", "", "CartPole-v0", "MNISTBandit-bsuite"])
    elif kind is tuple:
        valid = st.sampled_from(["16", "8,8", "16x16", "32"])
        edge = st.sampled_from(["0", "-4", "a", "", "4,", "64,64,64"])
    else:
        default = None if callable(setting.default) else setting.default
        near = [default, default * 2, default / 2] if isinstance(default, (int, float)) and default else [1]
        near = [int(v) if kind is int else float(v) for v in near]
        bounds = setting.bounds
        near = [v for v in near if bounds is None or v in bounds] or [default or 1]
        valid = st.sampled_from([format_value(v) if not isinstance(v, float) else repr(v) for v in near])
        edge = st.one_of(st.sampled_from(NUMBERS), st.integers(-10, 5000).map(str),
                         st.floats(-10, 10, allow_nan=False).map(repr))
    return st.one_of(valid, valid, valid, edge)


SMALL = st.one_of(st.sampled_from(["0", "1", "2", "-1", "x", "nan", "3.5", ""]), st.integers(-3, 40).map(str))
GOOD = st.sampled_from(["1", "2", "3"])
RUN_FLAGS = {"--num-seeds": st.one_of(GOOD, SMALL), "--seed": st.one_of(GOOD, SMALL),
             "--chunks": st.one_of(GOOD, SMALL),
             "--checkpoint-every": st.sampled_from(["0.5", "10", "0", "-1", "nan", "inf", "x"]),
             "--block": st.one_of(GOOD, SMALL), "--memory-limit-mb": st.sampled_from(["0", "100", "-5", "nan", "1e9"]),
             "--progress-every": st.one_of(GOOD, SMALL),
             "--preset": st.sampled_from(["auto", "none", "ppo/CartPole-v1", "sac/Pendulum-v1", "a2c/Nope", "x"])}
SWITCHES = ["--quiet", "--overwrite", "--no-checkpoint", "--stop-on-nan"]
DISTRIBUTED = {"--coordinator": st.sampled_from(["127.0.0.1:1234", "host", "h:0", ":1"]),
               "--num-processes": SMALL, "--process-id": SMALL}


@st.composite
def run_command(draw, command: str):
    algo = draw(st.one_of(st.sampled_from(algo_names()), st.sampled_from(algo_names() + ["dqn", "PPO", ""])))
    argv = [command, algo] if algo else [command]
    spec = get_algo(algo).spec if algo in algo_names() else get_algo("ppo").spec
    for s in draw(st.lists(st.sampled_from(spec.settings), max_size=4, unique_by=lambda s: s.name)):
        argv += [s.flag, draw(_values(s))]
    for flag in draw(st.lists(st.sampled_from(sorted(RUN_FLAGS)), max_size=3, unique=True)):
        argv += [flag, draw(RUN_FLAGS[flag])]
    argv += draw(st.lists(st.sampled_from(SWITCHES), max_size=2, unique=True))
    if command == "sweep":
        names = [s.name for s in spec.settings] + ["nope"]
        for _ in range(draw(st.integers(0, 2))):
            name = draw(st.sampled_from(names))
            argv += ["--grid", name + draw(st.sampled_from(["=1e-3,3e-3", "=16,32x32", "=", "", "=a,b", "=true,false",
                                                             "=1,2"]))]
        for _ in range(draw(st.integers(0, 1))):
            name = draw(st.sampled_from(names))
            argv += ["--range", name + draw(st.sampled_from(["=1e-5:1e-2:log", "=0:1", "=1:0", "=0:1:log", "=1:2:x",
                                                              "=1"]))]
        if draw(st.booleans()):
            argv += ["--samples", draw(SMALL)]
    if draw(st.integers(0, 9)) == 0:
        flag = draw(st.sampled_from(sorted(DISTRIBUTED)))
        argv += [flag, draw(DISTRIBUTED[flag])]
    if draw(st.integers(0, 19)) == 0:
        argv += [draw(st.sampled_from(["--no-such-flag", "--help", "--lr"]))]
    argv += ["--out", draw(st.sampled_from(["FRESH", "FRESH", "FRESH", "RUN"]))]
    return argv


@st.composite
def other_command(draw):
    kind = draw(st.sampled_from(["eval", "compare", "list", "lab", "resume"]))
    dirs = ["RUN", "FINISHED", "MISSING", "CORRUPT"]
    if kind == "eval":
        argv = ["eval", draw(st.sampled_from(dirs))]
        if draw(st.booleans()):
            argv += ["--episodes", draw(SMALL)]
        if draw(st.booleans()):
            argv += ["--greedy", draw(st.sampled_from(["true", "false", "x"]))]
        if draw(st.booleans()):
            argv += ["--gif", "G.gif", "--gif-run", draw(st.sampled_from(["0,0", "0,1", "5,0", "0", "a,b", "0,-1"]))]
        return argv
    if kind == "compare":
        argv = ["compare", *draw(st.lists(st.sampled_from(dirs), min_size=0, max_size=3))]
        if draw(st.booleans()):
            argv += ["--labels", draw(st.sampled_from(["a", "a,b", "a,b,c", ""]))]
        if draw(st.booleans()):
            argv += ["--reps", draw(SMALL)]
        return argv + ["--out", "FRESH"]
    if kind == "list":
        return ["list"] + draw(st.lists(st.sampled_from(algo_names() + ["nope"]), max_size=2))
    if kind == "lab":
        argv = ["lab"]
        for flag, values in (("--mdp", st.sampled_from(["random", "chain", "frozenlake", "nope"])),
                             ("--states", SMALL), ("--actions", SMALL), ("--k", SMALL),
                             ("--batch-sizes", st.sampled_from(["4,16", "0", "4,-1", "x", "8"])),
                             ("--lam", st.sampled_from(["0.95", "2", "-1", "nan"]))):
            if draw(st.booleans()):
                argv += [flag, draw(values)]
        return argv + ["--out", "FRESH"]
    argv = [draw(st.sampled_from(["train", "sweep"])), "--resume", draw(st.sampled_from(dirs))]
    return argv + draw(st.lists(st.sampled_from(["--quiet", "--stop-on-nan", "--lr", "--chunks"]), max_size=2))


COMMANDS = st.one_of(run_command("train"), run_command("sweep"), other_command())


@pytest.fixture(scope="module")
def directories(tmp_path_factory):
    """RUN: a run's directory as ``train`` leaves it before the first chunk (run.json);
    FINISHED: a finished run's outputs (config.json, metrics.npz, summary.json, run.json);
    CORRUPT: an unreadable run.json; MISSING: nothing."""
    root = tmp_path_factory.mktemp("cli-properties")
    p = plans.Plan("ppo", {"total_timesteps": 1024, "num_envs": 4, "num_steps": 16}, num_seeds=2)
    run = root / "RUN"
    p.write(str(run), plans.fingerprint(p, plans.groups(p)))
    finished = root / "FINISHED"
    shutil.copytree(run, finished)
    config = plans.groups(p)[0].config
    (finished / "config.json").write_text(json.dumps({"algo": "ppo", "config": {"env": config.env}}))
    np.savez(finished / "metrics.npz", final_return=np.array([10.0, 20.0]), env_steps=np.arange(1, 17) * 64,
             episode_return=np.ones((2, 16)))
    (root / "CORRUPT").mkdir()
    (root / "CORRUPT" / "run.json").write_text("{not json")
    return root


def _stop_before_work(monkeypatch):
    from purejaxpg.analysis import compare
    from purejaxpg.lab import estimators

    def accept(where):
        def stop(*args, **kwargs):
            raise Accepted(where)
        return stop

    # the memory check traces every program (about a second each): covered by tests/test_cli.py's BAD_INPUT
    monkeypatch.setattr(runner, "_check_memory", lambda *args: {"per_device_bytes": 0})
    monkeypatch.setattr(runner, "run_group", accept("run"))
    monkeypatch.setattr(runner, "restore", accept("restore"))
    monkeypatch.setattr(runner, "prepare", accept("prepare"))
    monkeypatch.setattr(compare, "compare", accept("compare"))
    monkeypatch.setattr(estimators, "exact_quantities", accept("lab"))
    from purejaxpg.engine import distributed

    def connect(*args):  # the settings are validated, then it would connect
        distributed.settings(*args)
        raise Accepted("connect")

    monkeypatch.setattr(distributed, "initialize", connect)


def test_every_command_refuses_in_one_line_or_accepts_what_validates(directories, tmp_path, monkeypatch, capsys):
    _stop_before_work(monkeypatch)
    counts = {"refused": 0, "accepted": 0, "printed": 0}
    fresh = iter(range(10**9))

    # derandomize: the same 200 examples every run. The mix asserted below (more than a tenth
    # refused and a tenth accepted) is a property of the draws: with a random seed a CI run
    # drew 16 accepted of 200 (2026-12-06) and failed without anything being wrong
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(COMMANDS)
    def check(argv):
        work = tmp_path / f"ex{next(fresh)}"
        work.mkdir()
        for name in ("RUN", "FINISHED", "CORRUPT"):
            shutil.copytree(directories / name, work / name)
        argv = [str(work / a) if a in ("RUN", "FINISHED", "CORRUPT", "MISSING", "G.gif") else
                str(work / f"out{i}") if a == "FRESH" else a for i, a in enumerate(argv)]
        capsys.readouterr()
        try:
            code = cli.main(argv)
        except Accepted as e:
            counts["accepted"] += 1
            out, err = capsys.readouterr()
            assert "Traceback" not in err, (argv, err)
            if str(e) == "run":  # the plan the runner was about to run reads back and validates
                flag = "--resume" if "--resume" in argv else "--out"
                out_dir = argv[argv.index(flag) + 1]
                p = plans.Plan.read(out_dir)
                assert plans.groups(p)
                fp = plans.stored_fingerprint(out_dir)
                assert fp["sha256"] == plans.fingerprint(p, plans.groups(p))["sha256"]
            return
        out, err = capsys.readouterr()
        if code == 2:
            counts["refused"] += 1
            assert err.count("\n") == 1 and err.endswith("\n"), (argv, err)
            assert err.startswith("purejaxpg: error: ") and "Traceback" not in err, (argv, err)
        else:
            counts["printed"] += 1  # list, --help
            assert code == 0 and err == "", (argv, code, err)
            assert argv[0] == "list" or "--help" in argv, argv

    t0 = time.perf_counter()
    check()
    elapsed = time.perf_counter() - t0
    print(f"\n{EXAMPLES} examples in {elapsed:.1f} s: {counts}")
    assert sum(counts.values()) >= EXAMPLES
    assert counts["refused"] > EXAMPLES // 10 and counts["accepted"] > EXAMPLES // 10, counts
    # the budget is 60 s (issue 17); a timing, not asserted on a shared machine: reported above
