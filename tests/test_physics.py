"""purejaxpg.envs.physics: a Brax-style task (reset(rng) -> State, step(State, action) ->
State, no time limit, no resets) made into the engine's env, tested with small fake tasks
(no MuJoCo needed): time limits are truncations that bootstrap from the observation before
the reset, the task's own ``done`` is a termination, dict observations are flattened, action
repeat sums rewards and stops at a termination. The real suites: tests/test_suites.py."""
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from purejaxpg.core import prng, rollout
from purejaxpg.engine.onpolicy import build_networks
from purejaxpg.envs import VecEnv, register_env
from purejaxpg.envs.physics import PhysicsEnv

from reference import train_seeds


@struct.dataclass
class TaskState:
    obs: Any
    reward: jax.Array
    done: jax.Array
    t: jax.Array
    start: jax.Array
    empty: Any = None  # a zero-size array, as MJX data has (no contacts): kept out of the env's state


class Counter:
    """Counts its steps. obs = {"t": [t], "start": [u]} with u ~ U(0, 1) drawn at reset;
    reward 1 per step; done (a float, as in Brax) once t reaches ``fall_at`` (0: never)."""

    def __init__(self, fall_at: int = 0):
        self.fall_at = fall_at

    def _state(self, t, start, reward, done):
        obs = {"t": jnp.reshape(t, (1,)).astype(jnp.float32), "start": jnp.reshape(start, (1,))}
        return TaskState(obs, reward, done, t, start, jnp.zeros((0, 3)))

    def reset(self, rng):
        return self._state(jnp.int32(0), jax.random.uniform(rng), jnp.float32(0.0), jnp.float32(0.0))

    def step(self, state, action):
        t = state.t + 1
        done = jnp.float32(self.fall_at > 0) * (t >= self.fall_at)
        return self._state(t, state.start, jnp.float32(1.0) + 0.0 * action.sum(), done)


def _venv(name, num_envs=2, **kw):
    fall_at = kw.pop("fall_at", 0)
    register_env(name, lambda: (lambda env: (env, env.default_params))(PhysicsEnv(Counter(fall_at), 1, **kw)))
    return VecEnv(name, num_envs)


def _run(venv, steps, key=0):
    obs, state = venv.reset(jax.random.PRNGKey(key))
    step = jax.jit(venv.step)
    out = []
    for i in range(steps):
        nxt, state, r, term, trunc, info = step(jax.random.PRNGKey(100 + i), state, jnp.zeros((venv.num_envs, 1)))
        out.append(dict(obs=np.asarray(obs), next=np.asarray(nxt), r=np.asarray(r), term=np.asarray(term),
                        trunc=np.asarray(trunc), final=np.asarray(info["final_observation"]),
                        ret=np.asarray(info["episode_return"]), len=np.asarray(info["episode_length"]),
                        ended=np.asarray(info["returned_episode"])))
        obs = nxt
    return out


def test_time_limit_is_a_truncation_reported_with_the_observation_before_the_reset():
    venv = _venv("Counter-limit-test", episode_length=5)
    assert venv.obs_shape == (2,) and venv.max_episode_steps == 5  # {"start", "t"} flattened in key order
    _, state = venv.reset(jax.random.PRNGKey(0))
    assert all(x.size for x in jax.tree_util.tree_leaves(state))  # orbax cannot checkpoint zero-size arrays
    inner = jax.vmap(venv.env.task_state)(state.env_state)
    assert inner.empty.shape == (2, 0, 3) and inner.t.shape == (2,)
    steps = _run(venv, 12)
    for i, s in enumerate(steps):
        limit = (i + 1) % 5 == 0
        assert not s["term"].any()
        assert (s["trunc"] == limit).all() and (s["ended"] == limit).all(), i
        assert (s["final"][:, 1] == (i % 5) + 1).all()  # t after the step, before any reset
        assert (s["next"][:, 1] == (0 if limit else (i % 5) + 1)).all()  # the reset's observation
        if limit:
            assert (s["ret"] == 5.0).all() and (s["len"] == 5).all()
            assert (s["next"][:, 0] != s["final"][:, 0]).all()  # a fresh start u


def test_task_done_is_a_termination_even_at_the_time_limit():
    steps = _run(_venv("Counter-fall-test", fall_at=3, episode_length=5), 6)
    assert [bool(s["term"][0]) for s in steps] == [False, False, True, False, False, True]
    assert not any(s["trunc"].any() for s in steps)
    steps = _run(_venv("Counter-fall-at-limit-test", fall_at=5, episode_length=5), 5)
    assert steps[4]["term"].all() and not steps[4]["trunc"].any()  # both at once: a termination


def test_action_repeat_sums_rewards_and_stops_at_a_termination():
    steps = _run(_venv("Counter-repeat-test", episode_length=6, action_repeat=2), 3)
    assert [float(s["r"][0]) for s in steps] == [2.0, 2.0, 2.0] and steps[2]["trunc"].all()
    assert [float(s["final"][0, 1]) for s in steps] == [2.0, 4.0, 6.0]
    steps = _run(_venv("Counter-repeat-fall-test", fall_at=3, episode_length=6, action_repeat=2), 2)
    assert float(steps[1]["r"][0]) == 1.0 and steps[1]["term"].all()  # the 4th task step is not taken
    assert float(steps[1]["final"][0, 1]) == 3.0 and float(steps[1]["ret"][0]) == 3.0


