"""The jaxlib 0.10 CPU workarounds of ``purejaxpg.engine.compat``: the gate, the process
settings, the LAPACK-free replacements against what they replace, and (slow) the
reproducer of what they avoid."""
import json
import os
import subprocess
import sys
import textwrap

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxpg.engine import compat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------------------
# The gate
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("version, affected", [
    ("0.10.2", True), ("0.10.0", True), ("0.10.17", True), ("0.10.3.dev20270101", True), ("0.10.0rc1", True),
    ("0.9.9", False), ("0.11.0", False), ("0.11.2", False), ("0.4.38", False), ("1.10.0", False), ("0.100.0", False),
])
def test_affected_jaxlib_versions(version, affected):
    assert compat.affected_jaxlib(version) is affected


def test_affected_jaxlib_rejects_garbage():
    with pytest.raises(ValueError, match="not a jaxlib version"):
        compat.affected_jaxlib("unknown")


@pytest.mark.parametrize("jax_platforms, plugins, platform", [
    ("cpu", (), "cpu"),
    ("cpu", ("jax_cuda12_plugin",), "cpu"),  # the setting wins over what is installed
    ("cuda,cpu", (), "cuda"),  # the first entry has the highest priority
    (" CPU ,cuda", (), "cpu"),
    ("tpu", (), "tpu"),
    ("", (), "cpu"),  # nothing but the CPU can start
    ("", ("jax_cuda12_plugin",), None),  # a plugin may start, or fall back to the CPU: unknown
    ("", ("libtpu",), None),
])
def test_guess_platform(jax_platforms, plugins, platform):
    assert compat.guess_platform(jax_platforms, plugins) == platform


@pytest.mark.parametrize("platform, version, prone", [
    ("cpu", "0.10.2", True), ("cpu", "0.11.0", False), ("cpu", "0.9.0", False),
    ("gpu", "0.10.2", False), ("tpu", "0.10.2", False), ("cuda", "0.10.2", False),
])
def test_cpu_deadlock_prone_with_fakes(monkeypatch, platform, version, prone):
    monkeypatch.delenv(compat.OVERRIDE_ENV, raising=False)
    assert compat.cpu_deadlock_prone(platform=platform, jaxlib_version=version) is prone


def test_override(monkeypatch):
    monkeypatch.setenv(compat.OVERRIDE_ENV, "on")
    assert compat.cpu_deadlock_prone(platform="gpu", jaxlib_version="0.11.0")
    monkeypatch.setenv(compat.OVERRIDE_ENV, "OFF")
    assert not compat.cpu_deadlock_prone(platform="cpu", jaxlib_version="0.10.2")
    monkeypatch.setenv(compat.OVERRIDE_ENV, "auto")
    assert compat.cpu_deadlock_prone(platform="cpu", jaxlib_version="0.10.2")
    monkeypatch.setenv(compat.OVERRIDE_ENV, "maybe")
    with pytest.raises(ValueError, match="auto, on or off"):
        compat.cpu_deadlock_prone()


def test_this_process():
    assert compat.default_platform() == jax.default_backend()
    from jaxlib.version import __version__ as jaxlib_version

    expected = compat.affected_jaxlib(jaxlib_version) and jax.default_backend() == "cpu"
    if os.environ.get(compat.OVERRIDE_ENV, "auto") == "auto":
        assert compat.cpu_deadlock_prone() is expected


# ---------------------------------------------------------------------------------------
# Process settings, each in a fresh process
# ---------------------------------------------------------------------------------------


def _fresh(code: str, **env) -> dict:
    """Run ``code`` in a fresh interpreter (environment: this one's, less the settings under
    test, plus ``env``; None removes); it prints one JSON line, returned."""
    base = {k: v for k, v in os.environ.items()
            if k not in ("XLA_FLAGS", "JAX_PLATFORMS", compat.OVERRIDE_ENV, compat.ASYNC_ENV)}
    base["PYTHONPATH"] = ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")
    base.update({k: v for k, v in env.items() if v is not None})
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=base, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


_CONFIGURE = """
    import json, os, warnings
    import jax
    from purejaxpg.engine import compat
    fake = os.environ.get("FAKE_JAXLIB")
    if fake:
        compat.installed_jaxlib_version = lambda: fake
    first = compat.configure()
    second = compat.configure()
    out = {"first": first, "second": second, "started": compat.backends_started(),
           "xla_flags": os.environ.get("XLA_FLAGS"), "async": jax.config.read("jax_cpu_enable_async_dispatch")}
    if os.environ.get("THEN_START"):
        jax.devices()
        os.environ.pop("XLA_FLAGS", None)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            out["after_start"] = compat.configure()
        out["warnings"] = [str(x.message) for x in w]
    print(json.dumps(out))
"""


