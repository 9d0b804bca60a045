"""``purejaxpg eval DIR``: evaluation episodes of the policies in a run's last checkpoint.

Works on any directory made by ``purejaxpg train`` or ``purejaxpg sweep`` (finished or
interrupted): the runner rebuilds the plan from ``run.json`` and restores the last
checkpoint of every program (engine.runner.restore), and each run's policy plays
``episodes`` episodes (one in each of that many environments; the run's own evaluation
key). ``--gif PATH`` also draws one episode of one run: ``purejaxpg.analysis.render``.
"""
from __future__ import annotations

from purejaxpg.analysis import stats


def eval_settings(episodes: int | None = None, greedy: bool | None = None) -> dict:
    """The static settings an evaluation may change: {num_eval_episodes, eval_greedy}."""
    out = {}
    if episodes is not None:
        if int(episodes) <= 0:
            raise ValueError(f"episodes must be a positive integer, got {episodes}")
        out["num_eval_episodes"] = int(episodes)
    if greedy is not None:
        out["eval_greedy"] = bool(greedy)
    return out


def evaluate_dir(out_dir: str, episodes: int | None = None, greedy: bool | None = None) -> list:
    """One row per configuration: {"name", "per_seed" (mean return per seed), "mean", "iqm",
    "episodes", "updates"}."""
    from purejaxpg.engine import runner
    from purejaxpg.engine.batch import to_host
    from purejaxpg.engine.plan import Plan, groups

    override = eval_settings(episodes, greedy)
    rows = []
    for gi in range(len(groups(Plan.read(out_dir), override))):
        g, batch, carry, updates = runner.restore(out_dir, gi, override)
        returns = to_host(batch.evaluate(carry))[:batch.num_runs].reshape(batch.num_configs, batch.num_seeds, -1)
        for c, name in enumerate(g.names):
            per_seed = returns[c].mean(-1)
            rows.append({"name": name, "per_seed": per_seed.tolist(), "mean": float(per_seed.mean()),
                         "iqm": float(stats.iqm(per_seed)), "episodes": int(returns.shape[-1]), "updates": updates})
    return rows
