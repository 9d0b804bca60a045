"""A host-side progress bar fed from inside the compiled program.

The training scan calls ``ProgressBar.callback(update_index, metrics)`` through
``jax.debug.callback`` every ``progress_cadence`` updates (about 20 calls per run). Under
``vmap`` the callback runs once per batch element (seed, or seed x hyperparameter), so the
bar counts calls per update index and advances once all ``num_runs`` have reported.
"""
from __future__ import annotations

import sys
import time
from collections import defaultdict

import numpy as np


class ProgressBar:
    def __init__(self, num_updates: int, num_runs: int, steps_per_update: int, enabled: bool = True):
        self.num_updates = num_updates
        self.num_runs = num_runs
        self.steps_per_update = steps_per_update  # env steps per update per run
        self.enabled = enabled
        self._pending = defaultdict(list)  # update index -> mean returns reported so far
        self._bar = None
        self._done = 0
        self._t0 = None

    def start(self) -> None:
        """Call right before the compiled program runs (compile time is excluded)."""
        self._t0 = time.perf_counter()
        if self.enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.num_updates, unit="upd", file=sys.stderr, dynamic_ncols=True)

    def callback(self, update_index, metrics) -> None:
        i = int(update_index)
        self._pending[i].append(float(np.asarray(metrics.get("episode_return", np.nan))))
        if len(self._pending[i]) < self.num_runs:
            return
        returns = np.asarray(self._pending.pop(i))
        done = i + 1
        if self._bar is not None:
            elapsed = max(time.perf_counter() - self._t0, 1e-9)
            sps = done * self.steps_per_update * self.num_runs / elapsed
            finite = returns[np.isfinite(returns)]
            ret = f"{finite.mean():.1f}" if finite.size else "n/a"
            self._bar.update(done - self._done)
            self._bar.set_postfix_str(f"{sps:,.0f} steps/s, return {ret}", refresh=False)
        self._done = max(self._done, done)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.update(self.num_updates - self._bar.n)
            self._bar.close()
            self._bar = None