def test_configure_on_an_affected_cpu():
    flags = "--xla_force_host_platform_device_count=1"
    r = _fresh(_CONFIGURE, JAX_PLATFORMS="cpu", FAKE_JAXLIB="0.10.2", XLA_FLAGS=flags, THEN_START="1")
    want = f"{flags} --xla_cpu_multi_thread_eigen=false"
    assert r["first"] == {"XLA_FLAGS": want, "jax_cpu_enable_async_dispatch": False}
    assert r["second"] == {}  # idempotent
    assert not r["started"]  # configure does not start the backends
    assert r["xla_flags"] == want and r["async"] is False
    assert r["after_start"] == {} and "after JAX's backends started" in r["warnings"][0]


def test_configure_keeps_what_the_user_set():
    r = _fresh(_CONFIGURE, JAX_PLATFORMS="cpu", FAKE_JAXLIB="0.10.2", XLA_FLAGS="--xla_cpu_multi_thread_eigen=true",
               JAX_CPU_ENABLE_ASYNC_DISPATCH="true")
    assert r["first"] == {} and r["xla_flags"] == "--xla_cpu_multi_thread_eigen=true" and r["async"] is True
    # jax 0.10 ignores the variable; configure applies it
    r = _fresh(_CONFIGURE, JAX_PLATFORMS="cpu", FAKE_JAXLIB="0.10.2", JAX_CPU_ENABLE_ASYNC_DISPATCH="0")
    assert r["first"]["jax_cpu_enable_async_dispatch"] is False and r["async"] is False


@pytest.mark.parametrize("env", [
    {"JAX_PLATFORMS": "cpu", "FAKE_JAXLIB": "0.11.0"},  # jaxlib outside the range
    {"JAX_PLATFORMS": "cuda,cpu", "FAKE_JAXLIB": "0.10.2"},  # an accelerator (not started: none here)
    {"JAX_PLATFORMS": "cpu", "FAKE_JAXLIB": "0.10.2", compat.OVERRIDE_ENV: "off"},
])
def test_configure_leaves_unaffected_processes_alone(env):
    r = _fresh(_CONFIGURE, **env)
    assert r["first"] == {} and r["xla_flags"] is None and r["async"] is True and not r["started"]


_STATE = """
    import json, os, sys
    before = dict(os.environ)
    if sys.argv[1] == "with":
        import purejaxpg
    out = {"env_same": dict(os.environ) == before, "jax_imported": "jax" in sys.modules}
    import jax
    out["config"] = {k: repr(v) for k, v in sorted(jax.config.values.items())}
    print(json.dumps(out))
"""


