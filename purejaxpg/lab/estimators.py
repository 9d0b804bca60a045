"""The estimator lab: policy-gradient estimators against the exact gradient.

On a tabular MDP (``purejaxpg.envs.tabular``) with a softmax policy theta[S, A], the lab samples
K independent batches of B whole episodes with the engine's own environment and rollout
(``VecEnv`` + ``rollout.collect``), forms each estimator's gradient on every batch with
``jax.grad`` of the engine's own losses (``losses.reinforce_loss``, ``losses.ppo_clip_loss``)
and weights from ``purejaxpg.core.advantages``, and compares the K estimates with the exact
gradient of J(theta) = E[sum_t gamma^t r_t]:

* ``bias_norm``  ||mean - exact||  (for an unbiased estimator this is only noise,
  about sqrt(variance / K));
* ``variance``   trace of the covariance of one batch's estimate (total variance);
* ``cosine``     cos(mean, exact);
* ``max_abs_z``  max over coordinates of |mean - exact| / standard error of the mean.

The estimators (per step t of an episode; G_t = sum_k gamma^k r_{t+k}; V the exact V^pi;
b = J(theta), a constant):

===================== ====================================== ========
name                  weight of grad log pi(a_t|s_t)         unbiased
===================== ====================================== ========
whole                 G_0                                     yes
whole_const           G_0 - b                                 yes
whole_value           G_0 - V(s_t)                            yes
rtg                   gamma^t G_t                             yes
rtg_const             gamma^t (G_t - b)                       yes
rtg_value             gamma^t (G_t - V(s_t))                  yes
gae                   gamma^t GAE_lambda(V)_t                 yes
ppo_clip              PPO clipped surrogate at ratio 1,       yes
                      advantages gamma^t GAE_lambda(V)_t
rtg_no_gamma_t        G_t           (the usual practice)      no
ppo_clip_no_gamma_t   PPO at ratio 1, advantages GAE (usual)  no
===================== ====================================== ========

The whole return needs no gamma^t: grad J = E[G_0 sum_t grad log pi_t]. Reward-to-go
comes from it by dropping the rewards before t, which leaves gamma^t G_t. Without the
gamma^t, states are weighted by how often they are visited rather than by the discounted
visitation: the estimate's expectation is ``purejaxpg.lab.exact.theorem_grad(..., visitation_discount=1)``,
which the lab also reports (``max_abs_z_vs_expectation``), so that bias is explained, not
just observed.

Normalisation: the engine's losses average over the steps of a batch; the lab multiplies
each loss by (number of steps) / B, so that an estimate is (1/B) sum over episodes of
sum over steps — an estimate of grad J itself, comparable to the exact gradient.

Whole episodes: each of the B environments of a batch runs one episode from reset, under
a time limit H chosen so that P(an episode is longer than H) <= ``truncation_tol`` under
the policy (computed exactly; reported as ``truncation_probability``). Steps after the
first episode of an environment are masked out.
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from purejaxpg.core import advantages as adv
from purejaxpg.core import rollout
from purejaxpg.core.losses import ppo_clip_loss, reinforce_loss
from purejaxpg.envs import VecEnv, make_env, tabular
from purejaxpg.lab import exact as ex

MDPS = {"random": "Tabular-Random", "chain": "Tabular-Chain", "frozenlake": "Tabular-FrozenLake"}

# name -> (unbiased for grad J, description)
ESTIMATORS = {
    "whole": (True, "G_0"),
    "whole_const": (True, "G_0 - b"),
    "whole_value": (True, "G_0 - V(s_t)"),
    "rtg": (True, "gamma^t G_t"),
    "rtg_const": (True, "gamma^t (G_t - b)"),
    "rtg_value": (True, "gamma^t (G_t - V(s_t))"),
    "gae": (True, "gamma^t GAE(lambda)"),
    "ppo_clip": (True, "PPO clip, ratio 1, gamma^t GAE"),
    "rtg_no_gamma_t": (False, "G_t (no gamma^t)"),
    "ppo_clip_no_gamma_t": (False, "PPO clip, ratio 1, GAE (no gamma^t)"),
}
_REINFORCE_WEIGHTS = ("whole", "whole_const", "whole_value", "rtg", "rtg_const", "rtg_value", "gae",
                      "rtg_no_gamma_t")


@dataclass(frozen=True)
class Problem:
    """A tabular MDP, as the engine's env name + kwargs, and the policy the lab studies."""

    env_name: str
    env_kwargs: dict
    mdp: tabular.MDP  # float32, exactly the one the environment samples from
    theta: np.ndarray  # [S, A] float32 softmax logits
    horizon: int  # time limit H: P(episode longer than H) <= truncation_probability
    truncation_probability: float


