"""Flax modules: MLP and MinAtar conv torsos, policy heads (distrax) and critics.

Initialisation follows the usual PPO recipe: orthogonal weights with gain sqrt(2) in
hidden layers, 0.01 on the policy head (near-uniform initial policy) and 1 on the
value head; zero biases. The orthogonal initialiser is flax's, or where jaxlib 0.10's CPU
LAPACK can deadlock under ``vmap``, the same draw without LAPACK
(``purejaxpg.engine.compat.orthogonal_init``).
"""
from __future__ import annotations

from typing import Sequence

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from purejaxpg.engine.compat import orthogonal_init

ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu, "elu": nn.elu, "gelu": nn.gelu, "silu": nn.silu}
TORSOS = ("mlp", "conv")


def _dense(features: int, gain: float) -> nn.Dense:
    return nn.Dense(features, kernel_init=orthogonal_init(gain), bias_init=nn.initializers.zeros)


class MLP(nn.Module):
    """Dense layers with an activation after each. [B, D] -> [B, hidden[-1]]; observations
    of higher rank ([B, H, W, C], MinAtar without the conv torso) are flattened first."""

    hidden: Sequence[int] = (64, 64)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, x):
        if x.ndim > 2:
            x = x.reshape(x.shape[0], -1)
        act = ACTIVATIONS[self.activation]
        for width in self.hidden:
            x = act(_dense(width, np.sqrt(2))(x))
        return x


class ConvTorso(nn.Module):
    """MinAtar torso: one 3x3 conv (16 channels), flatten, then the MLP. [B, 10, 10, C]."""

    hidden: Sequence[int] = (128,)
    activation: str = "relu"
    channels: int = 16

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(self.channels, (3, 3), padding="VALID",
                    kernel_init=orthogonal_init(np.sqrt(2)), bias_init=nn.initializers.zeros)(x)
        x = ACTIVATIONS[self.activation](x)
        x = x.reshape(x.shape[:-3] + (-1,))
        return MLP(self.hidden, self.activation)(x)


def torso(kind: str, hidden: Sequence[int], activation: str) -> nn.Module:
    if kind == "mlp":
        return MLP(tuple(hidden), activation)
    if kind == "conv":
        return ConvTorso(tuple(hidden), activation)
    raise ValueError(f"unknown torso {kind!r}; valid: {', '.join(TORSOS)}")


class Actor(nn.Module):
    """Policy pi(a|s): Categorical over ``num_actions`` logits, or a diagonal Gaussian with a
    state-independent log-std (``discrete=False``). Returns a distrax distribution."""

    num_actions: int
    discrete: bool = True
    hidden: Sequence[int] = (64, 64)
    activation: str = "tanh"
    torso: str = "mlp"
    log_std_init: float = 0.0

    @nn.compact
    def __call__(self, obs):
        h = torso(self.torso, self.hidden, self.activation)(obs)
        out = _dense(self.num_actions, 0.01)(h)
        if self.discrete:
            return distrax.Categorical(logits=out)
        log_std = self.param("log_std", nn.initializers.constant(self.log_std_init), (self.num_actions,))
        return distrax.MultivariateNormalDiag(out, jnp.broadcast_to(jnp.exp(log_std), out.shape))


class Critic(nn.Module):
    """State value V(s). [B, *obs] -> [B]."""

    hidden: Sequence[int] = (64, 64)
    activation: str = "tanh"
    torso: str = "mlp"

    @nn.compact
    def __call__(self, obs):
        h = torso(self.torso, self.hidden, self.activation)(obs)
        return _dense(1, 1.0)(h).squeeze(-1)


# ---- SAC: tanh-squashed Gaussian actor and an ensemble of Q critics -------------------
# Layers of an ensemble (twin Q) are stacked on a leading axis and run as one batched
# matmul; the dense op has a hand-written backward pass laid out for CPU (see ``dense``).

from typing import NamedTuple

_LOG2 = float(np.log(2.0))
_LOG_SQRT_2PI = float(0.5 * np.log(2.0 * np.pi))


@jax.custom_vjp
def dense(x, kernel, bias):
    """x @ kernel + bias over the last two axes (leading axes batch, e.g. ensemble members).
    x [..., B, I], kernel [..., I, O], bias [..., O] -> [..., B, O].

    The backward pass writes the kernel gradient of a narrow layer (one or two outputs: the
    heads) as a multiply and a sum per output column, several times faster on CPU than
    XLA's matmul kernel for that shape; wider layers use the usual matmul."""
    return x @ kernel + bias[..., None, :]


def _dense_fwd(x, kernel, bias):
    return dense(x, kernel, bias), (x, kernel)


def _dense_bwd(res, g):
    x, kernel = res
    gx = g @ jnp.swapaxes(kernel, -1, -2)
    if g.shape[-1] <= 2:
        gk = jnp.stack([(x * g[..., o:o + 1]).sum(-2) for o in range(g.shape[-1])], axis=-1)
    else:
        gk = jnp.swapaxes(x, -1, -2) @ g
    return gx, gk, g.sum(-2)


dense.defvjp(_dense_fwd, _dense_bwd)


