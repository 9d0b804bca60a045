"""The pieces that make results independent of the device count: the Philox hash in
uint32 arithmetic, the clipped Adam written without divisions by broadcast scalars, and the
blocked vmap (the device-count test itself is in test_runner.py); and the test that shows why
the clipped Adam exists (optax's Adam gives different bits on 1 and 4 devices); and the
batch shuffle, which must give JAX's permutation exactly."""
import json
import math
import os
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from purejaxpg.core import prng
from purejaxpg.core.optim import clipped_adam
from purejaxpg.engine.batch import blocked_vmap


def philox_reference(key, counter):
    """Philox-4x32-10 with Python integers (exact 64-bit products)."""
    k0, k1 = (int(k) for k in key)
    x = [int(c) for c in counter]
    for r in range(10):
        if r:
            k0, k1 = (k0 + 0x9E3779B9) % 2**32, (k1 + 0xBB67AE85) % 2**32
        p0, p1 = 0xD2511F53 * x[0], 0xCD9E8D57 * x[2]
        x = [(p1 >> 32) ^ x[1] ^ k0, p1 % 2**32, (p0 >> 32) ^ x[3] ^ k1, p0 % 2**32]
    return x


class PhiloxTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_known_answers_and_reference(self):
        f = self.variant(lambda k, c: jnp.stack(prng.philox4x32(tuple(k), tuple(c))))
        # Random123's published answers for Philox-4x32-10
        for key, ctr, want in (((0, 0), (0, 0, 0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
                               ((0xA4093822, 0x299F31D0), (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
                                (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1))):
            got = f(jnp.asarray(key, jnp.uint32), jnp.asarray(ctr, jnp.uint32))
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want, np.uint32))
        rng = np.random.default_rng(0)
        keys = rng.integers(0, 2**32, (50, 2), dtype=np.uint64).astype(np.uint32)
        ctrs = rng.integers(0, 2**32, (50, 4), dtype=np.uint64).astype(np.uint32)
        got = jax.vmap(f)(jnp.asarray(keys), jnp.asarray(ctrs))
        chex.assert_shape(got, (50, 4))
        want = np.asarray([philox_reference(k, c) for k, c in zip(keys, ctrs)], np.uint32)
        np.testing.assert_array_equal(np.asarray(got), want)


def test_prng_impl_draws():
    key = jax.random.wrap_key_data(jnp.asarray([1, 2], jnp.uint32), impl=prng.impl())
    u = np.asarray(jax.random.uniform(key, (200_000,)))
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    z = np.asarray(jax.jit(lambda k: jax.random.normal(k, (1000, 7)))(key))
    assert z.shape == (1000, 7) and abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05
    children = jax.random.key_data(jax.random.split(key, 64))
    folded = jax.random.key_data(jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.arange(64)))
    both = np.concatenate([np.asarray(children), np.asarray(folded)])
    assert both.shape == (128, 2) and len({tuple(r) for r in both}) == 128  # all distinct
    for width, dtype in ((8, np.uint8), (16, np.uint16), (32, np.uint32)):
        b = prng._random_bits(jnp.asarray([3, 4], jnp.uint32), width, (5, 3))
        assert b.dtype == dtype and b.shape == (5, 3)
    a = jax.random.uniform(jax.random.fold_in(key, 7), (4,))
    np.testing.assert_array_equal(a, jax.random.uniform(jax.random.fold_in(key, 7), (4,)))  # a function of the key