def make_problem(mdp: str = "random", num_states: int | None = None, num_actions: int | None = None,
                 seed: int = 0, theta_scale: float = 1.0, truncation_tol: float = 1e-6, **mdp_kwargs) -> Problem:
    """The MDP named ``mdp`` (random | chain | frozenlake) and theta ~ theta_scale * N(0, 1).

    ``num_states`` / ``num_actions`` size the random MDP (defaults 6 and 3); for the chain,
    ``num_states`` is its length + 1 (the terminal state) and it has 2 actions; FrozenLake
    is 16 x 4. ``mdp_kwargs`` go to the environment's factory (``gamma``, the random MDP's
    ``terminal_prob``, the chain's ``slip``, ...).
    """
    if mdp not in MDPS:
        raise ValueError(f"unknown MDP {mdp!r}; valid: {', '.join(MDPS)}")
    if mdp == "random":
        S = 6 if num_states is None else int(num_states)
        A = 3 if num_actions is None else int(num_actions)
        if S < 2 or A < 1:
            raise ValueError(f"the random MDP needs states >= 2 and actions >= 1, got {S}, {A}")
        kwargs = {"num_states": S, "num_actions": A, "seed": int(seed)}
    elif mdp == "chain":
        S = 7 if num_states is None else int(num_states)
        if S < 2 or num_actions not in (None, 2):
            raise ValueError(f"the chain has states >= 2 and exactly 2 actions, got {S}, {num_actions}")
        kwargs = {"length": S - 1}
    else:
        if num_states not in (None, 16) or num_actions not in (None, 4):
            raise ValueError(f"FrozenLake 4x4 has 16 states and 4 actions, got {num_states}, {num_actions}")
        kwargs = {}
    kwargs.update(mdp_kwargs)
    _, params = make_env(MDPS[mdp], **kwargs)
    model = params.mdp
    S, A = model.num_states, model.num_actions
    theta = theta_scale * np.asarray(jax.random.normal(jax.random.PRNGKey(int(seed) + 1), (S, A)), np.float32)
    with jax.enable_x64(True):
        m64 = model.astype(jnp.float64)
        H, p_trunc = ex.horizon_for(m64, ex.softmax_policy(jnp.asarray(theta, jnp.float64)),
                                         truncation_tol)
    return Problem(MDPS[mdp], kwargs, model, theta, H, p_trunc)


@jax.jit
def _exact(m, theta):
    V = ex.evaluate(m, ex.softmax_policy(theta))
    return {"J": m.d0 @ V, "V": V, "grad": ex.exact_grad(m, theta), "theorem_grad": ex.theorem_grad(m, theta),
            "no_gamma_t_expectation": ex.theorem_grad(m, theta, visitation_discount=1.0)}


def exact_quantities(problem: Problem) -> dict:
    """J, V, grad J (autodiff and theorem), and the no-gamma^t estimators' expectation, in
    float64. NumPy arrays."""
    with jax.enable_x64(True):
        out = _exact(problem.mdp.astype(jnp.float64), jnp.asarray(problem.theta, jnp.float64))
        out = {k: np.asarray(v) for k, v in out.items()}
    out["J"] = float(out["J"])
    out["theorem_vs_autodiff_max_abs_err"] = float(np.max(np.abs(out["grad"] - out["theorem_grad"])))
    return out


def first_episode_mask(done: jax.Array) -> jax.Array:
    """1 on the steps of each environment's first episode (up to and including its end)."""
    done = done.astype(jnp.int32)
    return ((jnp.cumsum(done, axis=0) - done) == 0).astype(jnp.float32)


def log_probs(theta, obs, action):
    logits = obs @ theta
    return jnp.take_along_axis(jax.nn.log_softmax(logits), action[..., None], axis=-1)[..., 0]


def policy_fn(theta, obs, key):
    logits = obs @ theta
    action = jax.random.categorical(key, logits)
    return action, log_probs(theta, obs, action)


