"""The ``purejaxpg`` command: bad input is one line on stderr and exit code 2, before anything
compiles; ``list``; a tiny ``train`` run writes its four outputs."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from purejaxpg import cli
from purejaxpg.engine import experiment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def nothing_compiles(monkeypatch):
    """Fail the test if the command gets as far as building or running a training program."""
    def refuse(*args, **kwargs):
        raise AssertionError("bad input reached the compile/run stage")

    # ``cmd_train`` validates everything with ``experiment.build`` and only then calls
    # ``experiment.run`` (which builds, compiles and runs the program)
    monkeypatch.setattr(experiment, "run", refuse)


@pytest.mark.parametrize("argv, message", [
    (["train", "dqn"], "unknown algorithm 'dqn'; valid names: reinforce, a2c"),
    (["train", "reinforce", "--env", "NoSuchEnv-v0"], "unknown environment 'NoSuchEnv-v0'; valid names: "),
    (["train", "a2c", "--env", "MNISTBandit-bsuite"], "not supported"),
    (["train", "a2c", "--num-envs", "0"], "num_envs must be a positive integer, got 0"),
    (["train", "reinforce", "--num-envs", "-4"], "num_envs must be a positive integer, got -4"),
    (["train", "a2c", "--num-steps", "0"], "num_steps must be a positive integer"),
    (["train", "a2c", "--lr", "nan"], "hyperparameter lr must be finite"),
    (["train", "reinforce", "--lr", "inf"], "hyperparameter lr must be finite"),
    (["train", "a2c", "--lr=-1e-3"], "lr must be > 0"),
    (["train", "a2c", "--total-timesteps", "100"], "total_timesteps=100 is smaller than one update"),
    (["train", "reinforce", "--total-timesteps", "2047"], "smaller than one update (num_envs x num_steps = 8 x 256"),
    (["train", "a2c", "--no-such-flag", "1"], "unrecognized arguments: --no-such-flag"),
    (["train", "a2c", "--num-envs", "many"], "--num-envs"),
    (["train", "a2c", "--preset", "a2c/NoSuchEnv"], "unknown preset"),
    (["frobnicate"], "unknown command 'frobnicate'"),
])
def test_bad_input_is_one_line_exit_2_before_compiling(argv, message, nothing_compiles, capsys):
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("purejaxpg: error: "), err
    assert message in err, err


def test_list_names_algorithms_environments_and_presets(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["algorithms", "environments", "presets"]
    for name in ("reinforce", "a2c", "ppo", "sac"):
        assert name in lines[0]
    for name in ("CartPole-v1", "Acrobot-v1", "Pendulum-v1", "Breakout-MinAtar", "Tabular-Random"):
        assert name in lines[1]
    assert "MNISTBandit" not in lines[1]


def test_help_and_empty_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for word in ("train", "list", "lab"):
        assert f"purejaxpg {word}" in out
    assert cli.main([]) == 2


def test_train_writes_config_metrics_summary_and_plot(tmp_path, capsys):
    out_dir = tmp_path / "run"
    argv = ["train", "a2c", "--num-seeds", "2", "--total-timesteps", "1536", "--num-envs", "4",
            "--num-steps", "64", "--hidden", "16", "--lr", "2e-3", "--num-eval-episodes", "3",
            "--out", str(out_dir)]  # progress bar on: its host callback runs too
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    printed = json.loads(out.strip().splitlines()[-1])
    assert printed["out"] == str(out_dir)
    assert sorted(os.listdir(out_dir)) == ["config.json", "learning_curve.png", "metrics.npz", "summary.json"]

    config = json.loads((out_dir / "config.json").read_text())
    assert config["algo"] == "a2c" and config["num_seeds"] == 2
    assert config["config"]["num_envs"] == 4 and config["config"]["hidden"] == [16]
    assert config["hparams"]["lr"] == pytest.approx(2e-3)

    num_updates = 1536 // (4 * 64)
    metrics = np.load(out_dir / "metrics.npz")
    assert metrics["episode_return"].shape == (2, num_updates)
    assert metrics["policy_loss"].shape == (2, num_updates)
    np.testing.assert_array_equal(metrics["env_steps"], np.arange(1, num_updates + 1) * 256)
    assert metrics["final_return"].shape == (2,)

    summary = json.loads((out_dir / "summary.json").read_text())
    for key in ("algo", "env", "num_seeds", "total_timesteps", "final_return", "compile_seconds",
                "run_seconds", "env_steps_per_second", "versions"):
        assert key in summary, key
    assert (summary["algo"], summary["env"], summary["num_seeds"], summary["total_timesteps"]) == \
        ("a2c", "CartPole-v1", 2, 1536)
    fr = summary["final_return"]
    for key in ("mean", "iqm", "ci95", "per_seed"):
        assert key in fr, key
    np.testing.assert_allclose(fr["per_seed"], metrics["final_return"], rtol=1e-6)
    assert fr["ci95"][0] <= fr["mean"] <= fr["ci95"][1]  # bootstrap CI of the mean across seeds
    assert summary["compile_seconds"] > 0 and summary["run_seconds"] > 0
    assert summary["env_steps_per_second"] == pytest.approx(2 * 1536 / summary["run_seconds"])
    assert summary["versions"]["jax"] and summary["versions"]["gymnax"]
    assert (out_dir / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tabular_envs_need_no_prior_import():
    # a fresh interpreter: the Tabular-* environments are registered on first use of the env
    # registry, so the CLI accepts them without anyone importing purejaxpg.envs.tabular first
    code = (
        "import sys\n"
        "from purejaxpg import cli\n"
        "from purejaxpg.engine.experiment import build\n"
        "assert 'purejaxpg.envs.tabular' not in sys.modules\n"
        "_, config, _ = build('reinforce', {'env': 'Tabular-Random', 'boundary': 'drop', 'baseline': 'none'})\n"
        "from purejaxpg.envs import VecEnv\n"
        "venv = VecEnv('Tabular-FrozenLake', 2)\n"
        "assert venv.action_spec.num_actions == 4, venv.action_spec\n"
        "sys.exit(cli.main(['list']))\n"
    )
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Tabular-Random" in proc.stdout and "Tabular-Chain" in proc.stdout
