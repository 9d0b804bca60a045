"""``purejaxpg eval DIR``: evaluation episodes of the policies in a chunked run's last checkpoint.

Works on any directory made by ``purejaxpg sweep`` or ``purejaxpg train --chunks K``
(finished or interrupted): the plan is rebuilt from ``run.json``, the last Orbax
checkpoint of every program restored, and each run's policy plays ``episodes`` episodes
(one in each of that many environments; the run's own evaluation key). ``--gif PATH``
also draws one episode of one run (classic-control envs): ``purejaxpg.analysis.render``.
"""
from __future__ import annotations

import dataclasses
import json
import os

from purejaxpg.analysis import stats


def with_eval_mode(config, greedy: bool | None):
    """``config`` evaluating the policy's mode (``greedy=True``) or sampling (False); None:
    unchanged. The field is ``eval_greedy`` (on-policy algorithms) or ``eval_deterministic`` (SAC)."""
    if greedy is None:
        return config
    field = "eval_greedy" if hasattr(config, "eval_greedy") else "eval_deterministic"
    return dataclasses.replace(config, **{field: bool(greedy)})


def evaluate_dir(out_dir: str, episodes: int | None = None, greedy: bool | None = None) -> list:
    """One row per configuration: {"name", "per_seed" (mean return per seed), "mean", "iqm",
    "episodes", "updates"}."""
    from purejaxpg.engine.sweep import RUN_FILE, _to_host, load_plan, restore_latest

    path = os.path.join(out_dir, RUN_FILE)
    if not os.path.exists(path):
        raise ValueError(f"{out_dir} holds no {RUN_FILE}: evaluate a run made by purejaxpg sweep or train --chunks")
    with open(path) as f:
        spec = json.load(f)
    if episodes is not None and int(episodes) <= 0:
        raise ValueError(f"episodes must be a positive integer, got {episodes}")
    _, groups = load_plan(spec)
    rows = []
    for gi, g in enumerate(groups):
        config = with_eval_mode(g.config, greedy)
        if episodes is not None:
            config = dataclasses.replace(config, num_eval_episodes=int(episodes))
        g, pr, carry, k = restore_latest(spec, out_dir, gi, config)
        returns = _to_host(pr.eval_fn(carry))[:pr.B].reshape(pr.C, pr.S, -1)
        for c, name in enumerate(g.names):
            per_seed = returns[c].mean(-1)
            rows.append({"name": name, "per_seed": per_seed.tolist(), "mean": float(per_seed.mean()),
                         "iqm": float(stats.iqm(per_seed)), "episodes": int(returns.shape[-1]),
                         "updates": int(sum(pr.lengths[:k]))})
    return rows
