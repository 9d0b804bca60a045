"""REINFORCE's weights: gamma^t weighting, and the variance of its gradient estimates."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from purejaxpg.algos import reinforce
from purejaxpg.core import rollout
from purejaxpg.core.losses import reinforce_loss
from purejaxpg.engine.onpolicy import build_networks
from purejaxpg.envs import VecEnv


def _traj(rewards, terminated, episode_step):
    """A [T, 1] Transition with the fields ``weights_and_mask`` reads; the rest zeros."""
    r = jnp.asarray(rewards, jnp.float32)[:, None]
    z = jnp.zeros_like(r)
    return rollout.Transition(
        obs=z[..., None], action=z.astype(jnp.int32), log_prob=z, reward=r,
        terminated=jnp.asarray(terminated, bool)[:, None], truncated=jnp.zeros_like(r, bool),
        next_obs=z[..., None], episode_step=jnp.asarray(episode_step, jnp.int32)[:, None], value=z,
        next_value=z, returned_episode=jnp.asarray(terminated, bool)[:, None], episode_return=z,
        episode_length=z)


def _weights(traj, gamma, **fields):
    config = reinforce.SPEC.resolve(dict(baseline="none", boundary="drop", normalize=False, **fields))[0]
    w, mask, _, _ = reinforce.weights_and_mask(config, traj, gamma)
    return np.asarray(w[:, 0]), np.asarray(mask[:, 0])


def test_gamma_weighting_applies_to_reward_to_go_but_not_to_the_whole_return():
    # two complete episodes of three steps (reward 1 each), gamma 0.9, hand-checked:
    # G_0 = 1 + 0.9 + 0.81 = 2.71, G_1 = 1.9, G_2 = 1.
    gamma = 0.9
    traj = _traj([1, 1, 1, 1, 1, 1], [0, 0, 1, 0, 0, 1], [0, 1, 2, 0, 1, 2])
    g0 = [2.71, 2.71, 2.71] * 2
    rtg = [2.71, 1.9, 1.0] * 2
    for weighting in (False, True):
        # the whole return is already the discounted objective's estimate: never gamma^t on top
        w, mask = _weights(traj, gamma, returns="whole", gamma_weighting=weighting)
        np.testing.assert_allclose(w, g0, rtol=1e-6)
        np.testing.assert_array_equal(mask, 1.0)
    w, _ = _weights(traj, gamma, returns="reward_to_go", gamma_weighting=False)
    np.testing.assert_allclose(w, rtg, rtol=1e-6)
    w, _ = _weights(traj, gamma, returns="reward_to_go", gamma_weighting=True)
    np.testing.assert_allclose(w, [2.71, 0.9 * 1.9, 0.81 * 1.0] * 2, rtol=1e-6)


def test_whole_return_with_gamma_weighting_matches_numpy_on_random_episodes():
    # plain-loop reference: every step of an episode that starts and ends inside the batch
    # gets that episode's discounted return G_0; other steps are masked out.
    rng = np.random.default_rng(0)
    T, gamma = 40, 0.95
    term = rng.random(T) < 0.15
    step, s = [], 0
    for t in range(T):
        step.append(s)
        s = 0 if term[t] else s + 1
    # the batch starts mid-episode: its first piece did not start inside the batch
    step = [v + 3 for v in step[: int(np.argmax(term)) + 1]] + step[int(np.argmax(term)) + 1:]
    rewards = rng.normal(size=T)
    w, mask = _weights(_traj(rewards, term, step), gamma, returns="whole", gamma_weighting=True)
    ref_w, ref_m = np.zeros(T), np.zeros(T)
    start = 0
    for t in range(T):
        if term[t]:
            if step[start] == 0:
                g0 = sum(gamma ** k * rewards[start + k] for k in range(t - start + 1))
                ref_w[start:t + 1], ref_m[start:t + 1] = g0, 1.0
            start = t + 1
    np.testing.assert_array_equal(mask, ref_m)
    np.testing.assert_allclose(w * mask, ref_w, rtol=1e-5, atol=1e-5)


def _gradient_variances(num_batches=64, num_envs=8, num_steps=200, gamma=0.99, seed=0,
                        fit_envs=16, fit_steps=256, fit_iters=300, fit_lr=1e-2):
    """Policy-gradient estimates at initialisation on CartPole-v1, from ``num_batches``
    independent batches of ``num_envs`` x ``num_steps`` steps of the initial policy.

    Estimators (all through ``reinforce.weights_and_mask``, unnormalised, on the same steps:
    those of episodes that start and end inside the batch):
      whole: the episode's return G_0 at every step, no baseline;
      rtg: reward-to-go G_t, no baseline;
      rtg+V: G_t - V(s_t), V fitted to the initial policy's reward-to-go beforehand;
      rtg+V+gamma^t: gamma^t (G_t - V(s_t)), an unbiased estimate of the same gradient as whole.
    Returns {name: [num_batches, num_params] float64 estimates} and the value fit's
    explained variance.
    """
    base = dict(env="CartPole-v1", num_envs=num_envs, num_steps=num_steps, boundary="drop", normalize=False)
    configs = {name: reinforce.SPEC.resolve({**base, **over})[0] for name, over in {
        "whole": dict(returns="whole", baseline="none"),
        "rtg": dict(returns="reward_to_go", baseline="none"),
        "rtg+V": dict(returns="reward_to_go", baseline="value"),
        "rtg+V+gamma^t": dict(returns="reward_to_go", baseline="value", gamma_weighting=True),
    }.items()}
    config = configs["whole"]
    venv = VecEnv(config.env, num_envs)
    fit_env = VecEnv(config.env, fit_envs)
    actor, critic = build_networks(config, venv)
    k_actor, k_critic, k_fit, k_batches = jax.random.split(jax.random.PRNGKey(seed), 4)
    dummy = jnp.zeros((1,) + venv.obs_shape)
    params = {"actor": actor.init(k_actor, dummy), "critic": critic.init(k_critic, dummy)}

    def policy_fn(p, obs, key):
        dist = actor.apply(p["actor"], obs)
        a = dist.sample(seed=key)
        return a, dist.log_prob(a)

    def value_fn(p, obs):
        return critic.apply(p["critic"], obs)

    @jax.jit
    def fit_value(params, key):
        # the baseline a learned V would converge to for this (fixed) policy: regress on
        # Monte-Carlo reward-to-go of fit_envs x fit_steps steps
        k_reset, k_collect = jax.random.split(key)
        _, traj = rollout.collect(fit_env, policy_fn, params, rollout.reset(fit_env, k_reset, False), k_collect,
                                  fit_steps)
        _, _, targets, mask = reinforce.weights_and_mask(configs["rtg"], traj, gamma)
        tx = optax.adam(fit_lr)

        def loss(cp):
            v = rollout.batched_apply(value_fn, {"critic": cp}, traj.obs)
            return ((v - targets) ** 2 * mask).sum() / mask.sum()

        def step(c, _):
            cp, opt = c
            l, g = jax.value_and_grad(loss)(cp)
            u, opt = tx.update(g, opt)
            return (optax.apply_updates(cp, u), opt), l

        (cp, _), losses = jax.lax.scan(step, (params["critic"], tx.init(params["critic"])), None, length=fit_iters)
        total = ((targets - (targets * mask).sum() / mask.sum()) ** 2 * mask).sum() / mask.sum()
        return {**params, "critic": cp}, 1.0 - losses[-1] / total

    params, explained = fit_value(params, k_fit)

    @jax.jit
    def estimates(key):
        k_reset, k_collect = jax.random.split(key)
        _, traj = rollout.collect(venv, policy_fn, params, rollout.reset(venv, k_reset, False), k_collect,
                                  num_steps, value_fn)
        _, common_mask, _, _ = reinforce.weights_and_mask(configs["whole"], traj, gamma)
        out = {}
        for name, cfg in configs.items():
            w, mask, _, _ = reinforce.weights_and_mask(cfg, traj, gamma, traj.value)
            assert common_mask.shape == mask.shape

            def loss(actor_params):
                lp = actor.apply(actor_params, traj.obs.reshape(-1, *venv.obs_shape)).log_prob(
                    traj.action.reshape(-1)).reshape(w.shape)
                return reinforce_loss(lp, w, common_mask)

            out[name] = ravel_pytree(jax.grad(loss)(params["actor"]))[0]
        return out

    grads = jax.vmap(estimates)(jax.random.split(k_batches, num_batches))
    return {name: np.asarray(g, np.float64) for name, g in grads.items()}, float(explained)


def _trace_cov(gram, w):
    """Trace of the sample covariance of the rows g_k of G (``gram`` = G G^T) taken with
    multiplicities ``w`` [..., K] (all ones: the sample itself; counts: a bootstrap
    resample): (sum_k w_k |g_k|^2 - |sum_k w_k g_k|^2 / n) / (n - 1), n = sum_k w_k."""
    n = w.sum(-1)
    return ((w * np.diag(gram)).sum(-1) - np.einsum("...k,kl,...l->...", w, gram, w) / n) / (n - 1)


# What README quotes (its REINFORCE section): the variance ratios to whole-episode returns
README_RATIOS = {"rtg": 0.24, "rtg+V": 0.07, "rtg+V+gamma^t": 0.05}


def test_reward_to_go_with_baseline_has_lower_gradient_variance_at_init_than_whole_returns():
    grads, explained = _gradient_variances()
    K = len(grads["whole"])
    grams = {name: g @ g.T for name, g in grads.items()}
    ratios = {name: _trace_cov(gm, np.ones(K)) / _trace_cov(grams["whole"], np.ones(K)) for name, gm in grams.items()}
    # Standard errors of the ratios: a bootstrap over the K batches (the same resample of
    # batches for numerator and denominator: every estimator sees the same episodes)
    counts = np.random.default_rng(0).multinomial(K, np.full(K, 1.0 / K), size=2000).astype(np.float64)
    boot_whole = _trace_cov(grams["whole"], counts)
    se = {name: float(np.std(_trace_cov(gm, counts) / boot_whole, ddof=1)) for name, gm in grams.items()}

    # Unbiasedness: mean whole-return and mean rtg+V+gamma^t estimates estimate the same
    # gradient. Their difference d (paired, per batch) then has mean 0 and the mean of K
    # batches deviates from 0 by s = sqrt(tr Cov(d) / K) in root mean square; the distance
    # from the whole-return mean a to the line through the other mean b is at most |a - b|,
    # so sin(angle) <= |a - b| / |a|. |a - b|^2 has mean s^2 and spreads like a chi-square
    # with the effective number of dimensions of Cov(d), (tr C)^2 / tr C^2 (2.2 here: a few
    # directions dominate), so P(|a - b| > 3 s) ~ P(chi2_2 > 18) ~ 1e-4; then the cosine is at
    # least sqrt(1 - (3 s / |a|)^2). Measured (seed 0, this CPU): |a - b| = 2.05 s, cosine
    # 0.994 >= 0.957. The check can fail: rtg+V without gamma^t (an estimate of another
    # vector) is 3.5 s away from the whole-return mean (printed below; its cosine is 0.994
    # too: at gamma 0.99 dropping gamma^t mostly rescales the gradient).
    def compare(other):
        a, b = grads["whole"].mean(0), grads[other].mean(0)
        d = grads["whole"] - grads[other]
        dc = d - d.mean(0)
        cov_eigs = np.linalg.eigvalsh(dc @ dc.T / (K - 1))  # the nonzero eigenvalues of Cov(d)
        dof = cov_eigs.sum() ** 2 / (cov_eigs ** 2).sum()  # effective dimensions of |d|^2
        s = float(np.sqrt(d.var(0, ddof=1).sum() / K))
        cosine = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
        return a, b, s, cosine, float(np.sqrt(max(0.0, 1.0 - (3 * s / np.linalg.norm(a)) ** 2))), dof

    a, b, s, cosine, cosine_bound, dof = compare("rtg+V+gamma^t")
    a2, b2, s2, cosine2, bound2, dof2 = compare("rtg+V")  # printed, not asserted
    print(f"\nCartPole-v1 at initialisation, {K} batches of 8 x 200 steps, gamma 0.99; value fit "
          f"explained variance {explained:.2f}")
    print("gradient-estimate variance (trace of covariance) relative to whole-episode returns "
          "(+- bootstrap standard error over batches):")
    for name, r in ratios.items():
        print(f"  {name:14s} {r:.3f} +- {se[name]:.3f}   (README {README_RATIOS.get(name, 1.0)})")
    print(f"cosine(mean whole, mean rtg+V+gamma^t) = {cosine:.3f} (bound {cosine_bound:.3f}); "
          f"|a - b| = {np.linalg.norm(a - b):.3g}, s = {s:.3g} (effective dimensions {dof:.1f}), |a| = {np.linalg.norm(a):.3g}")
    print(f"cosine(mean whole, mean rtg+V) = {cosine2:.3f} (bound {bound2:.3f}); "
          f"|a - b| = {np.linalg.norm(a2 - b2):.3g}, s = {s2:.3g} (effective dimensions {dof2:.1f})")
    assert explained > 0.3, explained  # the baseline is a fitted V, not noise
    assert ratios["rtg"] < 1.0
    assert ratios["rtg+V"] < ratios["rtg"]
    assert ratios["rtg+V+gamma^t"] < 1.0
    # README's figures, within 4 bootstrap standard errors (measured: 0.238 +- 0.027,
    # 0.073 +- 0.010, 0.050 +- 0.007)
    for name, quoted in README_RATIOS.items():
        assert abs(ratios[name] - quoted) <= 4 * se[name], (name, ratios[name], se[name], quoted)
    assert np.linalg.norm(a - b) <= 3 * s, (np.linalg.norm(a - b), s)
    assert cosine >= cosine_bound > 0.5, (cosine, cosine_bound)
