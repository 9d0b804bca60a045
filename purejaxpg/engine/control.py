"""How the runner's work is cut and stopped: chunk lengths (fixed or sized from measured
time), the pieces a chunk runs in between progress reports, SIGINT / SIGTERM handling (stop
after the current chunk and its checkpoint), the worker thread that keeps the main thread
free for signals, and the decisions every process must take alike."""
from __future__ import annotations

import math
import signal
import sys
import threading
from typing import Callable, Optional

import jax
import numpy as np

CHUNK_SECONDS = 60.0  # without --chunks: chunks of about this much run time (at most the checkpoint interval)
GROWTH = 4  # ... each at most this many times longer than the one before
SIGNAL_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}
WORKER = "purejaxpg-runner"  # the thread that runs compilation, chunks and checkpoint writes


def chunk_lengths(num_updates: int, chunks: int) -> list:
    """``chunks`` pieces of ``ceil(num_updates / chunks)`` updates, the last one shorter if
    needed."""
    if chunks > num_updates:
        raise ValueError(f"chunks={chunks} is more than the run's {num_updates} updates")
    n = math.ceil(num_updates / chunks)
    return [n] * (num_updates // n) + ([num_updates % n] if num_updates % n else [])


class Chunker:
    """The length of each next chunk: ``fixed`` lengths (``--chunks K``), or, with a target
    of ``seconds`` per chunk, from the measured time per update of the chunk before (the
    first chunk is one update; each at most ``GROWTH`` times the one before). Without
    checkpoints (``seconds`` None) the rest of the run is one chunk."""

    def __init__(self, num_updates: int, fixed: Optional[list], seconds: Optional[float]):
        self.num_updates, self.fixed, self.seconds = num_updates, fixed, seconds
        self.last = None  # (updates, seconds) of the last chunk

    def record(self, n: int, seconds: float) -> None:
        self.last = (n, seconds)

    def next(self, done: int) -> int:
        left = self.num_updates - done
        if self.fixed is not None:
            ends = np.cumsum([0] + self.fixed)
            k = int(np.searchsorted(ends, done))
            if k >= len(self.fixed) or ends[k] != done:
                raise ValueError(f"{done} updates done is not where a chunk of this run ends")
            return self.fixed[k]
        if self.seconds is None:
            return left
        if self.last is None:
            return min(1, left)
        n, dt = self.last
        per_update = max(dt, 1e-9) / n
        return int(max(1, min(left, GROWTH * n, math.floor(self.seconds / per_update))))


def report_due(i: int, every: int, num_updates: int) -> bool:
    """Whether progress is reported after update ``i``: every ``every`` updates and after the
    last one."""
    return (i + 1) % every == 0 or i == num_updates - 1


def pieces(start: int, n: int, every: int, num_updates: int) -> list:
    """Updates ``start .. start + n - 1`` as [(first, end)) pieces that end where progress is
    reported (``report_due``): the runner runs a chunk piece by piece and reports from the host
    between them, so that the chunk program has no host callback (JAX's persistent cache
    does not keep programs with callbacks) and is the same program with or without
    progress. The pieces' results are those of the whole chunk, bit for bit."""
    end = start + n
    cuts = sorted({e for e in range((start // every + 1) * every, end + 1, every)} | {end} |
                  ({num_updates} if start < num_updates <= end else set()))
    return list(zip([start] + cuts[:-1], cuts))


class Stop:
    """SIGINT / SIGTERM while a run is in progress: the first asks for a stop after the
    current chunk and its checkpoint (``signum``) and puts back the default handlers, so a
    second one ends the process at once. Without checkpoints there is nothing to wait for:
    the first raises ``Interrupted`` right away. Installed only in the main thread."""

    def __init__(self, saving: bool):
        self.signum = None
        self.saving = saving
        self.announce: Callable = lambda msg: print(msg, file=sys.stderr, flush=True)
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in SIGNAL_NAMES:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:
            return
        self.signum = signum
        for s in self._old:
            signal.signal(s, signal.SIG_DFL)
        if not self.saving:
            raise Interrupted(signum)
        if jax.process_index() == 0:
            self.announce(f"purejaxpg: {SIGNAL_NAMES[signum]}: stopping after the current chunk and its checkpoint "
                          f"({'Ctrl-C' if signum == signal.SIGINT else 'the signal'} again ends it at once)")

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)
        return False


class Interrupted(KeyboardInterrupt):
    """SIGINT / SIGTERM in a run that keeps no checkpoint: nothing to save, so it ends now."""

    def __init__(self, signum: int):
        super().__init__(SIGNAL_NAMES.get(signum, str(signum)))
        self.signum = signum


def wait(fn, *args):
    """``fn(*args)`` in a worker thread, the main thread waiting in short slices, so that a
    signal is handled within a fraction of a second even while XLA compiles or runs a chunk
    (its handler only runs in the main thread, between Python bytecodes)."""
    if threading.current_thread() is not threading.main_thread():
        return fn(*args)
    box = {}
    done = threading.Event()

    def target():
        try:
            box["value"] = fn(*args)
        except BaseException as e:  # handed to the caller
            box["error"] = e
        finally:
            done.set()
            _BUSY.discard(done)

    _BUSY.add(done)
    threading.Thread(target=target, name=WORKER, daemon=True).start()
    while not done.wait(0.1):
        pass
    if "error" in box:
        raise box["error"]
    return box["value"]


_BUSY: set = set()  # the unfinished work of wait's threads


def worker_busy() -> bool:
    """Whether a worker thread of ``wait`` is still running (a signal interrupted the
    wait: XLA may be in the middle of a chunk). Thread.is_alive cannot tell: a join
    interrupted by an exception leaves it False for a thread still running."""
    return bool(_BUSY)


def any_process(flag: bool) -> bool:
    """Whether ``flag`` is set in any process."""
    return bool(agree(int(flag), 0, False)[0])


def agree(stop: int, n_next: int, save: bool) -> tuple:
    """With several processes every one must take the same decision: the largest ``stop``
    code of any process (0: go on), process 0's chunk length and checkpoint timing."""
    if jax.process_count() == 1:
        return stop, n_next, save
    from jax.experimental import multihost_utils

    x = np.asarray(multihost_utils.process_allgather(np.asarray([int(stop), n_next, int(save)], np.int32)))
    x = x.reshape(jax.process_count(), 3)
    return int(x[:, 0].max()), int(x[0, 1]), bool(x[0, 2])


# why a run stops, as ``agree`` codes (the largest wins: a signal over the others)
STOP_AFTER, NONFINITE, SIGNAL = 1, 2, 100


def stop_code(signum: Optional[int], nonfinite: bool, stop_after: bool) -> int:
    return SIGNAL + signum if signum is not None else NONFINITE if nonfinite else STOP_AFTER if stop_after else 0


def sync(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
