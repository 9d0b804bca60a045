"""Time limits are not terminations: on an endless task, V(s0) must reach 1 / (1 - gamma)
when truncation bootstraps from V(final_observation), and stay well below it when the
time limit is (wrongly) treated as a termination."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct
from gymnax.environments import environment, spaces

from purejaxpg.algos import a2c
from purejaxpg.algos.common import build_networks
from purejaxpg.envs import VecEnv, register_env


@struct.dataclass
class _State(environment.EnvState):
    pass


@struct.dataclass
class _Params(environment.EnvParams):
    max_steps_in_episode: int = 20


class Endless(environment.Environment):
    """One state, reward 1 every step, never terminates; only the time limit ends episodes.
    The observation carries no time, so V cannot tell how close the limit is."""

    @property
    def default_params(self):
        return _Params()

    def step_env(self, key, state, action, params):
        state = _State(time=state.time + 1)
        return self.get_obs(state), state, jnp.float32(1.0), jnp.bool_(False), {}

    def reset_env(self, key, params):
        state = _State(time=0)
        return self.get_obs(state), state

    def get_obs(self, state, params=None, key=None):
        return jnp.ones((1,), jnp.float32)

    def action_space(self, params=None):
        return spaces.Discrete(2)

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (1,), jnp.float32)


register_env("Endless-test", lambda **kw: (Endless(), _Params(**kw)))

GAMMA = 0.9


def _learned_v0(bootstrap: bool) -> float:
    config = a2c.Config(env="Endless-test", num_envs=4, num_steps=8, total_timesteps=4 * 8 * 600,
                        hidden=(16,), anneal_lr=False, bootstrap_truncation=bootstrap, num_eval_episodes=1)
    hp = {**a2c.default_hparams(config), "lr": 3e-2, "gamma": GAMMA, "gae_lambda": 0.5, "max_grad_norm": 10.0}
    out = jax.jit(a2c.make_train(config))(jax.random.PRNGKey(0), hp)
    critic = build_networks(config, VecEnv("Endless-test", 1))[1]
    return float(critic.apply(out["state"].params["critic"], jnp.ones((1, 1)))[0])


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
