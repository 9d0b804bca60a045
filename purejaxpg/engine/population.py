"""Population-based training inside the one compiled program.

A population of P members is a batch of P runs of one configuration, run ``m`` using seed
key ``m`` (engine.batch: one configuration x P seeds). ``wrap`` turns an algorithm's
``Program`` into a member's program whose carry also holds the member's traced
hyperparameters (so they can change during the run) and its recent returns:

    carry = {"inner": the algorithm's carry, "hp": {name: float32 scalar},
             "window_return": float32 scalar, "window_episodes": float32 scalar}

``init`` draws the ranged hyperparameters from the member's own key (``draw``; the inner
program is initialised with the key itself, as in a plain sweep); the others keep the
values of the configuration.

``mixer`` gives the step the runner's chunk loop (engine.batch) applies to the whole
population after every update ``i`` with ``(i + 1) % ready_every == 0`` (and before the last
update): members are ranked by the mean return of the episodes that finished since the
last ready step (computed in the program), the bottom fraction ``q`` copy the complete
state of a member drawn uniformly from the top fraction ``q`` (every batched leaf of the
algorithm's carry except its PRNG keys: parameters, optimiser state, normaliser and env
state), and those that copied explore their hyperparameters: ``perturb`` multiplies each
ranged one by a factor drawn from the given ones, ``resample`` draws it anew from its range
with probability p (perturbing by 0.8 or 1.2 otherwise); both are clipped into the range.
Its randomness is ``fold_in(PRNGKey(seed), i)``: a function of the update index only, so a
run cut into chunks, or stopped and resumed, is bit-identical to one run straight through.

Per update every member reports its hyperparameters (``hp_NAME``) and ``pbt_parent``: -1
except at ready steps, where it is the member whose state it holds from then on (itself
when it was not exploited). ``lineage`` reads these back into ``lineage.json``.
"""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from purejaxpg.engine.program import Program

EXPLOIT_HELP = "truncation:Q (the bottom fraction Q copy a member of the top Q; 0 < Q <= 0.5) or none"
EXPLORE_HELP = "perturb:F1,F2,... (multiply by one of the factors), resample:P (draw anew with probability P, " \
               "else perturb by 0.8 or 1.2) or none"


# ---- parsing ------------------------------------------------------------------------

def parse_exploit(text: str) -> tuple:
    """``"truncation:0.25"`` -> ("truncation", 0.25); ``"none"`` -> ("none", 0.0)."""
    kind, _, arg = str(text).strip().partition(":")
    if kind == "none" and not arg:
        return ("none", 0.0)
    if kind == "truncation":
        try:
            q = float(arg)
        except ValueError:
            q = math.nan
        if 0 < q <= 0.5:
            return ("truncation", q)
    raise ValueError(f"--exploit expects {EXPLOIT_HELP}, got {text!r}")


def parse_explore(text: str) -> tuple:
    """``"perturb:0.8,1.2"`` -> ("perturb", (0.8, 1.2)); ``"resample:0.25"`` ->
    ("resample", (0.25,)); ``"none"`` -> ("none", ())."""
    kind, _, arg = str(text).strip().partition(":")
    if kind == "none" and not arg:
        return ("none", ())
    try:
        values = tuple(float(v) for v in arg.split(",")) if arg else ()
    except ValueError:
        values = ()
    ok = all(math.isfinite(v) for v in values)
    if kind == "perturb" and values and ok and all(v > 0 for v in values):
        return ("perturb", values)
    if kind == "resample" and len(values) == 1 and ok and 0 <= values[0] <= 1:
        return ("resample", values)
    raise ValueError(f"--explore expects {EXPLORE_HELP}, got {text!r}")


def check_settings(pbt: dict, spec, num_updates: Optional[int] = None) -> None:
    """One-line ValueError for a bad population: size, ready interval, exploit/explore
    specs, ranges over anything but traced hyperparameters of ``spec``."""
    P = pbt.get("population")
    if not isinstance(P, int) or P < 2:
        raise ValueError(f"--population must be an integer >= 2, got {P!r}")
    every = pbt.get("ready_every")
    if not isinstance(every, int) or every < 0:
        raise ValueError(f"--ready-every must be an integer >= 0 (0: about 20 ready steps per run), got {every!r}")
    parse_exploit(pbt.get("exploit", "none"))
    parse_explore(pbt.get("explore", "none"))
    ranges = pbt.get("ranges") or {}
    for name in ranges:
        s = spec[name]
        if not s.traced:
            traced = ", ".join(t.name for t in spec.traced_settings())
            raise ValueError(f"--range {name}: a static setting (it fixes shapes or the program), PBT can explore "
                             f"only traced hyperparameters: {traced}")
    if pbt.get("exploit", "none") != "none" and int(P * parse_exploit(pbt["exploit"])[1]) < 1:
        raise ValueError(f"--exploit {pbt['exploit']} with --population {P} moves no member "
                         f"(Q x P must be at least 1)")


