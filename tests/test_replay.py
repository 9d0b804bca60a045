"""The replay buffer against a plain NumPy ring buffer: wrap-around, sampling only written
slots, uniformity, one buffer per seed under vmap, and the size of an entry."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxpg.core import replay

variants = chex.variants(with_jit=True, without_jit=True)

EXAMPLE = {"obs": jax.ShapeDtypeStruct((3,), jnp.float32), "action": jax.ShapeDtypeStruct((), jnp.int32),
           "done": jax.ShapeDtypeStruct((), jnp.bool_)}


def _batch(start, b):
    """Entries with ids start, start+1, ... (ids start at 1: 0 marks an unwritten slot)."""
    ids = np.arange(start, start + b)
    return {"obs": np.stack([ids, -ids, 2 * ids], -1).astype(np.float32), "action": ids.astype(np.int32),
            "done": (ids % 2 == 0)}


def _numpy_ring(capacity, batches):
    """The reference: a Python loop writing entry after entry at pos, pos + 1, ... mod capacity."""
    store = {"obs": np.zeros((capacity, 3), np.float32), "action": np.zeros(capacity, np.int32),
             "done": np.zeros(capacity, bool)}
    pos = size = 0
    for batch in batches:
        for row in range(len(batch["action"])):
            for k in store:
                store[k][pos] = batch[k][row]
            pos = (pos + 1) % capacity
            size = min(size + 1, capacity)
    return store, pos, size


class ReplayTest(chex.TestCase):
    @variants
    def test_add_wraps_around_like_a_ring(self):
        # capacity a multiple of the batch (slice-update path) and not (row-scatter path)
        for capacity, b, n_batches in [(6, 2, 5), (5, 2, 4), (4, 4, 3), (7, 1, 10)]:
            batches = [_batch(1 + i * b, b) for i in range(n_batches)]
            add = self.variant(replay.add)
            buf = replay.init(EXAMPLE, capacity)
            for batch in batches:
                buf = add(buf, jax.tree_util.tree_map(jnp.asarray, batch))
            want, pos, size = _numpy_ring(capacity, batches)
            for k in want:
                np.testing.assert_array_equal(buf.data[k], want[k], err_msg=f"{k} capacity={capacity} b={b}")
            assert int(buf.pos) == pos and int(buf.size) == size

    @variants
    def test_sampling_never_returns_an_unwritten_slot(self):
        capacity = 64
        buf = replay.init(EXAMPLE, capacity)
        sample = self.variant(replay.sample, static_argnums=2)
        n_written = 0
        for i, b in enumerate([3, 5, 50, 20]):  # 78 entries in all: the last add wraps around
            buf = replay.add(buf, jax.tree_util.tree_map(jnp.asarray, _batch(1 + n_written, b)))
            n_written += b
            got = sample(buf, jax.random.PRNGKey(i), 4096)
            ids = np.asarray(got["action"])
            assert ids.min() >= 1, "sampled a slot that was never written"
            valid = set(range(max(1, n_written - capacity + 1), n_written + 1))  # ids still stored
            assert set(ids.tolist()) <= valid
            if len(valid) <= 64:
                assert set(ids.tolist()) == valid  # 4096 draws reach every valid slot
            np.testing.assert_array_equal(np.asarray(got["obs"])[:, 0], ids)  # rows stay together

    @variants
    def test_init_is_an_empty_buffer_shaped_like_the_example(self):
        buf = self.variant(lambda: replay.init(EXAMPLE, 5))()
        assert buf.capacity == 5 and int(buf.pos) == 0 and int(buf.size) == 0
        for k, spec in EXAMPLE.items():
            assert buf.data[k].shape == (5,) + spec.shape and buf.data[k].dtype == spec.dtype, k
            np.testing.assert_array_equal(buf.data[k], np.zeros((5,) + spec.shape, spec.dtype))
        # a concrete example entry works as well as ShapeDtypeStructs
        concrete = replay.init({"x": np.ones((2, 3), np.float16)}, 4)
        assert concrete.data["x"].shape == (4, 2, 3) and concrete.data["x"].dtype == np.float16
        with pytest.raises(ValueError, match="positive integer"):
            replay.init(EXAMPLE, 0)

    @variants
    def test_sample_is_the_rows_at_sample_indices(self):
        # sample(buf, key, n) must equal NumPy fancy indexing of the stored arrays at
        # sample_indices(buf, key, n), and those indices must lie in [0, size)
        batches = [_batch(1 + 3 * i, 3) for i in range(5)]  # 15 entries into 9 slots: wrapped
        buf = replay.init(EXAMPLE, 9)
        for b in batches:
            buf = replay.add(buf, jax.tree_util.tree_map(jnp.asarray, b))
        want_store, _, size = _numpy_ring(9, batches)
        key = jax.random.PRNGKey(5)
        idx = np.asarray(self.variant(replay.sample_indices, static_argnums=2)(buf, key, 500))
        assert idx.dtype.kind == "i" and idx.min() >= 0 and idx.max() < size and len(set(idx.tolist())) == size
        got = self.variant(replay.sample, static_argnums=2)(buf, key, 500)
        for k in want_store:
            np.testing.assert_array_equal(got[k], want_store[k][idx], err_msg=k)
        # a partly filled buffer: only [0, size) is drawn; an empty one gives slot 0
        part = replay.add(replay.init(EXAMPLE, 9), jax.tree_util.tree_map(jnp.asarray, _batch(1, 2)))
        idx = np.asarray(self.variant(replay.sample_indices, static_argnums=2)(part, key, 200))
        assert set(idx.tolist()) == {0, 1}
        empty = self.variant(replay.sample_indices, static_argnums=2)(replay.init(EXAMPLE, 9), key, 10)
        np.testing.assert_array_equal(empty, np.zeros(10))

    def test_sampling_is_uniform_over_valid_slots(self):
        buf = replay.add(replay.init(EXAMPLE, 32), jax.tree_util.tree_map(jnp.asarray, _batch(1, 10)))
        ids = np.asarray(replay.sample(buf, jax.random.PRNGKey(0), 20000)["action"])
        counts = np.bincount(ids, minlength=11)[1:]
        expected = 20000 / 10
        chi2 = ((counts - expected) ** 2 / expected).sum()
        assert counts.min() > 0 and chi2 < 30.0, counts  # 9 dof: P(chi2 > 30) ~ 4e-4

    def test_each_seed_has_its_own_buffer_under_vmap(self):
        def run(seed_offset, n_adds):
            buf = replay.init(EXAMPLE, 6)

            def body(buf, i):
                ids = seed_offset + i * 2 + jnp.arange(2)
                batch = {"obs": jnp.stack([ids, -ids, 2 * ids], -1).astype(jnp.float32), "action": ids,
                         "done": ids % 2 == 0}
                return replay.add(buf, batch), None

            return jax.lax.scan(body, buf, jnp.arange(n_adds))[0]

        offsets = jnp.array([1, 100, 1000])
        out = jax.jit(jax.vmap(lambda o: run(o, 5)))(offsets)
        nested = jax.jit(jax.vmap(jax.vmap(lambda o, s: run(o + s, 5), (0, None)), (None, 0)))(offsets, jnp.array([0, 7]))
        for i, o in enumerate([1, 100, 1000]):
            ref = run(jnp.int32(o), 5)
            np.testing.assert_array_equal(out.data["action"][i], ref.data["action"])
            np.testing.assert_array_equal(nested.data["obs"][1, i], run(jnp.int32(o + 7), 5).data["obs"])
        # no scatter over the whole buffer: the write stays a slice update under vmap
        hlo = jax.jit(jax.vmap(lambda o: run(o, 5))).lower(offsets).as_text()
        assert "scatter" not in hlo

    def test_add_more_than_capacity_is_refused(self):
        with pytest.raises(ValueError, match="capacity 4"):
            replay.add(replay.init(EXAMPLE, 4), jax.tree_util.tree_map(jnp.asarray, _batch(1, 5)))

    def test_entry_bytes(self):
        assert replay.entry_bytes(EXAMPLE) == 3 * 4 + 4 + 1  # obs float32[3], action int32, done bool
