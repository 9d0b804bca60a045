"""Nothing lost: output directories never mix two runs, checkpoints carry the run's
fingerprint and survive damage, interruption and a full disk, diverging runs are reported.

The signal and kill -9 tests start the real command (``python -m purejaxpg.cli``) and
compare the resumed run's per-seed results with an uninterrupted run, bit for bit."""
import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from children import child_env

from purejaxpg import cli
from purejaxpg.engine import plan as plans
from purejaxpg.engine import runner
from purejaxpg.engine.checkpoint import MANIFEST

# pytest-xdist: this module's tests share module-scoped work, so one worker runs them all
pytestmark = pytest.mark.xdist_group("nothing_lost")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--env", "CartPole-v1", "--num-seeds", "2", "--total-timesteps", "512", "--num-envs", "4", "--num-steps",
        "16", "--hidden", "16", "--update-epochs", "1", "--num-minibatches", "2", "--num-eval-episodes", "2",
        "--quiet"]  # ppo: 8 updates
TINY_SETTINGS = {"env": "CartPole-v1", "total_timesteps": 512, "num_envs": 4, "num_steps": 16, "hidden": (16,),
                 "update_epochs": 1, "num_minibatches": 2, "num_eval_episodes": 2}
# the runs the subprocess tests interrupt: a2c, 4 x 8 steps per update
LONG = {"env": "CartPole-v1", "num_envs": 4, "num_steps": 8, "hidden": (8,), "num_eval_episodes": 2}


def _flags(settings: dict) -> list:
    out = []
    for k, v in settings.items():
        out += [f"--{k.replace('_', '-')}", ",".join(map(str, v)) if isinstance(v, tuple) else str(v)]
    return out


