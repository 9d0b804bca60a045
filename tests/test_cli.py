"""The ``purejaxpg`` command: bad input is one line on stderr and exit code 2, before anything
compiles; ``list``; a tiny ``train`` run writes its four outputs."""
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import pytest
from children import child_env

from purejaxpg import cli
from purejaxpg.engine import runner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def nothing_compiles(monkeypatch):
    """Fail the test if the command gets as far as laying out or compiling a program."""
    def refuse(*args, **kwargs):
        raise AssertionError("bad input reached the compile/run stage")

    # the runner validates the plan and checks memory from shapes, and only then prepares
    # the batch (global arrays, jit) and compiles
    monkeypatch.setattr(runner, "prepare", refuse)


BAD_INPUT = [
    (["train", "dqn"], "unknown algorithm 'dqn'; valid names: reinforce, a2c"),
    (["train", "reinforce", "--env", "NoSuchEnv-v0"], "unknown environment 'NoSuchEnv-v0'; valid names: "),
    (["train", "a2c", "--env", "MNISTBandit-bsuite"], "not supported"),
    (["train", "a2c", "--num-envs", "0"], "num_envs must lie in [1, inf), got '0'"),
    (["train", "reinforce", "--num-envs", "-4"], "num_envs must lie in [1, inf), got '-4'"),
    (["train", "a2c", "--num-steps", "0"], "num_steps must lie in [1, inf)"),
    (["train", "a2c", "--lr", "nan"], "lr must be finite"),
    (["train", "reinforce", "--lr", "inf"], "lr must be finite"),
    (["train", "a2c", "--lr=-1e-3"], "lr must lie in (0, inf)"),
    (["train", "a2c", "--total-timesteps", "100"], "total_timesteps=100 is smaller than one update"),
    (["train", "reinforce", "--total-timesteps", "2047"], "smaller than one update (num_envs x num_steps = 8 x 256"),
    (["train", "a2c", "--no-such-flag", "1"], "unrecognized arguments: --no-such-flag"),
    (["train", "a2c", "--num-envs", "many"], "num_envs must be a number, got 'many'"),
    (["train", "a2c", "--preset", "a2c/NoSuchEnv"], "unknown preset"),
    (["frobnicate"], "unknown command 'frobnicate'"),
    # the cases of the one-engine issue: every one was accepted or ended in a traceback
    (["train", "ppo", "--clip-eps", "0"], "clip_eps must lie in (0, 1], got '0'"),
    (["train", "ppo", "--clip-eps=-0.2"], "clip_eps must lie in (0, 1]"),
    (["train", "ppo", "--gae-lambda", "2"], "gae_lambda must lie in [0, 1], got '2'"),
    (["train", "ppo-kl", "--target-kl=-1"], "target_kl must lie in (0, inf)"),
    (["train", "sac", "--init-alpha", "0"], "init_alpha must lie in (0, inf)"),
    (["train", "sac", "--tau", "0"], "tau must lie in (0, 1]"),
    (["train", "sac", "--tau", "2"], "tau must lie in (0, 1]"),
    (["train", "ppo", "--activation", "foo"], "activation must be one of tanh, relu"),
    (["train", "ppo", "--total-timesteps", "inf"], "total_timesteps must be an integer, got 'inf'"),
    (["train", "ppo", "--target-kl", "0.02"], "target_kl applies only with --surrogate kl"),
    (["train", "ppo", "--num-seeds", "100000000"], "run fewer seeds or configurations per program"),
    (["train", "sac", "--env", "Pendulum-v1", "--num-seeds", "4096", "--buffer-size", "100000000"],
     "the largest part of a run's state is"),
    (["sweep", "ppo", "--grid", "clip_eps=0.1,0"], "clip_eps must lie in (0, 1]"),
    (["sweep", "ppo", "--grid", "target_kl=0.01,0.02"], "target_kl applies only with --surrogate kl"),
    (["train", "ppo", "--chunks", "0"], "chunks must be a positive integer"),
    (["train", "ppo", "--block=-1"], "block must be >= 0"),
    (["train", "ppo", "--num-seeds", "0"], "num_seeds must be a positive integer"),
    # checkpoints (issue 17)
    (["train", "ppo", "--checkpoint-every", "0"], "--checkpoint-every must be a positive number of minutes"),
    (["train", "ppo", "--checkpoint-every=-2"], "--checkpoint-every must be a positive number of minutes"),
    (["train", "ppo", "--checkpoint-every", "nan"], "checkpoint_every must be finite"),
    (["train", "ppo", "--chunks", "4", "--no-checkpoint"], "cannot be combined with --no-checkpoint"),
    (["sweep", "ppo", "--chunks", "4", "--checkpoint-every", "5"], "--checkpoint-every applies without --chunks"),
    (["train", "ppo", "--no-checkpoint", "--checkpoint-every", "5"], "contradict each other"),
    (["train", "--resume", "nowhere", "--overwrite"], "unrecognized arguments: --overwrite"),
    # found by a review from a user's side (2026-12-07): each was a traceback or a misleading line
    (["train"], "give the algorithm first: purejaxpg train ALGO"),
    (["sweep", "--quiet", "ppo"], "give the algorithm first: purejaxpg sweep ALGO"),
    (["train", "--env", "CartPole-v1", "ppo"], "give the algorithm first"),
    (["list", "ppo", "sac"], "unrecognized arguments: sac"),
    (["train", "ppo", "--hidden", "x"], "hidden must be integers like 64,64 or 64x64, got 'x'"),
    (["train", "ppo", "--hidden", "64x"], "got '64x'"),
    (["eval", "nowhere", "--gif-run", "x"], "gif_run must be integers like 64,64 or 64x64, got 'x'"),
    (["eval", "nowhere", "--gif", "episode.png"], "--gif writes a GIF: give a path ending in .gif"),
]


