"""A host-side progress bar fed from inside the compiled program.

The runner calls ``ProgressBar.report(update_index, metrics)`` every
``cadence(num_updates)`` updates, once for all runs ({name: [padded runs]}), from the host
between pieces of a chunk (engine.control.pieces). The bar shows updates done, env
steps/s over all runs and the mean training return of the runs that finished an episode.
"""
from __future__ import annotations

import math
import sys
import time

import numpy as np


def cadence(num_updates: int, every: int = 0) -> int:
    """Updates between reports: ``every``, or about 20 per run.

    Each report ends a call of the chunk program (a dispatch and a copy of its metrics to
    the host); about 20 per run."""
    return int(every) or max(1, math.ceil(num_updates / 20))


class ProgressBar:
    """``num_updates`` per run; ``num_runs`` real runs (the first rows of the metrics, the
    rest is padding); ``steps_per_update`` env steps per update per run. ``first_update``:
    where a resumed run starts."""

    def __init__(self, num_updates: int, num_runs: int, steps_per_update: int, enabled: bool = True,
                 first_update: int = 0, desc: str = ""):
        self.num_updates, self.num_runs, self.steps_per_update = num_updates, num_runs, steps_per_update
        self.enabled, self.first, self.desc = enabled, first_update, desc
        self.done = first_update
        self._bar = None
        self._t0 = None

    def start(self) -> None:
        """Call right before the first chunk runs (compile time is excluded)."""
        self._t0 = time.perf_counter()
        if self.enabled and self._bar is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.num_updates, initial=self.first, unit="upd", file=sys.stderr,
                             dynamic_ncols=True, desc=self.desc or None)

    def report(self, update_index, metrics) -> None:
        done = int(update_index) + 1
        returns = np.asarray(metrics.get("episode_return", np.full(self.num_runs, np.nan)))[:self.num_runs]
        if self._bar is not None and done > self.done:
            elapsed = max(time.perf_counter() - self._t0, 1e-9)
            sps = (done - self.first) * self.steps_per_update * self.num_runs / elapsed
            finite = returns[np.isfinite(returns)]
            ret = f"{finite.mean():.1f}" if finite.size else "n/a"
            self._bar.update(done - self.done)
            self._bar.set_postfix_str(f"{sps:,.0f} steps/s, return {ret}", refresh=False)
        self.done = max(self.done, done)

    def write(self, message: str) -> None:
        """A line on stderr that the bar does not overwrite."""
        if self._bar is not None:
            self._bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def close(self, leave: bool = True) -> None:
        """``leave`` False: erase the bar (a stopped run's last line is its stop message)."""
        if self._bar is not None:
            self._bar.leave = leave
            self._bar.close()
            self._bar = None
