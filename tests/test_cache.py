"""engine/cache.py: JAX's persistent compilation cache, on by default, and the compile
statistics in summary.json; the runner's host-side progress pieces."""
import json
import os
import subprocess
import sys

import numpy as np
from children import child_env

from purejaxpg.engine import cache
from purejaxpg.engine.control import pieces, report_due

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_where_the_cache_lives(monkeypatch, tmp_path):
    monkeypatch.delenv(cache.ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(cache, "_jax_dir", lambda: None)
    assert cache.resolve() == str(tmp_path / "xdg" / "purejaxpg" / "jax")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache.resolve() == os.path.join(os.path.expanduser("~"), ".cache", "purejaxpg", "jax")
    monkeypatch.setattr(cache, "_jax_dir", lambda: "/elsewhere")
    assert cache.resolve() == "/elsewhere"  # the user's own JAX setting is kept
    monkeypatch.setenv(cache.ENV, str(tmp_path / "env"))
    assert cache.resolve() == str(tmp_path / "env")
    assert cache.resolve("off") is None and cache.resolve(str(tmp_path / "flag")) == str(tmp_path / "flag")
    monkeypatch.setenv(cache.ENV, "OFF")
    assert cache.resolve() is None and cache.resolve("~/c") == os.path.join(os.path.expanduser("~"), "c")


def test_progress_pieces_end_where_reports_are_due():
    assert pieces(0, 10, 4, 10) == [(0, 4), (4, 8), (8, 10)]
    assert pieces(3, 6, 4, 10) == [(3, 4), (4, 8), (8, 9)]  # a chunk's end is a piece's end
    assert pieces(5, 1, 4, 10) == [(5, 6)]
    assert pieces(0, 7, 100, 7) == [(0, 7)]
    for start, n, every, u in [(0, 23, 5, 23), (2, 17, 3, 19), (7, 5, 1, 12)]:
        ps = pieces(start, n, every, u)
        assert ps[0][0] == start and ps[-1][1] == start + n and all(a < b for a, b in ps)
        assert all(b == c for (_, b), (c, _) in zip(ps, ps[1:]))
        assert all(report_due(b - 1, every, u) or b == start + n for _, b in ps)


def _train(out, cache_dir, extra=()):
    argv = ["train", "a2c", "--num-seeds", "2", "--total-timesteps", "1024", "--num-envs", "4", "--num-steps", "64",
            "--hidden", "16", "--num-eval-episodes", "2", "--host-devices", "1", "--out", str(out),
            "--compile-cache", str(cache_dir), *extra]
    proc = subprocess.run([sys.executable, "-m", "purejaxpg.cli", *argv], cwd=ROOT, env=child_env(drop=(cache.ENV,)), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "summary.json").read_text()), np.load(out / "metrics.npz")


def test_a_second_identical_run_compiles_nothing(tmp_path):
    """Two identical `purejaxpg train` processes with a fresh cache: the first compiles every
    program and writes it, the second reads every one (summary.json counts them), traces
    none of the runner's programs and gets the same numbers. The first shows a progress bar,
    the second is quiet: the same programs."""
    first, m1 = _train(tmp_path / "one", tmp_path / "cache")
    second, m2 = _train(tmp_path / "two", tmp_path / "cache", ["--quiet"])
    assert first["compile"]["cache_dir"] == str(tmp_path / "cache")
    assert first["compile"]["hits"] == 0 and first["compile"]["misses"] > 0
    assert first["compile"]["writes"] == first["compile"]["misses"]
    assert first["compile"]["programs"] == "written"  # init, chunk and evaluation, traced once
    assert second["compile"]["misses"] == 0 and second["compile"]["writes"] == 0
    assert second["compile"]["programs"] == "read" and second["compile"]["trace_seconds"] < 0.5 * \
        first["compile"]["trace_seconds"]  # nothing of the program traced again (a few small jnp calls are)
    assert second["final_return"]["per_seed"] == first["final_return"]["per_seed"]
    for k in m1.files:
        np.testing.assert_array_equal(m1[k], m2[k], err_msg=k)
    off, _ = _train(tmp_path / "off", "off")
    assert off["compile"]["cache_dir"] is None and off["compile"]["hits"] == 0


_LAPACK_PROGRAM = r"""
import sys
import jax, jax.numpy as jnp, numpy as np
from purejaxpg.engine import cache
cache.configure(sys.argv[1])
a = np.array([[4.0, 2.0], [2.0, 3.0]], np.float32)
if sys.argv[2] == "save":
    compiled = jax.jit(lambda m: jnp.linalg.cholesky(m) * 2.0).lower(a).compile()
    assert cache.save_programs("lapack", {}, {"f": compiled})
else:
    print(np.asarray(cache.load_programs("lapack")["compiled"]["f"](a)).tolist())
"""


def test_a_stored_program_that_calls_lapack_runs_in_a_fresh_process(tmp_path):
    """A stored program runs without being lowered in its process, and JAX loads jaxlib's
    LAPACK kernels only when it lowers a LAPACK operation: a stored program with a Cholesky
    (MJX's solver has one: every physics task) killed the second run with a segmentation
    fault until ``load_programs`` loaded them (``cache.load_lapack``)."""
    outs = [subprocess.run([sys.executable, "-c", _LAPACK_PROGRAM, str(tmp_path), step], env=child_env(drop=(cache.ENV,)),
                           capture_output=True, text=True, timeout=300) for step in ("save", "load")]
    for proc in outs:
        assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    expected = 2.0 * np.linalg.cholesky(np.array([[4.0, 2.0], [2.0, 3.0]]))
    np.testing.assert_allclose(json.loads(outs[1].stdout), expected, rtol=1e-6)
