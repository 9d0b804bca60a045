"""docs/physics.md: every shell command on the page is one this test knows and checks.
``purejaxpg list`` runs; ``purejaxpg train`` lines are parsed by the CLI's own parser and
their settings (env name with its options, preset) resolved and validated, without
training; the benchmark and acceptance scripts' lines are parsed by their own parsers;
``pip install -e '.[mujoco]'`` names an extra pyproject.toml declares; ``pytest FILE`` names a
test file that exists. A command of any other shape fails the test, so the page cannot gain
an unchecked one."""
import importlib.util
import os
import re
import shlex
import sys

import pytest

from purejaxpg import cli
from purejaxpg.envs import check_env_name, suites

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = os.path.join(ROOT, "docs", "physics.md")


def commands() -> list:
    """The lines of the page's ```sh blocks, comments dropped."""
    text = open(PAGE).read()
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.split("  #", 1)[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def _script(path: str):
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], os.path.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check(line: str, capsys) -> None:
    argv = shlex.split(line)
    if argv[:3] == ["pip", "install", "-e"]:
        extra = re.fullmatch(r"\.\[(\w+)\]", argv[3]).group(1)
        text = open(os.path.join(ROOT, "pyproject.toml")).read()  # no tomllib on Python 3.10
        section = re.search(r"^\[project\.optional-dependencies\]\n(.*?)(?=^\[)", text, re.S | re.M).group(1)
        assert re.search(rf"^{extra} = \[", section, re.M), extra
    elif argv == ["purejaxpg", "list"]:
        assert cli.main(["list"]) == 0
        assert "playground/TASK" in capsys.readouterr().out
    elif argv[:2] == ["purejaxpg", "train"]:
        algo = cli._algo(argv[2:])
        args = cli._run_parser("train", algo).parse_args(argv[2:])
        overrides = {s.name: getattr(args, s.name) for s in algo.spec.settings if getattr(args, s.name) is not None}
        config, _ = algo.resolve(overrides, args.preset)
        check_env_name(config.env)
    elif argv[:2] == ["python", "benchmarks/physics_side_by_side.py"]:
        _script(argv[1]).parser().parse_args(argv[2:])
    elif argv[:2] == ["python", "scripts/physics_acceptance.py"]:
        _script(argv[1]).parser().parse_args(argv[2:])
    elif argv[0] == "pytest":
        assert all(os.path.exists(os.path.join(ROOT, a.split("::")[0])) for a in argv[1:] if not a.startswith("-"))
    else:
        raise AssertionError(f"docs/physics.md shows a command no test checks: {line}")


def test_the_page_has_commands():
    lines = commands()
    assert "pip install -e '.[mujoco]'" in lines and "purejaxpg list" in lines
    assert any("--env playground/CartpoleBalance" in x for x in lines)
    assert any("--env brax/ant" in x for x in lines)


@pytest.mark.skipif(not suites.SUITES["playground"].installed(),
                    reason="needs the mujoco extra (pip install -e '.[mujoco]')")
def test_every_command_on_the_page_parses(capsys, monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    for line in commands():
        check(line, capsys)
    sys.modules.pop("physics_side_by_side", None)
    sys.modules.pop("physics_acceptance", None)


@pytest.mark.skipif(not suites.SUITES["playground"].installed(),
                    reason="needs the mujoco extra (pip install -e '.[mujoco]')")
def test_the_check_catches_a_wrong_command(capsys):
    for line in ("purejaxpg train ppo --env playground/CartpoleBalanse",
                 "purejaxpg train ppo --env playground/CartpoleBalance@impl=mjx",
                 "pip install -e '.[physics]'", "purejaxpg train ppo --num-seeds eight", "purejaxpg lst"):
        with pytest.raises((AssertionError, ValueError, KeyError, SystemExit)):
            check(line, capsys)


def test_the_side_by_side_refuses_a_task_without_published_settings(monkeypatch):
    """Brax's side takes Playground's published settings: any other env is refused with one
    line before anything runs."""
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    with pytest.raises(SystemExit, match="a Playground task is needed"):
        _script("benchmarks/physics_side_by_side.py").main(["--env", "brax/ant", "--smoke"])
    sys.modules.pop("physics_side_by_side", None)
