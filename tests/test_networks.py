"""The LAPACK-free orthogonal initialiser (``purejaxpg.engine.compat``) and the networks that use it."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxpg.core.networks import Actor, Critic
from purejaxpg.engine import compat


@pytest.mark.parametrize("shape", [(4, 64), (64, 64), (64, 2), (64, 1), (1, 8), (3, 3, 4, 16)])
@pytest.mark.parametrize("scale", [1.0, np.sqrt(2)])
def test_orthogonal_is_flax_orthogonal_without_qr(shape, scale):
    key = jax.random.PRNGKey(3)
    ours = np.asarray(compat.gram_schmidt_orthogonal(scale)(key, shape))
    ref = np.asarray(nn.initializers.orthogonal(scale)(key, shape))  # one unbatched QR
    assert ours.shape == shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=2e-5)  # the same draw, not just the same law
    m = ours.reshape(-1, shape[-1]) / scale
    small = min(m.shape)
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    np.testing.assert_allclose(gram, np.eye(small), atol=1e-5)


def test_vmapped_network_init_has_no_lapack_call():
    # jaxlib 0.10's CPU LAPACK kernels can deadlock XLA's intra-op pool when several batched
    # factorisations run at once (the QRs of a vmapped orthogonal init did, ~2 runs in 5)
    if not compat.cpu_deadlock_prone():
        pytest.skip("flax's orthogonal (QR) is used where the jaxlib 0.10 CPU deadlock cannot happen")
    actor, critic = Actor(2, True, (64, 64)), Critic((64, 64))
    x = jnp.zeros((1, 4))

    def init(key):
        k1, k2 = jax.random.split(key)
        return actor.init(k1, x), critic.init(k2, x)

    hlo = jax.jit(jax.vmap(init)).lower(jax.random.split(jax.random.PRNGKey(0), 4)).as_text()
    assert "lapack" not in hlo.lower() and "custom_call" not in hlo
    actor_params, _ = jax.jit(jax.vmap(init))(jax.random.split(jax.random.PRNGKey(0), 4))
    kernels = np.asarray(actor_params["params"]["MLP_0"]["Dense_1"]["kernel"])  # [4 seeds, 64, 64]
    for w in kernels:
        np.testing.assert_allclose(w.T @ w, 2.0 * np.eye(64), atol=1e-4)  # gain sqrt(2)
    assert not np.allclose(kernels[0], kernels[1])  # each seed its own draw
