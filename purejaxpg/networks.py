"""Flax modules: MLP and MinAtar conv torsos, policy heads (distrax) and critics.

Initialisation follows the usual PPO recipe: orthogonal weights with gain sqrt(2) in
hidden layers, 0.01 on the policy head (near-uniform initial policy) and 1 on the
value head; zero biases.
"""
from __future__ import annotations

from typing import Sequence

import distrax
import flax.linen as nn
import jax.numpy as jnp
import numpy as np

ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu, "elu": nn.elu, "gelu": nn.gelu, "silu": nn.silu}
TORSOS = ("mlp", "conv")


def _dense(features: int, gain: float) -> nn.Dense:
    return nn.Dense(features, kernel_init=nn.initializers.orthogonal(gain), bias_init=nn.initializers.zeros)


class MLP(nn.Module):
    """Dense layers with an activation after each. [B, D] -> [B, hidden[-1]]."""

    hidden: Sequence[int] = (64, 64)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, x):
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
                    kernel_init=nn.initializers.orthogonal(np.sqrt(2)), bias_init=nn.initializers.zeros)(x)
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
