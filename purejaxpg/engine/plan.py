"""What a run is, before anything is built: the ``Plan`` (written to ``run.json``), the
configurations of a sweep and their grouping into programs.

A plan is one algorithm, the settings every configuration shares (``base``), the swept
values of each configuration (``points``: a grid's product, random samples of ranges, or
one empty point for a plain run), seeds, chunks, checkpoints and how runs are laid out on
devices. ``run.json`` also records the run's ``fingerprint`` (its resolved configurations,
hyperparameters, seeds and package versions); every checkpoint carries the same
fingerprint, and ``--resume`` and ``eval`` refuse a checkpoint whose fingerprint differs.
``groups`` validates every configuration with the algorithm's spec (bad input fails here,
before anything compiles) and groups them by static config: configurations that differ
only in traced hyperparameters share one program; each different static config is another
program.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
import numbers
import os
import re
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from purejaxpg.algos import get_algo
from purejaxpg.engine.spec import format_value

RUN_FILE = "run.json"


@dataclass(frozen=True)
class Plan:
    """Everything needed to run (and to resume, evaluate or render) a set of runs."""

    algo: str
    base: dict = field(default_factory=dict)  # the user's settings, shared by every configuration
    points: tuple = ({},)  # swept values of each configuration
    num_seeds: int = 8
    seed: int = 0  # master seed: seed s of every configuration uses the same key
    chunks: Optional[int] = None  # K: K equal chunks, a checkpoint after each; None: sized from measured time
    checkpoint_every: float = 10.0  # minutes of run time between checkpoints when chunks is None (0: none)
    block: int = 0  # vmap this many runs at a time per device (0: all at once)
    preset: str = "auto"
    memory_limit_mb: float = 0.0  # refuse programs above this per device (0: half the free memory)
    progress_every: int = 0  # updates between progress reports (0: about 20 per run)
    log: tuple = ()  # experiment tracking backends (engine.tracking)
    single: bool = True  # one configuration, written at the output directory itself
    ranges: dict = field(default_factory=dict)  # for the record: swept ranges (plots use their scales)
    pbt: dict = field(default_factory=dict)  # population-based training (engine.population); {}: none

    def __post_init__(self):
        get_algo(self.algo)  # one line naming the valid algorithms
        for name in ("num_seeds", "chunks", "block", "progress_every", "seed"):
            v = getattr(self, name)
            if not (v is None and name == "chunks" or isinstance(v, numbers.Integral) and not isinstance(v, bool)):
                raise ValueError(f"{name} must be an integer, got {v!r}")
        for name in ("num_seeds", "chunks"):
            if getattr(self, name) is not None and int(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        every = float(self.checkpoint_every)
        if not (every >= 0 and math.isfinite(every)):
            raise ValueError(f"checkpoint_every must be a finite number of minutes >= 0 (0: no checkpoints), "
                             f"got {self.checkpoint_every}")
        if self.chunks is not None and every == 0:
            raise ValueError("--chunks K saves a checkpoint after each of K chunks; it cannot be combined with "
                             "--no-checkpoint")
        for name in ("block", "progress_every", "seed"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if float(self.memory_limit_mb) < 0:
            raise ValueError(f"memory_limit_mb must be >= 0 (0: automatic), got {self.memory_limit_mb}")
        if self.single and len(self.points) != 1:
            raise ValueError("a single run takes no --grid or --range")
        object.__setattr__(self, "log", tuple(self.log))
        if self.pbt:
            from purejaxpg.engine import population

            population.check_settings(self.pbt, get_algo(self.algo).spec)
            if not self.single or self.num_seeds != self.pbt["population"]:
                raise ValueError("a population is one configuration with one seed per member")

    def to_json(self) -> dict:
        return jsonable(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, d: dict) -> "Plan":
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        d["base"] = _untuple(d.get("base", {}))
        d["points"] = tuple(_untuple(p) for p in d.get("points", [{}]))
        d["ranges"] = {k: tuple(v) for k, v in d.get("ranges", {}).items()}
        return cls(**d)

    def write(self, out_dir: str, fingerprint: Optional[dict] = None) -> None:
        from purejaxpg.engine.outputs import write_json

        write_json(os.path.join(out_dir, RUN_FILE), {**self.to_json(), "fingerprint": fingerprint})

    @classmethod
    def read(cls, out_dir: str) -> "Plan":
        return cls.from_json(_read_run_file(out_dir))


def check_not_halving(out_dir: str) -> None:
    """One-line ValueError where ``out_dir`` is a successive-halving sweep (``rungN/``
    folders, each a sweep of its own), naming its last rung."""
    found = os.listdir(out_dir) if os.path.isdir(out_dir) else ()
    rungs = sorted((d for d in found if re.fullmatch(r"rung\d+", d)), key=lambda d: int(d[4:]))
    if rungs:
        raise ValueError(f"{out_dir} is a successive-halving sweep: its rungs are sweeps of their own; give one, "
                         f"e.g. {os.path.join(out_dir, rungs[-1])} (the last)")


def _read_run_file(out_dir: str) -> dict:
    path = os.path.join(out_dir, RUN_FILE)
    if not os.path.exists(path):
        check_not_halving(out_dir)
        raise ValueError(f"{out_dir} holds no {RUN_FILE}: not a run made by purejaxpg train or sweep")
    try:
        with open(path) as f:
            d = json.load(f)
        Plan.from_json(d)
        return d
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, KeyError, AttributeError) as e:
        raise ValueError(f"{path} is not a readable run file ({type(e).__name__}: {e})") from None
    except ValueError as e:
        raise ValueError(f"{path} is not a readable run file ({e})") from None


def stored_fingerprint(out_dir: str) -> Optional[dict]:
    """The fingerprint ``run.json`` recorded (None for a run made before fingerprints)."""
    return _read_run_file(out_dir).get("fingerprint")


FINGERPRINT_PACKAGES = ("purejaxpg", "jax", "jaxlib", "flax", "optax", "chex", "distrax", "gymnax", "numpy",
                        "orbax-checkpoint")


@functools.lru_cache(maxsize=1)
def _installed_versions() -> tuple:
    from importlib import metadata

    out = {}
    for pkg in FINGERPRINT_PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return tuple(out.items())


def package_versions() -> dict:
    """The versions of the packages a run's results depend on (read once per process)."""
    return dict(_installed_versions())


