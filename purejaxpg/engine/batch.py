"""A group's runs as one program over all devices: the batch axis, its sharding, and the
compiled init / chunk / evaluate functions.

The runs of a group, configurations x seeds (``run b = c * S + s``), form one batch axis.
Seed ``s`` uses the same key in every configuration (common random numbers). The axis is
padded to a multiple of devices x block with copies of the last run (dropped afterwards)
and sharded over every device of every process (a 1-D ``Mesh`` named ``"batch"``). Each
device runs the single-device program on its slice (``shard_map``), so a run's numbers do
not depend on how many devices share the batch; ``block=K`` vmaps K runs at a time
(``blocked_vmap``), which makes them bit-identical for any device count (XLA's CPU code
for a reduction depends on the vmapped batch size).

The runner's chunks go through one compiled function, ``Batch.steps``: a loop over updates
of the batched update whose length ``n`` is an argument (up to ``capacity``), so chunks of
any length reuse one program; its results are those of a ``lax.scan`` of ``n`` updates
(``Batch.chunk(n)``), bit for bit. ``steps`` has no host callback, so JAX's persistent
compilation cache keeps it (engine.cache); the runner reports progress from the host
between calls. ``Batch.chunk`` can still report from inside the program: ``report(i,
metrics)`` is called on the host through ``jax.debug.callback`` with every run's metrics
([padded runs] each, gathered from all devices), about 20 times per run.

The loop also records, per run, the first update after which anything the program watches
(``Program.watch``: parameters, optimiser state, losses) is non-finite: ``first_nonfinite``,
-1 while everything is finite.
"""
from __future__ import annotations

import functools
import math
import os
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from purejaxpg.engine.program import Program

AXIS = "batch"


def blocked_vmap(f, in_axes, out_axes, block: int = 0):
    """``jax.vmap(f, in_axes, out_axes)``, or with ``block`` > 0 the same map computed
    ``block`` runs at a time: a ``lax.scan`` over blocks of a ``vmap`` of width ``block``.

    ``in_axes``/``out_axes``: one entry per argument/output, each 0, None or a pytree of
    0/None matching it. The batch must be a multiple of ``block``. Outputs with axis None
    must be the same for every block (the last block's is returned)."""
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


def compile_lowered(lowered, cpu_options: Optional[dict] = None):
    """``lowered.compile()``, with ``cpu_options`` (XLA options by name) on the CPU backend,
    except those ``XLA_FLAGS`` names (the user's setting stands). Some are XLA's experimental
    options, which a later jaxlib may rename or drop: one it rejects is left out, with a
    warning, rather than failing the run."""
    user = os.environ.get("XLA_FLAGS", "")
    options = {k: v for k, v in (cpu_options or {}).items() if not re.search(rf"--{k}(=|\s|$)", user)}
    if not options or jax.default_backend() != "cpu":
        return lowered.compile()
    try:
        return lowered.compile(compiler_options=options)
    except jax.errors.JaxRuntimeError as e:
        if not any(name in str(e) for name in options):
            raise
        warnings.warn(f"XLA rejected the compile options {sorted(options)} ({str(e).splitlines()[0]}); "
                      "compiling without them", RuntimeWarning, stacklevel=2)
        return lowered.compile()


