"""Seeds x hyperparameter configurations as one compiled program, sharded over devices,
run in checkpointed chunks.

A sweep is a list of configurations (a grid, random samples, or both) of one algorithm.
Configurations that differ only in traced hyperparameters (learning rates, gamma, clip
epsilon, entropy coefficient, ...) share a *group*: their runs, configurations x seeds,
form one batch axis ``B = C x S`` of one ``jit(vmap(...))`` program that compiles once.
Fields of the static config (``num_envs``, ``hidden``, ...) change array shapes and
cannot be traced: configurations that differ in them form separate groups, one program
each (``plan_groups`` says how many).

Seed ``s`` uses the same key in every configuration (common random numbers). The batch
axis is sharded over all devices (``jax.sharding.Mesh`` over ``jax.devices()`` with a
``NamedSharding`` on axis ``"batch"``; padded to a multiple of the device count with
copies of the last run, dropped afterwards); each device runs the same program on its
slice (``shard_map``). Each run's computation is independent of the others, but XLA's CPU
code for a reduction depends on the batch size it is vmapped over, so a run's floats can
change in the last bits with the number of runs per device. ``block=K`` vmaps K runs at a
time (``blocked_vmap``): every device then runs the same K-wide program and results are
bit-identical for any device count (tested on 1 and 4 CPU devices; the optimiser and the
PRNG are written so that partitioning cannot change them either, see ``purejaxpg.core.optim``
and ``purejaxpg.core.prng``). With
``jax.distributed.initialize()`` (``--distributed``) ``jax.devices()`` spans all
processes and so does the batch axis.

The training scan runs in ``chunks`` pieces: ``train.init`` then ``train.run_updates``
for each chunk (one compiled function reused for every chunk of the same length), then
``train.evaluate``. After each chunk the complete carry (train state, replay buffer,
keys) and the metrics so far are saved with Orbax (``purejaxpg.engine.checkpoint``); a resumed
run restores the last checkpoint and continues with the same compiled function, so it ends
bit-identical to an uninterrupted run.

Before compiling, ``estimate_memory`` sizes the program from ``jax.eval_shape`` of the
initial carry and one chunk's outputs and refuses (one-line ValueError) a program that
would not fit.
"""
from __future__ import annotations

import dataclasses
import inspect
import itertools
import json
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from purejaxpg.analysis import stats
from purejaxpg.engine.experiment import build, versions

RUN_FILE = "run.json"


# ---- planning: configurations and groups ------------------------------------------

def _convert(name: str, default, text):
    """Parse ``text`` like the setting ``name`` whose default is ``default``."""
    if not isinstance(text, str):
        return text
    t = text.strip()
    try:
        if isinstance(default, bool):
            if t.lower() in ("1", "true", "yes", "on"):
                return True
            if t.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(default, int):
            v = float(t)
            if v != int(v):
                raise ValueError
            return int(v)
        if isinstance(default, float):
            return float(t)
        if isinstance(default, tuple):
            return tuple(int(v) for v in t.split("x") if v)
    except ValueError:
        raise ValueError(f"bad value {text!r} for {name} (default {default!r})") from None
    return t


def settable(algo_name: str) -> dict:
    """{name: default} for every config field and hyperparameter of ``algo_name``."""
    from purejaxpg.algos import get_algo

    algo = get_algo(algo_name)
    config = algo.Config()
    out = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    out.update(algo.default_hparams(config))
    return out


def parse_grid(items, algo_name: str) -> dict:
    """``["lr=1e-4,3e-4", "hidden=64x64,128x128"]`` -> {"lr": [1e-4, 3e-4], "hidden": [(64, 64), (128, 128)]}."""
    known = settable(algo_name)
    grid = {}
    for item in items or ():
        name, sep, values = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not values.strip():
            raise ValueError(f"--grid expects NAME=V1,V2,..., got {item!r}")
        if name not in known:
            raise ValueError(f"unknown setting {name!r} in --grid; valid: {', '.join(sorted(known))}")
        if name in grid:
            raise ValueError(f"{name} given twice in --grid")
        grid[name] = [_convert(name, known[name], v) for v in values.split(",") if v.strip()]
    return grid


