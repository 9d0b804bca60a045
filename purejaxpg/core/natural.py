"""Natural-gradient steps: Fisher-vector products, conjugate gradient, the step scaled to a
KL bound, and TRPO's backtracking line search. Pure functions on flat parameter vectors
(``jax.flatten_util.ravel_pytree``), jit- and vmap-able.

For a policy pi_theta and the mean KL between the policy that collected a batch and the
current one, ``kl(theta) = mean_s KL(pi_old(.|s) || pi_theta(.|s))`` with pi_old held fixed,
the Hessian of ``kl`` at theta = theta_old is the Fisher information matrix
F = E_s E_{a ~ pi}[grad log pi(a|s) grad log pi(a|s)^T] of the batch's states. The natural
gradient is F^-1 g; TRPO and NPG take the step

    x = CG(F + damping I, g)  (a fixed number of iterations),
    step = sqrt(2 max_kl / x^T (F + damping I) x) x,

whose second-order KL is max_kl. ``fisher_vector_product`` never forms F: a product F v
is one forward-mode derivative (jvp) of the reverse-mode gradient of ``kl``
(forward-over-reverse), linearised once per batch so that the CG iterations reuse the
forward and backward pass.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp


def fisher_vector_product(kl_fn: Callable, x, damping=0.0) -> Callable:
    """v -> (H v + damping v), H the Hessian of the scalar ``kl_fn`` at the flat vector
    ``x``: the Fisher at the old parameters when ``kl_fn`` is the mean KL from the old
    policy (see the module's doc). Forward-over-reverse, linearised once."""
    _, hvp = jax.linearize(jax.grad(kl_fn), x)
    return lambda v: hvp(v) + damping * v


class CGResult(NamedTuple):
    x: jax.Array  # the approximate solution of A x = b
    residual: jax.Array  # |b - A x| / |b| of the recurrence after the last iteration (0 for b = 0)


def conjugate_gradient(matvec: Callable, b, iters: int, tol=0.0) -> CGResult:
    """``iters`` (static) iterations of conjugate gradient on A x = b from x = 0, A symmetric
    positive (semi-)definite given as ``matvec``. Once the relative residual |r| / |b| is at
    most ``tol`` (default 0: exactly zero) the iterate stops moving: no division by zero,
    and on a singular A (a Fisher matrix without damping) no drift along its null space,
    where the residual no longer sees the iterate (with b in A's range, CG from 0 then
    returns the minimum-norm solution, A^+ b)."""
    zero = jnp.zeros((), b.dtype)
    stop = tol * tol * (b @ b)

    def body(_, c):
        x, r, p, rr = c
        ap = matvec(p)
        pap = p @ ap
        go = (pap > 0) & (rr > stop)
        alpha = jnp.where(go, rr / jnp.where(go, pap, 1.0), zero)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = r @ r
        beta = jnp.where(rr > 0, rr_new / jnp.where(rr > 0, rr, 1.0), zero)
        return x, r, r + beta * p, rr_new

    x, r, _, rr = jax.lax.fori_loop(0, int(iters), body, (jnp.zeros_like(b), b, b, b @ b))
    bb = b @ b
    return CGResult(x, jnp.where(bb > 0, jnp.sqrt(rr / jnp.where(bb > 0, bb, 1.0)), zero))


class NaturalStep(NamedTuple):
    step: jax.Array  # the full step, scaled so that 0.5 step^T F step = max_kl
    direction: jax.Array  # the CG solution x ~ F^-1 g
    expected_gain: jax.Array  # g . step: the first-order improvement of the objective
    cg_residual: jax.Array  # relative residual of CG


def natural_step(grad, fvp: Callable, max_kl, cg_iters: int) -> NaturalStep:
    """The natural-gradient step of ``grad`` under the metric ``fvp`` (F + damping I), scaled
    to the KL bound ``max_kl``: step = sqrt(2 max_kl / x^T F x) x with x = CG(F, grad)."""
    cg = conjugate_gradient(fvp, grad, cg_iters)
    xfx = cg.x @ fvp(cg.x)
    scale = jnp.where(xfx > 0, jnp.sqrt(2.0 * max_kl / jnp.where(xfx > 0, xfx, 1.0)), 0.0)
    step = scale * cg.x
    return NaturalStep(step, cg.x, grad @ step, cg.residual)


class LineSearch(NamedTuple):
    x: jax.Array  # the accepted parameters (the old ones if no step was accepted)
    accepted: jax.Array  # bool: some fraction of the step was accepted
    fraction: jax.Array  # the accepted fraction of the full step (0 if none)
    gain: jax.Array  # objective(x) - objective(x0)
    kl: jax.Array  # the KL at x (0 if none accepted)
    tries: jax.Array  # int32: how many fractions were evaluated


def backtracking_line_search(objective_and_kl: Callable, x0, step, max_kl, shrink, max_backtracks: int) -> LineSearch:
    """TRPO's line search: try x0 + shrink^k step for k = 0, 1, ..., ``max_backtracks`` - 1
    and accept the first whose objective improves on x0's (strictly) while its KL stays
    within ``max_kl``; none accepted: stay at x0. ``objective_and_kl(x) -> (objective to
    maximise, KL from the old policy)``."""
    f0, _ = objective_and_kl(x0)

    def cond(c):
        k, done = c[0], c[1]
        return (k < max_backtracks) & ~done

    def body(c):
        k, _, _, _, _ = c
        frac = shrink ** k.astype(x0.dtype)
        f, kl = objective_and_kl(x0 + frac * step)
        ok = (f > f0) & (kl <= max_kl)
        return k + 1, ok, frac, f - f0, kl

    zero = jnp.zeros((), x0.dtype)
    k, ok, frac, gain, kl = jax.lax.while_loop(cond, body, (jnp.int32(0), jnp.bool_(False), zero, zero, zero))
    frac = jnp.where(ok, frac, zero)
    return LineSearch(jnp.where(ok, x0 + frac * step, x0), ok, frac, jnp.where(ok, gain, zero), jnp.where(ok, kl, zero), k)
