"""PPO: the surrogates at ratio 1, the clipped value loss and reward scaling against NumPy,
config errors, and small multi-seed learning runs of ``ppo`` and ``ppo-kl`` (CartPole) and of
continuous ``ppo`` (Pendulum)."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxpg.algos import get_algo, ppo
from purejaxpg.analysis import stats
from purejaxpg.core import losses
from purejaxpg.core.networks import Actor
from purejaxpg.core.normalize import RunningMeanStd

from reference import train_seeds

variants = chex.variants(with_jit=True, without_jit=True)


def _policy_batch(discrete: bool, seed=0, n=64):
    actor = Actor(num_actions=3, discrete=discrete, hidden=(16, 16))
    k_init, k_obs, k_act, k_adv = jax.random.split(jax.random.PRNGKey(seed), 4)
    obs = jax.random.normal(k_obs, (n, 5))
    params = actor.init(k_init, obs)
    action = actor.apply(params, obs).sample(seed=k_act)
    adv = jax.random.normal(k_adv, (n,))
    return actor, params, obs, action, adv


@pytest.mark.parametrize("discrete", [True, False])
def test_first_minibatch_surrogates_equal_the_policy_gradient(discrete):
    # New policy == old policy: rho = 1 everywhere, nothing is clipped, and the gradient of
    # the clipped surrogate is the plain policy gradient -mean[grad log pi * A]; the KL
    # penalty's gradient is zero, so ppo-kl's surrogate has that gradient too.
    actor, params, obs, action, adv = _policy_batch(discrete)
    old_lp = actor.apply(params, obs).log_prob(action)

    def lp(p):
        return actor.apply(p, obs).log_prob(action)

    g_pg = jax.grad(lambda p: losses.reinforce_loss(lp(p), adv))(params)
    g_clip = jax.grad(lambda p: losses.ppo_clip_loss(lp(p), old_lp, adv, 0.2)[0])(params)
    g_kl_surrogate = jax.grad(lambda p: losses.ppo_kl_loss(lp(p), old_lp, adv, 3.0)[0])(params)
    g_kl_only = jax.grad(lambda p: losses.ppo_kl_loss(lp(p), old_lp, jnp.zeros_like(adv), 3.0)[0])(params)
    leaves = jax.tree_util.tree_leaves
    assert max(float(jnp.abs(x).max()) for x in leaves(g_pg)) > 1e-4  # a non-trivial gradient
    for a, b in zip(leaves(g_pg), leaves(g_clip)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    for a, b in zip(leaves(g_pg), leaves(g_kl_surrogate)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    for g in leaves(g_kl_only):
        np.testing.assert_allclose(g, 0.0, atol=1e-7)
    _, aux = losses.ppo_clip_loss(old_lp, old_lp, adv, 0.2)
    assert float(aux["clip_fraction"]) == 0.0 and abs(float(aux["approx_kl"])) < 1e-7


class ValueLossTest(chex.TestCase):
    @variants
    def test_clipped_value_loss_matches_numpy(self):
        rng = np.random.default_rng(3)
        v, old, t = (rng.normal(size=40).astype(np.float32) for _ in range(3))
        got = self.variant(lambda v, t, o: losses.value_loss(v, t, old_values=o, clip_eps=0.2))(v, t, old)
        want = 0.0
        for vi, oi, ti in zip(v, old, t):  # max of the plain and the clipped squared error
            clipped = oi + min(max(vi - oi, -0.2), 0.2)
            want += max((vi - ti) ** 2, (clipped - ti) ** 2)
        np.testing.assert_allclose(got, 0.5 * want / len(v), rtol=1e-5)


def test_reward_scaling_matches_numpy_loop():
    rng = np.random.default_rng(0)
    T, N, gamma = 30, 3, 0.9
    reward = rng.normal(size=(T, N)).astype(np.float32)
    done = rng.uniform(size=(T, N)) < 0.1
    extra = ppo.Extra(jnp.float32(0.0), jnp.zeros(N), RunningMeanStd.create(()))
    extra, scaled = jax.jit(ppo.scale_rewards)(extra, jnp.asarray(reward), jnp.asarray(done), gamma)
    # reference: running discounted return per env, a running variance over all of them
    ret, values, want = np.zeros(N), [], np.zeros((T, N))
    for t in range(T):
        ret = ret * gamma + reward[t]
        values.extend(ret.tolist())
        # RunningMeanStd starts at var 1 with a count of 1e-4: a negligible prior
        var = (np.var(values) * len(values) + 1e-4) / (len(values) + 1e-4)
        want[t] = reward[t] / np.sqrt(var + 1e-8)
        ret = np.where(done[t], 0.0, ret)
    np.testing.assert_allclose(np.asarray(scaled), want, rtol=2e-3, atol=1e-4)
    np.testing.assert_allclose(np.asarray(extra.discounted_return), ret, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("overrides, match", [
    ({"num_minibatches": 3}, "must divide"),
    ({"update_epochs": 0}, "update_epochs"),
    ({"surrogate": "trpo"}, "surrogate"),
    ({"total_timesteps": 100}, "smaller than one update"),
])
def test_bad_config_is_refused_before_compiling(overrides, match):
    with pytest.raises(ValueError, match=match):
        get_algo("ppo").resolve(overrides)


def test_presets_cover_the_issue_envs():
    for env in ("CartPole-v1", "Acrobot-v1", "Pendulum-v1", "MountainCarContinuous-v0", "Breakout-MinAtar",
                "Asterix-MinAtar", "Freeway-MinAtar", "SpaceInvaders-MinAtar", "Seaquest-MinAtar"):
        for algo in ("ppo", "ppo-kl"):
            config, hp = get_algo(algo).resolve({"env": env})
            assert config.surrogate == ("kl" if algo == "ppo-kl" else "clip")
            assert config.torso == ("conv" if "MinAtar" in env else "mlp")
    # ppo and ppo-kl share one spec: the KL settings apply with surrogate=kl, whichever name
    _, hp = get_algo("ppo").resolve({"surrogate": "kl", "target_kl": 0.02})
    assert hp["target_kl"] == 0.02
    assert get_algo("ppo-kl").resolve({"target_kl": 0.03})[1]["target_kl"] == 0.03
    with pytest.raises(ValueError, match="target_kl applies only with --surrogate kl"):
        get_algo("ppo").resolve({"target_kl": 0.02})


def _train(algo_name, overrides, seeds):
    config, _, _, out = train_seeds(algo_name, overrides, seeds, seed=1)
    return config, out


@pytest.mark.parametrize("algo_name", ["ppo", "ppo-kl"])
def test_ppo_learns_cartpole(algo_name):
    # 4 seeds in one program, 1.5e5 env steps each (a uniform policy scores about 22)
    config, out = _train(algo_name, {"env": "CartPole-v1", "total_timesteps": 150_000}, 4)
    final = np.asarray(out["eval_returns"]).mean(-1)
    m = out["metrics"]
    chex.assert_shape(m["approx_kl"], (4, config.num_updates))
    for k in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "explained_variance"):
        assert np.all(np.isfinite(np.asarray(m[k]))), k
    if algo_name == "ppo-kl":
        beta = np.asarray(m["beta"])
        assert np.all(beta > 0) and len(np.unique(beta)) > 1  # adapted over the run
    assert stats.iqm(final) >= 150, final


# Continuous PPO (the Gaussian head) learning Pendulum-v1 on a small budget: the continuous
# preset's recipe (observation normalisation, reward scaling, gamma 0.95, lr 1e-3, 10 epochs)
# with 8 envs x 256 steps and 8 minibatches, 40 updates (81,920 env steps per seed), 4 seeds
# in one program: about 21 s of CPU time here, most of it compiling (61,440 steps cost 20 s,
# 200,000 steps 28 s). Measured on this CPU, final-return IQM for 3 groups of 4 seeds
# (seed 1, this test's; 2; 3): -177, -222, -273; no seed below -322. The
# first updates' training return (the initial, near-random Gaussian policy) is -1215 on
# average; halfway between that and what the budget reaches (-224 on average) is -720: the
# bar is -700.
# With the sign of the policy loss flipped the IQM is -1810.
PENDULUM_PPO = {"env": "Pendulum-v1", "num_envs": 8, "num_steps": 256, "update_epochs": 10, "num_minibatches": 8,
                "normalize_obs": True, "scale_rewards": True, "lr": 1e-3, "ent_coef": 0.0, "gamma": 0.95,
                "gae_lambda": 0.95, "total_timesteps": 8 * 256 * 40, "num_eval_episodes": 8}


def test_continuous_ppo_learns_pendulum_with_normalisation_and_reward_scaling():
    config, out = _train("ppo", PENDULUM_PPO, 4)
    assert config.num_updates == 40
    state = out["carry"][0]
    assert state.env.obs_rms is not None and np.all(np.asarray(state.env.obs_rms.count) > 8 * 256 * 40)
    assert np.all(np.asarray(state.extra.return_rms.count) > 1)
    final = np.asarray(out["eval_returns"]).mean(-1)
    first = np.nanmean(np.asarray(out["metrics"]["episode_return"])[:, :3])
    print(f"\nPPO Pendulum: first-updates training return {first:.1f}; final return IQM {stats.iqm(final):.1f}, "
          f"per seed {np.round(final, 1)}")
    assert first < -1000.0  # it starts near random ...
    assert stats.iqm(final) > -700.0, final  # ... and learns
    assert get_algo("ppo").resolve()[0].num_envs == 4


def test_mlp_torso_flattens_image_observations():
    from purejaxpg.core.networks import Critic

    obs = jnp.ones((3, 10, 10, 4))
    critic = Critic((8,), "relu", "mlp")
    params = critic.init(jax.random.PRNGKey(0), obs)
    chex.assert_shape(critic.apply(params, obs), (3,))
    chex.assert_shape(params["params"]["MLP_0"]["Dense_0"]["kernel"], (400, 8))