def test_reset_first_restarts_from_the_first_initial_state():
    for mode, same in (("first", True), ("random", False)):
        steps = _run(_venv(f"Counter-reset-{mode}-test", episode_length=2, reset=mode), 6)
        starts = {float(s["next"][0, 0]) for s in steps if s["trunc"][0]} | {float(steps[0]["obs"][0, 0])}
        assert (len(starts) == 1) == same, (mode, starts)


def test_bootstrapping_never_sees_the_observation_after_the_reset():
    """In a collected batch, next_obs / next_value at a truncation are those of the final
    observation (t = 5), not of the reset's (t = 0) that the next step acts on."""
    venv = _venv("Counter-collect-test", episode_length=5)
    carry = rollout.reset(venv, jax.random.PRNGKey(0), False)
    policy = lambda params, obs, key: (jnp.zeros((obs.shape[0], 1)), jnp.zeros(obs.shape[0]))
    value = lambda params, obs: obs[:, 1]  # V(s) = t
    _, traj = rollout.collect(venv, policy, None, carry, jax.random.PRNGKey(1), 7, value)
    assert np.asarray(traj.truncated)[:, 0].tolist() == [False] * 4 + [True, False, False]
    assert float(traj.next_value[4, 0]) == 5.0 and float(traj.next_obs[4, 0, 1]) == 5.0
    assert float(traj.value[5, 0]) == 0.0  # the step after acts on the reset


def test_a_typed_key_reaches_the_task_as_a_raw_key():
    """SAC draws with core/prng.py's Philox keys; a task that keeps its key in the state (as
    Playground's do) must not end up with a key-typed leaf (the memory check sums bytes)."""
    seen = []

    class Spy(Counter):
        def reset(self, rng):
            seen.append(rng.dtype)
            return super().reset(rng)

    env = PhysicsEnv(Spy(), 1, episode_length=5)
    seen.clear()
    key = jax.random.key(0, impl=prng.impl())
    assert jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    with jax.disable_jit():  # the task's reset runs (a jitted one could reuse an earlier trace)
        env.reset(key)
    assert seen == [jnp.uint32]


def test_the_task_is_traced_once_and_the_programs_are_unchanged():
    """The runner traces a program's env step several times (its shape check, the training
    program, evaluation), and a MuJoCo step takes about half a second to trace: PhysicsEnv calls the task's
    reset and step through ``jax.jit(..., inline=True)``, which JAX traces once per input shape
    and then inlines, so a program holds the same operations as without the jit."""
    calls = []

    class Traced(Counter):
        def reset(self, rng):
            calls.append("reset")
            return super().reset(rng)

        def step(self, state, action):
            calls.append("step")
            return super().step(state, action)

    env = PhysicsEnv(Traced(), 1, episode_length=5)
    calls.clear()

    def program(env):  # a reset, then a step that may reset again
        def one(k):
            _, state = env.reset(k)
            return env.step(k, state, jnp.ones(1))[:3]
        return jax.jit(jax.vmap(one))

    lowered = [program(env).lower(jax.ShapeDtypeStruct((n, 2), jnp.uint32)).as_text() for n in (3, 5)]
    assert calls == ["step"]  # reset traced once by the constructor, step once for both programs

    plain = PhysicsEnv(Counter(), 1, episode_length=5)  # the same env with the jits taken out
    plain._task_reset, plain._task_step = plain.task.reset, plain.task.step
    assert program(plain).lower(jax.ShapeDtypeStruct((5, 2), jnp.uint32)).as_text() == lowered[1]


class Endless:
    """One state, reward 1, never done: only the time limit ends an episode, and the
    observation carries no time."""

    def reset(self, rng):
        return TaskState(jnp.ones((1,)), jnp.float32(0.0), jnp.float32(0.0), jnp.int32(0), jnp.float32(0.0))

    def step(self, state, action):
        return state.replace(reward=jnp.float32(1.0) + 0.0 * action.sum())


@pytest.mark.parametrize("bootstrap", [True, False])
def test_time_limit_bootstraps_to_the_infinite_horizon_value(bootstrap):
    """As tests/test_truncation.py, through the physics adapter: V(s0) reaches 1 / (1 - gamma)
    = 10 only when the time limit bootstraps (MC ~5.6 to one-step TD ~6.9 otherwise)."""
    name = "Endless-physics-test"
    register_env(name, lambda: (lambda env: (env, env.default_params))(PhysicsEnv(Endless(), 1, episode_length=20)))
    config, _, _, out = train_seeds("a2c", dict(
        env=name, num_envs=4, num_steps=8, total_timesteps=4 * 8 * 600, hidden=(16,), anneal_lr=False,
        bootstrap_truncation=bootstrap, num_eval_episodes=1, lr=3e-2, gamma=0.9, gae_lambda=0.5,
        max_grad_norm=10.0), seeds=1)
    critic = build_networks(config, VecEnv(name, 1))[1]
    params = jax.tree_util.tree_map(lambda x: x[0], out["carry"][0].params)
    v0 = float(critic.apply(params["critic"], jnp.ones((1, 1)))[0])
    if bootstrap:
        assert abs(v0 - 10.0) < 0.5, v0
    else:
        assert 5.3 < v0 < 7.2, v0
