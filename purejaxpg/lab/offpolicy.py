"""Off-policy policy-gradient estimators against the exact gradient of pi's J.

Episodes come from a behaviour policy beta = (1 - eps) pi + eps uniform (the engine's
environment and rollout, beta's log-probabilities stored); rho_t = pi(a_t|s_t) /
beta(a_t|s_t), rho_{i:j} = prod_{t=i..j} rho_t. Each estimator is (1/B) sum over episodes
of sum_t w_t grad log pi(a_t|s_t) (``jax.grad`` of the engine's ``reinforce_loss``):

===================== ============================================================ ========
name                  w_t                                                          unbiased
===================== ============================================================ ========
is_whole              rho_{0:T} G_0 (the whole-trajectory weight)                  yes
is_per_decision       sum_{k>=t} gamma^k r_k rho_{0:k} (each reward weighted by    yes
                      the ratios up to it)
is_per_decision_value the same minus rho_{0:t} gamma^t V(s_t) (exact V baseline)  yes
clipped_per_decision  is_per_decision with every rho_t replaced by min(1, rho_t)   no
vtrace                gamma^t min(1, rho_t) (r_t + gamma v_{t+1} - V(s_t)), v the  no
                      V-trace target (core.advantages.vtrace, exact V): IMPALA's,
                      with no correction of the state distribution
===================== ============================================================ ========

``run_offpolicy`` compares K batch means with the exact gradient (z-scores as in the
on-policy lab) and measures, against the horizon H (episodes cut at H in an MDP without
terminal states, so that every episode has H steps), the variance of one episode's
estimate and of the weight rho_{0:H-1}; the exact second moment of that weight is
E[rho_{0:H-1}^2] = d0^T M^H 1 with M[s, s'] = sum_a pi^2/beta P(s'|s, a), which grows
geometrically with H.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from purejaxpg.core import advantages as adv
from purejaxpg.core import rollout
from purejaxpg.core.losses import reinforce_loss
from purejaxpg.envs import VecEnv, make_env
from purejaxpg.lab import exact as ex
from purejaxpg.lab.estimators import Problem, first_episode_mask, log_probs, summarize

OFF_ESTIMATORS = {
    "is_whole": (True, "rho_{0:T} G_0"),
    "is_per_decision": (True, "sum_k>=t gamma^k r_k rho_{0:k}"),
    "is_per_decision_value": (True, "per-decision minus rho_{0:t} gamma^t V(s_t)"),
    "clipped_per_decision": (False, "per-decision with min(1, rho)"),
    "vtrace": (False, "gamma^t V-trace advantage (rho_bar = c_bar = 1)"),
}


def behaviour_probs(theta, eps):
    """beta = (1 - eps) softmax(theta) + eps / A. [S, A]."""
    return (1.0 - eps) * jax.nn.softmax(theta, -1) + eps / theta.shape[-1]


def _behaviour_fn(eps):
    def fn(theta, obs, key):
        log_beta = jnp.log(obs @ behaviour_probs(theta, eps))
        action = jax.random.categorical(key, log_beta)
        return action, jnp.take_along_axis(log_beta, action[..., None], -1)[..., 0]

    return fn


def weights(traj: rollout.Transition, theta, V, gamma, clip=None) -> dict:
    """Every estimator's per-step weight w_t on grad log pi, [H, B], first episodes only
    (traj.log_prob is log beta)."""
    mask = first_episode_mask(traj.done)
    log_rho = (log_probs(theta, traj.obs, traj.action) - traj.log_prob) * mask  # 0 after the first episode
    rho = jnp.exp(log_rho)
    gt = adv.discount_weights(gamma, traj.episode_step)
    discounts = traj.discounts(gamma)
    rtg = adv.reward_to_go(traj.reward, discounts, traj.done)
    g0 = adv.episode_start_values(rtg, traj.done)
    v = traj.obs @ V

    def per_decision(log_r):
        prefix = jnp.exp(jnp.cumsum(log_r, axis=0))  # rho_{0:k}
        y = gt * traj.reward * prefix * mask
        return jnp.flip(jnp.cumsum(jnp.flip(y, 0), axis=0), 0), prefix  # sum over k >= t

    pd, prefix = per_decision(log_rho)
    clipped, _ = per_decision(jnp.minimum(log_rho, 0.0))
    _, vt_adv = adv.vtrace(traj.reward, discounts, traj.done, v, traj.next_obs @ V, log_rho, 1.0, 1.0, 1.0)
    whole = jnp.exp(log_rho.sum(0, keepdims=True)) * g0
    out = {"is_whole": whole, "is_per_decision": pd, "is_per_decision_value": pd - prefix * gt * v,
           "clipped_per_decision": clipped, "vtrace": gt * vt_adv}
    return {k: w * mask for k, w in out.items()}, rho, mask


def batch_gradients(traj, theta, V, gamma, num_episodes) -> dict:
    """{name: [S, A]} estimates of grad J(pi) from one batch of behaviour episodes."""
    w, _, mask = weights(traj, theta, V, gamma)
    scale = mask.sum() / num_episodes

    def loss(th, wt):
        return reinforce_loss(log_probs(th, traj.obs, traj.action), wt, mask) * scale

    names = list(OFF_ESTIMATORS)
    grads = jax.vmap(jax.grad(loss), in_axes=(None, 0))(theta, jnp.stack([w[k] for k in names]))
    return {k: -grads[i] for i, k in enumerate(names)}


def _sample(venv, horizon, theta, eps, key):
    k_reset, k_collect = jax.random.split(key)
    return rollout.collect(venv, _behaviour_fn(eps), theta, rollout.reset(venv, k_reset, False), k_collect, horizon)[1]


def sample_off_policy(problem: Problem, V, eps: float, batch_size: int, k: int, key) -> dict:
    """K batches of B behaviour episodes -> {name: [K, S, A]} (float64 NumPy)."""
    theta = jnp.asarray(problem.theta, jnp.float32)
    V = jnp.asarray(V, jnp.float32)
    gamma = jnp.asarray(problem.mdp.gamma, jnp.float32)
    B = int(batch_size)
    venv = VecEnv(problem.env_name, B, **problem.env_kwargs, max_steps_in_episode=problem.horizon)

    @jax.jit
    def one(key):
        traj = _sample(venv, problem.horizon, theta, eps, key)
        return batch_gradients(traj, theta, V, gamma, B)

    parts = [one(jax.random.fold_in(key, i)) for i in range(int(k))]
    return {n: np.stack([np.asarray(p[n], np.float64) for p in parts]) for n in OFF_ESTIMATORS}


def exact_weight_second_moment(mdp, theta, eps, horizon: int) -> float:
    """E_beta[rho_{0:H-1}^2] = d0^T M^H 1, M[s, s'] = sum_a pi(a|s)^2 / beta(a|s) P(s'|s, a), for
    an MDP without terminal states (float64, host side)."""
    theta = np.asarray(theta, np.float64)
    pi = np.exp(theta - theta.max(-1, keepdims=True))
    pi /= pi.sum(-1, keepdims=True)
    beta = (1.0 - eps) * pi + eps / pi.shape[-1]
    M = np.einsum("sa,sat->st", pi ** 2 / beta, np.asarray(mdp.P, np.float64))
    x = np.ones(M.shape[0])
    for _ in range(int(horizon)):
        x = M @ x
    return float(np.asarray(mdp.d0, np.float64) @ x)


def variance_against_horizon(problem: Problem, eps: float, horizons, episodes: int, key) -> dict:
    """Per-episode variance (trace of covariance) of each estimator and the variance of the
    whole-trajectory weight rho_{0:H-1}, sampled and exact, against H, on the lab's random
    MDP without terminal states (every episode lasts H steps)."""
    if problem.env_name != "Tabular-Random":
        raise ValueError("the horizon study uses the random MDP (it removes the terminal state)")
    kwargs = {**problem.env_kwargs, "terminal_prob": 0.0}
    _, params = make_env(problem.env_name, **kwargs)
    theta = jnp.asarray(problem.theta, jnp.float32)
    with jax.enable_x64(True):
        m64 = params.mdp.astype(jnp.float64)
        V = np.asarray(ex.evaluate(m64, ex.softmax_policy(jnp.asarray(theta, jnp.float64))))
    gamma = jnp.asarray(params.mdp.gamma, jnp.float32)
    out = {"horizons": [int(h) for h in horizons], "episodes": int(episodes), "eps": float(eps),
           "weight_variance": [], "weight_variance_exact": [], **{n: [] for n in OFF_ESTIMATORS}}
    for i, H in enumerate(horizons):
        venv = VecEnv(problem.env_name, int(episodes), **kwargs, max_steps_in_episode=int(H))

        @jax.jit
        def run(key):
            traj = _sample(venv, int(H), theta, eps, key)
            one = jax.tree.map(lambda x: x[:, :, None], traj)  # [H, E, 1, ...]: one episode per batch
            grads = jax.vmap(lambda t: batch_gradients(t, theta, jnp.asarray(V, jnp.float32), gamma, 1),
                             in_axes=1)(one)
            _, rho, _ = weights(traj, theta, jnp.asarray(V, jnp.float32), gamma)
            return grads, jnp.prod(rho, axis=0)

        grads, w = run(jax.random.fold_in(key, i))
        for n in OFF_ESTIMATORS:
            g = np.asarray(grads[n], np.float64).reshape(int(episodes), -1)
            out[n].append(float(g.var(0, ddof=1).sum()))
        out["weight_variance"].append(float(np.asarray(w, np.float64).var(ddof=1)))
        out["weight_variance_exact"].append(exact_weight_second_moment(params.mdp, theta, eps, int(H)) - 1.0)
    return out


def run_offpolicy(problem: Problem, exact: dict, eps: float = 0.3, batch_size: int = 64, k: int = 200,
                  seed: int = 0, horizons=(1, 2, 4, 8, 16, 32, 64), episodes: int = 4096) -> dict:
    """The ``off_policy`` section of lab.json."""
    key = jax.random.PRNGKey(int(seed) + 11)
    samples = sample_off_policy(problem, exact["V"], eps, batch_size, k, key)
    est = {}
    for name, (unbiased, desc) in OFF_ESTIMATORS.items():
        est[name] = {"unbiased": unbiased, "weight": desc, **summarize(samples[name], exact["grad"])}
    out = {"eps": float(eps), "batch_size": int(batch_size), "k": int(k), "estimators": est}
    if problem.env_name == "Tabular-Random":
        out["horizon"] = variance_against_horizon(problem, eps, horizons, episodes, jax.random.fold_in(key, 1))
    return out