def test_import_purejaxpg_changes_no_process_state():
    def state(arg):
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(_STATE), arg], cwd=ROOT, capture_output=True,
                              text=True, timeout=300,
                              env={**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")})
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    with_import, without = state("with"), state("without")
    assert with_import["env_same"] and not with_import["jax_imported"]  # XLA_FLAGS included
    assert with_import["config"] == without["config"]


# ---------------------------------------------------------------------------------------
# The replacements equal what they replace
# ---------------------------------------------------------------------------------------


def _haar_stats(q):
    """Statistics of [N, n, n] orthogonal matrices with known values under the Haar measure
    on O(n): E Q_ij = 0, E Q_ij^2 = 1/n, E tr Q = 0, E (tr Q)^2 = 1, P(det Q = 1) = 1/2."""
    q = np.asarray(q, np.float64)
    tr = np.trace(q, axis1=1, axis2=2)
    return {"mean": q.mean(), "second": (q ** 2).mean() * q.shape[-1], "trace": tr.mean(), "trace2": (tr ** 2).mean(),
            "det_pos": (np.linalg.det(q) > 0).mean()}


def test_orthogonal_initialisers_are_haar_and_the_same_draw():
    n, draws = 4, 4000
    keys = jax.random.split(jax.random.PRNGKey(11), draws)
    ours = jax.jit(jax.vmap(lambda k: compat.gram_schmidt_orthogonal()(k, (n, n))))(keys)
    # flax's one key at a time (lax.map: unbatched QRs), not under vmap: a batched LAPACK
    # QR is the call that deadlocks on an affected CPU
    flax_init = nn.initializers.orthogonal()
    theirs = jax.jit(lambda ks: jax.lax.map(lambda k: flax_init(k, (n, n)), ks))(keys)
    np.testing.assert_allclose(ours, theirs, atol=2e-5)
    for q in (ours, theirs):
        np.testing.assert_allclose(np.einsum("bji,bjk->bik", q, q), np.broadcast_to(np.eye(n), (draws, n, n)),
                                   atol=1e-5)
        s = _haar_stats(q)  # standard errors with 4000 draws: about 0.004, 0.02, 0.016, 0.022, 0.008
        assert abs(s["mean"]) < 0.02 and abs(s["second"] - 1) < 0.06
        assert abs(s["trace"]) < 0.07 and abs(s["trace2"] - 1) < 0.1 and abs(s["det_pos"] - 0.5) < 0.04


def test_orthogonal_init_follows_the_gate(monkeypatch):
    key, shape = jax.random.PRNGKey(5), (8, 6)
    monkeypatch.setattr(compat, "cpu_deadlock_prone", lambda: True)
    np.testing.assert_array_equal(compat.orthogonal_init(2.0)(key, shape),
                                  compat.gram_schmidt_orthogonal(2.0)(key, shape))
    monkeypatch.setattr(compat, "cpu_deadlock_prone", lambda: False)
    np.testing.assert_array_equal(compat.orthogonal_init(2.0)(key, shape),
                                  nn.initializers.orthogonal(2.0)(key, shape))


def _systems(n=12, count=6):
    rng = np.random.default_rng(7)
    systems = [(rng.normal(size=(n, n)) + n * np.eye(n) * (i % 2), rng.normal(size=n)) for i in range(count)]
    A = rng.normal(size=(n, n)) + 3 * np.eye(n)
    A[0, 0] = 0.0  # pivoting needed
    return systems + [(A, rng.normal(size=n))]


def test_gauss_jordan_equals_lapack_and_numpy():
    gj = jax.jit(compat.gauss_jordan_solve)
    lapack = jax.jit(jnp.linalg.solve)  # unbatched: one call at a time
    for A, b in _systems():
        A32, b32 = jnp.asarray(A, jnp.float32), jnp.asarray(b, jnp.float32)
        exact = np.linalg.solve(A, b)
        scale = np.abs(exact).max()
        np.testing.assert_allclose(gj(A32, b32), exact, atol=2e-5 * np.linalg.cond(A) * scale)
        np.testing.assert_allclose(gj(A32, b32), lapack(A32, b32), atol=2e-5 * np.linalg.cond(A) * scale)
    A, b = _systems()[-1]
    A32, b32 = jnp.asarray(A, jnp.float32), jnp.asarray(b, jnp.float32)
    loss = lambda solve: lambda A, b: jnp.sum(jnp.sin(solve(A, b)))
    ours = jax.grad(loss(compat.gauss_jordan_solve), (0, 1))(A32, b32)
    theirs = jax.grad(loss(jnp.linalg.solve), (0, 1))(A32, b32)
    for x, y in zip(ours, theirs):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)


def test_linear_solve_follows_the_gate(monkeypatch):
    A, b = (jnp.asarray(x, jnp.float32) for x in _systems()[-1])
    monkeypatch.setattr(compat, "cpu_deadlock_prone", lambda: True)
    assert "lapack" not in jax.jit(compat.linear_solve).lower(A, b).as_text().lower()
    np.testing.assert_array_equal(compat.linear_solve(A, b), compat.gauss_jordan_solve(A, b))
    monkeypatch.setattr(compat, "cpu_deadlock_prone", lambda: False)
    np.testing.assert_array_equal(compat.linear_solve(A, b), jnp.linalg.solve(A, b))


# ---------------------------------------------------------------------------------------
# The reproducer (slow): what the workarounds avoid, where it can happen
# ---------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not compat.cpu_deadlock_prone(platform="cpu"),
                    reason="the jaxlib 0.10 CPU deadlocks cannot happen with this jaxlib")
def test_reproducer_runs(tmp_path):
    """scripts/repro_cpu_deadlocks.py, briefly: with the workarounds no trial hangs; without
    them it runs and counts hangs (about 1 trial in 3 here for qr and solve; not asserted,
    the deadlock is a race)."""
    script = os.path.join(ROOT, "scripts", "repro_cpu_deadlocks.py")
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for workaround, trials in (("on", 2), ("off", 1)):
        out = tmp_path / f"{workaround}.json"
        proc = subprocess.run([sys.executable, script, "qr", "solve", "--trials", str(trials), "--timeout", "60",
                               "--workaround", workaround, "--out", str(out)],
                              env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        report = json.loads(out.read_text())
        for case in ("qr", "solve"):
            c = report["cases"][case]
            assert len(c["trials"]) == trials and c["errors"] == 0
            assert all(t["start"]["lapack_free"] is (workaround == "on") for t in c["trials"] if t["start"])
            if workaround == "on":
                assert c["hung"] == 0, c
