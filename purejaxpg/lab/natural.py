"""The natural gradient on tabular MDPs, exactly: the engine's CG on exact Fisher-vector
products against the dense pseudo-inverse, the direction from sampled Fisher-vector
products against the exact one as the batch grows, and exact natural against exact vanilla
gradient ascent on J(theta).

* ``cg_against_pinv``: x = CG(F, grad J) with F v from ``core.natural.fisher_vector_product``
  of the exact state-weighted KL (``exact.weighted_kl``) against np.linalg.pinv(F) grad J
  with F = ``exact.exact_fisher``, and against the closed form (the advantage centred per
  state), in float64.
* ``sampled_directions``: B episodes from the engine's rollout (float32); the gradient estimate
  gamma^t (G_t - V(s_t)) and the Fisher of the sampled KL (1/B) sum gamma^t
  KL(pi_old(s_t) || pi(s_t)), whose expectation is the exact F; CG on its FVPs; the cosine
  of the direction with the exact natural gradient, for growing B (float64 from the
  episodes on).
* ``ascent``: theta <- theta + eta d from theta = 0 (uniform policy), d = grad J (vanilla) or
  F^+ grad J (natural, by CG on exact FVPs), for a grid of eta, and with each step scaled to
  the same KL (the directions compared at equal policy movement); iterations until J
  reaches 99% of the optimal J (policy iteration's), float64, the exact J at every
  iteration. With a very large eta either direction jumps to a near-greedy policy (a
  policy-iteration step), so the grid shows where each stands at equal eta.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from purejaxpg.core import advantages as adv
from purejaxpg.core import natural, rollout
from purejaxpg.envs import VecEnv
from purejaxpg.lab import exact as ex
from purejaxpg.lab.estimators import Problem, exact_quantities, first_episode_mask, log_probs, make_problem, policy_fn

CG_TOL = 1e-10  # relative residual at which CG stops moving (F is singular: see core.natural)
ETAS = (0.1, 1.0, 10.0, 100.0, 1000.0)  # step sizes of the ascent grid
KLS = (0.001, 0.01, 0.1)  # KL per step of the KL-matched ascent


def _exact_natural(mdp, theta, iters: int):
    """(CG solution, grad J) with exact FVPs; traced inside jit."""
    g = ex.exact_grad(mdp, theta).reshape(-1)
    kl = ex.weighted_kl(mdp, theta)
    shape = theta.shape
    fvp = natural.fisher_vector_product(lambda x: kl(x.reshape(shape)), theta.reshape(-1))
    return natural.conjugate_gradient(fvp, g, iters, CG_TOL), g


def cg_against_pinv(problem: Problem) -> dict:
    """CG on exact FVPs (S*A iterations) against the dense pseudo-inverse and the closed
    form, float64: max |difference| and the CG residual."""
    with jax.enable_x64(True):
        m = problem.mdp.astype(jnp.float64)
        theta = jnp.asarray(problem.theta, jnp.float64)
        S, A = theta.shape
        (cg, g) = jax.jit(_exact_natural, static_argnums=2)(m, theta, S * A)
        F = np.asarray(jax.jit(ex.exact_fisher)(m, theta))
        closed = np.asarray(jax.jit(ex.natural_grad_closed_form)(m, theta)).reshape(-1)
        x = np.asarray(cg.x)
    pinv = np.linalg.pinv(F, rcond=1e-10) @ np.asarray(g)
    return {"cg_vs_pinv_max_abs_err": float(np.max(np.abs(x - pinv))),
            "closed_form_vs_pinv_max_abs_err": float(np.max(np.abs(closed - pinv))),
            "cg_residual": float(cg.residual), "cg_iters": int(S * A),
            "natural_grad_norm": float(np.linalg.norm(pinv)), "fisher_rank": int(np.linalg.matrix_rank(F, 1e-10))}


def _sampled_direction(traj, theta, V, gamma, num_episodes, iters: int):
    """The CG direction of one batch of first episodes [H, B]: (direction, gradient) [S*A].
    Call in float64 (the sums run over B x H steps; in float32 their rounding leaves
    components along F's null space that CG, run past the rank, amplifies)."""
    mask = first_episode_mask(traj.done)
    gt = adv.discount_weights(gamma, traj.episode_step) * mask
    rtg = adv.reward_to_go(traj.reward, traj.discounts(gamma), traj.done)
    weight = jax.lax.stop_gradient(gt * (rtg - traj.obs @ V))
    shape = theta.shape
    log_pi0 = jax.nn.log_softmax(traj.obs @ theta)

    def objective(x):  # its gradient at theta: (1/B) sum_t gamma^t (G_t - V) grad log pi
        return (weight * log_probs(x.reshape(shape), traj.obs, traj.action)).sum() / num_episodes

    def kl(x):  # (1/B) sum_t gamma^t KL(pi_theta(s_t) || pi_x(s_t)): expectation sum_s d(s) KL_s
        log_pi = jax.nn.log_softmax(traj.obs @ x.reshape(shape))
        return (gt * (jnp.exp(log_pi0) * (log_pi0 - log_pi)).sum(-1)).sum() / num_episodes

    x0 = theta.reshape(-1)
    g = jax.grad(objective)(x0)
    cg = natural.conjugate_gradient(natural.fisher_vector_product(kl, x0), g, iters, CG_TOL)
    return cg.x, g


def sampled_directions(problem: Problem, exact_direction: np.ndarray, batch_sizes, k: int, key) -> dict:
    """For each B: K batches of B episodes (the engine's rollout, float32) -> the cosine of
    each batch's CG direction (S*A iterations on the sampled FVPs, float64) with the exact
    natural gradient; also the cosine of the sampled vanilla gradient with the exact one."""
    H = problem.horizon
    theta = jnp.asarray(problem.theta, jnp.float32)
    S, A = theta.shape
    exact = exact_quantities(problem)
    target = np.asarray(exact_direction, np.float64).reshape(-1)

    def cos(u, v):
        return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))

    out = {"batch_sizes": [int(b) for b in batch_sizes], "k": int(k), "natural_cosine_mean": [],
           "natural_cosine_min": [], "vanilla_cosine_mean": []}
    for i, B in enumerate(batch_sizes):
        venv = VecEnv(problem.env_name, int(B), **problem.env_kwargs, max_steps_in_episode=H)

        @jax.jit
        def collect(key):
            k_reset, k_collect = jax.random.split(key)
            return rollout.collect(venv, policy_fn, theta, rollout.reset(venv, k_reset, False), k_collect, H)[1]

        nat, van = [], []
        for j in range(int(k)):
            traj = collect(jax.random.fold_in(key, i * 100_003 + j))
            with jax.enable_x64(True):
                t64 = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64) if x.dtype == jnp.float32 else x, traj)
                d, g = _direction64(t64, jnp.asarray(problem.theta, jnp.float64), jnp.asarray(exact["V"]),
                                    jnp.float64(problem.mdp.gamma), B, S * A)
                d, g = np.asarray(d), np.asarray(g)
            nat.append(cos(d, target))
            van.append(cos(g, exact["grad"].reshape(-1)))
        out["natural_cosine_mean"].append(float(np.mean(nat)))
        out["natural_cosine_min"].append(float(np.min(nat)))
        out["vanilla_cosine_mean"].append(float(np.mean(van)))
    return out


