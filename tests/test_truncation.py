"""Time limits are not terminations: on an endless task, V(s0) must reach 1 / (1 - gamma)
when truncation bootstraps from V(final_observation), and stay well below it when the
time limit is (wrongly) treated as a termination."""
import jax
import jax.numpy as jnp
import numpy as np

from purejaxpg.engine.onpolicy import build_networks
from purejaxpg.envs import VecEnv

from reference import endless_env_name, train_seeds

ENV = endless_env_name()

GAMMA = 0.9


def _learned_v0(bootstrap: bool) -> float:
    config, _, _, out = train_seeds("a2c", dict(
        env=ENV, num_envs=4, num_steps=8, total_timesteps=4 * 8 * 600, hidden=(16,), anneal_lr=False,
        bootstrap_truncation=bootstrap, num_eval_episodes=1, lr=3e-2, gamma=GAMMA, gae_lambda=0.5,
        max_grad_norm=10.0), seeds=1)
    critic = build_networks(config, VecEnv(ENV, 1))[1]
    params = jax.tree_util.tree_map(lambda x: x[0], out["carry"][0].params)
    return float(critic.apply(params["critic"], jnp.ones((1, 1)))[0])


def test_truncation_bootstraps_to_infinite_horizon_value():
    v_boot = _learned_v0(bootstrap=True)
    v_term = _learned_v0(bootstrap=False)
    target = 1.0 / (1.0 - GAMMA)  # 10
    # Treating the limit as a termination, a single-state V must lie between the Monte-Carlo
    # answer (the truncated return averaged over the 20 steps of an episode, ~5.6) and the
    # one-step TD fixed point V = 1 / (1 - gamma * 19/20) ~ 6.9; GAE(0.5) mixes the two.
    mc = np.mean([(1 - GAMMA ** (20 - t)) / (1 - GAMMA) for t in range(20)])
    td = 1.0 / (1.0 - GAMMA * 19 / 20)
    assert abs(v_boot - target) < 0.05 * target, (v_boot, v_term)
    assert mc - 0.3 < v_term < td + 0.3, (v_term, mc, td)