def batch_gradients(traj: rollout.Transition, theta, V, b, gamma, lam, clip_eps, num_episodes) -> dict:
    """Every estimator's gradient of J from one batch (time-major [H, B]) of first episodes.
    Returns {name: [S, A]}."""
    mask = first_episode_mask(traj.done)
    discounts = traj.discounts(gamma)
    done = traj.done
    v = traj.obs @ V  # exact V(s_t); V = 0 at terminal states
    next_v = traj.next_obs @ V
    rtg = adv.reward_to_go(traj.reward, discounts, done)  # Monte-Carlo
    g0 = adv.episode_start_values(rtg, done)
    gt = adv.discount_weights(gamma, traj.episode_step)
    advantage = adv.gae(traj.reward, discounts, done, v, next_v, lam)
    weights = {
        "whole": g0,
        "whole_const": g0 - b,
        "whole_value": g0 - v,
        "rtg": gt * rtg,
        "rtg_const": gt * (rtg - b),
        "rtg_value": gt * (rtg - v),
        "gae": gt * advantage,
        "rtg_no_gamma_t": rtg,
    }
    # reinforce_loss is a mean over the masked steps; rescale to a sum per episode.
    scale = mask.sum() / num_episodes

    def pg_loss(th, w):
        return reinforce_loss(log_probs(th, traj.obs, traj.action), w, mask) * scale

    def ppo_loss(th, a):
        loss, _ = ppo_clip_loss(log_probs(th, traj.obs, traj.action), traj.log_prob, a, clip_eps, mask)
        return loss * scale

    pg = jax.vmap(jax.grad(pg_loss), in_axes=(None, 0))(theta, jnp.stack([weights[k] for k in _REINFORCE_WEIGHTS]))
    ppo = jax.vmap(jax.grad(ppo_loss), in_axes=(None, 0))(theta, jnp.stack([gt * advantage, advantage]))
    out = {k: -pg[i] for i, k in enumerate(_REINFORCE_WEIGHTS)}
    out["ppo_clip"], out["ppo_clip_no_gamma_t"] = -ppo[0], -ppo[1]
    return {k: out[k] for k in ESTIMATORS}