def to_host(x) -> np.ndarray:
    """A global array as a NumPy array on every process."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def to_global(x: np.ndarray, sharding):
    """A global array sharded like ``sharding`` from a host array every process holds."""
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def _is_none(a) -> bool:
    return a is None


@dataclass
class Batch:
    """The runs of one group on the devices, with their compiled functions."""

    program: Program
    num_configs: int
    num_seeds: int
    num_devices: int
    padded: int  # runs on the devices: num_runs padded to a multiple of devices x block
    keys: Any  # [padded, 2] global uint32
    hparams: dict  # {name: [padded] global float32}
    init: Callable  # (keys, hparams) -> carry
    evaluate: Callable  # carry -> [padded, num_eval_episodes]
    abstract: Any  # the batched carry's shapes and shardings
    axes: Any  # the vmap axis of every leaf of a carry
    replicated: Any  # the sharding of values every device holds whole
    _chunk: Callable
    _compiled: dict
    capacity: int = 0  # the most updates one call of ``steps`` runs
    _steps: Optional[Callable] = None
    _steps_compiled: Any = None
    _init_compiled: Any = None
    _evaluate_compiled: Any = None

    @property
    def num_runs(self) -> int:
        return self.num_configs * self.num_seeds

    @property
    def programs_compiled(self) -> int:
        return len(self._compiled) + (self._steps_compiled is not None)

    def steps(self):
        """The compiled function of a chunk of any length up to ``capacity``: (carry, hparams,
        start, n, first_nonfinite) -> (carry, {name: [padded, capacity]}, first_nonfinite);
        updates ``start .. start + n - 1`` run, and the metrics' first ``n`` columns are
        theirs. ``first_nonfinite`` [padded] int32: -1, or the first update after which the
        run's watched state was non-finite (kept when already set)."""
        if self._steps_compiled is None:
            scalar = self._start()
            first = jax.ShapeDtypeStruct((self.padded,), jnp.int32, sharding=self.keys.sharding)
            self._steps_compiled = self._compile(self._steps.lower(self.abstract, self.hparams, scalar, scalar, first))
        return self._steps_compiled

    def _compile(self, lowered):
        return compile_lowered(lowered, self.program.cpu_compiler_options)

    def init_compiled(self):
        """The compiled ``init``: (keys, hparams) -> carry."""
        if self._init_compiled is None:
            self._init_compiled = self._compile(self.init.lower(self.keys, self.hparams))
        return self._init_compiled

    def evaluate_compiled(self):
        """The compiled ``evaluate``: carry -> [padded, num_eval_episodes]."""
        if self._evaluate_compiled is None:
            self._evaluate_compiled = self._compile(self.evaluate.lower(self.abstract))
        return self._evaluate_compiled

    def compiled(self) -> dict:
        """The three compiled programs of a run, compiled now where they are not yet: each
        traced, lowered and compiled in a thread of its own, so that one program's tracing
        (Python) runs while XLA compiles another (XLA releases the GIL). The programs are the
        same as compiled one after another; on 2 cores PPO's first compile took about 1 s less
        (benchmarks/NOTES.md, "Compile time: three programs at once")."""
        with ThreadPoolExecutor(3, thread_name_prefix="purejaxpg-compile") as pool:
            futures = {name: pool.submit(f) for name, f in (("steps", self.steps), ("init", self.init_compiled),
                                                            ("evaluate", self.evaluate_compiled))}
            return {name: futures[name].result() for name in ("init", "steps", "evaluate")}

    def no_nonfinite(self):
        """``first_nonfinite`` of runs that have not started: -1 everywhere."""
        return to_global(np.full(self.padded, -1, np.int32), self.keys.sharding)

    def scalar(self, value: int):
        """An int32 argument of ``steps`` (``start``, ``n``)."""
        return jax.device_put(jnp.int32(value), self.replicated)

    def chunk(self, n: int):
        """The compiled function of a chunk of ``n`` updates: (carry, hparams, start) ->
        (carry, {name: [padded, n]})."""
        if n not in self._compiled:
            self._compiled[n] = self._compile(self._chunk(n).lower(self.abstract, self.hparams, self._start()))
        return self._compiled[n]

    def start(self, update: int):
        """The first update of a chunk, as the chunk function takes it."""
        return jax.device_put(jnp.int32(update), self.replicated)

    def _start(self):
        return jax.ShapeDtypeStruct((), jnp.int32, sharding=self.replicated)

    def metric_shapes(self, n: int) -> dict:
        """{name: ShapeDtypeStruct [padded, n]} of a chunk of ``n`` updates."""
        return jax.eval_shape(self._chunk(n), self.abstract, self.hparams, self._start())[1]

    def run_carry(self, carry, config_index: int, seed_index: int):
        """The carry of one run (configuration ``config_index``, seed ``seed_index``)."""
        b = config_index * self.num_seeds + seed_index
        return jax.tree_util.tree_map(lambda a, x: x if a is None else x[b], self.axes, carry, is_leaf=_is_none)


# leaves up to this many elements are checked together (one concatenation per dtype); larger
# ones (a replay buffer, where a program watches its whole carry) alone, without a copy
_CHECKED_TOGETHER = 1 << 16


