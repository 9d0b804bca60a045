"""``purejaxpg.core.networks``: the LAPACK-free orthogonal initialiser (``purejaxpg.engine.compat``),
and every head (policy distributions, value and Q outputs) against a NumPy forward pass of
its layers."""
import math

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxpg.core.networks import (
    Actor,
    CategoricalSACActor,
    Critic,
    EnsembleQ,
    SquashedGaussianActor,
    tanh_log_det_jacobian,
)
from purejaxpg.engine import compat

variants = chex.variants(with_jit=True, without_jit=True)


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


# ---- heads against NumPy -------------------------------------------------------------------
# The reference recomputes each network in float64 from its parameters, layer by layer, then
# applies the textbook formulas. Parameters are redrawn at a larger scale than the init (whose
# 0.01 policy gain makes every policy nearly uniform, which would hide a wrong formula).
# Tolerance: the float32 forward pass rounds sums of ~10 terms of size ~1, about 1e-6
# absolutely; rtol = atol = 1e-5 leaves a factor 10.
TOL = dict(rtol=1e-5, atol=1e-5)


def _redraw(shapes, seed, scale=0.7):
    """Parameters of the shapes of ``jax.eval_shape(module.init, ...)``, drawn N(0, scale^2)."""
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(lambda a: jnp.asarray(rng.normal(0.0, scale, a.shape), a.dtype), shapes)


def _np_layers(x, layers, act):
    """Dense layers (dicts with kernel [I, O] and bias [O]) with ``act`` after each, float64."""
    x = np.asarray(x, np.float64)
    for layer in layers:
        x = act(x @ np.asarray(layer["kernel"], np.float64) + np.asarray(layer["bias"], np.float64))
    return x


def _np_torso_and_head(p, torso, prefix, act):
    t = p[torso]
    hidden = [t[f"{prefix}_{i}"] for i in range(len(t))]
    return lambda obs: _np_layers(_np_layers(obs, hidden, act), [p[f"{prefix}_0"]], lambda z: z)


def _np_log_softmax(logits):
    """log p_a = l_a - log sum_b exp l_b, row by row (float64)."""
    out = np.zeros_like(logits)
    for i, row in enumerate(logits):
        out[i] = row - math.log(sum(math.exp(v) for v in row))
    return out


def _relu(x):
    return np.maximum(x, 0.0)