_direction64 = jax.jit(_sampled_direction, static_argnums=(4, 5))


def _ascent(mdp, natural_step: bool, eta, iters: int, kl_matched: bool, target):
    """J at each of ``iters`` steps from theta = 0: theta += eta d, or, ``kl_matched``, the step
    along d scaled to the quadratic KL eta (sqrt(2 eta / d^T F d) d), so that both
    directions move the policy equally far. theta stops once J >= ``target`` (only the
    iterations to get there are measured; fixed-KL steps from a nearly deterministic policy
    are steps of unbounded size)."""
    S, A = mdp.R.shape

    def step(carry, _):
        theta, J = carry
        if natural_step:
            d = _exact_natural(mdp, theta, S * A)[0].x.reshape(theta.shape)
        else:
            d = ex.exact_grad(mdp, theta)
        if kl_matched:
            kl = ex.weighted_kl(mdp, theta)
            fd = natural.fisher_vector_product(lambda x: kl(x.reshape(theta.shape)), theta.reshape(-1))(d.reshape(-1))
            dfd = d.reshape(-1) @ fd
            d = jnp.where(dfd > 0, jnp.sqrt(2.0 * eta / jnp.where(dfd > 0, dfd, 1.0)), 0.0) * d
        else:
            d = eta * d
        theta = jnp.where(J >= target, theta, theta + d)
        J = ex.exact_J(mdp, theta)
        return (theta, J), J

    theta0 = jnp.zeros((S, A), mdp.P.dtype)
    J0 = ex.exact_J(mdp, theta0)
    _, Js = jax.lax.scan(step, (theta0, J0), None, length=iters)
    return jnp.concatenate([J0[None], Js])


