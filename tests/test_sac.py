"""SAC: its pieces against NumPy references (the squashed Gaussian's density and entropy, the
soft target, the losses, the Polyak update), bad input refused in one line, truncation
bootstrapping through the replay buffer, and a small multi-seed learning run."""
import math
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxpg.algos import get_algo, sac
from purejaxpg.analysis import stats
from purejaxpg.core import losses
from purejaxpg.core.networks import (
    EnsembleQ,
    SquashedGaussian,
    SquashedGaussianActor,
    dense,
    tanh_log_det_jacobian,
)
from purejaxpg.envs import VecEnv

from reference import endless_env_name, train_seeds

variants = chex.variants(with_jit=True, without_jit=True)


def _normal_logpdf(u, mean, std):
    return -0.5 * ((u - mean) / std) ** 2 - math.log(std) - 0.5 * math.log(2 * math.pi)


def _squashed_logpdf(a, mean, log_std):
    """Change of variables, one dimension at a time in float64: a = tanh(u) has density
    N(u; mean, std) / |d tanh/du| = N(u) / (1 - a^2), summed over dimensions in log space."""
    total = 0.0
    for ai, mi, si in zip(a, mean, log_std):
        u = math.atanh(ai)
        total += _normal_logpdf(u, mi, math.exp(si)) - math.log(1.0 - ai * ai)
    return total