@pytest.mark.parametrize("n", [1, 2, 3, 100, 128, 512, 513, 1700, 4096, 65536, 65537])
def test_permutation_is_jaxs(n):
    """The same integers as jax.random.permutation: one round of draws (n <= ~1600), two
    (1700 and up), the largest size the radix passes take (2**16) and JAX's own above it;
    with JAX's default keys and core/prng.py's, vmapped over keys as the programs use it."""
    for keys in (jax.random.split(jax.random.PRNGKey(n), 12),
                 jax.random.split(jax.random.key(n, impl=prng.impl()), 12)):
        ours = jax.jit(jax.vmap(lambda k: prng.permutation(k, n)))(keys)
        theirs = jax.vmap(lambda k: jax.random.permutation(k, n))(keys)
        assert ours.dtype == theirs.dtype and ours.shape == (12, n)
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("n,top", [(5, 2), (512, 50), (512, 2**32), (4096, 300), (65536, 2**32)])
def test_stable_argsort_u32_is_numpys(n, top):
    """Keys with many ties, ties only in the high bits (the second pass's digit), and random
    keys: the order of NumPy's stable argsort, ties broken by position."""
    rng = np.random.default_rng(n + top)
    k = rng.integers(0, top, size=n, dtype=np.uint64).astype(np.uint32)
    if top == 50:
        k = (k << np.uint32(25)) | np.uint32(7)  # equal low digits
    bits = max(1, (n - 1).bit_length())
    got = jax.jit(prng.stable_argsort_u32, static_argnums=1)(jnp.asarray(k), bits)
    assert got.dtype == jnp.int32
    np.testing.assert_array_equal(got, np.argsort(k, kind="stable"))


def test_clipped_adam_matches_optax():
    params = {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "b": jnp.zeros(4)}
    sched = lambda count: 0.01 * (1.0 - count / 20)
    ours = clipped_adam(sched, 0.5, 1e-5)
    ref = optax.chain(optax.clip_by_global_norm(0.5), optax.scale_by_adam(eps=1e-5), optax.scale_by_learning_rate(sched))
    s1, s2 = ours.init(params), ref.init(params)
    p1 = p2 = params
    for i in range(6):  # large gradients (clipped) then small ones (not)
        scale = 3.0 if i < 3 else 0.01
        g = jax.tree.map(lambda p: scale * jnp.cos(p * (i + 1)) + 0.1, p1)
        u1, s1 = ours.update(g, s1, p1)
        u2, s2 = ref.update(g, s2, p2)
        chex.assert_trees_all_close(u1, u2, rtol=2e-6, atol=1e-9)
        p1, p2 = optax.apply_updates(p1, u1), optax.apply_updates(p2, u1)
    assert int(s1.count) == 6


class ClippedAdamNumpyTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_clipped_adam_matches_a_numpy_loop(self):
        """clipped_adam (and its parts clip_factor, adam_direction) against Adam written out
        element by element in float64: clip to the global norm, then m, v, bias corrections
        and the step lr(count) m_hat / (sqrt(v_hat) + eps). Gradients of norm 3 first
        (clipped to 0.5), then 0.01 (not clipped), with a step-size schedule."""
        params = {"w": np.linspace(-1.0, 1.0, 6, dtype=np.float32).reshape(2, 3), "b": np.zeros(3, np.float32)}
        sched = lambda count: 0.01 * (1.0 - count / 20)
        tx = clipped_adam(sched, 0.5, 1e-5)
        update = self.variant(tx.update)
        state = tx.init(params)
        names = ("w", "b")
        m = {k: np.zeros(params[k].size) for k in names}
        v = {k: np.zeros(params[k].size) for k in names}
        for i in range(6):
            scale = 3.0 if i < 3 else 0.01
            g = {k: (scale * np.cos(np.arange(params[k].size) * (i + 1)) + 0.1).astype(np.float32).reshape(
                params[k].shape) for k in names}
            upd, state = update(g, state)
            norm = math.sqrt(sum(float(x) ** 2 for k in names for x in g[k].ravel()))
            c = 0.5 / norm if norm >= 0.5 else 1.0
            t, lr = i + 1, 0.01 * (1.0 - i / 20)
            for k in names:
                want = []
                for j, gj in enumerate(g[k].ravel().astype(np.float64)):
                    m[k][j] = 0.9 * m[k][j] + 0.1 * c * gj
                    v[k][j] = 0.999 * v[k][j] + 0.001 * (c * gj) ** 2
                    m_hat, v_hat = m[k][j] / (1 - 0.9 ** t), v[k][j] / (1 - 0.999 ** t)
                    want.append(-lr * m_hat / (math.sqrt(v_hat) + 1e-5))
                # float32 arithmetic on O(1) moments: ~1e-6 relative
                np.testing.assert_allclose(np.asarray(upd[k]).ravel(), want, rtol=2e-5, atol=1e-9)
            assert (norm > 0.5) == (i < 3)
        assert int(state.count) == 6


