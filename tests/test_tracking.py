"""Experiment tracking (--log): the per-update scalars against NumPy, and real round trips
through each library's own reader (TensorBoard's EventAccumulator, W&B's offline run file,
MLflow's client on a local store, CSV)."""
import csv
import glob
import struct

import numpy as np
import pytest

from purejaxpg import cli
from purejaxpg.engine import tracking


def test_scalars_match_numpy():
    rng = np.random.default_rng(0)
    ret = rng.normal(size=8)
    ret[[1, 6]] = np.nan  # runs that finished no episode in this update
    loss = rng.normal(size=8)
    got = tracking.scalars({"episode_return": ret, "loss": loss}, slice(4, 8))  # configuration 1 of 2, 4 seeds
    seeds = ret[4:8]
    finite = [x for x in seeds if x == x]
    srt = sorted(finite)  # 3 values: floor(3 / 4) = 0 dropped at each end
    assert got["episode_return/mean"] == pytest.approx(sum(finite) / len(finite))
    assert got["episode_return/iqm"] == pytest.approx(sum(srt) / len(srt))
    assert got["episode_return/min"] == min(finite) and got["episode_return/max"] == max(finite)
    assert {k for k in got if "/seed" in k} == {"episode_return/seed0", "episode_return/seed1", "episode_return/seed3"}
    assert got["episode_return/seed3"] == pytest.approx(ret[7])
    assert got["loss/iqm"] == pytest.approx(np.mean(np.sort(loss[4:8])[1:3]))
    assert "loss/seed0" not in got


def _wandb_records(path):
    """Records of a W&B offline run file: a 7-byte header, then LevelDB's log format (32 KiB
    blocks of records: crc32c, length, type FULL/FIRST/MIDDLE/LAST) holding W&B's protobuf
    ``Record`` messages."""
    from wandb.proto import wandb_internal_pb2 as pb

    buf, pos, pending = open(path, "rb").read(), 7, b""
    while pos + 7 <= len(buf):
        if 32768 - pos % 32768 < 7:
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", buf[pos:pos + 7])
        chunk, pos = buf[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):
            r = pb.Record()
            r.ParseFromString(pending + chunk if kind == 4 else chunk)
            yield r
        pending = chunk if kind == 2 else pending + chunk if kind == 3 else b""


def test_a_sweep_streams_to_every_backend(tmp_path, monkeypatch, capsys):
    """``sweep --log tensorboard --log csv --log wandb --log mlflow``: 2 configurations x 2
    seeds, 40 updates reported every 2: every backend holds 20 points of each
    configuration's episode-return scalars against env steps, and its settings."""
    for module in ("tensorboard", "wandb", "mlflow"):
        pytest.importorskip(module)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "sw"
    argv = ["sweep", "ppo", "--grid", "lr=1e-3,3e-3", "--num-seeds", "2", "--total-timesteps", "20480",
            "--hidden", "8", "--update-epochs", "1", "--progress-every", "2", "--quiet", "--out", str(out)]
    assert cli.main([*argv, *[a for b in tracking.BACKENDS for a in ("--log", b)]]) == 0
    names = ["c000_lr=0.001", "c001_lr=0.003"]
    steps = [512 * 2 * (k + 1) for k in range(20)]  # env steps per seed after updates 2, 4, ..., 40

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for name in names:
        acc = EventAccumulator(str(out / "tensorboard" / name))
        acc.Reload()
        events = acc.Scalars("episode_return/mean")
        assert [e.step for e in events] == steps
        assert {"episode_return/iqm", "loss/mean", "episode_return/seed1"} <= set(acc.Tags()["scalars"])
        rows = list(csv.DictReader(open(out / name / "progress.csv")))
        assert [int(r["env_steps"]) for r in rows] == steps
        np.testing.assert_allclose([float(r["episode_return/mean"]) for r in rows], [e.value for e in events],
                                   rtol=1e-6)

    runs = {}
    for path in glob.glob(str(out / "wandb" / "offline-run-*" / "run-*.wandb")):
        records = list(_wandb_records(path))
        run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
        history = [{i.key or "/".join(i.nested_key): i.value_json for i in r.history.item}
                   for r in records if r.WhichOneof("record_type") == "history"]
        config = {i.key: i.value_json for i in run.config.update}
        runs[run.display_name] = (run.run_group, config, history)
    assert sorted(runs) == names
    for name, (group, config, history) in runs.items():
        assert group == "sw" and float(config["lr"]) == float(name.split("=")[1]) and "jax" in config
        assert [int(h["_step"]) for h in history] == steps and all("episode_return/mean" in h for h in history)

    from mlflow.tracking import MlflowClient

    client = MlflowClient("file:" + str(out / "mlruns"))
    found = client.search_runs([client.get_experiment_by_name("purejaxpg").experiment_id])
    assert sorted(r.info.run_name for r in found) == names
    for r in found:
        assert r.data.tags["group"] == "sw" and float(r.data.params["lr"]) == float(r.info.run_name.split("=")[1])
        assert [m.step for m in client.get_metric_history(r.info.run_id, "episode_return/mean")] == steps


def test_log_needs_an_output_directory_and_a_known_backend(capsys):
    with pytest.raises(ValueError, match="unknown --log backend 'neptune'"):
        tracking.check(("neptune",), "x")
    with pytest.raises(ValueError, match="--log needs an output directory"):
        tracking.check(("csv",), None)
    assert cli.main(["train", "ppo", "--log", "neptune"]) == 2
    assert "unknown --log backend" in capsys.readouterr().err