class SquashedGaussianTest(chex.TestCase):
    @variants
    def test_log_prob_is_the_change_of_variables_density(self):
        rng = np.random.default_rng(0)
        mean = rng.normal(0, 1, (16, 3)).astype(np.float32)
        log_std = rng.uniform(-2, 0.5, (16, 3)).astype(np.float32)
        dist = SquashedGaussian(jnp.asarray(mean), jnp.asarray(log_std))
        a, lp = self.variant(lambda d, k: d.sample_and_log_prob(k))(dist, jax.random.PRNGKey(1))
        a64 = np.asarray(a, np.float64)
        want = np.array([_squashed_logpdf(a64[i], mean[i], log_std[i]) for i in range(16)])
        # reference uses the float32 action, whose atanh loses digits near +-1: compare loosely
        np.testing.assert_allclose(lp, want, rtol=2e-3, atol=2e-3)
        np.testing.assert_allclose(self.variant(lambda d, x: d.log_prob(x))(dist, a), want, rtol=2e-3, atol=2e-3)
        assert np.all(np.abs(a64) < 1)

    def test_density_integrates_to_one_and_entropy_estimate_matches(self):
        """1-D: exp(log_prob) integrates to 1 over (-1, 1); the entropy estimate -mean log_prob
        of reparameterised samples matches the entropy by quadrature (in u = atanh a, float64)."""
        for mean, log_std in [(0.3, -0.5), (-0.8, -1.0), (1.0, -0.7)]:
            std = math.exp(log_std)
            dist = SquashedGaussian(jnp.full((1, 1), mean, jnp.float32), jnp.full((1, 1), log_std, jnp.float32))
            a = np.linspace(-1 + 1e-6, 1 - 1e-6, 400001)
            lp = np.asarray(jax.jit(jax.vmap(lambda x: dist.log_prob(x[None, None])[0]))(jnp.asarray(a, jnp.float32)))
            assert abs(np.exp(lp.astype(np.float64)).sum() * (a[1] - a[0]) - 1.0) < 1e-3, (mean, log_std)
            u = np.linspace(mean - 12 * std, mean + 12 * std, 200001)
            log_p_u = _normal_logpdf(u, mean, std)
            log_p_a = log_p_u - 2 * (math.log(2) - u - np.logaddexp(0, -2 * u))  # - log(1 - tanh(u)^2)
            entropy = -(np.exp(log_p_u) * log_p_a).sum() * (u[1] - u[0])
            big = SquashedGaussian(jnp.full((200000, 1), mean), jnp.full((200000, 1), log_std))
            _, lp_samples = big.sample_and_log_prob(jax.random.PRNGKey(7))
            estimate = -float(np.mean(np.asarray(lp_samples, np.float64)))
            assert abs(estimate - entropy) < 0.01, (mean, log_std, estimate, entropy)

    def test_log_det_jacobian_is_stable(self):
        u = np.array([-30.0, -5.0, -0.5, 0.0, 0.7, 5.0, 30.0])
        got = np.asarray(tanh_log_det_jacobian(jnp.asarray(u, jnp.float32)))
        np.testing.assert_allclose(got[1:-1], np.log1p(-np.tanh(u[1:-1]) ** 2), rtol=1e-4)
        want_tails = 2 * (math.log(2) - 30.0)  # log(1 - tanh^2(30)) = log(sech^2 30) ~ 2 log 2 - 60
        np.testing.assert_allclose(got[[0, -1]], want_tails, rtol=1e-5)
        assert np.all(np.isfinite(got))

    def test_actor_bounds_log_std_and_mode_is_tanh_mean(self):
        actor = SquashedGaussianActor(2, (16,), log_std_min=-3.0, log_std_max=1.0)
        obs = jnp.asarray(np.random.default_rng(0).normal(0, 100, (32, 5)), jnp.float32)
        params = actor.init(jax.random.PRNGKey(0), obs)
        dist = actor.apply(params, obs)
        assert dist.mean.shape == (32, 2) and dist.log_std.shape == (32, 2)
        assert np.all((np.asarray(dist.log_std) >= -3.0) & (np.asarray(dist.log_std) <= 1.0))
        np.testing.assert_allclose(dist.mode(), np.tanh(np.asarray(dist.mean)), rtol=1e-6)

    def test_ensemble_q_members_are_independent_networks(self):
        q = EnsembleQ(num_q=2, hidden=(8, 8))
        obs, act = jnp.ones((5, 3)), jnp.zeros((5, 1))
        params = q.init(jax.random.PRNGKey(0), obs, act)
        out = q.apply(params, obs, act)
        assert out.shape == (2, 5)
        assert not np.allclose(out[0], out[1])  # different initialisations
        # each member equals a plain MLP with that member's weights
        p = jax.tree_util.tree_map(lambda x: x[1], params["params"])
        x = jnp.concatenate([obs, act], -1)
        for name in ("SACDense_0", "SACDense_1"):
            x = jax.nn.relu(x @ p["SACTorso_0"][name]["kernel"] + p["SACTorso_0"][name]["bias"])
        np.testing.assert_allclose(out[1], (x @ p["SACDense_0"]["kernel"] + p["SACDense_0"]["bias"])[:, 0], rtol=1e-5)


    @variants
    def test_dense_backward_equals_autodiff(self):
        """dense's hand-written backward pass (the narrow-head kernel gradient as a multiply
        and sum per output column) equals autodiff of x @ k + b: wide and narrow (<= 2
        outputs) layers, with and without an ensemble axis."""
        rng = np.random.default_rng(5)
        for k_shape, out in [((), 5), ((), 1), ((2,), 1), ((2,), 2)]:
            x = jnp.asarray(rng.normal(size=k_shape + (6, 3)), jnp.float32)
            kern = jnp.asarray(rng.normal(size=k_shape + (3, out)), jnp.float32)
            bias = jnp.asarray(rng.normal(size=k_shape + (out,)), jnp.float32)
            w = jnp.asarray(rng.normal(size=k_shape + (6, out)), jnp.float32)  # weights the outputs

            def ours(x, kern, bias):
                return (jnp.tanh(dense(x, kern, bias)) * w).sum()

            def plain(x, kern, bias):
                return (jnp.tanh(x @ kern + bias[..., None, :]) * w).sum()

            got = self.variant(jax.grad(ours, argnums=(0, 1, 2)))(x, kern, bias)
            want = jax.grad(plain, argnums=(0, 1, 2))(x, kern, bias)
            for g, h in zip(got, want):
                np.testing.assert_allclose(g, h, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(ours(x, kern, bias), plain(x, kern, bias), rtol=1e-5)


class SacLossesTest(chex.TestCase):
    @variants
    def test_soft_td_target(self):
        rng = np.random.default_rng(0)
        r, nq, lp = (rng.normal(size=32).astype(np.float32) for _ in range(3))
        term = rng.uniform(size=32) < 0.3
        gamma, alpha = 0.97, 0.2
        disc = (gamma * (1 - term)).astype(np.float32)
        got = self.variant(losses.soft_td_target)(r, disc, nq, lp, alpha)
        want = [r[i] + (0.0 if term[i] else gamma * (nq[i] - alpha * lp[i])) for i in range(32)]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

    @variants
    def test_discrete_soft_value(self):
        rng = np.random.default_rng(1)
        logits = rng.normal(size=(8, 3))
        logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        q = rng.normal(size=(8, 3))
        got = self.variant(losses.discrete_soft_value)(np.exp(logp), logp, q, 0.5)
        want = [sum(math.exp(logp[i, a]) * (q[i, a] - 0.5 * logp[i, a]) for a in range(3)) for i in range(8)]
        np.testing.assert_allclose(got, want, rtol=1e-5)

    @variants
    def test_critic_actor_and_temperature_losses(self):
        rng = np.random.default_rng(2)
        q = rng.normal(size=(2, 16)).astype(np.float32)
        y = rng.normal(size=16).astype(np.float32)
        want = 0.5 * sum(np.mean((q[k] - y) ** 2) for k in range(2))
        np.testing.assert_allclose(self.variant(losses.sac_critic_loss)(q, y), want, rtol=1e-5)
        lp, qpi = rng.normal(size=16).astype(np.float32), rng.normal(size=16).astype(np.float32)
        np.testing.assert_allclose(self.variant(losses.sac_actor_loss)(lp, qpi, 0.3), np.mean(0.3 * lp - qpi), rtol=1e-5)
        # temperature: value log_alpha (H - H_target), gradient H - H_target
        f = self.variant(losses.temperature_loss)
        np.testing.assert_allclose(f(jnp.log(0.5), 1.2, -1.0), math.log(0.5) * 2.2, rtol=1e-6)
        np.testing.assert_allclose(jax.grad(losses.temperature_loss)(jnp.log(0.5), 1.2, -1.0), 2.2, rtol=1e-6)

    def test_temperature_moves_towards_the_target_entropy(self):
        step = lambda la, h: la - 0.1 * jax.grad(losses.temperature_loss)(la, h, -1.0)
        assert step(0.0, -3.0) > 0.0  # entropy below target: alpha grows
        assert step(0.0, 1.0) < 0.0  # above: alpha shrinks
        assert jax.grad(losses.temperature_loss, argnums=1)(0.3, 1.0, -1.0) == 0.0  # entropy is a constant

    def test_losses_train_only_their_own_inputs(self):
        assert jax.grad(lambda y: losses.sac_critic_loss(jnp.ones((2, 3)), y))(jnp.zeros(3)).sum() == 0.0
        assert jax.grad(lambda a: losses.sac_actor_loss(jnp.ones(3), jnp.ones(3), a))(0.5) == 0.0
        g = jax.grad(lambda q: losses.discrete_sac_actor_loss(jnp.full((2, 2), 0.5), jnp.log(jnp.full((2, 2), 0.5)), q, 1.0))
        np.testing.assert_array_equal(g(jnp.ones((2, 2))), 0.0)

    @variants
    def test_polyak_update(self):
        rng = np.random.default_rng(3)
        target = {"a": rng.normal(size=(3, 2)), "b": [rng.normal(size=4)]}
        online = {"a": rng.normal(size=(3, 2)), "b": [rng.normal(size=4)]}
        got = self.variant(losses.polyak_update)(target, online, 0.05)
        for t, o, g in zip(jax.tree_util.tree_leaves(target), jax.tree_util.tree_leaves(online),
                           jax.tree_util.tree_leaves(got)):
            want = np.array([(1 - 0.05) * ti + 0.05 * oi for ti, oi in zip(t.ravel(), o.ravel())]).reshape(t.shape)
            np.testing.assert_allclose(g, want, rtol=1e-6)


# ---- configuration --------------------------------------------------------------------

@pytest.mark.parametrize("overrides, match", [
    (dict(buffer_size=100, minibatch_size=256), "buffer_size=100 is smaller than minibatch_size=256"),
    (dict(learning_starts=5000, total_timesteps=4000), "learning_starts=5000 leaves no update"),
    (dict(num_envs=8, num_steps=4, buffer_size=16, minibatch_size=8), "or the env steps of one update"),
    (dict(grad_steps=0), r"grad_steps must lie in \[1, inf\)"),
    (dict(total_timesteps=3, num_envs=4), "smaller than one update"),
    (dict(rng_impl="mt19937"), "rng_impl must be one of"),
    (dict(log_std_min=2.0, log_std_max=-5.0), "log_std_min"),
    (dict(env="CartPole-v9"), "unknown environment"),
    (dict(hidden=""), "at least one layer"),
    (dict(tau=0.0), r"tau must lie in \(0, 1\]"),
    (dict(tau=2.0), r"tau must lie in \(0, 1\]"),
    (dict(init_alpha=0.0), r"init_alpha must lie in \(0, inf\)"),
    (dict(critic_lr=-1.0), "critic_lr must lie in"),
])
def test_bad_settings_are_one_line_errors(overrides, match):
    with pytest.raises(ValueError, match=match) as err:
        sac.ALGORITHM.resolve(overrides, preset="none")
    assert "\n" not in str(err.value)


def test_registry_and_space_dependent_defaults():
    assert get_algo("sac") is sac.ALGORITHM
    assert sac.SPEC.resolve({"env": "CartPole-v1"})[1]["target_entropy_scale"] == pytest.approx(0.89)
    assert sac.SPEC.resolve({"env": "Pendulum-v1"})[1]["target_entropy_scale"] == 1.0
    assert sac.SPEC.resolve({"env": "CartPole-v1", "target_entropy_scale": 0.5})[1]["target_entropy_scale"] == 0.5


# ---- whole runs -------------------------------------------------------------------------

ENDLESS = endless_env_name()


def test_discrete_sac_bootstraps_truncations_from_the_buffer():
    """Discrete SAC on a task that never terminates: with truncation bootstrapping (from the
    stored final observation) Q must reach 1 / (1 - gamma) = 10. Treating the time limit as
    a termination would cap it near 1 / (1 - gamma * 19/20) ~ 6.9. Also checks the output
    structure: per-update metrics, NaN losses before learning starts, the evaluation."""
    config, _, program, out = train_seeds("sac", dict(
        env=ENDLESS, num_envs=4, num_steps=1, grad_steps=1, total_timesteps=4 * 1500, buffer_size=512,
        minibatch_size=64, learning_starts=64, hidden=(16,), learn_alpha=False, num_eval_episodes=4, gamma=0.9,
        init_alpha=1e-6, critic_lr=3e-3, tau=0.05), seeds=1)
    critic = EnsembleQ(2, (16,), "relu", 2)
    params = jax.tree_util.tree_map(lambda x: x[0], out["carry"][0].params["critic"])
    q = np.asarray(critic.apply(params, jnp.ones((1, 1))))  # [2 critics, 1, 2 actions]
    np.testing.assert_allclose(q, 10.0, rtol=0.05)
    m = {k: np.asarray(v)[0] for k, v in out["metrics"].items()}
    assert set(m) >= {"critic_loss", "actor_loss", "alpha", "entropy", "q_mean", "episode_return"}
    assert all(v.shape == (config.num_updates,) for v in m.values())
    assert np.all(np.isnan(m["critic_loss"][:config.num_warmup_updates]))
    assert np.all(np.isfinite(m["critic_loss"][config.num_warmup_updates:]))
    np.testing.assert_allclose(np.asarray(out["eval_returns"]), 20.0)  # every episode lasts the limit


def test_sac_learns_pendulum_few_seeds():
    """4 seeds in one program, 6000 env steps each (about 28 s of CPU time here, most of it
    compiling). Measured on this CPU for 3 groups of 4 seeds (seed 42, this test's; 0; 1):
    final-return IQM -127, -153, -159, no seed below -241; 4000 steps reach about the same
    (-135, -162, -153), 3000 steps less (-436, -229, -199) for nearly the same CPU time. The
    first episodes (uniform random actions before learning starts) score -1216 on average.
    Halfway between random and reached (-681) would be looser than this test's earlier bar
    (-500), so the bar is -400: failing it takes 2 of the 4 seeds below -400. With the
    sign of the actor loss flipped the IQM is -1389."""
    out = train_seeds("sac", dict(env="Pendulum-v1", total_timesteps=6000, learning_starts=500, buffer_size=6000,
                                  minibatch_size=128, hidden=(64, 64), num_eval_episodes=8, actor_lr=1e-3,
                                  critic_lr=2e-3, alpha_lr=1e-3, tau=0.01), seeds=4, seed=42, preset="none")[3]
    final = np.asarray(out["eval_returns"]).mean(-1)
    returns = np.asarray(out["metrics"]["episode_return"])
    first = np.mean([r[np.isfinite(r)][0] for r in returns])  # each seed's first episode: random actions
    print(f"\nSAC Pendulum: first episodes {first:.1f}; final return IQM {stats.iqm(final):.1f}, per seed {final}")
    assert first < -800.0  # it starts near random ...
    assert stats.iqm(final) > -400.0, final  # ... and learns


def test_presets_are_valid_and_within_the_acceptance_budgets():
    """Every SAC preset resolves (no compile); the acceptance presets stay inside issue 4's
    env-step budgets."""
    assert set(sac.ALGORITHM.presets) >= {"Pendulum-v1", "MountainCarContinuous-v0", "CartPole-v1"}
    budgets = {"Pendulum-v1": 20_000, "CartPole-v1": 200_000}
    for env in sac.ALGORITHM.presets:
        if "/" in env:  # a physics suite's preset (playground/..., brax/...): tests/test_suites.py
            continue
        config, _ = sac.ALGORITHM.resolve({"env": env})
        assert config.env == env
        if env in budgets:
            assert config.num_updates * config.batch_size <= budgets[env]
    assert VecEnv("CartPole-v1", 1).action_spec.discrete


def _ynn_fusion_ops(hlo: str) -> set:
    """The opcodes inside the YNNPACK fusions of an optimised XLA:CPU module's text."""
    called = set(re.findall(r'calls=(%[\w.\-]+)[^\n]*"kind":"__ynn_fusion"', hlo))
    ops, inside = set(), False
    for line in hlo.splitlines():
        if re.match(r"^%[\w.\-]+ \(", line):
            inside = line.split(" ")[0] in called
        elif inside:
            ops.update(re.findall(r"= \S+ ([a-z][\w\-]*)\(", line))
    return ops


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA:CPU compile options")
def test_offpolicy_cpu_compile_options_keep_elementwise_work_out_of_ynnpack(monkeypatch):
    """Why ``offpolicy.CPU_OPTIONS`` exists: by default XLA:CPU fuses the activation gradients
    around a critic's matmuls into YNNPACK graphs (slower here: benchmarks/NOTES.md); with the
    options every YNNPACK fusion holds its matmul alone. An option XLA_FLAGS names is left to
    it; a rejected option is left out with a warning."""
    from purejaxpg.engine import batch, offpolicy

    def q(w, x):  # twin critics' torso on a shared input, as the actor's loss sees them
        h = jax.nn.silu(jnp.einsum("kbi,kio->kbo", jnp.broadcast_to(x, (2,) + x.shape), w[0]))
        return jnp.sum(jax.nn.silu(jnp.einsum("kbi,kio->kbo", h, w[1])))

    lowered = jax.jit(jax.grad(q, argnums=1)).lower(jnp.ones((2, 2, 64, 64)), jnp.ones((256, 64)))
    default = _ynn_fusion_ops(batch.compile_lowered(lowered).as_text())
    assert {"multiply", "reduce"} <= default, default  # activation gradients inside YNNPACK graphs
    chosen = _ynn_fusion_ops(batch.compile_lowered(lowered, offpolicy.CPU_OPTIONS).as_text())
    assert "dot" in chosen and chosen <= {"parameter", "dot", "bitcast", "transpose", "copy"}, chosen
    name = next(iter(offpolicy.CPU_OPTIONS))
    monkeypatch.setenv("XLA_FLAGS", f"--xla_cpu_multi_thread_eigen=false --{name}=LIBRARY_FUSION_TYPE_DOT")
    assert _ynn_fusion_ops(batch.compile_lowered(lowered, offpolicy.CPU_OPTIONS).as_text()) == default  # left to XLA_FLAGS
    monkeypatch.delenv("XLA_FLAGS")
    with pytest.warns(RuntimeWarning, match="xla_cpu_no_such_option"):
        compiled = batch.compile_lowered(jax.jit(lambda x: 2 * x).lower(jnp.ones(3)), {"xla_cpu_no_such_option": "1"})
    assert np.asarray(compiled(jnp.ones(3))).tolist() == [2.0, 2.0, 2.0]
