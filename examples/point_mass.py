"""Bring your own environment: a gymnax-style task outside the package, trained by any
algorithm of purejaxpg.

PointMass: a unit mass on a line must be brought to rest at the origin. Observation
(x, v); action a force in [-1, 1]; x' = x + dt v', v' = v + dt a; reward -(x^2 + 0.1 v^2)
per step. Leaving [-2, 2] terminates the episode (no future: the value there is 0) with a
penalty of -10; the time limit (``max_steps_in_episode``) truncates it (the future
continues: purejaxpg bootstraps from the observation before the reset). Doing nothing
from the uniform start x ~ U(-1, 1) scores about -33 per episode; a good controller about -5.

    PYTHONPATH=examples purejaxpg train ppo --env point_mass:PointMass --num-seeds 8
    PYTHONPATH=examples purejaxpg train sac --env point_mass:PointMass --total-timesteps 2e4

From Python, an instance works too: ``purejaxpg.train("sac", env=PointMass())``.
"""
import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces


@struct.dataclass
class State(environment.EnvState):
    x: jax.Array
    v: jax.Array


@struct.dataclass
class Params(environment.EnvParams):
    dt: float = 0.1
    max_steps_in_episode: int = 100


class PointMass(environment.Environment):
    @property
    def default_params(self) -> Params:
        return Params()

    def step_env(self, key, state, action, params):
        a = jnp.clip(jnp.asarray(action, jnp.float32).reshape(()), -1.0, 1.0)
        v = state.v + params.dt * a
        x = state.x + params.dt * v
        out = jnp.abs(x) > 2.0
        reward = jnp.where(out, -10.0, -(x * x + 0.1 * v * v))
        state = State(time=state.time + 1, x=x, v=v)
        return self.get_obs(state), state, reward, out, {}

    def reset_env(self, key, params):
        state = State(time=0, x=jax.random.uniform(key, (), minval=-1.0, maxval=1.0), v=jnp.float32(0.0))
        return self.get_obs(state), state

    def get_obs(self, state, params=None, key=None):
        return jnp.stack([state.x, state.v])

    def action_space(self, params=None):
        return spaces.Box(-1.0, 1.0, (1,), jnp.float32)

    def observation_space(self, params):
        return spaces.Box(-jnp.inf, jnp.inf, (2,), jnp.float32)
