"""Throughput of whole training runs against the number of seeds in one program, and
against the number of environments per seed.

Every row trains through ``runner.train`` (``repeats`` times, medians) and reports its
compile seconds, env steps/s over all seeds (compile and final evaluation excluded), the
final-return IQM across seeds (so that speed never hides broken learning), peak host memory
(max RSS of the process so far) and, where the device reports it, peak device memory.

The settings are fixed so that figures compare across machines:

* ``ppo``: issue 3's setting (PureJaxRL's CartPole configuration), 5e5 env steps per seed;
* ``reinforce``: CartPole-v1 with the algorithm's defaults (reward-to-go, learned baseline),
  5e5 env steps per seed;
* ``sac``: issue 4's Pendulum setting (1 env, one gradient step per env step, batch 256,
  64x64 networks, buffer 1e4), 1e4 env steps per seed.
"""
from __future__ import annotations

import resource

import numpy as np

SETTINGS = {
    "ppo": {"env": "CartPole-v1", "num_envs": 4, "num_steps": 128, "update_epochs": 4, "num_minibatches": 4,
            "hidden": (64, 64), "activation": "tanh", "anneal_lr": True, "total_timesteps": 500_000,
            "lr": 2.5e-4},
    "reinforce": {"env": "CartPole-v1", "total_timesteps": 500_000},
    "sac": {"env": "Pendulum-v1", "num_envs": 1, "num_steps": 1, "grad_steps": 1, "total_timesteps": 10_000,
            "minibatch_size": 256, "hidden": (64, 64), "buffer_size": 10_000, "learning_starts": 256},
}


def _peak_device_bytes():
    import jax

    try:
        stats = jax.devices()[0].memory_stats() or {}
    except Exception:  # backends without memory statistics (CPU)
        return None
    return stats.get("peak_bytes_in_use")


def measure(algo_name: str, num_seeds: int, overrides: dict | None = None, repeats: int = 1) -> dict:
    """One row: ``algo_name`` with ``SETTINGS[algo_name]`` (+ overrides, preset none) for
    ``num_seeds`` seeds in one program, through ``runner.train`` (``repeats`` times; each
    call compiles afresh). The runner shards the seeds over every device (padding the batch
    to a multiple of them); env steps/s count the real runs only."""
    import jax

    from purejaxpg.analysis import stats
    from purejaxpg.engine import runner

    setting = {**SETTINGS[algo_name], **(overrides or {})}
    compiles, times, rates = [], [], []
    for _ in range(max(1, repeats)):
        g = runner.train(algo_name, setting, num_seeds=num_seeds, quiet=True, preset="none").groups[0]
        compiles.append(g.timings["compile_seconds"])
        times.append(g.timings["run_seconds"])
        rates.append(g.env_steps_per_second)
    final = g.final[0]
    config = g.group.config
    return {"algo": algo_name, "env": config.env, "seeds": int(num_seeds), "num_envs": config.num_envs,
            "devices": jax.device_count(), "env_steps_per_seed": config.num_updates * config.batch_size,
            "compile_seconds": float(np.median(compiles)), "run_seconds": times,
            "env_steps_per_second": float(np.median(rates)),
            "final_return_iqm": float(stats.iqm(final)), "final_return_mean": float(final.mean()),
            "peak_host_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_device_bytes": _peak_device_bytes()}


def format_rows(rows, baseline_steps_per_second: float | None = None) -> str:
    head = (f"{'algo':<10}{'seeds':>6}{'envs':>6}{'compile s':>10}{'run s':>9}{'env steps/s':>14}"
            f"{'vs baseline':>12}{'IQM':>8}{'host MiB':>10}{'dev MiB':>9}")
    lines = [head]
    for r in rows:
        ratio = f"{r['env_steps_per_second'] / baseline_steps_per_second:.0f}x" if baseline_steps_per_second else "-"
        dev = f"{r['peak_device_bytes'] / 2**20:.0f}" if r.get("peak_device_bytes") else "-"
        lines.append(f"{r['algo']:<10}{r['seeds']:>6}{r['num_envs']:>6}{r['compile_seconds']:>10.1f}"
                     f"{np.median(r['run_seconds']):>9.2f}{r['env_steps_per_second']:>14,.0f}{ratio:>12}"
                     f"{r['final_return_iqm']:>8.1f}{r['peak_host_rss_mib']:>10.0f}{dev:>9}")
    return "\n".join(lines)