def test_blocked_vmap_equals_vmap():
    def f(x, shared, w):
        return {"y": jnp.tanh(x @ w).sum(0) + shared, "n": shared * 2}

    x = jax.random.normal(jax.random.PRNGKey(0), (6, 5, 3))
    w = jax.random.normal(jax.random.PRNGKey(1), (6, 3, 2))
    shared = jnp.float32(1.5)
    in_axes, out_axes = (0, None, 0), {"y": 0, "n": None}
    plain = jax.vmap(f, in_axes, out_axes)(x, shared, w)
    # Tolerance: rtol 1e-6 of the size of the summed terms, sum_i |tanh(x_i w)| + |shared|
    # (3 to 6 here), not of the result. A program that orders the sum differently (another
    # vmap width, fused or not, FMA or not) rounds its partial sums differently, by up to
    # ~n eps32 of their size; where the terms cancel the result is small (0.114 at [3, 1])
    # and that difference is large relative to it. The H100 run that widened this check to
    # rtol 1e-5 saw 2.4e-7 there (1 ulp of a partial sum in [2, 4), 2.1e-6 of the result).
    # On this CPU (jaxlib 0.10.2) every block gives the eager vmap's bits, and both are
    # within 5.4e-8 of the size of the terms of float64 NumPy (1.9e-6 of the result at [3, 1]).
    t = np.tanh(np.einsum("rij,rjk->rik", np.asarray(x, np.float64), np.asarray(w, np.float64)))
    size = np.abs(t).sum(1) + 1.5
    assert np.all(np.abs(np.asarray(plain["y"], np.float64) - (t.sum(1) + 1.5)) <= 1e-6 * size)
    for block in (1, 2, 3, 6):
        got = jax.jit(blocked_vmap(f, in_axes, out_axes, block))(x, shared, w)
        chex.assert_trees_all_equal_shapes(got, plain)
        assert np.all(np.abs(np.asarray(got["y"]) - np.asarray(plain["y"])) <= 1e-6 * size), block
        assert float(got["n"]) == 3.0
    with pytest.raises(ValueError, match="not a multiple of block=4"):
        blocked_vmap(f, in_axes, out_axes, 4)(x, shared, w)



def test_optax_adam_depends_on_the_device_count_clipped_adam_does_not(tmp_path):
    """Why core/optim.py exists (benchmarks/optax_device_count.py): the same 8 runs
    (shard_map over a 1-D mesh, 2 runs vmapped at a time, as the sweep does) on 1 host device
    and on 4. optax's clip_by_global_norm + scale_by_adam chain ends with different
    parameters (last bits: XLA compiles its divisions by scalars differently in the
    partitioned program), clipped_adam's are bit-identical. If optax's stop differing (a new
    XLA), optim.py may no longer be needed."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = tmp_path / "r.json"
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, os.path.join(root, "benchmarks", "optax_device_count.py"),
                           "--devices", "1,4", "--out", str(out)], env=env, cwd=root, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    c = json.loads(out.read_text())["comparisons"]
    assert c["clipped_adam: 1 vs 4 devices"]["bit_identical"], c["clipped_adam: 1 vs 4 devices"]
    optax_chain = c["optax: 1 vs 4 devices"]
    assert not optax_chain["bit_identical"], \
        "optax's Adam now gives the same bits on 1 and 4 devices: core/optim.py may be unnecessary"
    assert all(v["max_abs_diff"] < 1e-5 for v in optax_chain["leaves"].values())  # last bits: the same maths