class PolicyHeadsTest(chex.TestCase):
    @variants
    def test_categorical_actor_matches_numpy(self):
        actor = Actor(num_actions=4, discrete=True, hidden=(16, 8))
        obs = np.random.default_rng(0).normal(size=(32, 5)).astype(np.float32)
        params = _redraw(jax.eval_shape(actor.init, jax.random.PRNGKey(0), obs), 1)
        actions = np.random.default_rng(2).integers(0, 4, 32)

        def head(params, obs, actions):
            d = actor.apply(params, obs)
            return d.logits, d.log_prob(actions), d.entropy(), d.mode(), d.probs

        logits, lp, ent, mode, probs = self.variant(head)(params, obs, actions)
        p = params["params"]
        want_logits = _np_torso_and_head({"MLP_0": p["MLP_0"], "Dense_0": p["Dense_0"]}, "MLP_0", "Dense", np.tanh)(obs)
        logp = _np_log_softmax(want_logits)
        np.testing.assert_allclose(logits, logp, **TOL)  # distrax keeps the logits normalised
        np.testing.assert_allclose(lp, [logp[i, a] for i, a in enumerate(actions)], **TOL)
        np.testing.assert_allclose(ent, [-sum(math.exp(v) * v for v in row) for row in logp], **TOL)
        np.testing.assert_array_equal(mode, [int(np.argmax(row)) for row in want_logits])
        np.testing.assert_allclose(probs, np.exp(logp), **TOL)
        assert np.ptp(np.asarray(ent)) > 0.1  # the redrawn policies differ from state to state

    @variants
    def test_uniform_categorical_closed_form(self):
        # a head with zero weights and a constant bias: logits all equal, so the policy is
        # uniform over A = 5 actions: log pi(a) = -log 5 for every a, entropy log 5
        actor = Actor(num_actions=5, discrete=True, hidden=(8,))
        obs = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
        params = _redraw(jax.eval_shape(actor.init, jax.random.PRNGKey(0), obs), 3)
        params["params"]["Dense_0"] = {"kernel": jnp.zeros((8, 5)), "bias": jnp.full((5,), 3.0)}

        def head(params, obs):
            d = actor.apply(params, obs)
            return jnp.stack([d.log_prob(jnp.full(6, a)) for a in range(5)]), d.entropy()

        lp, ent = self.variant(head)(params, obs)
        np.testing.assert_allclose(lp, -math.log(5), rtol=1e-6)
        np.testing.assert_allclose(ent, math.log(5), rtol=1e-6)

    @variants
    def test_gaussian_actor_matches_numpy(self):
        actor = Actor(num_actions=3, discrete=False, hidden=(16,))
        obs = np.random.default_rng(4).normal(size=(32, 5)).astype(np.float32)
        params = _redraw(jax.eval_shape(actor.init, jax.random.PRNGKey(0), obs), 5)
        actions = np.random.default_rng(6).normal(0.0, 1.5, (32, 3)).astype(np.float32)

        def head(params, obs, actions):
            d = actor.apply(params, obs)
            return d.mean(), d.stddev(), d.log_prob(actions), d.entropy(), d.mode()

        mean, std, lp, ent, mode = self.variant(head)(params, obs, actions)
        p = params["params"]
        want_mean = _np_torso_and_head({"MLP_0": p["MLP_0"], "Dense_0": p["Dense_0"]}, "MLP_0", "Dense", np.tanh)(obs)
        log_std = np.asarray(p["log_std"], np.float64)  # state-independent
        want_lp = [sum(-0.5 * ((a - m) / math.exp(s)) ** 2 - s - 0.5 * math.log(2 * math.pi)
                       for a, m, s in zip(actions[i], want_mean[i], log_std)) for i in range(32)]
        np.testing.assert_allclose(mean, want_mean, **TOL)
        np.testing.assert_allclose(mode, want_mean, **TOL)  # a Gaussian's mode is its mean
        np.testing.assert_allclose(std, np.broadcast_to(np.exp(log_std), (32, 3)), rtol=1e-6)
        np.testing.assert_allclose(lp, want_lp, **TOL)
        # closed form: H = 0.5 A log(2 pi e) + sum_i log std_i, the same in every state
        np.testing.assert_allclose(ent, np.full(32, 1.5 * math.log(2 * math.pi * math.e) + log_std.sum()), **TOL)

    @variants
    def test_gaussian_closed_forms_with_set_log_std(self):
        # log std = [log .5, log 2, .3]: H = 1.5 log(2 pi e) + .3 (the two logs cancel);
        # at the mean log N = -1.5 log(2 pi) - .3; one std away in every dimension, 1.5 less
        actor = Actor(num_actions=3, discrete=False, hidden=(8,))
        obs = np.random.default_rng(7).normal(size=(4, 2)).astype(np.float32)
        params = _redraw(jax.eval_shape(actor.init, jax.random.PRNGKey(0), obs), 8)
        log_std = jnp.array([math.log(0.5), math.log(2.0), 0.3])
        params["params"]["log_std"] = log_std

        def head(params, obs):
            d = actor.apply(params, obs)
            return d.entropy(), d.log_prob(d.mode()), d.log_prob(d.mean() + jnp.exp(log_std))

        ent, lp_mode, lp_one_std = self.variant(head)(params, obs)
        np.testing.assert_allclose(ent, 1.5 * math.log(2 * math.pi * math.e) + 0.3, rtol=1e-6)
        np.testing.assert_allclose(lp_mode, -1.5 * math.log(2 * math.pi) - 0.3, rtol=1e-6)
        np.testing.assert_allclose(lp_one_std, -1.5 * math.log(2 * math.pi) - 0.3 - 1.5, rtol=1e-5)

    @variants
    def test_categorical_sac_actor_matches_numpy(self):
        actor = CategoricalSACActor(num_actions=3, hidden=(16, 8))
        obs = np.random.default_rng(9).normal(size=(32, 4)).astype(np.float32)
        params = _redraw(jax.eval_shape(actor.init, jax.random.PRNGKey(0), obs), 10)
        actions = np.random.default_rng(11).integers(0, 3, 32)

        def head(params, obs, actions):
            d = actor.apply(params, obs)
            return d.probs, d.log_prob(actions), d.entropy(), d.mode()

        probs, lp, ent, mode = self.variant(head)(params, obs, actions)
        logits = _np_torso_and_head(params["params"], "SACTorso_0", "SACDense", _relu)(obs)
        logp = _np_log_softmax(logits)
        np.testing.assert_allclose(probs, np.exp(logp), **TOL)
        np.testing.assert_allclose(lp, [logp[i, a] for i, a in enumerate(actions)], **TOL)
        np.testing.assert_allclose(ent, [-sum(math.exp(v) * v for v in row) for row in logp], **TOL)
        np.testing.assert_array_equal(mode, np.argmax(logits, -1))

    @variants
    def test_squashed_gaussian_actor_matches_numpy(self):
        # the distribution's own log-density is checked in test_sac.py; here the actor's
        # outputs: mean and log-std from one head, log-std bounded by
        # min + (max - min) (tanh(raw) + 1) / 2, and mode tanh(mean)
        actor = SquashedGaussianActor(action_dim=2, hidden=(16,), log_std_min=-4.0, log_std_max=1.0)
        obs = np.random.default_rng(12).normal(size=(32, 3)).astype(np.float32)
        params = _redraw(jax.eval_shape(actor.init, jax.random.PRNGKey(0), obs), 13, scale=1.5)

        def head(params, obs):
            d = actor.apply(params, obs)
            return d.mean, d.log_std, d.mode()

        mean, log_std, mode = self.variant(head)(params, obs)
        out = _np_torso_and_head(params["params"], "SACTorso_0", "SACDense", _relu)(obs)
        want_mean, raw = out[:, :2], out[:, 2:]
        want_log_std = [[-4.0 + 0.5 * 5.0 * (math.tanh(r) + 1.0) for r in row] for row in raw]
        np.testing.assert_allclose(mean, want_mean, **TOL)
        np.testing.assert_allclose(log_std, want_log_std, **TOL)
        np.testing.assert_allclose(mode, np.tanh(want_mean), **TOL)
        assert np.asarray(log_std).min() < -3.0 and np.asarray(log_std).max() > 0.0  # both ends reached