@pytest.mark.parametrize("argv, message", BAD_INPUT)
def test_bad_input_is_one_line_exit_2_before_compiling(argv, message, nothing_compiles, capsys):
    t0 = time.process_time()  # CPU seconds (first-use imports included): wall time varies with the load here
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("purejaxpg: error: "), err
    assert message in err, err
    assert time.process_time() - t0 < 10.0


def test_bad_input_from_the_installed_command_has_no_traceback(tmp_path):
    """The real entry point in a fresh interpreter (as a user meets it): exit 2, one line on
    stderr, no traceback; the memory refusals name the estimate and what to change; a
    corrupt run.json names the file."""
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "run.json").write_text("{not json")
    cases = [(["train", "sac", "--env", "Pendulum-v1", "--num-seeds", "4096", "--buffer-size", "100000000"],
              ("needs about", "lower --buffer-size", "--memory-limit-mb")),
             (["train", "ppo", "--num-seeds", "100000000"], ("needs about", "run fewer seeds")),
             (["train", "--resume", str(corrupt)], (str(corrupt / "run.json"), "not a readable run file")),
             (["train", "ppo", "--activation", "foo"], ("activation must be one of",))]
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for argv, needles in cases:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run([sys.executable, "-m", "purejaxpg.cli", *argv], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        assert proc.returncode == 2, (argv, proc.stderr[-2000:])
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        for needle in needles:
            assert needle in proc.stderr, (needle, proc.stderr)
        # CPU seconds of the command (imports included), not wall time: on this shared 2-core
        # machine the wall time of the same command ranges from 4 s (idle) to 16 s (load 7)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        assert cpu < 10.0, (argv, cpu)


def test_ppo_with_the_kl_surrogate_trains(tmp_path, capsys):
    """``train ppo --surrogate kl --target-kl 0.02``: ppo-kl's settings through ppo's name."""
    out = tmp_path / "kl"
    assert cli.main(["train", "ppo", "--surrogate", "kl", "--target-kl", "0.02", "--total-timesteps", "2048",
                     "--num-seeds", "2", "--hidden", "8", "--quiet", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["surrogate"] == "kl" and config["hparams"]["target_kl"] == 0.02
    assert "beta" in np.load(out / "metrics.npz").files


def test_list_names_algorithms_environments_and_presets(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if not line.startswith(" ")]  # a suite's tasks are indented
    assert [line.split(":")[0] for line in lines] == ["algorithms", "environments", "suites", "presets"]
    assert "playground/TASK" in lines[2] and "brax/TASK" in out
    for name in ("reinforce", "a2c", "ppo", "sac"):
        assert name in lines[0]
    for name in ("CartPole-v1", "Acrobot-v1", "Pendulum-v1", "Breakout-MinAtar", "Tabular-Random"):
        assert name in lines[1]
    assert "MNISTBandit" not in lines[1]


def test_list_algo_and_help_print_every_setting_once(capsys):
    """Each setting's one line of help (kind, range or choices, default) comes from the
    algorithm's spec, in ``purejaxpg list ALGO`` and in ``train ALGO --help``."""
    from purejaxpg.algos import get_algo

    spec = get_algo("ppo").spec
    assert cli.main(["list", "ppo"]) == 0
    listing = capsys.readouterr().out
    assert cli.main(["train", "ppo", "--help"]) == 0
    helptext = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for s in spec.settings:
        assert f"  {s.name} " in listing, s.name
        assert s.flag in helptext, s.flag
    assert "clip_eps" in listing and "traced; in (0, 1]; default 0.2" in listing
    assert "surrogate" in listing and "static; one of clip, kl; default clip" in listing
    assert "only with surrogate=kl" in listing


def test_help_and_empty_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for word in ("train", "list", "lab"):
        assert f"purejaxpg {word}" in out
    assert cli.main([]) == 2
    assert cli.main(["list", "--help"]) == 0 and "purejaxpg list" in capsys.readouterr().out
    assert cli.main(["train", "--help"]) == 0  # no algorithm: where its settings and --resume are
    assert "purejaxpg train ALGO --help" in " ".join(capsys.readouterr().out.split())


def test_a_halving_sweep_points_to_its_rungs(tmp_path, capsys):
    for r in (0, 1, 2, 10):
        (tmp_path / "halving" / f"rung{r}").mkdir(parents=True)
    for argv in (["eval", str(tmp_path / "halving")], ["compare", str(tmp_path / "halving")]):
        assert cli.main(argv) == 2
        assert capsys.readouterr().err == f"purejaxpg: error: {tmp_path / 'halving'} is a successive-halving sweep: " \
            f"its rungs are sweeps of their own; give one, e.g. {tmp_path / 'halving' / 'rung10'} (the last)\n"


def test_a_file_as_out_is_one_line_before_compiling(tmp_path, nothing_compiles, capsys):
    (tmp_path / "afile").write_text("mine")
    assert cli.main(["train", "ppo", "--out", str(tmp_path / "afile")]) == 2
    assert capsys.readouterr().err == f"purejaxpg: error: --out {tmp_path / 'afile'} is a file, not a directory; " \
                                      f"give another --out\n"
    assert (tmp_path / "afile").read_text() == "mine"


@pytest.mark.parametrize("existing", [False, True])
def test_an_interrupted_run_without_checkpoints_leaves_nothing_behind(existing, tmp_path, monkeypatch, capsys):
    """"stopped by SIGINT; nothing was saved" holds: with --no-checkpoint the run's run.json is
    removed again (and the directory, where the run made it), so the same command starts again;
    a user's own files stay."""
    out = tmp_path / "run"
    if existing:
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    argv = ["train", "ppo", "--num-seeds", "2", "--total-timesteps", "2048", "--no-checkpoint", "--quiet",
            "--out", str(out)]

    def interrupted(*args, **kwargs):
        assert (out / "run.json").exists()  # written before the first program runs
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_group", interrupted)
    assert cli.main(argv) == 130
    assert "nothing was saved" in capsys.readouterr().err
    if existing:
        assert sorted(os.listdir(out)) == ["notes.txt"]
    else:
        assert not out.exists()

    def started(*args, **kwargs):
        raise AssertionError("started")

    monkeypatch.setattr(runner, "run_group", started)
    with pytest.raises(AssertionError, match="started"):  # the same command again: not refused as "holds another run"
        cli.main(argv)


def test_train_writes_config_metrics_summary_and_plot(tmp_path, capsys):
    out_dir = tmp_path / "run"
    argv = ["train", "a2c", "--num-seeds", "2", "--total-timesteps", "1536", "--num-envs", "4",
            "--num-steps", "64", "--hidden", "16", "--lr", "2e-3", "--num-eval-episodes", "3",
            "--out", str(out_dir)]  # progress bar on: its host callback runs too
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    # the end of a run: a short human summary, with the eval and compare commands
    lines = out.strip().splitlines()
    assert lines[0].startswith("a2c on CartPole-v1, 2 seeds, 1,536 env steps each: final return IQM ")
    assert "[95% CI " in lines[0] and f"purejaxpg eval {out_dir}" in out and "purejaxpg compare" in out
    assert cli.main([*argv[:-1], str(tmp_path / "json"), "--json", "--quiet"]) == 0  # --json: one line for scripts
    printed = json.loads(capsys.readouterr().out)
    assert printed["out"] == str(tmp_path / "json") and printed["final_return_iqm"] is not None
    assert sorted(os.listdir(out_dir)) == ["checkpoints", "config.json", "learning_curve.png", "metrics.npz",
                                           "run.json", "summary.json"]
    assert f"wrote {out_dir}/ (summary.json, metrics.npz, learning_curve.png, checkpoints)" in out
    assert f"next: purejaxpg eval {out_dir} --gif {out_dir}/episode.gif    purejaxpg compare" in out
    # --resume of a finished run: one line, exit 0 (a job script may resume whatever it finds), its files untouched
    before = {n: (out_dir / n).read_bytes() for n in ("summary.json", "metrics.npz")}
    assert cli.main(["train", "--resume", str(out_dir)]) == 0
    assert capsys.readouterr() == (f"purejaxpg: {out_dir} holds a finished run (summary.json): nothing to resume; "
                                   f"`purejaxpg eval {out_dir}` evaluates it, --overwrite starts it again\n", "")
    assert before == {n: (out_dir / n).read_bytes() for n in ("summary.json", "metrics.npz")}

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
    for key in ("mean", "iqm", "ci95", "iqm_ci95"):
        assert fr[key] is not None, key
    assert summary["versions"]["jax"] and summary["versions"]["gymnax"]
    assert (out_dir / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tabular_envs_need_no_prior_import():
    # a fresh interpreter: the Tabular-* environments are registered on first use of the env
    # registry, so the CLI accepts them without anyone importing purejaxpg.envs.tabular first
    code = (
        "import sys\n"
        "from purejaxpg import cli\n"
        "from purejaxpg.algos import get_algo\n"
        "assert 'purejaxpg.envs.tabular' not in sys.modules\n"
        "get_algo('reinforce').resolve({'env': 'Tabular-Random', 'boundary': 'drop', 'baseline': 'none'})\n"
        "from purejaxpg.envs import VecEnv\n"
        "venv = VecEnv('Tabular-FrozenLake', 2)\n"
        "assert venv.action_spec.num_actions == 4, venv.action_spec\n"
        "sys.exit(cli.main(['list']))\n"
    )
    env = child_env()
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Tabular-Random" in proc.stdout and "Tabular-Chain" in proc.stdout


@pytest.mark.parametrize("argv", [
    ["sweep", "ppo", "--grid", "lr=1e-3,3e-3"],
    ["train", "ppo", "--chunks", "4"],
])
def test_sweeps_and_chunked_runs_show_the_progress_bar(argv, tmp_path, capsys):
    """The bar is fed from inside the compiled program for every kind of run: updates,
    env steps/s and the training return, to 100%."""
    small = ["--total-timesteps", "4096", "--num-seeds", "2", "--hidden", "8", "--progress-every", "2"]
    assert cli.main([*argv, *small, "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "8/8" in err and "100%" in err and "steps/s" in err and "return" in err, err[-1000:]
