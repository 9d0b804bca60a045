"""What the command line prints at the end of a run: a short human summary (or one JSON
line with ``--json``), the warning about diverged runs, and where a stopped run is and the
command that continues it. Each returns the process's exit code."""
from __future__ import annotations

import json
import os
import re
import sys


def finished(result, out, as_json: bool = False) -> int:
    """The end of a run: a short summary (or, with ``--json``, one line for scripts)."""
    import jax

    if jax.process_index() != 0:  # a multi-process run: process 0 reports
        return 128 + result.signum if result.stop == "signal" else 1 if result.stop == "nonfinite" else 0
    if result.stopped:
        return stopped(result)
    warn_diverged(result)
    from purejaxpg.engine.outputs import format_table

    best, g = result.table[0], result.groups
    compile_s, run_s = (sum(r.timings[k] for r in g) for k in ("compile_seconds", "run_seconds"))
    if as_json:
        print(json.dumps({"out": out, "configurations": len(result.table), "programs": len(g), "best": best["name"],
                          "final_return_iqm": best["iqm"], "final_return_iqm_ci95": best["iqm_ci95"],
                          "final_return_mean": best["mean"], "final_return_mean_ci95": best["mean_ci95"],
                          "compile_seconds": round(compile_s, 2), "run_seconds": round(run_s, 2),
                          "env_steps_per_second": best["env_steps_per_second"] and round(best["env_steps_per_second"]),
                          **({"pbt": result.summaries[best["name"]]["pbt"]} if result.plan.pbt else {})}))
        return 0
    s = result.summaries[best["name"]]
    fr = s["final_return"]

    def num(v):
        return "n/a" if v is None else f"{v:.1f}"

    if not result.plan.single:
        print(format_table(result.table))
        if any("env" in row["swept"] for row in result.table):
            print("note: env is swept: the configurations' returns are on their envs' own scales, so the ranking "
                  "compares unlike numbers")
    what = ("best configuration " + best["name"] if not result.plan.single else
            f"population of {s['num_seeds']}" if result.plan.pbt else f"{s['num_seeds']} seeds")
    print(f"{result.plan.algo} on {s['env']}, {what}, {s['total_timesteps']:,} env steps each: final return IQM "
          f"{num(fr['iqm'])} [95% CI {num(fr['iqm_ci95'][0])}, {num(fr['iqm_ci95'][1])}], mean {num(fr['mean'])} "
          f"[{num(fr['ci95'][0])}, {num(fr['ci95'][1])}]")
    sps = best["env_steps_per_second"]
    print(f"compile {compile_s:.1f} s, run {run_s:.1f} s" + (f", {sps:,.0f} env steps/s over all runs" if sps else ""))
    if result.plan.pbt:
        part = s["pbt"]
        hp = ", ".join(f"{k}={v:.4g}" for k, v in part["best_final_hparams"].items())
        print(f"best member {part['best_member']}: final return {part['best_final_return']:.1f}"
              + (f" with {hp} at the end" if hp else "") + f"; {part['exploited']} exploit steps over "
              f"{len(part['ready_updates'])} ready steps")
    print(f"wrote {out}/ ({written(result, out)})")
    print(f"next: {next_commands(result, out, s['env'])}")
    return 0


def written(result, out) -> str:
    """What a finished run wrote into ``out``, as the end-of-run line names it."""
    files = ("summary.json, lineage.json, pbt.png, metrics.npz, learning_curve.png" if result.plan.pbt else
             "summary.json, metrics.npz, learning_curve.png" if result.plan.single else
             f"sweep.json, table.txt, sweep.png, and a folder per configuration ({len(result.table)}) with its "
             f"summary.json, metrics.npz and learning_curve.png")
    return files + (", checkpoints" if os.path.isdir(os.path.join(out, "checkpoints")) else ", no checkpoints")


