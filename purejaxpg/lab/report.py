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
    if "natural" in result:
        lines += [""] + natural_lines(result["natural"])
    if "off_policy" in result:
        lines += [""] + off_policy_lines(result["off_policy"])
    return "\n".join(lines)


def _count(c) -> str:
    return "-" if c is None else str(c)


def natural_lines(n: dict) -> list:
    s = n["sampled"]
    lines = [
        "natural gradient F^+ grad J (float64): CG on exact Fisher-vector products "
        f"({n['cg_iters']} iterations, residual {n['cg_residual']:.1e}) vs dense pseudo-inverse: max |diff| = "
        f"{n['cg_vs_pinv_max_abs_err']:.1e}; closed form (advantage centred per state) vs pseudo-inverse: "
        f"{n['closed_form_vs_pinv_max_abs_err']:.1e}; rank F = {n['fisher_rank']}",
        f"sampled direction (CG on sampled FVPs) vs exact, mean cosine over {s['k']} batches: " + ", ".join(
            f"B={b}: {c:.4f}" for b, c in zip(s["batch_sizes"], s["natural_cosine_mean"])),
    ]
    for a in n["ascent"]:
        lines.append(f"exact ascent on {a['mdp']} from the uniform policy (J {a['initial_J']:.4f} -> optimal "
                     f"{a['optimal_J']:.4f}): iterations to {a['fraction']:.0%} (- : not within {a['max_iters']})")
        lines.append(f"  {'':22}" + "".join(f"{'eta ' + format(e, 'g'):>10}" for e in a["etas"])
                     + "".join(f"{'KL ' + format(k, 'g'):>10}" for k in a["kls"]))
        for name in ("vanilla", "natural"):
            r = a[name]
            lines.append(f"  {name:<22}" + "".join(f"{_count(c):>10}" for c in r["iterations"])
                         + "".join(f"{_count(c):>10}" for c in r["iterations_kl"]))
    return lines


def off_policy_lines(o: dict) -> list:
    lines = [f"off-policy estimators of grad J(pi) from behaviour beta = {1 - o['eps']:.2g} pi + {o['eps']:.2g} "
             f"uniform, K = {o['k']} batches x {o['batch_size']} episodes",
             f"  {'estimator':<22} {'unbiased':>8} {'bias_norm':>10} {'variance':>10} {'cosine':>8} {'max|z|':>8}"]
    for name, e in o["estimators"].items():
        lines.append(f"  {name:<22} {'yes' if e['unbiased'] else 'no':>8} {e['bias_norm']:>10.3e} "
                     f"{e['variance']:>10.3e} {e['cosine']:>8.4f} {e['max_abs_z']:>8.2f}")
    if "horizon" in o:
        h = o["horizon"]
        lines.append(f"per-episode variance against the horizon H ({h['episodes']} episodes each, no terminal state):")
        lines.append(f"  {'H':<22}" + "".join(f"{x:>10}" for x in h["horizons"]))
        for name in ("weight_variance_exact", "weight_variance", "is_whole", "is_per_decision",
                     "clipped_per_decision", "vtrace"):
            lines.append(f"  {name:<22}" + "".join(f"{x:>10.3g}" for x in h[name]))
    return lines


def plot_extras(result: dict, path: str) -> None:
    """lab-extra.png: natural vs vanilla ascent (J / J* against iterations, KL-matched steps,
    and iterations against eta), and the off-policy variance against the horizon."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    panels = (result["natural"]["ascent"] if "natural" in result else []) + (
        ["horizon"] if "horizon" in result.get("off_policy", {}) else [])
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels) + (1 if "natural" in result else 0), figsize=(5.2 * (len(panels) + 1), 4.4))
    axes = list(np.atleast_1d(axes))
    for a, ax in zip(result.get("natural", {}).get("ascent", []), axes):
        kl = a["kls"][len(a["kls"]) // 2]
        for name, style in (("vanilla", "--"), ("natural", "-")):
            curve = np.asarray(a[name]["curve_kl"]) / a["optimal_J"]
            ax.plot(np.arange(1, len(curve) + 1), curve, style, label=f"{name}, KL {kl:g} per step")
        ax.axhline(a["fraction"], color="gray", linestyle=":")
        ax.set_xscale("log")
        ax.set_xlabel("iteration + 1")
        ax.set_ylabel("J / optimal J")
        ax.set_title(f"exact ascent, {a['mdp']}", fontsize=10)
        ax.legend(fontsize=8)
    if "natural" in result:
        ax = axes[len(result["natural"]["ascent"])]
        for a, marker in zip(result["natural"]["ascent"], "os"):
            for name, style in (("vanilla", "--"), ("natural", "-")):
                its = [np.nan if c is None else c for c in a[name]["iterations"]]
                ax.plot(a["etas"], its, style, marker=marker, label=f"{a['mdp']} {name}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("step size eta")
        ax.set_ylabel(f"iterations to {result['natural']['ascent'][0]['fraction']:.0%} of optimal J")
        ax.set_title("theta += eta d (missing: not reached)", fontsize=10)
        ax.legend(fontsize=7)
    if "horizon" in result.get("off_policy", {}):
        h = result["off_policy"]["horizon"]
        ax = axes[-1]
        ax.plot(h["horizons"], h["weight_variance_exact"], "k-", label="Var rho_{0:H} (exact)")
        ax.plot(h["horizons"], h["weight_variance"], "ko", markerfacecolor="none", label="Var rho_{0:H} (sampled)")
        for name in ("is_whole", "is_per_decision", "clipped_per_decision", "vtrace"):
            ax.plot(h["horizons"], h[name], marker=".", label=f"{name} (trace of covariance)")
        ax.set_yscale("log")
        ax.set_xlabel("horizon H")
        ax.set_title(f"off-policy variance, beta = {1 - h['eps']:.2g} pi + {h['eps']:.2g} uniform", fontsize=10)
        ax.legend(fontsize=7)
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


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
    """``out_dir/lab.json``, ``out_dir/lab.png`` and (with the natural-gradient or off-policy
    sections) ``out_dir/lab-extra.png``."""
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
    plot_extras(result, os.path.join(out_dir, "lab-extra.png"))