def sample_gradients(problem: Problem, exact: dict, batch_size: int, k: int, key, lam: float = 0.95,
                     clip_eps: float = 0.2, chunk: int | None = None) -> dict:
    """K batches of ``batch_size`` whole episodes -> {name: [K, S, A]} (NumPy float64).

    ``chunk`` batches at a time (default: as many as keep a chunk's trajectories near
    64 MB) are collected by one ``VecEnv`` of chunk x batch_size environments, split into
    their batches, and each batch's gradients are computed under ``vmap``.
    """
    H, B = problem.horizon, int(batch_size)
    if chunk is None:
        per_batch = H * B * (2 * problem.mdp.num_states + 16) * 4
        chunk = max(1, min(k, (64 << 20) // per_batch))
    venv = VecEnv(problem.env_name, chunk * B, **problem.env_kwargs, max_steps_in_episode=H)
    theta = jnp.asarray(problem.theta, jnp.float32)
    V = jnp.asarray(exact["V"], jnp.float32)
    b = jnp.float32(exact["J"])
    gamma = jnp.asarray(problem.mdp.gamma, jnp.float32)

    @jax.jit
    def run_chunk(key):
        k_reset, k_collect = jax.random.split(key)
        carry = rollout.reset(venv, k_reset, False)
        _, traj = rollout.collect(venv, policy_fn, theta, carry, k_collect, H)
        # [H, chunk * B, ...] -> [chunk, H, B, ...]: one batch per leading index
        traj = jax.tree.map(lambda x: jnp.moveaxis(x.reshape((H, chunk, B) + x.shape[2:]), 1, 0), traj)
        return jax.vmap(lambda t: batch_gradients(t, theta, V, b, gamma, lam, clip_eps, B))(traj)

    parts, done = [], 0
    for i in range(-(-k // chunk)):
        n = min(chunk, k - done)  # the last chunk may be partly used
        parts.append({name: np.asarray(g[:n], np.float64) for name, g in run_chunk(jax.random.fold_in(key, i)).items()})
        done += n
    return {name: np.concatenate([p[name] for p in parts]) for name in ESTIMATORS}


def summarize(samples: np.ndarray, target: np.ndarray) -> dict:
    """Statistics of K estimates [K, S, A] against ``target`` [S, A]."""
    K = samples.shape[0]
    x = samples.reshape(K, -1)
    t = np.asarray(target, np.float64).reshape(-1)
    mean = x.mean(0)
    var = x.var(0, ddof=1)
    se = np.sqrt(var / K)
    diff = np.abs(mean - t)
    # a coordinate that never varies (a terminal state's row) is exact or infinitely off
    z = np.where(se > 0, diff / np.where(se > 0, se, 1.0), np.where(diff > 1e-12, np.inf, 0.0))
    denom = np.linalg.norm(mean) * np.linalg.norm(t)
    return {
        "bias_norm": float(np.linalg.norm(mean - t)),
        "variance": float(var.sum()),
        "cosine": float(mean @ t / denom) if denom > 0 else float("nan"),
        "max_abs_z": float(z.max()),
    }


OFF_POLICY_K = 4  # the off-policy section's batches, per batch of the on-policy ones


def run_lab(mdp: str = "random", num_states: int | None = None, num_actions: int | None = None,
            batch_sizes=(4, 16, 64), k: int = 200, seed: int = 0, lam: float = 0.95, clip_eps: float = 0.2,
            theta_scale: float = 1.0, truncation_tol: float = 1e-6, natural: bool = True, off_policy: bool = True,
            **mdp_kwargs) -> dict:
    """Run the lab; returns the dict written to ``lab.json``. ``mdp_kwargs`` go to the
    environment's factory (see ``make_problem``). ``natural``: add the natural-gradient
    section (``lab.natural``); ``off_policy``: the off-policy estimators (``lab.offpolicy``,
    ``OFF_POLICY_K`` x ``k`` batches of the largest batch size)."""
    batch_sizes = tuple(int(b) for b in batch_sizes)
    if not batch_sizes or min(batch_sizes) < 1:
        raise ValueError(f"batch sizes must be positive integers, got {batch_sizes}")
    if int(k) < 2:
        raise ValueError(f"k must be >= 2 (a variance needs two batches), got {k}")
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lambda must lie in [0, 1], got {lam}")
    problem = make_problem(mdp, num_states, num_actions, seed, theta_scale, truncation_tol, **mdp_kwargs)
    exact = exact_quantities(problem)
    key = jax.random.PRNGKey(int(seed))
    estimators = {name: {"unbiased": ub, "weight": desc, "bias_norm": [], "variance": [], "cosine": [],
                         "max_abs_z": []} for name, (ub, desc) in ESTIMATORS.items()}
    for name, (ub, _) in ESTIMATORS.items():
        if not ub:
            estimators[name]["max_abs_z_vs_expectation"] = []
            estimators[name]["expectation_bias_norm"] = float(
                np.linalg.norm(exact["no_gamma_t_expectation"] - exact["grad"]))
    for i, B in enumerate(batch_sizes):
        samples = sample_gradients(problem, exact, B, int(k), jax.random.fold_in(key, i), lam, clip_eps)
        for name, (ub, _) in ESTIMATORS.items():
            stats = summarize(samples[name], exact["grad"])
            for field, value in stats.items():
                estimators[name][field].append(value)
            if not ub:
                estimators[name]["max_abs_z_vs_expectation"].append(
                    summarize(samples[name], exact["no_gamma_t_expectation"])["max_abs_z"])
    for name in ESTIMATORS:
        estimators[name]["variance_ratio_to_whole"] = [
            v / w for v, w in zip(estimators[name]["variance"], estimators["whole"]["variance"])]
    m = problem.mdp
    extra = {}
    if natural:
        from purejaxpg.lab.natural import run_natural

        extra["natural"] = run_natural(problem, seed=seed)
    if off_policy:
        from purejaxpg.lab.offpolicy import run_offpolicy

        # 4 K batches: importance-weighted estimates are heavy-tailed, so their z-scores need more
        # batches than the on-policy ones to be near normal (the default run: 4.13 standard
        # errors at 200 batches, 2.2 at 800 which include those 200, 2.3 at 3200; the biased
        # estimators' z grows as sqrt(K))
        extra["off_policy"] = run_offpolicy(problem, exact, batch_size=max(batch_sizes), k=OFF_POLICY_K * k,
                                            seed=seed)
    return {**extra, 
        "mdp": mdp,
        "env": problem.env_name,
        "env_kwargs": problem.env_kwargs,
        "num_states": m.num_states,
        "num_actions": m.num_actions,
        "gamma": float(m.gamma),
        "lambda": float(lam),
        "seed": int(seed),
        "k": int(k),
        "batch_sizes": list(batch_sizes),
        "horizon": problem.horizon,
        "truncation_probability": problem.truncation_probability,
        "J": exact["J"],
        "exact_grad_norm": float(np.linalg.norm(exact["grad"])),
        "theorem_vs_autodiff_max_abs_err": exact["theorem_vs_autodiff_max_abs_err"],
        "theta": problem.theta.tolist(),
        "exact_grad": exact["grad"].tolist(),
        "estimators": estimators,
    }
