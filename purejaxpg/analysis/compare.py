"""Compare finished runs: ``purejaxpg compare DIR...``.

Each DIR is a run directory (``purejaxpg train``, a chunked run, or one configuration of a
sweep: ``config.json`` + ``metrics.npz``), or a sweep directory (``sweep.json``), which
stands for all its configurations. Runs are grouped into methods by label (``--labels``;
default: the directory name); a method's runs on different environments are its tasks.
The score of a run is its final return (mean over the evaluation episodes of the final
policy), unnormalised.

Reported, with the definitions of the rliable library (``purejaxpg.analysis.stats``): IQM and mean
with stratified bootstrap 95% CIs, the probability of improvement P(X > Y) between every
pair of methods with its CI, performance profiles (the fraction of runs scoring above each
threshold, with CI bands) and a combined learning-curve plot.
"""
from __future__ import annotations

import json
import os

import numpy as np

from purejaxpg.analysis import stats


def _run_dirs(path: str) -> list:
    if os.path.exists(os.path.join(path, "sweep.json")):
        with open(os.path.join(path, "sweep.json")) as f:
            rows = json.load(f)["table"]
        return [os.path.join(path, r["name"]) for r in sorted(rows, key=lambda r: r["name"])]
    if not os.path.exists(os.path.join(path, "metrics.npz")):
        from purejaxpg.engine.plan import check_not_halving

        check_not_halving(path)
        raise ValueError(f"{path} is not a run directory (no metrics.npz) nor a sweep (no sweep.json)")
    return [path]


def load_runs(paths: list, labels: list | None = None) -> dict:
    """{label: {"tasks": [env...], "scores": [runs, tasks], "curves": {env: (env_steps, [runs, U])}}}."""
    if labels is not None and len(labels) != len(paths):
        raise ValueError(f"--labels gives {len(labels)} labels for {len(paths)} directories")
    methods: dict = {}
    for i, path in enumerate(paths):
        for run in _run_dirs(path):
            with open(os.path.join(run, "config.json")) as f:
                cfg = json.load(f)
            env = cfg["config"]["env"]
            m = np.load(os.path.join(run, "metrics.npz"))
            label = labels[i] if labels else os.path.basename(os.path.normpath(run))
            if len(_run_dirs(path)) > 1 and labels:
                label = f"{labels[i]}/{os.path.basename(run)}"
            entry = methods.setdefault(label, {"by_task": {}, "curves": {}})
            if env in entry["by_task"]:
                raise ValueError(f"{label!r} has two runs on {env}; give them different --labels")
            entry["by_task"][env] = np.asarray(m["final_return"], np.float64)
            entry["curves"][env] = (np.asarray(m["env_steps"]), np.asarray(m["episode_return"]))
    out = {}
    for label, e in methods.items():
        tasks = sorted(e["by_task"])
        counts = {len(e["by_task"][t]) for t in tasks}
        if len(counts) != 1:
            raise ValueError(f"{label!r}: tasks have different numbers of seeds {sorted(counts)}")
        scores = np.stack([e["by_task"][t] for t in tasks], axis=1)
        if not np.all(np.isfinite(scores)):
            raise ValueError(f"{label!r} has non-finite final returns (a diverged run); cannot compare")
        out[label] = {"tasks": tasks, "scores": scores, "curves": e["curves"]}
    return out