def nonfinite(tree):
    """Whether any floating-point value of ``tree`` is NaN or infinite (a bool scalar).

    The small leaves of a dtype are concatenated and checked as one array: one reduction
    where a reduction per leaf (parameters, both Adam moments, the losses: about 40 in PPO)
    put about 80 kernels into every update and 0.3-0.7 s into PPO's first compile
    (benchmarks/NOTES.md, "Compile time: three programs at once")."""
    leaves = [x for x in jax.tree_util.tree_leaves(tree) if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
    alone, together = [], {}
    for x in leaves:
        if jnp.size(x) > _CHECKED_TOGETHER:
            alone.append(x)
        else:
            together.setdefault(jnp.result_type(x), []).append(jnp.ravel(x))
    arrays = alone + [jnp.concatenate(xs) for xs in together.values()]
    if not arrays:
        return jnp.zeros((), bool)
    return ~jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in arrays]))


def prepare(program: Program, hparams: list, num_seeds: int, seed: int, block: int = 0,
            report: Optional[Callable] = None, every: int = 1, capacity: int = 0, shapes: Optional[tuple] = None,
            compiled: Optional[dict] = None, population: Optional[tuple] = None) -> Batch:
    """The batch of ``len(hparams)`` configurations x ``num_seeds`` seeds of ``program``
    (nothing compiled yet). ``report(i, metrics)``: called on the host by ``Batch.chunk``'s
    programs (not ``steps``) after update ``i`` when ``(i + 1) % every == 0`` or at the
    last update, metrics {name: [padded]}.
    ``capacity``: the longest chunk ``Batch.steps`` runs (default: the whole run).
    ``shapes``: ``program_shapes(program, hparam names)`` if already known; ``compiled``:
    the ``Batch.compiled()`` of this same batch made earlier (engine.cache stores them):
    then nothing is traced.
    ``population``: ``(ready(i), step(carry, metrics, i, axes))`` (engine.population): after
    update ``i`` where ``ready(i)``, ``step`` maps the whole batch of carries and metrics
    (gathered from every device) to new ones, inside the program."""
    C, S = len(hparams), int(num_seeds)
    B = C * S
    mesh = Mesh(np.asarray(jax.devices()), (AXIS,))
    D = mesh.devices.size
    padded = math.ceil(B / (D * max(1, block))) * D * max(1, block)
    pick = np.minimum(np.arange(padded), B - 1)  # padding repeats the last run
    seed_keys = np.asarray(jax.random.split(jax.random.PRNGKey(seed), S))
    keys_host = np.tile(seed_keys, (C, 1))[pick]  # run b = c * S + s uses seed key s
    hp_host = {k: np.asarray([h[k] for h in hparams], np.float32).repeat(S)[pick] for k in hparams[0]}

    batch, repl = NamedSharding(mesh, P(AXIS)), NamedSharding(mesh, P())
    keys = to_global(keys_host, batch)
    hps = {k: to_global(v, batch) for k, v in hp_host.items()}
    one, run_metrics = shapes or program_shapes(program, list(hp_host))
    axes = program.axes(one)
    carry_sharding = jax.tree_util.tree_map(lambda a: repl if a is None else batch, axes, is_leaf=_is_none)
    specs = jax.tree_util.tree_map(lambda a: P() if a is None else P(AXIS), axes, is_leaf=_is_none)

    def sharded(f, in_specs, out_specs):
        return jax.shard_map(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)

    init = jax.jit(sharded(blocked_vmap(program.init, (0, 0), axes, block), (P(AXIS), P(AXIS)), specs),
                   out_shardings=carry_sharding)
    update = blocked_vmap(program.update, (axes, 0, None), (axes, 0), block)
    last = program.num_updates - 1

    def mixed(c, m, i):
        """The population step after update ``i`` (a no-op without a population)."""
        if population is None:
            return c, m
        ready, step = population
        if D == 1:
            return jax.lax.cond(ready(i), lambda c, m, i: step(c, m, i, axes), lambda c, m, i: (c, m), c, m, i)
        local = m[next(iter(m))].shape[0]

        def gathered(c, m, i):
            tu = jax.tree_util
            gather = functools.partial(jax.lax.all_gather, axis_name=AXIS, tiled=True)
            c = tu.tree_map(lambda a, x: x if a is None else gather(x), axes, c, is_leaf=_is_none)
            c, m = step(c, tu.tree_map(gather, m), i, axes)
            mine = functools.partial(jax.lax.dynamic_slice_in_dim, start_index=jax.lax.axis_index(AXIS) * local,
                                     slice_size=local, axis=0)
            return tu.tree_map(lambda a, x: x if a is None else mine(x), axes, c, is_leaf=_is_none), tu.tree_map(mine, m)

        return jax.lax.cond(ready(i), gathered, lambda c, m, i: (c, m), c, m, i)

    def chunk_fn(n: int):
        def run(carry, hp, start):
            def body(c, i):
                c, m = mixed(*update(c, hp, i), i)
                if report is not None:
                    everything = jax.lax.all_gather(m, AXIS, tiled=True) if D > 1 else m
                    now = (((i + 1) % every == 0) | (i == last)) & (jax.lax.axis_index(AXIS) == 0)
                    jax.lax.cond(now, lambda: jax.debug.callback(report, i, everything), lambda: None)
                return c, m

            carry, metrics = jax.lax.scan(body, carry, start + jnp.arange(n, dtype=jnp.int32))
            return carry, {k: v.T for k, v in metrics.items()}  # [runs, n]

        donate = (0,) if jax.devices()[0].platform != "cpu" else ()
        return jax.jit(sharded(run, (specs, P(AXIS), P()), (specs, P(AXIS))),
                       out_shardings=(carry_sharding, batch), donate_argnums=donate)

    capacity = int(capacity) or program.num_updates

    def watched_update(carry, hp, i):
        carry, metrics = program.update(carry, hp, i)
        return carry, metrics, nonfinite(program.watched(carry, metrics, i))

    checked = blocked_vmap(watched_update, (axes, 0, None), (axes, 0, 0), block)

    def steps(carry, hp, start, n, first):
        local = first.shape[0]
        buffers = {k: jnp.zeros((capacity, local) + v.shape, v.dtype) for k, v in run_metrics.items()}

        def body(state):
            j, c, bufs, first = state
            i = start + j
            c, m, bad = checked(c, hp, i)
            c, m = mixed(c, m, i)
            first = jnp.where((first < 0) & bad, i, first)
            bufs = {k: jax.lax.dynamic_update_index_in_dim(bufs[k], m[k], j, 0) for k in bufs}
            return j + 1, c, bufs, first

        _, carry, buffers, first = jax.lax.while_loop(lambda state: state[0] < n, body,
                                                      (jnp.zeros((), jnp.int32), carry, buffers, first))
        return carry, {k: jnp.moveaxis(v, 0, 1) for k, v in buffers.items()}, first  # [runs, capacity]

    donate = (0,) if jax.devices()[0].platform != "cpu" else ()
    steps_fn = jax.jit(sharded(steps, (specs, P(AXIS), P(), P(), P(AXIS)), (specs, P(AXIS), P(AXIS))),
                       out_shardings=(carry_sharding, batch, batch), donate_argnums=donate)
    evaluate = jax.jit(sharded(blocked_vmap(program.evaluate, (axes,), 0, block), (specs,), P(AXIS)),
                       out_shardings=batch)
    if compiled:
        abstract = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                                          compiled["init"].out_info)
    else:
        abstract = jax.eval_shape(init, keys, hps)
    compiled = compiled or {}
    return Batch(program, C, S, D, padded, keys, hps, init, evaluate, abstract, axes, repl, chunk_fn, {},
                 capacity, steps_fn, compiled.get("steps"), compiled.get("init"), compiled.get("evaluate"))


def program_shapes(program: Program, hparam_names) -> tuple:
    """(carry, metrics) shapes of one run of ``program``: ``init``'s output and one
    ``update``'s metrics (traced, nothing compiled)."""
    hp = {k: jax.ShapeDtypeStruct((), jnp.float32) for k in hparam_names}
    one = jax.eval_shape(program.init, jax.ShapeDtypeStruct((2,), jnp.uint32), hp)
    metrics = jax.eval_shape(program.update, one, hp, jax.ShapeDtypeStruct((), jnp.int32))[1]
    return one, metrics