def parse_ranges(items, algo_name: str) -> dict:
    """``["lr=1e-5:1e-2:log", "gamma=0.9:0.999"]`` -> {"lr": (1e-5, 1e-2, "log"), "gamma": (0.9, 0.999, "lin")}."""
    known = settable(algo_name)
    out = {}
    for item in items or ():
        name, sep, spec = item.partition("=")
        name = name.strip().replace("-", "_")
        parts = spec.split(":")
        if not sep or len(parts) not in (2, 3):
            raise ValueError(f"--range expects NAME=LOW:HIGH[:log|lin], got {item!r}")
        if name not in known:
            raise ValueError(f"unknown setting {name!r} in --range; valid: {', '.join(sorted(known))}")
        if isinstance(known[name], (bool, tuple, str)):
            raise ValueError(f"--range needs a numeric setting, {name} is {type(known[name]).__name__}")
        try:
            lo, hi = float(parts[0]), float(parts[1])
        except ValueError:
            raise ValueError(f"--range bounds must be numbers, got {item!r}") from None
        scale = parts[2] if len(parts) == 3 else "lin"
        if scale not in ("log", "lin"):
            raise ValueError(f"--range scale must be log or lin, got {scale!r}")
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise ValueError(f"--range needs finite LOW < HIGH, got {item!r}")
        if scale == "log" and lo <= 0:
            raise ValueError(f"--range with log scale needs LOW > 0, got {item!r}")
        out[name] = (lo, hi, scale)
    return out


def configurations(grid: dict, ranges: dict, samples: int, seed: int, algo_name: str) -> list:
    """The swept values of every configuration: the grid's product, times ``samples``
    random draws of the ranges (drawn with ``numpy.random.default_rng(seed)``)."""
    known = settable(algo_name)
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
            d[name] = int(round(v)) if isinstance(known[name], int) else v
        draws.append(d)
    return [{**p, **d} for p in points for d in draws]


def config_name(swept: dict, index: int) -> str:
    if not swept:
        return "run"
    parts = []
    for k, v in swept.items():
        text = "x".join(str(int(h)) for h in v) if isinstance(v, tuple) else (f"{v:.4g}" if isinstance(v, float) else str(v))
        parts.append(f"{k}={text}")
    return f"c{index:03d}_" + "_".join(parts).replace("/", "-")


@dataclass
class Group:
    """Configurations that share one static config: one compiled program."""

    config: Any
    names: list = field(default_factory=list)
    swept: list = field(default_factory=list)
    hparams: list = field(default_factory=list)  # one dict per configuration


def plan_groups(algo_name: str, base: dict, points: list, preset: str = "auto") -> list:
    """Validate every configuration (before anything compiles) and group them by static config."""
    groups: dict = {}
    for i, swept in enumerate(points):
        _, config, hparams = build(algo_name, {**base, **swept}, preset)
        g = groups.setdefault(config, Group(config))
        g.names.append(config_name(swept, i))
        g.swept.append(swept)
        g.hparams.append(hparams)
    return list(groups.values())


# ---- memory ------------------------------------------------------------------------

def tree_bytes(tree) -> int:
    import jax

    return sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree_util.tree_leaves(tree))


def estimate_memory(abstract_carry, abstract_chunk_metrics, num_devices: int) -> dict:
    """Bytes per device of one program: the carry three times (a chunk's input, its output,
    and working space of the same order — trajectories, gradients, optimiser temporaries)
    plus one chunk's metrics."""
    carry = tree_bytes(abstract_carry)
    metrics = tree_bytes(abstract_chunk_metrics)
    per_device = math.ceil((3 * carry + metrics) / max(1, num_devices))
    return {"carry_bytes": carry, "chunk_metrics_bytes": metrics, "per_device_bytes": per_device}