def ascent(mdp_name: str, iters: int = 2000, etas=ETAS, kls=KLS, fraction: float = 0.99) -> dict:
    """Exact natural and vanilla gradient ascent on J from the uniform policy: iterations to
    ``fraction`` of the optimal J (None: not within ``iters``) for each step size eta of
    the grid (theta += eta d) and for each KL per step of ``kls`` (the step along d scaled
    to that quadratic KL: the directions compared at equal policy movement); the J curves
    at the middle KL."""
    problem = make_problem(mdp_name)
    with jax.enable_x64(True):
        m = problem.mdp.astype(jnp.float64)
        J_star = float(m.d0 @ ex.policy_iteration(m).V)
        runs = jax.jit(jax.vmap(_ascent, in_axes=(None, None, 0, None, None, None)), static_argnums=(1, 3, 4))
        curves = {(kind, kl): np.asarray(runs(m, kind, jnp.asarray(kls if kl else etas, jnp.float64), int(iters), kl,
                                              fraction * J_star))
                  for kind in (False, True) for kl in (False, True)}
    out = {"mdp": mdp_name, "env_kwargs": problem.env_kwargs, "optimal_J": J_star,
           "initial_J": float(curves[(False, False)][0, 0]), "fraction": fraction, "max_iters": int(iters),
           "etas": list(etas), "kls": list(kls)}

    def first(Js):
        reached = Js >= fraction * J_star
        return [int(np.argmax(r)) if r.any() else None for r in reached]

    mid = len(kls) // 2
    for kind, name in ((False, "vanilla"), (True, "natural")):
        out[name] = {"iterations": first(curves[(kind, False)]), "iterations_kl": first(curves[(kind, True)]),
                     "curve_kl": [float(v) for v in curves[(kind, True)][mid]]}
    return out


def run_natural(problem: Problem, batch_sizes=(64, 256, 1024, 4096, 16384), k: int = 8, seed: int = 0,
                ascent_mdps=("chain", "frozenlake"), ascent_iters: int = 2000) -> dict:
    """Everything above, as the ``natural`` section of lab.json."""
    exact = cg_against_pinv(problem)
    with jax.enable_x64(True):
        direction = np.asarray(jax.jit(ex.natural_grad_closed_form)(
            problem.mdp.astype(jnp.float64), jnp.asarray(problem.theta, jnp.float64)))
    sampled = sampled_directions(problem, direction, batch_sizes, k, jax.random.PRNGKey(int(seed) + 7))
    return {**exact, "sampled": sampled, "ascent": [ascent(name, ascent_iters) for name in ascent_mdps]}