class SACDense(nn.Module):
    """A dense layer (``ensemble=0``) or ``ensemble`` independent ones stacked, with the uniform
    fan-in initialisation customary for SAC, U(+-1/sqrt(fan_in)) (no QR decomposition at init).
    Ensemble input: [K, B, I], or [B, I] shared by all members."""

    features: int
    ensemble: int = 0

    @nn.compact
    def __call__(self, x):
        k = (self.ensemble,) if self.ensemble else ()
        init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform", in_axis=-2, out_axis=-1,
                                                batch_axis=tuple(range(len(k))))
        kernel = self.param("kernel", init, k + (x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, k + (self.features,))
        if self.ensemble and x.ndim == 2:
            x = jnp.broadcast_to(x, k + x.shape)
        return dense(x, kernel, bias)


class SACTorso(nn.Module):
    """SACDense layers with an activation after each. [(K,) B, D] -> [(K,) B, hidden[-1]]."""

    hidden: Sequence[int] = (256, 256)
    activation: str = "relu"
    ensemble: int = 0

    @nn.compact
    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        for width in self.hidden:
            x = act(SACDense(width, self.ensemble)(x))
        return x


def tanh_log_det_jacobian(u):
    """log |d tanh(u) / du| = log(1 - tanh(u)^2), written as 2 (log 2 - u - softplus(-2u)),
    which stays finite where tanh(u) rounds to +-1."""
    return 2.0 * (_LOG2 - u - nn.softplus(-2.0 * u))


class SquashedGaussian(NamedTuple):
    """a = tanh(u), u ~ N(mean, exp(log_std)^2) per dimension; a lies in (-1, 1)^A (the env
    rescales it to the Box's bounds). Log-densities are of a in (-1, 1)^A. [B, A] each."""

    mean: jnp.ndarray
    log_std: jnp.ndarray

    def sample_and_log_prob(self, key):
        """Reparameterised sample (differentiable in mean and log_std) and its log-density:
        log N(u) - sum_i log(1 - tanh(u_i)^2). Returns ([B, A], [B])."""
        eps = jax.random.normal(key, self.mean.shape, self.mean.dtype)
        u = self.mean + jnp.exp(self.log_std) * eps
        log_prob = (-0.5 * eps**2 - self.log_std - _LOG_SQRT_2PI - tanh_log_det_jacobian(u)).sum(-1)
        return jnp.tanh(u), log_prob

    def log_prob(self, action, eps: float = 1e-6):
        """Log-density of given actions in (-1, 1)^A (clipped to 1 - eps from the edges)."""
        u = jnp.arctanh(jnp.clip(action, -1.0 + eps, 1.0 - eps))
        z = (u - self.mean) * jnp.exp(-self.log_std)
        return (-0.5 * z**2 - self.log_std - _LOG_SQRT_2PI - tanh_log_det_jacobian(u)).sum(-1)

    def mode(self):
        """tanh(mean): the usual deterministic SAC action (not the exact mode of the density)."""
        return jnp.tanh(self.mean)


class SquashedGaussianActor(nn.Module):
    """SAC's policy: an MLP giving the mean and log-std of a tanh-squashed diagonal Gaussian.
    The log-std is bounded smoothly to [log_std_min, log_std_max]. [B, *obs] -> SquashedGaussian."""

    action_dim: int
    hidden: Sequence[int] = (256, 256)
    activation: str = "relu"
    log_std_min: float = -5.0
    log_std_max: float = 2.0

    @nn.compact
    def __call__(self, obs):
        h = SACTorso(tuple(self.hidden), self.activation)(obs)
        out = SACDense(2 * self.action_dim)(h)  # one head for both: one matmul
        mean, raw = jnp.split(out, 2, axis=-1)
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (jnp.tanh(raw) + 1.0)
        return SquashedGaussian(mean, log_std)


class CategoricalSACActor(nn.Module):
    """Discrete SAC's policy: a categorical distribution over ``num_actions`` logits.
    [B, *obs] -> distrax.Categorical."""

    num_actions: int
    hidden: Sequence[int] = (256, 256)
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs):
        h = SACTorso(tuple(self.hidden), self.activation)(obs)
        return distrax.Categorical(logits=SACDense(self.num_actions)(h))


class EnsembleQ(nn.Module):
    """``num_q`` independent Q networks (twin Q for 2), parameters stacked on a leading axis so
    that each layer of all of them is one batched matmul. Q(s, a) for continuous actions
    ([B, A] concatenated to the observation) -> [num_q, B]; Q(s, .) for a discrete space
    (``num_actions > 0``, no action input) -> [num_q, B, num_actions]."""

    num_q: int = 2
    hidden: Sequence[int] = (256, 256)
    activation: str = "relu"
    num_actions: int = 0

    @nn.compact
    def __call__(self, obs, action=None):
        x = obs if action is None else jnp.concatenate([obs, action.astype(obs.dtype)], axis=-1)
        h = SACTorso(tuple(self.hidden), self.activation, self.num_q)(x)
        out = SACDense(self.num_actions or 1, self.num_q)(h)
        return out if self.num_actions else out[..., 0]