def next_commands(result, out, env: str) -> str:
    """What to run next: ``eval`` where the run kept a checkpoint (with ``--gif`` where the
    best configuration's env can be drawn), and ``compare``."""
    from purejaxpg.analysis.render import renderable_envs

    commands = []
    if os.path.isdir(os.path.join(out, "checkpoints")):
        gif = f" --gif {out}/episode.gif" if env in renderable_envs() else ""
        best = re.match(r"c(\d+)_", result.table[0]["name"])
        if gif and best:  # a sweep: the GIF of the best configuration's first seed
            gif += f" --gif-run {int(best.group(1))},0"
        commands.append(f"purejaxpg eval {out}{gif}")
    commands.append(f"purejaxpg compare {out} OTHER_RUN")
    return "    ".join(commands)


def halving(result, out, as_json: bool = False) -> int:
    """The end of a successive-halving sweep: its table (each configuration's last rung)
    and the env steps it spent against the full grid's."""
    if result.stopped:
        return stopped(result.rungs[-1])
    from purejaxpg.engine.outputs import format_table

    best = result.best
    frac = result.env_steps / result.full_grid_env_steps
    if as_json:
        print(json.dumps({"out": out, "best": best["name"], "last_rung": best["last_rung"],
                          "final_return_iqm": best["iqm"], "final_return_iqm_ci95": best["iqm_ci95"],
                          "env_steps": result.env_steps, "full_grid_env_steps": result.full_grid_env_steps,
                          "fraction_of_full_grid": frac}))
        return 0
    print(format_table(result.table, extra=("last_rung",)))
    print("rows: the configurations that reached the last rung first, then each earlier rung's; by IQM within a rung")
    print(f"successive halving, {len(result.schedule)} rungs ("
          + ", ".join(f"{c} x {s:,} env steps" for c, s in result.schedule) + f"): best {best['name']}; "
          f"{result.env_steps:,} env steps in all, {100 * frac:.1f}% of the full grid's {result.full_grid_env_steps:,}")
    print(f"wrote {out}/ (halving.json, table.txt, rung0/ ... rung{len(result.schedule) - 1}/: each rung's sweep)")
    return 0


def where(result) -> str:
    """Where a stopped run is: updates done (of which program) and its checkpoint."""
    r = result.groups[-1]
    of = f" of program {len(result.groups)} of {result.num_programs}" if result.num_programs > 1 else ""
    done = f"after {r.updates_done} of {r.batch.program.num_updates} updates{of}"
    if r.checkpoint is None or (r.updates_done == 0 and len(result.groups) == 1):
        return f"{done}, before any checkpoint; start it again with: {result.resume_command()}"
    return f"{done}; checkpoint in {r.checkpoint}; continue with: {result.resume_command()}"


def diverged_text(result, limit: int = 3) -> str:
    runs = result.diverged
    shown = ", ".join(f"{name} seed {s} at update {u}" for name, s, u in runs[:limit])
    return shown + (f" and {len(runs) - limit} more" if len(runs) > limit else "")


def warn_diverged(result) -> None:
    runs = result.diverged
    if runs:
        print(f"purejaxpg: warning: {len(runs)} of {result.num_runs} runs diverged (a loss, parameter or optimiser "
              f"state non-finite from that update on): {diverged_text(result)}; listed in summary.json",
              file=sys.stderr)


def stopped(result) -> int:
    """The one line of a run that stopped early; its exit code."""
    from purejaxpg.engine.control import SIGNAL_NAMES

    if result.stop == "signal":
        print(f"purejaxpg: stopped by {SIGNAL_NAMES[result.signum]} {where(result)}", file=sys.stderr)
        return 128 + result.signum
    if result.stop == "nonfinite":
        print(f"purejaxpg: stopped (--stop-on-nan) {where(result)}; diverged: {diverged_text(result)}",
              file=sys.stderr)
        return 1
    print(f"stopped; continue with --resume {result.out_dir}")
    return 0
