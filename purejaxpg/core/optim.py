"""Adam with global-norm gradient clipping, written so that XLA compiles it the same way
whether the program is partitioned over devices or not.

The maths is optax's ``chain(clip_by_global_norm(c), scale_by_adam(eps=eps),
scale_by_learning_rate(lr))``. The difference is in how the divisions by scalars are
written. XLA's algebraic simplifier rewrites ``tensor / broadcast(scalar)`` into
``tensor * broadcast(1 / scalar)`` in a single-device program but, on our programs, not in
the same program after SPMD partitioning (several devices), so optax's bias corrections
and clip factor round differently with the device count (about 1e-7 relative after a few
updates; found by diffing XLA's optimised HLO for 1 and 2 devices). Here every such
division is already a multiplication by a scalar factor computed once, so there is nothing
left to rewrite and a run's parameters do not depend on the number of devices.

Still needed with jax/jaxlib 0.10.2 and today's sweep (``shard_map`` over a 1-D mesh, runs
vmapped in blocks): tests/test_determinism.py runs benchmarks/optax_device_count.py, where
optax's chain ends 8 runs with different last bits on 1 and 4 host devices (up to 1.2e-7)
and this one with identical bits. scale_by_adam alone did not differ there;
clip_by_global_norm did, even when it never clipped, so what XLA does depends on the
program around the divisions.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax


def adam_direction(mu, nu, count, eps, b1: float = 0.9, b2: float = 0.999):
    """Adam's bias-corrected step direction ``m_hat / (sqrt(v_hat) + eps)`` for moments
    ``mu``, ``nu`` (arrays of the same shape) after ``count`` (>= 1) updates."""
    t = count.astype(mu.dtype)
    c1 = 1.0 / (1.0 - b1**t)  # scalars: the tensors are multiplied, never divided by them
    c2 = 1.0 / (1.0 - b2**t)
    return (mu * c1) / (jnp.sqrt(nu * c2) + eps)


def clip_factor(grads, max_norm):
    """The scalar that clips ``grads`` to global norm ``max_norm`` (1 when already within)."""
    g_norm = optax.tree.norm(grads)
    return jnp.where(g_norm < max_norm, jnp.ones_like(g_norm), max_norm / g_norm)


class ClippedAdamState(NamedTuple):
    count: jax.Array  # updates done
    mu: Any
    nu: Any


def clipped_adam(learning_rate: Callable, max_grad_norm, eps, b1: float = 0.9,
                 b2: float = 0.999) -> optax.GradientTransformation:
    """``learning_rate(count)``: the step size of update ``count`` (0, 1, ...): a scalar, or an
    array of the parameters' shape (a step size per parameter). ``max_grad_norm`` None: no
    clipping."""

    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return ClippedAdamState(jnp.zeros((), jnp.int32), zeros, zeros)

    def update(grads, state, params=None):
        del params
        if max_grad_norm is not None:
            scale = clip_factor(grads, max_grad_norm)
            grads = jax.tree.map(lambda g: g * scale.astype(g.dtype), grads)
        mu = jax.tree.map(lambda m, g: b1 * m + (1.0 - b1) * g, state.mu, grads)
        nu = jax.tree.map(lambda v, g: b2 * v + (1.0 - b2) * g * g, state.nu, grads)
        count = state.count + 1
        lr = learning_rate(state.count)
        updates = jax.tree.map(lambda m, v: -lr * adam_direction(m, v, count, eps, b1, b2), mu, nu)
        return updates, ClippedAdamState(count, mu, nu)

    return optax.GradientTransformation(init, update)