def fingerprint(plan: "Plan", group_list: list) -> dict:
    """What a run's results depend on: every configuration's resolved static config and
    hyperparameters, the seeds, and package versions. ``sha256`` covers all of it,
    ``runs_sha256`` all but the versions (to say which part differs)."""
    import hashlib

    configs = {}
    for g in group_list:
        for c, i in enumerate(g.index):
            configs[i] = {"config": jsonable(dataclasses.asdict(g.config)),
                          "hparams": {k: float(v) for k, v in sorted(g.hparams[c].items())}}
    runs = {"algo": plan.algo, "num_seeds": int(plan.num_seeds), "seed": int(plan.seed),
            "configurations": [configs[i] for i in sorted(configs)]}
    if plan.pbt:
        runs["pbt"] = jsonable(plan.pbt)
    versions = package_versions()

    def digest(x):
        return hashlib.sha256(json.dumps(x, sort_keys=True).encode()).hexdigest()

    return {"sha256": digest({"runs": runs, "versions": versions}), "runs_sha256": digest(runs), "versions": versions}


def fingerprint_difference(expected: dict, found: dict, labels=("run.json", "the checkpoint")) -> str:
    """In words, what differs between two fingerprints ("" when they match); ``labels``
    name where each comes from."""
    if not isinstance(found, dict) or "sha256" not in found:
        return f"{labels[1]} carries no fingerprint"
    if expected.get("sha256") == found.get("sha256"):
        return ""
    if expected.get("runs_sha256") != found.get("runs_sha256"):
        return "other configurations, hyperparameters or seeds"
    a, b = expected.get("versions", {}), found.get("versions", {})
    diff = [f"{k} {a.get(k)} in {labels[0]}, {b.get(k)} in {labels[1]}" for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k)]
    return "other package versions: " + ", ".join(diff) if diff else "another fingerprint"


def jsonable(x):
    if isinstance(x, (tuple, list)):
        return [jsonable(v) for v in x]
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    return x