def compare(methods: dict, reps: int = 2000, seed: int = 0) -> dict:
    """The statistics of ``compare``, as a JSON-able dict."""
    agg = {}
    for label, m in methods.items():
        s = m["scores"]
        agg[label] = {"tasks": m["tasks"], "runs": int(s.shape[0]),
                      "iqm": float(stats.aggregate_iqm(s)),
                      "iqm_ci95": list(stats.stratified_bootstrap_ci(s, stats.aggregate_iqm, reps, seed=seed)),
                      "mean": float(stats.aggregate_mean(s)),
                      "mean_ci95": list(stats.stratified_bootstrap_ci(s, stats.aggregate_mean, reps, seed=seed))}
    poi = []
    labels = list(methods)
    for a in labels:
        for b in labels:
            if a == b or methods[a]["tasks"] != methods[b]["tasks"]:
                continue
            x, y = methods[a]["scores"], methods[b]["scores"]
            poi.append({"x": a, "y": b, "p": float(stats.probability_of_improvement_tasks(x, y)),
                        "ci95": list(stats.probability_of_improvement_ci(x, y, reps, seed=seed))})
    allscores = np.concatenate([m["scores"].ravel() for m in methods.values()])
    taus = np.linspace(allscores.min(), allscores.max(), 101)
    profiles = {}
    for label, m in methods.items():
        prof, lo, hi = stats.performance_profile(m["scores"], taus, reps, seed=seed)
        profiles[label] = {"fraction": prof.tolist(), "lo": lo.tolist(), "hi": hi.tolist()}
    return {"aggregates": agg, "probability_of_improvement": poi, "taus": taus.tolist(),
            "performance_profiles": profiles, "reps": reps, "seed": seed}


def format_report(result: dict) -> str:
    lines = [f"{'method':32} {'runs':>5} {'IQM':>9} {'IQM 95% CI':>22} {'mean':>9} {'mean 95% CI':>22}"]
    for label, a in sorted(result["aggregates"].items(), key=lambda kv: -kv[1]["iqm"]):
        lines.append(f"{label[:32]:32} {a['runs'] * len(a['tasks']):>5} {a['iqm']:>9.2f} "
                     f"[{a['iqm_ci95'][0]:>9.2f}, {a['iqm_ci95'][1]:>9.2f}] {a['mean']:>9.2f} "
                     f"[{a['mean_ci95'][0]:>9.2f}, {a['mean_ci95'][1]:>9.2f}]")
    tasks = {label: ", ".join(a["tasks"]) for label, a in result["aggregates"].items()}
    if len(set(tasks.values())) > 1:
        lines.append("note: the methods were not run on the same envs (" + "; ".join(f"{k}: {v}" for k, v in
                     tasks.items()) + "): their returns are on different scales; P(X > Y) pairs only methods run "
                     "on the same envs")
    if result["probability_of_improvement"]:
        lines.append("")
        lines.append(f"{'P(X > Y)':>8}  {'95% CI':>16}  X vs Y")
        for p in result["probability_of_improvement"]:
            lines.append(f"{p['p']:>8.3f}  [{p['ci95'][0]:.3f}, {p['ci95'][1]:.3f}]  {p['x']} vs {p['y']}")
    return "\n".join(lines)


def plot(out_dir: str, methods: dict, result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from purejaxpg.analysis.plotting import plot_learning_curves

    curves = {}
    for label, m in methods.items():
        for env, (x, y) in m["curves"].items():
            curves[label if len(m["curves"]) == 1 else f"{label} ({env})"] = (x, y)
    plot_learning_curves(os.path.join(out_dir, "learning_curves.png"), curves, title="training return")
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    taus = np.asarray(result["taus"])
    for label, p in result["performance_profiles"].items():
        ax.plot(taus, p["fraction"], label=label)
        ax.fill_between(taus, p["lo"], p["hi"], alpha=0.25)
    ax.set_xlabel("final return tau")
    ax.set_ylabel("fraction of runs with score > tau")
    ax.set_title("performance profiles (95% stratified bootstrap CIs)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "performance_profiles.png"))
    plt.close(fig)


def run(paths: list, labels: list | None = None, out_dir: str | None = None, reps: int = 2000,
        seed: int = 0) -> dict:
    methods = load_runs(paths, labels)
    result = compare(methods, reps, seed)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "compare.json"), "w") as f:
            json.dump(result, f, indent=2)
        plot(out_dir, methods, result)
    return result
