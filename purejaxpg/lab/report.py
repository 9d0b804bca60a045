"""The lab's result as a text table, a plot and files (``purejaxpg lab``)."""
from __future__ import annotations

import json
import math
import os

import numpy as np


def format_table(result: dict) -> str:
    """The lab's result as text: one block per batch size."""
    lines = [
        f"MDP {result['mdp']} ({result['num_states']} states x {result['num_actions']} actions, "
        f"gamma {result['gamma']:.4g}), J(theta) = {result['J']:.6g}, |grad J| = {result['exact_grad_norm']:.4g}",
        f"policy-gradient theorem vs autodiff (float64): max |diff| = {result['theorem_vs_autodiff_max_abs_err']:.2e}",
        f"K = {result['k']} batches per size; time limit H = {result['horizon']} "
        f"(P(truncation) = {result['truncation_probability']:.1e}); GAE lambda = {result['lambda']}",
    ]
    for i, B in enumerate(result["batch_sizes"]):
        lines.append("")
        lines.append(f"batch size B = {B} episodes")
        lines.append(f"  {'estimator':<21} {'unbiased':>8} {'bias_norm':>10} {'variance':>10} "
                     f"{'var/whole':>9} {'cosine':>8} {'max|z|':>8}")
        for name, e in result["estimators"].items():
            lines.append(f"  {name:<21} {'yes' if e['unbiased'] else 'no':>8} {e['bias_norm'][i]:>10.3e} "
                         f"{e['variance'][i]:>10.3e} {e['variance_ratio_to_whole'][i]:>9.3f} "
                         f"{e['cosine'][i]:>8.4f} {e['max_abs_z'][i]:>8.2f}")
    biased = [(n, e) for n, e in result["estimators"].items() if not e["unbiased"]]
    if biased:
        lines.append("")
        for name, e in biased:
            zs = ", ".join(f"{z:.2f}" for z in e["max_abs_z_vs_expectation"])
            lines.append(f"{name}: predicted bias |E - grad J| = {e['expectation_bias_norm']:.3e}; "
                         f"max|z| against that expectation: {zs}")
    return "\n".join(lines)


def plot(result: dict, path: str) -> None:
    """Variance and bias norm against batch size, per estimator (log-log)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    B = np.asarray(result["batch_sizes"], float)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    markers = "osD^v<>px*"
    for i, (name, e) in enumerate(result["estimators"].items()):
        style = dict(linestyle="-" if e["unbiased"] else "--", marker=markers[i % len(markers)], label=name,
                     markerfacecolor="none")
        axes[0].plot(B, e["variance"], **style)
        axes[1].plot(B, np.maximum(e["bias_norm"], 1e-12), **style)
    noise = np.sqrt(np.asarray(result["estimators"]["rtg_value"]["variance"]) / result["k"])
    axes[1].plot(B, noise, ":", color="gray", label="noise floor of rtg_value")
    for ax, title in zip(axes, ("variance of one batch's estimate (trace of covariance)",
                                f"|mean of {result['k']} estimates - exact grad J|")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(B, [str(int(b)) for b in B])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlabel("batch size (episodes)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=7, loc="best")
    fig.suptitle(f"estimator lab: {result['mdp']} MDP ({result['num_states']}x{result['num_actions']}, "
                 f"gamma {result['gamma']:.4g}); dashed: without gamma^t", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(result: dict, out_dir: str) -> None:
    """``out_dir/lab.json`` and ``out_dir/lab.png``."""
    os.makedirs(out_dir, exist_ok=True)

    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x

    with open(os.path.join(out_dir, "lab.json"), "w") as f:
        json.dump(clean(result), f, indent=1)
    plot(result, os.path.join(out_dir, "lab.png"))