def _untuple(d: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


# ---- sweeps: grids and random ranges --------------------------------------------------

def _setting(algo_name: str, name: str, flag: str):
    spec = get_algo(algo_name).spec
    name = name.strip().replace("-", "_")
    if name not in spec.names:
        spec.unknown([name])
    return spec[name]


def parse_grid(items, algo_name: str) -> dict:
    """``["lr=1e-4,3e-4", "hidden=64x64,128x128"]`` -> {"lr": [1e-4, 3e-4], "hidden": [(64, 64), (128, 128)]}.
    Each value is parsed and checked by its setting (engine.spec)."""
    grid = {}
    for item in items or ():
        name, sep, values = item.partition("=")
        if not sep or not values.strip():
            raise ValueError(f"--grid expects NAME=V1,V2,..., got {item!r}")
        s = _setting(algo_name, name, "--grid")
        if s.name in grid:
            raise ValueError(f"{s.name} given twice in --grid")
        grid[s.name] = [s.parse(v) for v in values.split(",") if v.strip()]
    return grid


def parse_ranges(items, algo_name: str) -> dict:
    """``["lr=1e-5:1e-2:log", "gamma=0.9:0.999"]`` -> {"lr": (1e-5, 1e-2, "log"), "gamma": (0.9, 0.999, "lin")}."""
    out = {}
    for item in items or ():
        name, sep, text = item.partition("=")
        parts = text.split(":")
        if not sep or len(parts) not in (2, 3):
            raise ValueError(f"--range expects NAME=LOW:HIGH[:log|lin], got {item!r}")
        s = _setting(algo_name, name, "--range")
        if s.kind not in (int, float):
            raise ValueError(f"--range needs a numeric setting, {s.name} is {s.kind.__name__}")
        out[s.name] = _check_range(f"--range {item!r}", s.parse(parts[0]), s.parse(parts[1]),
                                   parts[2] if len(parts) == 3 else "lin")
    return out


def _check_range(what: str, lo, hi, scale) -> tuple:
    """``(low, high, scale)`` of a search range (command line or API), or a one-line
    ValueError naming ``what``."""
    if scale not in ("log", "lin"):
        raise ValueError(f"{what}: the scale must be log or lin, got {scale!r}")
    if not lo < hi:
        raise ValueError(f"{what} needs low < high")
    if scale == "log" and lo <= 0:
        raise ValueError(f"{what} needs low > 0 on a log scale")
    return float(lo), float(hi), scale


def _checked_grid(grid) -> dict:
    """``grid`` as the API takes it, {name: [values]}: one line for anything else."""
    if not isinstance(grid, dict):
        raise ValueError(f"grid must be a dict {{name: [values]}}, got {type(grid).__name__}")
    for name, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple, range, np.ndarray)):
            raise ValueError(f"grid[{name!r}] must be a list of values, got {values!r}")
        if len(values) == 0:
            raise ValueError(f"grid[{name!r}] has no values")
    return grid


def _checked_ranges(ranges) -> dict:
    """``ranges`` as the API takes it, {name: (low, high, "log" | "lin")} (the scale may be
    left out: "lin"), as 3-tuples; one line for anything else."""
    if not isinstance(ranges, dict):
        raise ValueError(f"ranges must be a dict {{name: (low, high, 'log' | 'lin')}}, got {type(ranges).__name__}")
    out = {}
    for name, r in ranges.items():
        if not (isinstance(r, (list, tuple)) and len(r) in (2, 3)
                and all(isinstance(x, numbers.Real) and not isinstance(x, bool) for x in r[:2])):
            raise ValueError(f"ranges[{name!r}] must be (low, high) or (low, high, 'log' | 'lin'), got {r!r}")
        out[name] = _check_range(f"ranges[{name!r}] = {r!r}", r[0], r[1], r[2] if len(r) == 3 else "lin")
    return out


def configurations(grid: dict, ranges: dict, samples: int, seed: int, algo_name: str) -> list:
    """The swept values of every configuration: the grid's product, times ``samples``
    random draws of the ranges (``numpy.random.default_rng(seed)``)."""
    spec = get_algo(algo_name).spec
    grid, ranges = _checked_grid(grid), _checked_ranges(ranges)
    both = set(grid) & set(ranges)
    if both:
        raise ValueError(f"{sorted(both)} given in both --grid and --range")
    if ranges and int(samples) <= 0:
        raise ValueError("--range needs --samples K (K > 0)")
    if samples and not ranges:
        raise ValueError("--samples needs at least one --range")
    points = [dict(zip(grid, vals)) for vals in itertools.product(*grid.values())] if grid else [{}]
    if not ranges:
        return points
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(int(samples)):
        d = {}
        for name, (lo, hi, scale) in ranges.items():
            v = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) if scale == "log" else float(rng.uniform(lo, hi))
            d[name] = int(round(v)) if spec[name].kind is int else v
        draws.append(d)
    return [{**p, **d} for p in points for d in draws]