def _one_line_error(err: str, *needles):
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("purejaxpg: error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)


def _same_results(a: str, b: str):
    """Two run directories' per-update metrics and per-seed final returns, bit for bit."""
    ma, mb = np.load(os.path.join(a, "metrics.npz")), np.load(os.path.join(b, "metrics.npz"))
    assert ma.files == mb.files
    for k in ma.files:
        np.testing.assert_array_equal(ma[k], mb[k], err_msg=k)
    sa, sb = (json.load(open(os.path.join(d, "summary.json"))) for d in (a, b))
    assert sa["final_return"]["per_seed"] == sb["final_return"]["per_seed"]


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """Runs several tests start from (copied, as tests change them): ``full``, PPO (8
    updates, 2 seeds) in 4 chunks; ``part``, the same stopped after 3 chunks; ``other``, lr
    1e-5 stopped after 1 chunk; ``sweep``, a 2-configuration sweep of 1 seed."""
    root = tmp_path_factory.mktemp("tiny")
    runner.train("ppo", TINY_SETTINGS, num_seeds=2, out_dir=str(root / "full"), chunks=4, quiet=True)
    runner.train("ppo", TINY_SETTINGS, num_seeds=2, out_dir=str(root / "part"), chunks=4, quiet=True, stop_after=3)
    runner.train("ppo", {**TINY_SETTINGS, "lr": 1e-5}, num_seeds=2, out_dir=str(root / "other"), chunks=4,
                 quiet=True, stop_after=1)
    runner.sweep("ppo", str(root / "sweep"), base=TINY_SETTINGS, grid={"lr": [1e-3, 3e-3]}, num_seeds=1, quiet=True)
    return root


def _copy(tiny_runs, name: str, tmp_path) -> str:
    return str(shutil.copytree(tiny_runs / name, tmp_path / name))


# ---- output directories ------------------------------------------------------------

def test_a_new_run_into_another_runs_directory_is_refused_and_overwrite_replaces_it(tmp_path, capsys):
    """The issue's scenario: a chunked run with lr 5e-2, then the same into the same --out
    with lr 1e-5. Without --overwrite: refused in one line (naming the directory and the
    choices), nothing touched. With it: the old run's files are gone (a file of the user's
    stays), and ``eval`` restores and plays the new run's policy."""
    out = str(tmp_path / "D")
    argv = ["train", "ppo", *TINY, "--total-timesteps", "2048", "--chunks", "4"]  # 32 updates
    assert cli.main([*argv, "--lr", "5e-2", "--out", out]) == 0
    old = json.load(open(os.path.join(out, "summary.json")))
    (tmp_path / "D" / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert cli.main([*argv, "--lr", "1e-5", "--out", out]) == 2
    _one_line_error(capsys.readouterr().err, f"{out} holds another run", f"--resume {out}", "--overwrite",
                    "another --out")
    assert json.load(open(os.path.join(out, "summary.json"))) == old
    assert json.load(open(os.path.join(out, "config.json")))["hparams"]["lr"] == pytest.approx(5e-2)

    assert cli.main([*argv, "--lr", "1e-5", "--out", out, "--overwrite"]) == 0
    new = json.load(open(os.path.join(out, "summary.json")))
    assert json.load(open(os.path.join(out, "config.json")))["hparams"]["lr"] == pytest.approx(1e-5)
    assert (tmp_path / "D" / "notes.txt").read_text() == "mine"
    capsys.readouterr()
    assert cli.main(["eval", out]) == 0
    line = capsys.readouterr().out
    per_seed = [float(x) for x in line.split("per seed: ")[1].split(",")]
    # eval plays each run's evaluation episodes with the run's own key: the new run's final returns
    np.testing.assert_allclose(per_seed, new["final_return"]["per_seed"], rtol=0, atol=0.051)
    assert new["final_return"]["per_seed"] != old["final_return"]["per_seed"]  # the two policies play differently
    assert sorted(os.listdir(os.path.join(out, "checkpoints", "group0"))) == ["3", "4"]


def test_overwrite_removes_exactly_a_sweeps_files(tmp_path, tiny_runs):
    out = tmp_path / "S"
    shutil.copytree(tiny_runs / "sweep", out)
    (out / "mine.txt").write_text("x")
    (out / plans.config_name({"lr": 1e-3}, 0) / "episode.gif").write_bytes(b"GIF")
    found = runner.check_out_dir(str(out), overwrite=True)
    assert {"run.json", "checkpoints", "sweep.json", "table.txt", "sweep.png"} <= set(found)
    from purejaxpg.engine.outputs import remove_previous_run

    remove_previous_run(str(out), found)
    left = sorted(os.path.relpath(p, out) for p in glob.glob(str(out / "**"), recursive=True) if os.path.isfile(p))
    assert left == sorted(["mine.txt", os.path.join(plans.config_name({"lr": 1e-3}, 0), "episode.gif")])
    assert runner.check_out_dir(str(out), overwrite=False) == []


def test_outputs_are_written_under_a_temporary_name(tmp_path, monkeypatch, tiny_runs):
    """Every file of a run is renamed into place (here: the outputs of a resumed sweep); a
    writer that fails half-way leaves the previous file and no temporary one."""
    from purejaxpg.analysis import plotting
    from purejaxpg.engine import outputs

    shutil.copytree(tiny_runs / "sweep", tmp_path / "S")
    for path in (tmp_path / "S").iterdir():  # keep only run.json and the checkpoints
        if path.name not in ("checkpoints", "run.json"):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    renames = []
    real = os.replace
    monkeypatch.setattr(outputs.os, "replace", lambda a, b: (renames.append((a, b)), real(a, b))[1])
    runner.resume(str(tmp_path / "S"), quiet=True)  # from its final checkpoint: evaluates and writes the outputs
    written = {os.path.relpath(b, tmp_path / "S") for _, b in renames if "checkpoints" not in b}
    on_disk = {os.path.relpath(p, tmp_path / "S") for p in glob.glob(str(tmp_path / "S" / "**"), recursive=True)
               if os.path.isfile(p) and "checkpoints" not in p and not p.endswith("run.json")}
    assert on_disk == written, on_disk ^ written
    assert all(".tmp" in os.path.basename(a) for a, b in renames if "checkpoints" not in b)

    def broken(path, *args, **kwargs):
        open(path, "wb").write(b"half a png")
        raise OSError("disk gone")

    monkeypatch.setattr(plotting, "plot_sweep", broken)
    before = (tmp_path / "S" / "sweep.png").read_bytes()
    with pytest.raises(OSError, match="disk gone"):
        outputs.write_sweep(str(tmp_path / "S"), json.load(open(tmp_path / "S" / "sweep.json")),
                            plans.Plan.read(str(tmp_path / "S")))
    assert (tmp_path / "S" / "sweep.png").read_bytes() == before
    assert not glob.glob(str(tmp_path / "S" / "*.tmp*"))


def test_fingerprint_refusals(tmp_path, capsys, monkeypatch, tiny_runs):
    """run.json records the fingerprint; a checkpoint of another run (other settings) is
    refused by eval and --resume, and so is resuming with other package versions."""
    a, b = _copy(tiny_runs, "full", tmp_path), _copy(tiny_runs, "other", tmp_path)
    fp = plans.stored_fingerprint(a)
    assert set(fp) == {"sha256", "runs_sha256", "versions"} and fp["versions"]["jax"]
    assert plans.stored_fingerprint(b)["runs_sha256"] != fp["runs_sha256"]
    shutil.rmtree(os.path.join(b, "checkpoints"))
    shutil.copytree(os.path.join(a, "checkpoints"), os.path.join(b, "checkpoints"))
    capsys.readouterr()
    for argv in (["eval", b], ["train", "--resume", b]):
        assert cli.main(argv) == 2, argv
        _one_line_error(capsys.readouterr().err, "belongs to another run than its run.json",
                        "other configurations, hyperparameters or seeds")

    versions = plans.package_versions()
    monkeypatch.setattr(plans, "package_versions", lambda: {**versions, "jax": "0.0.1"})
    assert cli.main(["train", "--resume", a]) == 2
    _one_line_error(capsys.readouterr().err, "cannot be resumed here", f"jax {versions['jax']} in run.json, "
                    "0.0.1 in this installation")


# ---- damaged checkpoints --------------------------------------------------------------

def _data_files(step_dir: str) -> list:
    return sorted(p for p in glob.glob(os.path.join(step_dir, "state", "**", "d", "*"), recursive=True)
                  if os.path.isfile(p))


def test_a_truncated_checkpoint_falls_back_and_resume_is_still_bit_identical(tmp_path, capsys, tiny_runs):
    """The newest checkpoint truncated by hand: eval and --resume say so and use the one
    before; the resumed run equals the uninterrupted one. A file altered in place (same
    size) is found too. With every checkpoint damaged, one line names the file that
    failed."""
    full, part = str(tiny_runs / "full"), _copy(tiny_runs, "part", tmp_path)
    steps = os.path.join(part, "checkpoints", "group0")
    assert sorted(os.listdir(steps)) == ["2", "3"]
    victim = max(_data_files(os.path.join(steps, "3")), key=os.path.getsize)
    data = open(victim, "rb").read()
    open(victim, "wb").write(data[: len(data) // 2])
    capsys.readouterr()
    assert cli.main(["eval", part]) == 0
    out, err = capsys.readouterr()
    assert "after 4 updates" in out  # chunk 2 of 4 (8 updates)
    assert err.count("\n") == 1 and victim in err and "truncated" in err and "using step 2" in err, err

    assert cli.main(["train", "--resume", part, "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "using step 2" in err and "Traceback" not in err
    _same_results(full, part)

    # altered in place (same size: a flipped bit on disk): found by the SHA-256 of the manifest
    victim = max(_data_files(os.path.join(steps, "4")), key=os.path.getsize)
    data = bytearray(open(victim, "rb").read())
    data[len(data) // 2] ^= 0x10
    open(victim, "wb").write(bytes(data))
    assert cli.main(["eval", part]) == 0
    out, err = capsys.readouterr()
    assert "after 6 updates" in out and victim in err and "SHA-256" in err and "using step 3" in err, (out, err)

    for step in os.listdir(steps):  # every checkpoint damaged: one line naming a file
        victim = max(_data_files(os.path.join(steps, step)), key=os.path.getsize)
        open(victim, "wb").write(b"")
    assert cli.main(["eval", part]) == 2
    _one_line_error(capsys.readouterr().err, "no readable checkpoint in", victim)


def test_a_step_without_its_manifest_is_checked_by_orbax(tmp_path, capsys, tiny_runs):
    """Killed between Orbax's rename and the manifest: the step is complete (Orbax renames
    only complete steps) and is used; a damaged one is still refused by name, in one line
    from the real command (a failed Orbax read used to leave TensorStore reads running
    whose completions hit the closed event loop: dozens of tracebacks on stderr)."""
    d = _copy(tiny_runs, "full", tmp_path)
    step = os.path.join(d, "checkpoints", "group0", "4")
    os.remove(os.path.join(step, MANIFEST))
    assert cli.main(["eval", d]) == 0
    assert "after 8 updates" in capsys.readouterr().out
    for f in glob.glob(os.path.join(step, "state", "**", "*.ocdbt"), recursive=True):
        open(f, "wb").write(b"")
    os.remove(os.path.join(d, "checkpoints", "group0", "3", MANIFEST))
    for f in glob.glob(os.path.join(d, "checkpoints", "group0", "3", "state", "**", "*.ocdbt"), recursive=True):
        open(f, "wb").write(b"")
    # in a process of its own, whose stderr is the user's; five times, as the stray reads
    # were a race (seen in 2 of 3 single runs), then a pause for late ones
    proc = subprocess.run([sys.executable, "-c", _EVAL_FIVE_TIMES, d], env=child_env(), capture_output=True,
                          text=True, timeout=600)
    assert proc.stdout.split() == ["2"] * 5, (proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines(keepends=True)
    assert len(lines) == 5, proc.stderr
    for line in lines:  # which of a step's arrays fails first varies
        _one_line_error(line, "no readable checkpoint", "manifest.ocdbt")


_EVAL_FIVE_TIMES = """
import sys, time
from purejaxpg.cli import main
for _ in range(5):
    print(main(["eval", sys.argv[1]]), flush=True)
time.sleep(0.5)
"""


# ---- divergence ---------------------------------------------------------------------------

A2C = ["--env", "CartPole-v1", "--num-seeds", "2", "--total-timesteps", "1024", "--num-envs", "4", "--num-steps",
       "16", "--hidden", "16", "--num-eval-episodes", "2", "--quiet"]  # 16 updates


def test_a_diverging_configuration_is_reported_and_the_others_are_unchanged(tmp_path, capsys):
    """A sweep with lr 1e20 in one configuration (A2C; lr 1e6 stays finite in so short a
    run: the clipped Adam steps saturate tanh units): its runs are listed (configuration,
    seed, first non-finite update) in summary.json, sweep.json and a warning line; the
    other configuration's runs equal those of a sweep without it, bit for bit (blocks of 2
    runs make the two programs compute each run alike). --stop-on-nan stops at the next
    chunk boundary with one line and exit 1."""
    out = str(tmp_path / "S")
    argv = ["sweep", "a2c", *A2C, "--grid", "lr=1e-3,1e20", "--block", "2", "--out", out]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    bad = plans.config_name({"lr": 1e20}, 1)
    good = plans.config_name({"lr": 1e-3}, 0)
    s_bad = json.load(open(os.path.join(out, bad, "summary.json")))
    s_good = json.load(open(os.path.join(out, good, "summary.json")))
    assert s_good["num_diverged"] == 0 and s_good["diverged"] == []
    assert s_bad["num_diverged"] == 2
    assert [(d["configuration"], d["seed"]) for d in s_bad["diverged"]] == [(bad, 0), (bad, 1)]
    assert all(0 < d["update"] < 16 for d in s_bad["diverged"])
    sweep = json.load(open(os.path.join(out, "sweep.json")))
    assert sweep["num_diverged"] == 2 and sweep["diverged"] == s_bad["diverged"]
    table = open(os.path.join(out, "table.txt")).read()
    assert "95% CI of the IQM" in table and "95% CI of the mean" in table and "diverged" in table
    err = captured.err
    assert err.count("\n") == 1 and "warning: 2 of 4 runs diverged" in err, err
    for d in s_bad["diverged"]:
        assert f"{bad} seed {d['seed']} at update {d['update']}" in err
    # the losses are finite before the recorded update and not from it on
    m = np.load(os.path.join(out, bad, "metrics.npz"))
    for d in s_bad["diverged"]:
        losses = m["loss"][d["seed"]]
        assert np.all(np.isfinite(losses[: d["update"]])) and not np.isfinite(losses[-1])

    alone = str(tmp_path / "alone")
    assert cli.main(["sweep", "a2c", *A2C, "--grid", "lr=1e-3", "--block", "2", "--out", alone]) == 0
    _same_results(os.path.join(out, good), os.path.join(alone, good))

    capsys.readouterr()
    stopped = str(tmp_path / "stopped")
    assert cli.main(["sweep", "a2c", *A2C, "--grid", "lr=1e-3,1e20", "--chunks", "16", "--out", stopped,
                     "--stop-on-nan"]) == 1
    err = capsys.readouterr().err
    first = min(d["update"] for d in s_bad["diverged"])
    assert err.count("\n") == 1 and "stopped (--stop-on-nan) after" in err and f"at update {first}" in err, err
    assert f"--resume {stopped}" in err
    assert not os.path.exists(os.path.join(stopped, "sweep.json"))
    # one update per chunk: it stopped after the chunk in which the first run diverged
    assert max(int(s) for s in os.listdir(os.path.join(stopped, "checkpoints", "group0"))) == first + 1


def test_divergence_of_an_off_policy_run_and_nothing_for_its_warm_up():
    """SAC's warm-up losses are NaN by design and are not divergence; a critic learning
    rate of 1e20 diverges once learning starts."""
    sac = {"env": "Pendulum-v1", "num_envs": 2, "num_steps": 2, "total_timesteps": 64, "buffer_size": 64,
           "minibatch_size": 8, "learning_starts": 20, "hidden": (8,), "num_eval_episodes": 1}
    r, = runner.sweep("sac", None, base=sac, grid={"critic_lr": [1e-3, 1e20]}, num_seeds=2, quiet=True).groups
    assert np.isnan(r.metrics["critic_loss"][0, :, :5]).all()  # warm-up: NaN by design
    assert (r.first_nonfinite[0] == -1).all(), r.first_nonfinite
    assert (r.first_nonfinite[1] >= 5).all(), r.first_nonfinite  # the 5 warm-up updates never count


# ---- interruption: signals and kill -9 (the real command) -------------------------------

def _cached(cache) -> dict:
    """Environment variables that make JAX keep compiled programs in ``cache`` (None: no
    cache): the subprocesses of a test compile each program once."""
    if cache is None:
        return {}
    return {"JAX_COMPILATION_CACHE_DIR": str(cache), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1"}


def _start(argv, cwd, cache=None):
    return subprocess.Popen([sys.executable, "-m", "purejaxpg.cli", *argv], cwd=cwd, env=child_env(**_cached(cache)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, proc, timeout=600.0, poll=0.02):
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            return False
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("timed out waiting")
        time.sleep(poll)
    return True


def _checkpointed(out):
    return lambda: bool(glob.glob(os.path.join(out, "checkpoints", "group0", "*", MANIFEST)))


_RESUME = """
import json, sys
from purejaxpg.cli import main
print(json.dumps([main(["train", "--resume", d, "--quiet"]) for d in sys.argv[1:]]))
"""


def _resume_all(dirs, cwd, cache):
    """``purejaxpg train --resume DIR --quiet`` for each of ``dirs``, in one interpreter
    (its programs from a compilation cache after the first)."""
    proc = subprocess.run([sys.executable, "-c", _RESUME, *dirs], cwd=cwd, capture_output=True, text=True,
                          timeout=1800, env=child_env(**_cached(cache)))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


@pytest.fixture(scope="module")
def long_reference(tmp_path_factory):
    """The uninterrupted run the interrupted ones are compared with (a2c, 2 seeds, 20000
    updates: about 10 s of run time here), its settings, and a compilation cache for the
    subprocesses. Results do not depend on where chunks end (one compiled chunk function
    of any length), so one reference serves chunked and timed runs."""
    settings = {**LONG, "total_timesteps": 20000 * 32}
    root = tmp_path_factory.mktemp("reference")
    runner.train("a2c", settings, num_seeds=2, out_dir=str(root / "ref"), chunks=8, quiet=True)
    return settings, str(root / "ref"), root / "jax-cache"


def test_sigint_and_sigterm_stop_after_a_checkpoint_and_resume_is_bit_identical(tmp_path, long_reference):
    """A long plain train (checkpoints by time: here every 0.3 s) gets SIGINT once its
    first checkpoint exists; a chunked one SIGTERM. Each saves, prints at most two lines
    (no traceback) and exits 130 / 143; --resume finishes each with the per-seed results of
    the uninterrupted run. A second SIGINT ends a run at once (killed by the signal)."""
    settings, ref, cache = long_reference
    flags = ["a2c", *_flags(settings), "--num-seeds", "2", "--quiet"]
    cases = [("plain", ["--checkpoint-every", "0.005"], signal.SIGINT, 130),
             ("chunked", ["--chunks", "20"], signal.SIGTERM, 143)]
    dirs = []
    for name, extra, sig, code in cases:
        out = str(tmp_path / name)
        proc = _start(["train", *flags, *extra, "--out", out], tmp_path, cache)
        assert _wait_for(_checkpointed(out), proc), proc.communicate()[1][-3000:]
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == code, (name, proc.returncode, err[-3000:])
        assert err.count("\n") <= 2 and "Traceback" not in err, err
        assert f"purejaxpg: stopped by {signal.Signals(sig).name} after " in err, err
        assert f"continue with: purejaxpg train --resume {out}" in err, err
        assert not os.path.exists(os.path.join(out, "summary.json"))  # it did stop before the end
        dirs.append(out)

    # two chunks of about 5 s: the second SIGINT comes while the first waits for the chunk
    out = str(tmp_path / "twice")
    proc = _start(["train", *flags, "--chunks", "2", "--out", out], tmp_path, cache)
    assert _wait_for(_checkpointed(out), proc)
    proc.send_signal(signal.SIGINT)
    ack = proc.stderr.readline()
    assert ack.startswith("purejaxpg: SIGINT: stopping after the current chunk"), ack
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=600)
    assert proc.returncode == -signal.SIGINT, proc.returncode  # ended by the signal itself, not by the runner
    dirs.append(out)
    codes, err = _resume_all(dirs, tmp_path, cache)
    assert codes == [0, 0, 0], err[-3000:]
    for d in dirs:
        _same_results(ref, d)


def _kill_trial(rng, kind: str, argv, out, cwd, cache, duration: float) -> dict:
    """Start the command, kill -9 it at a moment of ``kind`` (``compile``: within half a
    second of run.json appearing, while the programs are traced and compiled;
    ``checkpoint``: while Orbax's temporary directory of a step exists; ``chunk``: a random
    moment of the ``duration`` seconds after the first checkpoint, mostly mid-chunk), and
    say what the directory held then."""
    proc = _start(argv, cwd, cache)
    steps = os.path.join(out, "checkpoints", "group0")
    assert _wait_for(lambda: os.path.exists(os.path.join(out, "run.json")), proc, poll=0.005)
    if kind == "compile":
        time.sleep(rng.uniform(0, 0.5))
    elif kind == "checkpoint":
        skip = rng.randrange(3)
        seen = set()

        def writing():
            tmp = {p for p in glob.glob(os.path.join(steps, "*.orbax-checkpoint-tmp*"))}
            seen.update(tmp)
            return len(seen) > skip and tmp
        _wait_for(writing, proc, poll=0.001)
    else:
        _wait_for(_checkpointed(out), proc, poll=0.005)
        time.sleep(rng.uniform(0, duration))
    writing_now = bool(glob.glob(os.path.join(steps, "*.orbax-checkpoint-tmp*")))
    alive = proc.poll() is None
    proc.kill()
    proc.communicate()
    done = sorted(int(s) for s in os.listdir(steps) if s.isdigit()) if os.path.isdir(steps) else []
    phase = ("finished before the kill" if not alive else "while a checkpoint was written" if writing_now else
             "before the first checkpoint" if not done else "between checkpoints")
    return {"kind": kind, "phase": phase, "steps_on_disk": done}


def _kill_trials(tmp_path, reference, n: int, seed: int, cache_killed: bool):
    """``n`` runs killed (``compile``, ``checkpoint``, ``chunk`` in turn), then resumed.
    ``cache_killed``: the killed runs load their programs from the compilation cache
    (their "compile" phase is then tracing, lowering and loading)."""
    settings, ref, cache = reference
    rng = random.Random(seed)
    argv = ["a2c", *_flags(settings), "--num-seeds", "2", "--quiet", "--chunks", "20"]
    s = json.load(open(os.path.join(ref, "summary.json")))
    duration = s["run_seconds"] + s["checkpoint_seconds"]  # of the reference run, in this process
    trials, dirs = [], []
    for i in range(n):
        out = str(tmp_path / f"trial{i}")
        trials.append(_kill_trial(rng, ("compile", "checkpoint", "chunk")[i % 3], ["train", *argv, "--out", out], out,
                                  tmp_path, cache if cache_killed else None, duration))
        dirs.append(out)
    codes, err = _resume_all(dirs, tmp_path, cache)
    identical = 0
    for t, d, code in zip(trials, dirs, codes):
        assert code == 0, (t, err[-3000:])
        _same_results(ref, d)
        identical += 1
    print(f"\nkill -9: {n} trials, {identical} resumed bit-identical; phases: "
          + json.dumps({p: sum(t["phase"] == p for t in trials) for p in sorted({t["phase"] for t in trials})}))
    return trials


def test_kill_9_then_resume_is_bit_identical(tmp_path, long_reference):
    """kill -9 during compilation, while a checkpoint is written, and at a random moment
    after the first checkpoint of a chunked run; --resume finishes each with the
    uninterrupted run's results."""
    trials = _kill_trials(tmp_path, long_reference, 3, seed=0, cache_killed=True)
    assert [t["kind"] for t in trials] == ["compile", "checkpoint", "chunk"]


@pytest.mark.slow
def test_kill_9_twenty_times(tmp_path, long_reference):
    trials = _kill_trials(tmp_path, long_reference, 21, seed=1, cache_killed=False)
    phases = [t["phase"] for t in trials]
    assert phases.count("while a checkpoint was written") >= 3 and phases.count("between checkpoints") >= 3, phases


# ---- a full disk ------------------------------------------------------------------------

_FULL_DISK = r"""
set -u
mount -t tmpfs -o size=16m tmpfs "$MNT" || exit 97
cd "$WORK"
"$PY" "$ROOT/tests/full_disk_worker.py" "$MNT/run" 2> "$WORK/err1"; echo $? > "$WORK/rc1"
ls "$MNT/run/checkpoints/group0" > "$WORK/steps"
rm -f "$MNT/filler"
"$PY" -m purejaxpg.cli train --resume "$MNT/run" --quiet 2> "$WORK/err2" > /dev/null; echo $? > "$WORK/rc2"
cp "$MNT/run/metrics.npz" "$MNT/run/summary.json" "$WORK/"
"""


def test_a_full_disk_gives_one_line_and_keeps_the_previous_checkpoint(tmp_path):
    """On a 16 MiB tmpfs (mounted in a private mount namespace; skipped where the OS does
    not allow it), the disk fills up after the first checkpoint of a chunked run: the next
    save fails with one line and exit 1, the first checkpoint is still there, and after
    space is freed --resume finishes with the results of an uninterrupted run."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) to mount a size-limited tmpfs in a private namespace")
    probe = subprocess.run(["unshare", "-Urm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a size-limited tmpfs here: {probe.stderr.strip()[:200]}")
    (tmp_path / "mnt").mkdir()
    env = child_env(MNT=str(tmp_path / "mnt"), WORK=str(tmp_path), PY=sys.executable, ROOT=ROOT)
    proc = subprocess.run(["unshare", "-Urm", "sh", "-c", _FULL_DISK], env=env, capture_output=True, text=True,
                          timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    err1 = (tmp_path / "err1").read_text()
    assert (tmp_path / "rc1").read_text().strip() == "1", err1[-3000:]
    assert err1.count("\n") == 1 and "Traceback" not in err1, err1
    assert err1.startswith("purejaxpg: error: could not write checkpoint 2 in ") and "No space left" in err1, err1
    assert "the previous checkpoint is intact" in err1
    assert (tmp_path / "steps").read_text().split() == ["1"]
    assert (tmp_path / "rc2").read_text().strip() == "0", (tmp_path / "err2").read_text()[-3000:]
    ref = str(tmp_path / "ref")
    runner.train("ppo", TINY_SETTINGS, num_seeds=2, out_dir=ref, chunks=4, quiet=True)
    _same_results(ref, str(tmp_path))


@pytest.mark.slow
def test_a_signal_to_one_of_two_processes_stops_both(tmp_path, long_reference):
    """A 2-process sweep (2 CPU devices each, blocks of 2 runs): SIGINT to process 1 only.
    The processes agree at the next chunk boundary: both save and exit 130, process 0 with
    the line; resumed in one process, the sweep equals the same sweep run in one process
    uninterrupted (blocks make results independent of the device count)."""
    import socket

    import jax
    from test_distributed import _gloo_available

    if not _gloo_available() or jax.default_backend() != "cpu":
        pytest.skip("needs Gloo CPU collectives and CPU devices (as tests/test_distributed.py)")
    settings, _, cache = long_reference
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = str(tmp_path / "mp")
    argv = ["sweep", "a2c", *_flags(settings), "--grid", "lr=1e-3,3e-3", "--num-seeds", "3", "--block", "2",
            "--chunks", "20", "--quiet", "--out", out, "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2"]
    env = child_env(XLA_FLAGS="--xla_force_host_platform_device_count=2", **_cached(cache))
    for var in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        env.pop(var, None)
    procs = [subprocess.Popen([sys.executable, "-m", "purejaxpg.cli", *argv, "--process-id", str(i)], cwd=tmp_path,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    try:
        assert _wait_for(_checkpointed(out), procs[0]), procs[0].communicate()[1][-3000:]
        procs[1].send_signal(signal.SIGINT)
        outputs = [p.communicate(timeout=900) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [130, 130], [o[1][-2000:] for o in outputs]
    err0 = outputs[0][1]
    assert "Traceback" not in err0 and err0.count("\n") <= 2, err0
    assert "stopped by SIGINT after " in err0 and f"sweep --resume {out}" in err0, err0
    one = str(tmp_path / "one")
    runner.sweep("a2c", one, base=settings, grid={"lr": [1e-3, 3e-3]}, num_seeds=3, block=2, chunks=20, quiet=True)
    runner.resume(out, quiet=True)
    for name in (plans.config_name({"lr": 1e-3}, 0), plans.config_name({"lr": 3e-3}, 1)):
        _same_results(os.path.join(one, name), os.path.join(out, name))