def ready_every(pbt: dict, num_updates: int) -> int:
    """Updates between ready steps: ``ready_every``, or with 0 about 20 per run."""
    return int(pbt["ready_every"]) or max(1, num_updates // 20)


# ---- pure pieces ----------------------------------------------------------------------

def draw(key, ranges: dict) -> dict:
    """One value per range, uniform (``lin``) or log-uniform (``log``) in [low, high].
    ``ranges``: {name: (low, high, scale)}. Returns {name: float32 scalar}."""
    out = {}
    for j, (name, (lo, hi, scale)) in enumerate(sorted(ranges.items())):
        u = jax.random.uniform(jax.random.fold_in(key, j), (), jnp.float32)
        if scale == "log":
            v = jnp.exp(jnp.log(jnp.float32(lo)) + u * (jnp.log(jnp.float32(hi)) - jnp.log(jnp.float32(lo))))
        else:
            v = jnp.float32(lo) + u * (jnp.float32(hi) - jnp.float32(lo))
        out[name] = jnp.clip(v, jnp.float32(lo), jnp.float32(hi))
    return out


def truncation(scores, q: float, key):
    """Truncation selection. ``scores`` [P] (higher is better; NaN counts as worst):
    returns ``source`` [P] int32, the member each member holds next: the ``k = floor(q P)``
    lowest take a member drawn uniformly from the ``k`` highest, everyone else itself."""
    P = scores.shape[0]
    k = int(q * P)
    assert scores.ndim == 1 and 1 <= k <= P // 2, (scores.shape, q)
    s = jnp.where(jnp.isnan(scores), -jnp.inf, scores)
    order = jnp.argsort(s, stable=True)  # ascending: worst first, ties by index
    bottom, top = order[:k], order[P - k:]
    pick = top[jax.random.randint(key, (k,), 0, k)]
    return jnp.arange(P, dtype=jnp.int32).at[bottom].set(pick.astype(jnp.int32))


def copy_rows(tree, source, copy):
    """Each batched leaf ``x`` [P, ...] of ``tree`` replaced by ``x[source]`` where
    ``copy`` (a pytree of bools matching ``tree``) says so; other leaves unchanged."""
    return jax.tree_util.tree_map(lambda x, c: x[source] if c else x, tree, copy)


def explore(hp: dict, moved, key, ranges: dict, kind: str, args: tuple) -> dict:
    """New hyperparameters {name: [P]}: members with ``moved`` [P] bool change each ranged
    one (``perturb``: times a factor drawn from ``args``; ``resample``: drawn anew from the
    range with probability ``args[0]``, else times 0.8 or 1.2), clipped into the range."""
    if kind == "none":
        return hp
    out = dict(hp)
    for j, (name, (lo, hi, scale)) in enumerate(sorted(ranges.items())):
        x = hp[name]
        k_factor, k_coin, k_new = jax.random.split(jax.random.fold_in(key, j), 3)
        factors = jnp.asarray(args if kind == "perturb" else (0.8, 1.2), jnp.float32)
        new = x * factors[jax.random.randint(k_factor, x.shape, 0, factors.shape[0])]
        if kind == "resample":
            fresh = jax.vmap(lambda k: draw(k, {name: (lo, hi, scale)})[name])(jax.random.split(k_new, x.shape[0]))
            new = jnp.where(jax.random.uniform(k_coin, x.shape) < args[0], fresh, new)
        out[name] = jnp.where(moved, jnp.clip(new, jnp.float32(lo), jnp.float32(hi)), x)
    return out


def copied_leaves(inner_carry, axes) -> object:
    """A pytree of bools over a batch of algorithm carries (``axes``: each leaf's batch
    axis, 0 or None): True for the leaves exploit copies: every batched leaf but the
    PRNG keys (uint32), which each member keeps."""
    return jax.tree_util.tree_map(lambda a, x: None if x is None else (a is not None and
                                  jnp.result_type(x) != jnp.uint32), axes, inner_carry, is_leaf=lambda a: a is None)


# ---- the member program and the population step ---------------------------------------

def wrap(program: Program, ranges: dict) -> Program:
    """The member program of ``program`` (see the module docstring): hyperparameters in
    the carry, ranged ones drawn at init, recent returns accumulated per update."""
    ranges = {k: tuple(v) for k, v in ranges.items()}

    def init(key, hparams):
        hp = {k: jnp.asarray(v, jnp.float32) for k, v in hparams.items()}
        hp.update(draw(jax.random.fold_in(key, 0x9B7), ranges))
        return {"inner": program.init(key, hp), "hp": hp, "window_return": jnp.zeros((), jnp.float32),
                "window_episodes": jnp.zeros((), jnp.float32)}

    def update(carry, hparams, i):
        inner, metrics = program.update(carry["inner"], carry["hp"], i)
        n = metrics.get("episodes", jnp.zeros((), jnp.float32))
        ret = jnp.where(n > 0, metrics.get("episode_return", jnp.zeros((), jnp.float32)), 0.0)
        new = {"inner": inner, "hp": carry["hp"], "window_return": carry["window_return"] + ret * n,
               "window_episodes": carry["window_episodes"] + n}
        extra = {f"hp_{k}": v for k, v in carry["hp"].items() if k in ranges}
        return new, {**metrics, **extra, "pbt_parent": jnp.int32(-1)}

    def axes(carry):
        inner = program.axes(carry["inner"])
        return {"inner": inner, "hp": {k: 0 for k in carry["hp"]}, "window_return": 0, "window_episodes": 0}

    def watch(carry, metrics, i):
        return program.watched(carry["inner"], metrics, i)

    return dataclasses.replace(program, init=init, update=update, evaluate=lambda c, key=None: program.evaluate(
        c["inner"], key), act=lambda c: program.act(c["inner"]), carry_axes=axes, watch=watch)


def mixer(pbt: dict, num_updates: int, seed: int, population: int) -> tuple:
    """``(ready(i) -> bool scalar, step(carry, metrics, i, axes) -> (carry, metrics))``: the
    population step over the whole (padded) batch of member carries [padded, ...] and their
    metrics of update ``i``, run where ``ready(i)``; ``axes``: the batch axis (0 or None) of
    every leaf of ``carry``. Rows past ``population`` are padding (kept, never chosen)."""
    every = ready_every(pbt, num_updates)
    q_kind, q = parse_exploit(pbt["exploit"])
    e_kind, e_args = parse_explore(pbt["explore"])
    ranges = {k: tuple(v) for k, v in (pbt.get("ranges") or {}).items()}
    P = population
    base = jax.random.PRNGKey(seed + 0x5EED)

    def step(carry, metrics, i, axes):
        padded = carry["window_return"].shape[0]
        key = jax.random.fold_in(base, i)
        k_select, k_explore = jax.random.split(key)
        scores = carry["window_return"][:P] / carry["window_episodes"][:P]  # NaN without episodes: worst
        if q_kind == "truncation":
            source = truncation(scores, q, k_select)
        else:
            source = jnp.arange(P, dtype=jnp.int32)
        source = jnp.concatenate([source, jnp.arange(P, padded, dtype=jnp.int32)])
        moved = source != jnp.arange(padded)
        inner = copy_rows(carry["inner"], source, copied_leaves(carry["inner"], axes["inner"]))
        hp = copy_rows(carry["hp"], source, {k: True for k in carry["hp"]})
        hp = explore(hp, moved, k_explore, ranges, e_kind, e_args)
        zero = jnp.zeros_like(carry["window_return"])
        new = {"inner": inner, "hp": hp, "window_return": zero, "window_episodes": zero}
        return new, {**metrics, "pbt_parent": source}

    def ready(i):
        return ((i + 1) % every == 0) & (i + 1 < num_updates)

    return ready, step


# ---- outputs -------------------------------------------------------------------------

def lineage(metrics: dict, final, ranges: dict, env_steps_per_update: int) -> dict:
    """lineage.json from a population's metrics {name: [P, U]} and ``final`` [P] returns:
    per member the parent at each ready step and each ranged hyperparameter per update."""
    parent = np.asarray(metrics["pbt_parent"])
    P, U = parent.shape
    ready = [int(u) for u in np.flatnonzero((parent >= 0).all(0))]
    members = []
    for m in range(P):
        members.append({
            "member": m,
            "final_return": None if final is None else float(final[m]),
            "parents": [{"update": u + 1, "env_steps": (u + 1) * env_steps_per_update, "parent": int(parent[m, u])}
                        for u in ready],
            "hparams": {k: [float(v) for v in np.asarray(metrics[f"hp_{k}"])[m]] for k in sorted(ranges)},
        })
    return {"population": P, "num_updates": U, "env_steps_per_update": env_steps_per_update,
            "ready_updates": [u + 1 for u in ready], "ranges": {k: list(v) for k, v in ranges.items()},
            "members": members}


def plot(info: dict, path: str) -> None:
    """Each ranged hyperparameter over env steps, one line per member coloured by its
    final return."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from purejaxpg.engine.outputs import atomic_path

    names = sorted(info["ranges"])
    fig, axs = plt.subplots(len(names), 1, figsize=(7, 2.8 * len(names)), squeeze=False)
    finals = np.asarray([m["final_return"] if m["final_return"] is not None else np.nan for m in info["members"]])
    lo, hi = (np.nanmin(finals), np.nanmax(finals)) if np.isfinite(finals).any() else (0.0, 1.0)
    norm = matplotlib.colors.Normalize(lo, hi if hi > lo else lo + 1)
    cmap = matplotlib.colormaps["viridis"]
    steps = (np.arange(info["num_updates"]) + 1) * info["env_steps_per_update"]
    for ax, name in zip(axs[:, 0], names):
        for m, f in zip(info["members"], finals):
            ax.plot(steps, m["hparams"][name], color=cmap(norm(f)) if np.isfinite(f) else "grey", lw=1)
        if info["ranges"][name][2] == "log":
            ax.set_yscale("log")
        ax.set_ylabel(name)
    axs[-1, 0].set_xlabel("env steps per member")
    fig.colorbar(matplotlib.cm.ScalarMappable(norm, cmap), ax=axs[:, 0].tolist(), label="final return")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)


def write_outputs(out_dir: str, metrics: dict, final, ranges: dict, env_steps_per_update: int) -> dict:
    """lineage.json and pbt.png in ``out_dir``; returns lineage.json's content."""
    from purejaxpg.engine.outputs import write_json

    info = lineage(metrics, final, ranges, env_steps_per_update)
    write_json(os.path.join(out_dir, "lineage.json"), info)
    if ranges:
        plot(info, os.path.join(out_dir, "pbt.png"))
    return info


def record(result, out_dir: Optional[str]) -> dict:
    """A population's lineage (lineage.json, pbt.png) and its part of summary.json: the
    settings, the best member and its final hyperparameters. Written when ``out_dir``."""
    from purejaxpg.engine import outputs

    r, plan = result.groups[0], result.plan
    metrics = {k: v[0] for k, v in r.metrics.items()}  # [P, U]
    final = r.final[0]
    ranges = {k: tuple(v) for k, v in plan.pbt.get("ranges", {}).items()}
    info = lineage(metrics, final, ranges, r.batch.program.env_steps_per_update)
    best = int(np.nanargmax(final)) if np.isfinite(final).any() else 0
    hp_final = {k: float(metrics[f"hp_{k}"][best, -1]) for k in sorted(ranges)}
    part = {"population": plan.num_seeds, "ready_every": ready_every(plan.pbt, r.batch.program.num_updates),
            "exploit": plan.pbt["exploit"], "explore": plan.pbt["explore"], "ranges": info["ranges"],
            "ready_updates": info["ready_updates"], "best_member": best, "best_final_return": float(final[best]),
            "best_final_hparams": hp_final, "final_return_per_member": [float(v) for v in final],
            "exploited": int(sum(p["parent"] != m["member"] for m in info["members"] for p in m["parents"]))}
    name = r.group.names[0]
    result.summaries[name]["pbt"] = part
    if out_dir is not None:
        write_outputs(out_dir, metrics, final, ranges, r.batch.program.env_steps_per_update)
        outputs.write_json(os.path.join(out_dir, "summary.json"), result.summaries[name])
    return info
