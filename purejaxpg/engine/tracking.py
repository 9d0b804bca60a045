"""Experiment tracking: per-update metrics streamed from inside the program to TensorBoard,
Weights & Biases, MLflow or CSV (``--log BACKEND``, repeatable).

The runner's progress callback (engine.batch: every ``cadence`` updates, about 20 per run,
with every run's metrics) feeds a ``Tracker``. For each configuration it logs, against env
steps per seed, the across-seed mean, IQM, min and max of every metric (NaN entries, such as
the return of a run that finished no episode in that update, left out) and each seed's
episode return; hyperparameters, the static config and package versions go with it. A
sweep's configurations are separate runs of one group. The libraries are optional extras
(``pip install -e '.[track]'``), imported only when asked for:

* ``tensorboard``: event files under ``OUT/tensorboard/NAME`` (``tensorboard --logdir OUT``);
* ``wandb``: one run per configuration in project ``purejaxpg``, group ``OUT``'s name, files
  under OUT (``WANDB_MODE=offline`` works without an account);
* ``mlflow``: one run per configuration in experiment ``purejaxpg``, tagged with the group;
  ``MLFLOW_TRACKING_URI`` if set, else a local file store ``OUT/mlruns``;
* ``csv``: ``progress.csv`` in each configuration's directory.
"""
from __future__ import annotations

import csv
import math
import os
import time

import numpy as np

from purejaxpg.analysis import stats

BACKENDS = ("tensorboard", "wandb", "mlflow", "csv")


def check(backends, out_dir) -> None:
    """One-line errors for an unknown backend, a missing output directory or library."""
    import importlib.util

    for b in backends:
        if b not in BACKENDS:
            raise ValueError(f"unknown --log backend {b!r}; valid: {', '.join(BACKENDS)}")
        module = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}.get(b)
        if module and importlib.util.find_spec(module) is None:
            raise ValueError(f"--log {b} needs the {module} package: pip install -e '.[track]'")
    if backends and out_dir is None:
        raise ValueError("--log needs an output directory (--out)")


def scalars(metrics: dict, rows: slice) -> dict:
    """{tag: value} of one configuration's runs ``rows``: every metric's across-seed mean, IQM,
    min and max over its finite values, and each seed's episode return."""
    out = {}
    for name, values in metrics.items():
        v = np.asarray(values, np.float64)[rows]
        finite = v[np.isfinite(v)]
        if finite.size:
            out.update({f"{name}/mean": finite.mean(), f"{name}/iqm": float(stats.iqm(finite)),
                        f"{name}/min": finite.min(), f"{name}/max": finite.max()})
        if name == "episode_return":
            out.update({f"episode_return/seed{s}": float(x) for s, x in enumerate(v) if math.isfinite(x)})
    return {k: float(x) for k, x in out.items()}


class _Csv:
    def __init__(self, path, name, group, params, append=False):
        os.makedirs(path, exist_ok=True)
        file = os.path.join(path, "progress.csv")
        self.writer, self.columns = None, None
        if append and os.path.exists(file):  # a resumed run continues its file
            with open(file, newline="") as f:
                self.columns = next(csv.reader(f), None)
        self.file = open(file, "a" if self.columns else "w", newline="")
        if self.columns:
            self.writer = csv.DictWriter(self.file, self.columns, extrasaction="ignore")

    def log(self, step, values):
        if self.writer is None:
            self.columns = ["env_steps", *sorted(values)]
            self.writer = csv.DictWriter(self.file, self.columns, extrasaction="ignore")
            self.writer.writeheader()
        self.writer.writerow({"env_steps": step, **values})
        self.file.flush()

    def close(self):
        self.file.close()


class _TensorBoard:
    def __init__(self, path, name, group, params, append=False):
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self.event, self.summary = event_pb2.Event, summary_pb2.Summary
        self.writer = EventFileWriter(path)
        text = "\n".join(f"{k}: {v}" for k, v in params.items())
        self.writer.add_event(self.event(wall_time=time.time(), file_version="brain.Event:2"))
        self.writer.add_event(self.event(wall_time=time.time(), summary=self.summary(value=[
            self.summary.Value(tag="settings", tensor=_text_tensor(text))])))

    def log(self, step, values):
        summary = self.summary(value=[self.summary.Value(tag=k, simple_value=v) for k, v in values.items()])
        self.writer.add_event(self.event(wall_time=time.time(), step=int(step), summary=summary))
        self.writer.flush()

    def close(self):
        self.writer.close()


def _text_tensor(text: str):
    from tensorboard.compat.proto import tensor_pb2, tensor_shape_pb2, types_pb2

    return tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[text.encode()],
                                  tensor_shape=tensor_shape_pb2.TensorShapeProto())


class _Wandb:
    def __init__(self, path, name, group, params, append=False):
        import wandb

        self.run = wandb.init(project="purejaxpg", group=group, name=name, dir=path, config=params,
                              reinit="create_new")

    def log(self, step, values):
        self.run.log(values, step=int(step))

    def close(self):
        self.run.finish()


class _Mlflow:
    def __init__(self, path, name, group, params, append=False):
        import mlflow
        from mlflow.tracking import MlflowClient

        self.entities = mlflow.entities
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:  # a local file store beside the run; MLflow 3 asks for consent to use one
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            uri = "file:" + os.path.abspath(os.path.join(path, "mlruns"))
        self.client = MlflowClient(uri)
        exp = self.client.get_experiment_by_name("purejaxpg")
        exp_id = exp.experiment_id if exp else self.client.create_experiment("purejaxpg")
        self.run_id = self.client.create_run(exp_id, run_name=name, tags={"group": group}).info.run_id
        self.client.log_batch(self.run_id, params=[self.entities.Param(k, str(v)[:6000]) for k, v in params.items()])

    def log(self, step, values):
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[self.entities.Metric(k, v, now, int(step)) for k, v in values.items()])

    def close(self):
        self.client.set_terminated(self.run_id)


WRITERS = {"csv": _Csv, "tensorboard": _TensorBoard, "wandb": _Wandb, "mlflow": _Mlflow}


class Tracker:
    """The writers of one group's configurations. ``report(i, metrics)`` is the runner's
    progress callback (metrics {name: [padded runs]}, configuration c's seeds at rows
    c * num_seeds ...)."""

    def __init__(self, backends, out_dir: str, single: bool, group, num_seeds: int, steps_per_update: int,
                 settings: dict, append: bool = False):
        self.num_seeds, self.steps_per_update = num_seeds, steps_per_update
        group_name = os.path.basename(os.path.abspath(out_dir))
        self.writers = []
        for c, name in enumerate(group.names):
            path = out_dir if single else os.path.join(out_dir, name)
            params = {**settings, **_flat(group.config), **group.hparams[c]}
            per = []
            for b in backends:
                where = os.path.join(out_dir, "tensorboard", name) if b == "tensorboard" else \
                    out_dir if b in ("wandb", "mlflow") else path
                per.append(WRITERS[b](where, name, group_name, params, append))
            self.writers.append(per)

    def report(self, update_index, metrics) -> None:
        step = (int(update_index) + 1) * self.steps_per_update
        for c, per in enumerate(self.writers):
            values = scalars(metrics, slice(c * self.num_seeds, (c + 1) * self.num_seeds))
            for w in per:
                w.log(step, values)

    def close(self) -> None:
        for per in self.writers:
            for w in per:
                w.close()


def _flat(config) -> dict:
    import dataclasses

    return {k: (",".join(map(str, v)) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()}