def parse_halving(text: str) -> tuple:
    """``"eta=3"`` -> (3, 0); ``"eta=3,rungs=4"`` -> (3, 4) (0: as many rungs as leave one
    configuration)."""
    values = {}
    for part in str(text).split(","):
        k, sep, v = part.strip().partition("=")
        if not sep or k not in ("eta", "rungs") or k in values or not v.strip().isdigit():
            raise ValueError(f"--halving expects eta=E[,rungs=R] with integers E >= 2, R >= 1, got {text!r}")
        values[k] = int(v)
    if values.get("eta", 0) < 2 or values.get("rungs", 1) < 1:
        raise ValueError(f"--halving expects eta=E[,rungs=R] with integers E >= 2, R >= 1, got {text!r}")
    return values["eta"], values.get("rungs", 0)


def halving_rungs(num_configs: int, eta: int, total_timesteps: int, batch_size: int, rungs: int = 0) -> list:
    """Successive halving's schedule: [(configurations, env steps per run)] per rung. Rung
    r of R runs ``max(1, n // eta**r)`` configurations for ``total_timesteps // eta**(R-1-r)``
    env steps rounded down to whole updates (the last rung the full budget). ``rungs`` 0: as many as leave one
    configuration, fewer if the first rung would be shorter than one update (``batch_size``)."""
    def counts(R):
        return [max(1, num_configs // eta ** r) for r in range(R)]

    if not rungs:
        rungs, m = 1, num_configs
        while m > 1:
            m, rungs = max(1, m // eta), rungs + 1
        while rungs > 1 and total_timesteps // eta ** (rungs - 1) < batch_size:
            rungs -= 1
    elif total_timesteps // eta ** (rungs - 1) < batch_size:
        raise ValueError(f"--halving eta={eta},rungs={rungs}: the first rung's total_timesteps={total_timesteps} / "
                         f"{eta ** (rungs - 1)} is less than one update ({batch_size} env steps); give fewer rungs "
                         f"or more --total-timesteps")
    return [(c, total_timesteps // eta ** (rungs - 1 - r) // batch_size * batch_size)
            for r, c in enumerate(counts(rungs))]


def config_name(swept: dict, index: int) -> str:
    """``c003_lr=0.001_hidden=64x64``: the directory of configuration ``index``."""
    if not swept:
        return "run"

    def text(v):
        return "x".join(map(str, v)) if isinstance(v, tuple) else f"{v:.4g}" if isinstance(v, float) else format_value(v)

    return f"c{index:03d}_" + "_".join(f"{k}={text(v)}" for k, v in swept.items()).replace("/", "-")


@dataclass
class Group:
    """Configurations that share one static config: one compiled program. ``index``: each
    configuration's position in the plan's ``points``."""

    config: Any
    index: list = field(default_factory=list)
    names: list = field(default_factory=list)
    swept: list = field(default_factory=list)
    hparams: list = field(default_factory=list)  # one dict per configuration


def groups(plan: Plan, config_override: Optional[dict] = None) -> list:
    """Validate every configuration of ``plan`` and group them by static config.
    ``config_override``: static fields replaced after validation (evaluation settings)."""
    algo = get_algo(plan.algo)
    out: dict = {}
    for i, swept in enumerate(plan.points):
        config, hparams = algo.resolve({**plan.base, **swept}, plan.preset)
        if config_override:
            config = dataclasses.replace(config, **config_override)
        g = out.setdefault(config, Group(config))
        g.index.append(i)
        g.names.append(config_name(swept, i))
        g.swept.append(swept)
        g.hparams.append(hparams)
    return list(out.values())


def locate(group_list: list, config_index: int):
    """(group index, index within the group) of configuration ``config_index``."""
    for gi, g in enumerate(group_list):
        if config_index in g.index:
            return gi, g.index.index(config_index)
    n = sum(len(g.index) for g in group_list)
    raise ValueError(f"configuration {config_index} out of range: the run has {n} configuration(s), 0..{n - 1}")