class ValueHeadsTest(chex.TestCase):
    @variants
    def test_critic_matches_numpy(self):
        critic = Critic(hidden=(16, 8))
        obs = np.random.default_rng(14).normal(size=(32, 5)).astype(np.float32)
        params = _redraw(jax.eval_shape(critic.init, jax.random.PRNGKey(0), obs), 15)
        got = self.variant(critic.apply)(params, obs)
        chex.assert_shape(got, (32,))
        want = _np_torso_and_head(params["params"], "MLP_0", "Dense", np.tanh)(obs)[:, 0]
        np.testing.assert_allclose(got, want, **TOL)

    @variants
    def test_ensemble_q_matches_numpy(self):
        obs = np.random.default_rng(16).normal(size=(32, 4)).astype(np.float32)
        act = np.random.default_rng(17).uniform(-1, 1, (32, 2)).astype(np.float32)
        for q, inputs in [(EnsembleQ(num_q=2, hidden=(16, 8), num_actions=3), (obs,)),
                          (EnsembleQ(num_q=3, hidden=(8,)), (obs, act))]:
            params = _redraw(jax.eval_shape(q.init, jax.random.PRNGKey(0), *inputs), 18)
            got = np.asarray(self.variant(q.apply)(params, *inputs))
            x = np.concatenate(inputs, -1)
            for k in range(q.num_q):  # member k: a plain MLP with slice k of every stacked parameter
                pk = jax.tree_util.tree_map(lambda a: a[k], params["params"])
                want = _np_torso_and_head(pk, "SACTorso_0", "SACDense", _relu)(x)
                np.testing.assert_allclose(got[k], want if q.num_actions else want[:, 0], **TOL)

    @variants
    def test_conv_torso_and_flattening_mlp_match_numpy(self):
        """The MinAtar conv torso (3x3 VALID conv, 16 channels, relu, flatten row-major, MLP)
        by loops over output pixels; and the MLP torso on image observations (flattened)."""
        obs = np.random.default_rng(19).normal(size=(4, 5, 5, 2)).astype(np.float32)
        conv = Critic(hidden=(8,), activation="relu", torso="conv")
        params = _redraw(jax.eval_shape(conv.init, jax.random.PRNGKey(0), obs), 20, scale=0.4)
        got = self.variant(conv.apply)(params, obs)
        p = params["params"]
        k = np.asarray(p["ConvTorso_0"]["Conv_0"]["kernel"], np.float64)  # [3, 3, C, 16]
        b = np.asarray(p["ConvTorso_0"]["Conv_0"]["bias"], np.float64)
        want = []
        for x in obs.astype(np.float64):
            fmap = np.zeros((3, 3, 16))
            for i in range(3):
                for j in range(3):
                    for o in range(16):
                        fmap[i, j, o] = sum(x[i + di, j + dj, c] * k[di, dj, c, o]
                                            for di in range(3) for dj in range(3) for c in range(2)) + b[o]
            h = _np_layers(_relu(fmap).reshape(-1), [p["ConvTorso_0"]["MLP_0"]["Dense_0"]], _relu)
            want.append(_np_layers(h, [p["Dense_0"]], lambda z: z)[0])
        np.testing.assert_allclose(got, want, **TOL)
        mlp = Critic(hidden=(8,), activation="tanh", torso="mlp")
        params = _redraw(jax.eval_shape(mlp.init, jax.random.PRNGKey(0), obs), 21, scale=0.4)
        got = self.variant(mlp.apply)(params, obs)
        want = _np_torso_and_head(params["params"], "MLP_0", "Dense", np.tanh)(obs.reshape(4, -1))[:, 0]
        np.testing.assert_allclose(got, want, **TOL)

    @variants
    def test_tanh_log_det_jacobian_matches_numpy(self):
        # log(1 - tanh(u)^2) in float64; past |u| ~ 9 tanh(u)^2 rounds to 1 even in float64,
        # so there the exact identity log(1 - tanh^2 u) = log(4) - 2|u| - 2 log(1 + e^{-2|u|})
        u = np.array([-40.0, -12.0, -3.0, -0.5, 0.0, 0.3, 2.0, 8.0, 12.0, 40.0])
        want = [math.log1p(-math.tanh(v) ** 2) if abs(v) < 8 else
                math.log(4.0) - 2 * abs(v) - 2 * math.log1p(math.exp(-2 * abs(v))) for v in u]
        got = self.variant(tanh_log_det_jacobian)(jnp.asarray(u, jnp.float32))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
