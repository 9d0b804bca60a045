"""RunningMeanStd (``purejaxpg.core.normalize``) against NumPy: the running statistics equal
np.mean / np.var of everything folded in so far, under jit and without."""
import chex
import jax.numpy as jnp
import numpy as np

from purejaxpg.core.normalize import RunningMeanStd

variants = chex.variants(with_jit=True, without_jit=True)

PRIOR = 1e-4  # RunningMeanStd.create starts from mean 0, var 1 with this count


def _np_stats(x):
    """Mean and variance of the rows of ``x`` together with the prior's pseudo-count (mean 0,
    var 1), one element at a time in float64: the exact value of the parallel update."""
    x = np.asarray(x, np.float64)
    total = PRIOR + len(x)
    mean = sum(row for row in x) / total
    var = (PRIOR * (1.0 + mean**2) + sum((row - mean) ** 2 for row in x)) / total
    return mean, var


class RunningMeanStdTest(chex.TestCase):
    @variants
    def test_update_matches_numpy_of_the_concatenated_batches(self):
        rng = np.random.default_rng(0)
        update = self.variant(lambda rms, b: rms.update(b))
        for shape, sizes in [((3,), (50, 50, 50, 50)), ((), (1, 7, 64, 2)), ((2, 2), (5, 300, 1))]:
            batches = [rng.normal(3.0, 2.0, size=(b,) + shape).astype(np.float32) for b in sizes]
            rms = RunningMeanStd.create(shape)
            for i, b in enumerate(batches):
                rms = update(rms, jnp.asarray(b))
                seen = np.concatenate(batches[: i + 1])
                mean, var = _np_stats(seen)
                # float32 running sums of a few hundred values of size ~3: ~1e-6 relative
                np.testing.assert_allclose(rms.mean, mean, rtol=1e-5, err_msg=f"{shape} after {i + 1}")
                np.testing.assert_allclose(rms.var, var, rtol=1e-5, err_msg=f"{shape} after {i + 1}")
                np.testing.assert_allclose(rms.count, PRIOR + len(seen), rtol=1e-6)
                chex.assert_shape([rms.mean, rms.var], shape)
            # the prior weighs 1e-4 against >= 64 samples: within 2e-5 of the plain statistics
            # (the var's prior term is 1e-4 (1 + 3^2 - 2^2) / 64 ~ 1e-5 of 4)
            seen = np.concatenate(batches).astype(np.float64)
            np.testing.assert_allclose(rms.mean, seen.mean(0), rtol=2e-5)
            np.testing.assert_allclose(rms.var, seen.var(0), rtol=2e-5)

    def test_create(self):
        rms = RunningMeanStd.create((2, 3))
        np.testing.assert_array_equal(rms.mean, np.zeros((2, 3)))
        np.testing.assert_array_equal(rms.var, np.ones((2, 3)))
        assert rms.mean.dtype == rms.var.dtype == jnp.float32 and float(rms.count) == np.float32(PRIOR)

    @variants
    def test_normalize_matches_numpy(self):
        rms = RunningMeanStd(jnp.array([1.0, -2.0, 0.5]), jnp.array([4.0, 0.25, 1e-6]), jnp.float32(10.0))
        x = np.random.default_rng(1).normal(0.0, 3.0, (40, 3)).astype(np.float32)
        for clip in (10.0, 2.0):
            got = np.asarray(self.variant(lambda r, x: r.normalize(x, clip))(rms, x))
            want = np.zeros((40, 3))
            for i in range(40):
                for j in range(3):
                    z = (float(x[i, j]) - float(rms.mean[j])) / np.sqrt(float(rms.var[j]) + 1e-8)
                    want[i, j] = min(max(z, -clip), clip)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
            assert np.abs(got[:, 2]).max() == clip  # the near-zero variance column is clipped
        # by hand: (3 - 1) / sqrt(4) = 1, (-2.5 + 2) / sqrt(.25) = -1
        got = self.variant(lambda r, x: r.normalize(x))(rms, jnp.array([[3.0, -2.5, 0.5]]))
        np.testing.assert_allclose(got, [[1.0, -1.0, 0.0]], rtol=1e-6, atol=1e-7)