def check_memory(estimate: dict, num_runs: int, num_devices: int, limit_mb: float = 0.0) -> None:
    """Refuse (one-line ValueError) a program whose estimate exceeds ``limit_mb`` MiB per
    device (0: half of the free memory of the device, or of the host on CPU)."""
    from purejaxpg.core.replay import _fmt, available_memory_bytes

    limit = limit_mb * 2**20 if limit_mb and limit_mb > 0 else 0.5 * available_memory_bytes()
    need = estimate["per_device_bytes"]
    if need > limit:
        per_run = estimate["carry_bytes"] / max(1, num_runs)
        fit = max(0, int(limit * num_devices // max(1.0, 3 * per_run)))
        raise ValueError(
            f"this program needs about {_fmt(need)} per device ({num_runs} runs x {_fmt(per_run)} of train "
            f"state, x3 for working space, over {num_devices} device(s)), more than the {_fmt(limit)} allowed; "
            f"run fewer seeds or configurations per program (about {fit} fit), use more devices, "
            f"or raise --memory-limit-mb")


# ---- devices -----------------------------------------------------------------------

def make_mesh():
    """A 1-D mesh ``("batch",)`` over every device (of every process)."""
    import jax
    from jax.sharding import Mesh

    return Mesh(np.asarray(jax.devices()), ("batch",))


def _to_host(x) -> np.ndarray:
    import jax

    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def _shared_limit_mb(limit_mb: float) -> float:
    """The memory limit every process applies: with several processes and no explicit
    limit, half the smallest free memory among them, so that all take the same decision
    (one refusing alone would leave the others waiting in a collective)."""
    import jax

    if (limit_mb and limit_mb > 0) or jax.process_count() == 1:
        return limit_mb
    from jax.experimental import multihost_utils

    from purejaxpg.core.replay import available_memory_bytes

    free_mb = multihost_utils.process_allgather(np.float32(available_memory_bytes() / 2**20))
    return 0.5 * float(np.min(free_mb))


def _global(x: np.ndarray, sharding):
    """A global array sharded like ``sharding`` from a host array every process holds."""
    import jax

    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


# ---- running one group -------------------------------------------------------------

def carry_axes(train, carry):
    """vmap axes of a chunked run's carry: the algorithm's own (SAC keeps its buffer's write
    position unbatched), else 0 for every leaf."""
    import jax

    return train.carry_axes(carry) if hasattr(train, "carry_axes") else jax.tree_util.tree_map(lambda _: 0, carry)


def _make_train(algo, config, num_runs: int):
    params = inspect.signature(algo.make_train).parameters
    if "num_seeds" in params:  # SAC checks its replay buffers' memory for the whole batch
        return algo.make_train(config, num_seeds=num_runs)
    return algo.make_train(config)


def chunk_lengths(num_updates: int, chunks: int) -> list:
    """``chunks`` pieces of ``ceil(num_updates / chunks)`` updates, the last one shorter if
    needed (a second compiled function)."""
    if int(chunks) <= 0:
        raise ValueError(f"chunks must be a positive integer, got {chunks}")
    if chunks > num_updates:
        raise ValueError(f"chunks={chunks} is more than the run's {num_updates} updates")
    n = math.ceil(num_updates / chunks)
    out = [n] * (num_updates // n)
    if num_updates % n:
        out.append(num_updates % n)
    return out


def blocked_vmap(f, in_axes, out_axes, block: int = 0):
    """``jax.vmap(f, in_axes, out_axes)``, or with ``block`` > 0 the same map computed
    ``block`` runs at a time: a ``lax.scan`` over blocks of a ``vmap`` of width ``block``.

    ``in_axes``/``out_axes``: one entry per argument/output, each 0, None or a pytree of
    0/None matching it. The batch must be a multiple of ``block``. Outputs with axis None
    must be the same for every block (the last block's is returned).

    XLA's CPU code for a reduction depends on the vmapped batch size (its loop order and
    vectorisation are chosen from the shape), so a run's float results change in the last
    bits with the number of runs one device holds. A fixed block makes the per-device
    program the same whatever the device count."""
    import jax

    vf = jax.vmap(f, in_axes=in_axes, out_axes=out_axes)
    if not block:
        return vf
    tu = jax.tree_util

    def axis_tree(axes, tree):  # the axis of every leaf of ``tree`` (-1: unbatched); ``axes`` a prefix
        return tu.tree_map(lambda a, x: tu.tree_map(lambda _: -1 if a is None else a, x), axes, tree,
                           is_leaf=lambda a: a is None)

    def g(*args):
        leaves, treedef = tu.tree_flatten(args)
        batched = [i for i, a in enumerate(treedef.flatten_up_to(axis_tree(tuple(in_axes), args))) if a == 0]
        n = leaves[batched[0]].shape[0]
        if n % block:
            raise ValueError(f"a batch of {n} runs is not a multiple of block={block}")

        def one_block(_, blk):
            now = list(leaves)
            for i, x in zip(batched, blk):
                now[i] = x
            return None, vf(*treedef.unflatten(now))

        _, out = jax.lax.scan(one_block, None, [leaves[i].reshape((n // block, block) + leaves[i].shape[1:])
                                                for i in batched])
        return tu.tree_map(lambda a, x: x[-1] if a < 0 else x.reshape((n,) + x.shape[2:]),
                           axis_tree(out_axes, out), out)

    return g


def _prepare(algo, group: Group, num_seeds: int, seed: int, chunks: int, config=None, block: int = 0):
    """Keys, hyperparameters, the sharded batch and the (uncompiled) programs of a group."""
    from types import SimpleNamespace

    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    config = config or group.config
    C, S = len(group.hparams), int(num_seeds)
    B = C * S
    mesh = make_mesh()
    D = mesh.devices.size
    Bp = math.ceil(B / (D * max(1, block))) * D * max(1, block)
    pick = np.minimum(np.arange(Bp), B - 1)  # padding repeats the last run
    seed_keys = np.asarray(jax.random.split(jax.random.PRNGKey(seed), S))  # as experiment.run
    keys_host = np.tile(seed_keys, (C, 1))[pick]  # run b = c * S + s uses seed key s
    hp_host = {k: np.asarray([h[k] for h in group.hparams], np.float32).repeat(S)[pick]
               for k in group.hparams[0]}

    train = _make_train(algo, config, Bp)
    lengths = chunk_lengths(train.num_updates, chunks)
    batch = NamedSharding(mesh, P("batch"))
    repl = NamedSharding(mesh, P())
    keys = _global(keys_host, batch)
    hps = {k: _global(v, batch) for k, v in hp_host.items()}

    one = jax.eval_shape(train.init, jax.ShapeDtypeStruct(keys_host.shape[1:], keys_host.dtype),
                         {k: jax.ShapeDtypeStruct((), jnp.float32) for k in hp_host})
    axes = carry_axes(train, one)
    carry_sh = jax.tree_util.tree_map(lambda a: repl if a is None else batch, axes, is_leaf=lambda a: a is None)

    # Every device runs the single-device program on its slice of the batch (shard_map):
    # no cross-device partitioning of the computation, so a run's numbers cannot depend on
    # how many devices share the batch.
    specs = jax.tree_util.tree_map(lambda a: P() if a is None else P("batch"), axes, is_leaf=lambda a: a is None)

    def sharded(f, in_specs, out_specs):
        return jax.shard_map(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)

    init_fn = jax.jit(sharded(blocked_vmap(train.init, (0, 0), axes, block), (P("batch"), P("batch")), specs),
                      out_shardings=carry_sh)
    donate = (0,) if jax.devices()[0].platform != "cpu" else ()
    chunk_fns = {}

    def chunk_fn(n):
        if n not in chunk_fns:
            f = blocked_vmap(lambda c, h, s: train.run_updates(c, h, s, n), (axes, 0, None), (axes, 0), block)
            f = sharded(f, (specs, P("batch"), P()), (specs, P("batch")))
            chunk_fns[n] = jax.jit(f, out_shardings=(carry_sh, batch), donate_argnums=donate)
        return chunk_fns[n]

    eval_fn = jax.jit(sharded(blocked_vmap(train.evaluate, (axes,), 0, block), (specs,), P("batch")),
                      out_shardings=batch)
    abstract = jax.eval_shape(init_fn, keys, hps)  # shapes and shardings, nothing compiled
    start0 = jax.device_put(jnp.int32(0), repl)
    abstract_metrics = jax.eval_shape(chunk_fn(lengths[0]), abstract, hps, start0)[1]
    return SimpleNamespace(config=config, C=C, S=S, B=B, D=D, Bp=Bp, train=train, lengths=lengths, keys=keys,
                           hps=hps, init_fn=init_fn, chunk_fn=chunk_fn, eval_fn=eval_fn, abstract=abstract,
                           abstract_metrics=abstract_metrics, start0=start0, repl=repl)


def run_group(algo, group: Group, num_seeds: int, seed: int = 0, chunks: int = 1,
              checkpoint_dir: Optional[str] = None, resume: bool = False, memory_limit_mb: float = 0.0,
              stop_after: Optional[int] = None, log: Callable = print, block: int = 0) -> dict:
    """Train every configuration of ``group`` x ``num_seeds`` seeds as one sharded program.

    Returns {"metrics": {name: [C, S, U]}, "final_return": [C, S] (None if stopped early),
    "compile_seconds", "run_seconds", "env_steps_per_second", "programs_compiled",
    "memory"}. ``stop_after``: stop (checkpointed) after that many chunks, as an
    interruption would.
    """
    import jax
    import jax.numpy as jnp

    pr = _prepare(algo, group, num_seeds, seed, chunks, block=block)
    config, C, S, B, D, Bp = pr.config, pr.C, pr.S, pr.B, pr.D, pr.Bp
    train, lengths, hps, abstract, abstract_metrics = pr.train, pr.lengths, pr.hps, pr.abstract, pr.abstract_metrics
    num_updates, start0, chunk_fn, eval_fn = train.num_updates, pr.start0, pr.chunk_fn, pr.eval_fn
    memory = estimate_memory(abstract, abstract_metrics, D)  # from shapes only, before compiling
    check_memory(memory, Bp, D, _shared_limit_mb(memory_limit_mb))

    store = None
    done_chunks, metrics = 0, {}
    if checkpoint_dir:
        from purejaxpg.engine.checkpoint import CheckpointStore

        store = CheckpointStore(checkpoint_dir)
    t0 = time.perf_counter()
    compiled_chunks = {n: chunk_fn(n).lower(abstract, hps, start0).compile() for n in sorted(set(lengths))}
    compiled_eval = eval_fn.lower(abstract).compile()
    if resume and store is not None and store.latest():
        done_chunks = store.latest()
        done = sum(lengths[:done_chunks])
        shapes = {k: ((Bp, done), v.dtype) for k, v in abstract_metrics.items()}
        carry, metrics = store.restore(done_chunks, abstract, shapes)  # abstract: shapes and shardings
        metrics = {k: [v] for k, v in metrics.items()}
        log(f"resumed from {checkpoint_dir} after chunk {done_chunks}/{len(lengths)} ({done} updates)")
    else:
        carry = pr.init_fn(pr.keys, hps)
    carry = jax.block_until_ready(carry)
    compile_s = time.perf_counter() - t0

    run_s = ckpt_s = 0.0
    first_chunk = done_chunks
    try:
        for k in range(done_chunks, len(lengths)):
            if stop_after is not None and k >= stop_after:
                break
            start = sum(lengths[:k])
            t = time.perf_counter()
            carry, m = compiled_chunks[lengths[k]](carry, hps, jax.device_put(jnp.int32(start), pr.repl))
            carry = jax.block_until_ready(carry)
            run_s += time.perf_counter() - t
            for name, v in m.items():
                metrics.setdefault(name, []).append(_to_host(v))
            done_chunks = k + 1
            if store is not None:
                t = time.perf_counter()
                store.save(done_chunks, carry, {n: np.concatenate(v, 1) for n, v in metrics.items()})
                ckpt_s += time.perf_counter() - t
            if len(lengths) > 1:
                log(f"chunk {done_chunks}/{len(lengths)} done ({start + lengths[k]}/{num_updates} updates)")
    except KeyboardInterrupt:
        if store is not None:
            store.close()
            log(f"interrupted: the last checkpoint (chunk {done_chunks}) in {checkpoint_dir} is usable; "
                f"continue with --resume")
        raise
    if store is not None:
        store.close()

    metrics = {n: np.concatenate(v, 1)[:B].reshape((C, S, -1)) for n, v in metrics.items()}
    final, eval_s = None, 0.0
    if done_chunks == len(lengths):
        t = time.perf_counter()
        final = _to_host(compiled_eval(carry)).mean(-1)[:B].reshape(C, S)
        eval_s = time.perf_counter() - t
    updates_run = sum(lengths[first_chunk:done_chunks])  # in this process (a resumed run: the rest)
    steps = B * updates_run * config.batch_size  # the real runs' env steps (padding is wasted work)
    return {"updates_run": updates_run, "resumed_from_chunk": first_chunk, "metrics": metrics,
            "final_return": final, "carry": carry, "train": train,
            "compile_seconds": compile_s, "run_seconds": run_s, "eval_seconds": eval_s, "checkpoint_seconds": ckpt_s,
            "env_steps_per_second": (steps / run_s) if run_s > 0 else None,
            "programs_compiled": len(compiled_chunks), "chunks": len(lengths), "chunks_done": done_chunks,
            "num_runs": B, "num_devices": D, "memory": memory}


# ---- a whole sweep -----------------------------------------------------------------

def _jsonable(x):
    if isinstance(x, tuple):
        return list(x)
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    return x


def _untuple(d: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def sweep(algo_name: str, out_dir: str, base: Optional[dict] = None, grid: Optional[dict] = None,
          ranges: Optional[dict] = None, samples: int = 0, num_seeds: int = 8, seed: int = 0,
          chunks: int = 1, preset: str = "auto", memory_limit_mb: float = 0.0, single: bool = False,
          stop_after: Optional[int] = None, quiet: bool = False, block: int = 0) -> dict:
    """Plan, validate, run every group, write the outputs. ``single``: one configuration
    written at ``out_dir`` itself (a plain chunked run) instead of one directory per
    configuration."""
    if int(num_seeds) <= 0:
        raise ValueError(f"num_seeds must be a positive integer, got {num_seeds}")
    if int(block) < 0:
        raise ValueError(f"block must be >= 0 (0: no blocks), got {block}")
    points = configurations(grid or {}, ranges or {}, samples, seed, algo_name)
    if single and len(points) != 1:
        raise ValueError("a single run takes no --grid or --range")
    spec = {"algo": algo_name, "preset": preset, "base": _jsonable(dict(base or {})),
            "points": [_jsonable(p) for p in points], "num_seeds": int(num_seeds), "seed": int(seed),
            "chunks": int(chunks), "memory_limit_mb": float(memory_limit_mb), "single": bool(single),
            "grid": _jsonable(dict(grid or {})), "ranges": {k: list(v) for k, v in (ranges or {}).items()},
            "samples": int(samples), "block": int(block)}
    return _execute(spec, out_dir, resume=False, stop_after=stop_after, quiet=quiet)


def resume(out_dir: str, stop_after: Optional[int] = None, quiet: bool = False) -> dict:
    """Continue the run in ``out_dir`` from its last checkpoint (same plan, same programs)."""
    path = os.path.join(out_dir, RUN_FILE)
    if not os.path.exists(path):
        raise ValueError(f"{out_dir} holds no {RUN_FILE}: not a chunked run made by purejaxpg sweep/train --chunks")
    with open(path) as f:
        spec = json.load(f)
    return _execute(spec, out_dir, resume=True, stop_after=stop_after, quiet=quiet)


def load_plan(spec: dict):
    from purejaxpg.algos import get_algo

    algo = get_algo(spec["algo"])
    points = [_untuple(p) for p in spec["points"]]
    return algo, plan_groups(spec["algo"], _untuple(spec["base"]), points, spec["preset"])


def _execute(spec: dict, out_dir: str, resume: bool, stop_after: Optional[int], quiet: bool) -> dict:
    import jax

    quiet = quiet or jax.process_index() != 0  # several processes: process 0 reports
    log = (lambda *a: None) if quiet else (lambda msg: print(msg, flush=True))
    algo, groups = load_plan(spec)
    for g in groups:  # fail before writing anything
        chunk_lengths(g.config.num_updates, spec["chunks"])
    writer = jax.process_index() == 0
    if writer:
        os.makedirs(out_dir, exist_ok=True)
        if not resume:
            with open(os.path.join(out_dir, RUN_FILE), "w") as f:
                json.dump(spec, f, indent=2)
    if len(groups) > 1:
        log(f"{len(groups)} programs: the configurations differ in static (shape-changing) fields")
    results = []
    for gi, g in enumerate(groups):
        ckpt = os.path.join(out_dir, "checkpoints", f"group{gi}")
        r = run_group(algo, g, spec["num_seeds"], spec["seed"], spec["chunks"], ckpt, resume,
                      spec["memory_limit_mb"], stop_after, log, spec.get("block", 0))
        results.append((g, r))
        if r["final_return"] is None:
            return {"stopped": True, "groups": results}
    rows = []
    for g, r in results:
        for c, name in enumerate(g.names):
            summary = _write_config(out_dir if spec["single"] else os.path.join(out_dir, name), spec, g, c, r,
                                    writer)
            fr = summary["final_return"]
            per = np.asarray(r["final_return"][c], np.float64)
            finite = per[np.isfinite(per)]
            iqm_ci = list(stats.bootstrap_ci(finite, stats.iqm)) if finite.size else [None, None]
            rows.append({"name": name, "swept": _jsonable(g.swept[c]), "iqm": fr["iqm"], "iqm_ci95": iqm_ci,
                         "mean": fr["mean"], "mean_ci95": fr["ci95"], "num_nonfinite": fr["num_nonfinite"],
                         "env_steps_per_second": r["env_steps_per_second"]})
    rows.sort(key=lambda row: -np.inf if row["iqm"] is None else row["iqm"], reverse=True)
    info = {"algo": spec["algo"], "num_seeds": spec["num_seeds"], "num_configurations": len(rows),
            "programs": len(groups), "devices": results[0][1]["num_devices"],
            "compile_seconds": sum(r["compile_seconds"] for _, r in results),
            "run_seconds": sum(r["run_seconds"] for _, r in results),
            "programs_compiled": sum(r["programs_compiled"] for _, r in results),
            "memory_per_device_bytes": max(r["memory"]["per_device_bytes"] for _, r in results),
            "table": rows}
    if writer and not spec["single"]:
        with open(os.path.join(out_dir, "sweep.json"), "w") as f:
            json.dump(info, f, indent=2)
        text = format_table(rows)
        with open(os.path.join(out_dir, "table.txt"), "w") as f:
            f.write(text + "\n")
        plot_sweep(os.path.join(out_dir, "sweep.png"), rows, spec)
    return {"stopped": False, "groups": results, "info": info}


def _write_config(path, spec, g, c, r, writer) -> dict:
    from purejaxpg.engine.experiment import write_outputs

    config = g.config
    metrics = {k: v[c] for k, v in r["metrics"].items()}
    final = r["final_return"][c]
    num_runs_steps = r["num_runs"] * r["updates_run"] * config.batch_size  # env steps this process ran
    summary = {
        "algo": spec["algo"], "env": config.env, "num_seeds": spec["num_seeds"],
        "total_timesteps": int(config.num_updates * config.batch_size),
        "final_return": stats.summarize(final),
        "compile_seconds": r["compile_seconds"], "run_seconds": r["run_seconds"],
        "env_steps_per_second": num_runs_steps / r["run_seconds"] if r["run_seconds"] > 0 else None,
        "resumed": bool(r["resumed_from_chunk"]),
        "versions": versions(),
        "swept": _jsonable(g.swept[c]),
    }
    if writer:
        env_steps = (np.arange(config.num_updates) + 1) * config.batch_size
        write_outputs(path, spec["algo"], config, g.hparams[c], spec["num_seeds"], spec["seed"], metrics,
                      env_steps, final, summary)
    return summary


def _fmt_num(v, width=9):
    return f"{'n/a':>{width}}" if v is None else f"{v:>{width}.1f}"


def format_table(rows: list) -> str:
    """Configurations sorted by IQM of the final return, with 95% bootstrap CIs."""
    swept = sorted({k for row in rows for k in row["swept"]})
    head = f"{'rank':>4}  " + "  ".join(f"{k:>10}" for k in swept) + \
        f"  {'IQM':>9}  {'IQM 95% CI':>21}  {'mean':>9}  {'mean 95% CI':>21}"
    lines = [head, "-" * len(head)]
    for i, row in enumerate(rows):
        vals = []
        for k in swept:
            v = row["swept"].get(k, "")
            vals.append(f"{v:>10.4g}" if isinstance(v, float) else f"{str(v):>10}")
        ci = row["iqm_ci95"]
        mci = row["mean_ci95"]
        lines.append(f"{i + 1:>4}  " + "  ".join(vals) + f"  {_fmt_num(row['iqm'])}  "
                     f"[{_fmt_num(ci[0])}, {_fmt_num(ci[1])}]  {_fmt_num(row['mean'])}  "
                     f"[{_fmt_num(mci[0])}, {_fmt_num(mci[1])}]")
    return "\n".join(lines)


def plot_sweep(path: str, rows: list, spec: dict) -> None:
    """One panel per swept setting: final-return IQM of each configuration against its
    value, with the 95% bootstrap CI of the IQM as error bars."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    names = sorted({k for row in rows for k in row["swept"] if not isinstance(row["swept"][k], (list, str, bool))})
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(4.5 * max(1, len(names)), 3.6), dpi=120, squeeze=False)
    for ax, name in zip(axes[0], names or [None]):
        if name is None:
            break
        pts = [(row["swept"][name], row["iqm"], row["iqm_ci95"]) for row in rows if row["iqm"] is not None]
        if not pts:
            continue
        x = np.asarray([p[0] for p in pts], np.float64)
        y = np.asarray([p[1] for p in pts], np.float64)
        lo = np.asarray([p[2][0] if p[2][0] is not None else p[1] for p in pts], np.float64)
        hi = np.asarray([p[2][1] if p[2][1] is not None else p[1] for p in pts], np.float64)
        ax.errorbar(x, y, yerr=[y - lo, hi - y], fmt="o", capsize=3, alpha=0.8)
        rng = spec.get("ranges", {}).get(name)
        if (rng and rng[2] == "log") or (np.all(x > 0) and x.max() / x.min() >= 10):
            ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.set_ylabel("final return (IQM, 95% CI)")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{spec['algo']} sweep: {len(rows)} configurations x {spec['num_seeds']} seeds")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def restore_latest(spec: dict, out_dir: str, group_index: int, config=None):
    """(prepared group, carry, chunks done) from the last checkpoint of a group of the run
    in ``out_dir``; ``config`` may change evaluation-only fields (episodes, greediness)."""
    from purejaxpg.engine.checkpoint import CheckpointStore

    algo, groups = load_plan(spec)
    g = groups[group_index]
    pr = _prepare(algo, g, spec["num_seeds"], spec["seed"], spec["chunks"], config, spec.get("block", 0))
    store = CheckpointStore(os.path.join(out_dir, "checkpoints", f"group{group_index}"))
    k = store.latest()
    if not k:
        raise ValueError(f"{out_dir}: group {group_index} has no checkpoint yet")
    done = sum(pr.lengths[:k])
    shapes = {n: ((pr.Bp, done), v.dtype) for n, v in pr.abstract_metrics.items()}
    carry, _ = store.restore(k, pr.abstract, shapes)
    store.close()
    return g, pr, carry, k
