import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxpg.envs import VecEnv, env_names, make_env, rescale_action


def test_every_offline_env_resets_and_steps():
    names = env_names()
    assert "CartPole-v1" in names and "MNISTBandit-bsuite" not in names
    for name in names:
        venv = VecEnv(name, 2)
        obs, state = jax.jit(venv.reset)(jax.random.PRNGKey(0))
        assert obs.shape == (2,) + venv.obs_shape and obs.dtype == jnp.float32, name
        spec = venv.action_spec
        action = jnp.zeros(2, jnp.int32) if spec.discrete else jnp.zeros((2, spec.num_actions))
        out = jax.jit(venv.step)(jax.random.PRNGKey(1), state, action)
        assert out[0].shape == obs.shape and out[2].shape == (2,), name
        assert out[5]["final_observation"].shape == obs.shape, name


def test_unknown_env_lists_valid_names():
    with pytest.raises(ValueError, match="unknown environment 'CartPole-v9'.*CartPole-v1"):
        make_env("CartPole-v9")
    with pytest.raises(ValueError, match="dataset download"):
        make_env("MNISTBandit-bsuite")


def test_make_env_overrides_params():
    env, params = make_env("CartPole-v1", max_steps_in_episode=7)
    assert params.max_steps_in_episode == 7


def test_num_envs_must_be_positive():
    with pytest.raises(ValueError, match="num_envs"):
        VecEnv("CartPole-v1", 0)


def test_episode_statistics_count_each_episode_once():
    """Random play on CartPole with a time limit of 30: every reported episode has the
    return and length of a real episode (reward 1 per step), each reported once."""
    venv = VecEnv("CartPole-v1", 4, max_steps_in_episode=30)
    obs, state = venv.reset(jax.random.PRNGKey(0))

    def body(state, k):
        k1, k2 = jax.random.split(k)
        a = jax.random.randint(k1, (4,), 0, 2)
        obs, state, r, term, trunc, info = venv.step(k2, state, a)
        return state, (r, term, trunc, info["returned_episode"], info["episode_return"],
                       info["episode_length"], info["episode_step"])

    _, (r, term, trunc, ret_ep, ep_ret, ep_len, ep_step) = jax.lax.scan(body, state, jax.random.split(jax.random.PRNGKey(1), 200))
    r, term, trunc, ret_ep, ep_ret, ep_len, ep_step = map(np.asarray, (r, term, trunc, ret_ep, ep_ret, ep_len, ep_step))
    np.testing.assert_array_equal(ret_ep, term | trunc)
    for i in range(4):
        start, n_eps = 0, 0
        for t in range(200):
            assert ep_step[t, i] == t - start
            if ret_ep[t, i]:
                n_eps += 1
                assert ep_len[t, i] == t - start + 1
                assert ep_ret[t, i] == pytest.approx(r[start:t + 1, i].sum())
                assert ep_len[t, i] <= 30
                if trunc[t, i]:
                    assert ep_len[t, i] == 30
                start = t + 1
        assert n_eps >= 200 // 30


def test_action_rescaling_to_box_bounds():
    np.testing.assert_allclose(rescale_action(jnp.array([-1.0, 0.0, 1.0, 3.0]), -2.0, 2.0), [-2, 0, 2, 2])
    venv = VecEnv("Pendulum-v1", 3)
    assert not venv.action_spec.discrete and venv.action_spec.num_actions == 1
    np.testing.assert_allclose(venv._env_action(jnp.array([[-1.0], [0.5], [9.0]])).reshape(-1), [-2.0, 1.0, 2.0])


_PLAIN_IMPORT = """
import sys
import gymnax
print(" ".join(n for n in ("seaborn", "matplotlib.pyplot") if n in sys.modules))
"""

_THROUGH_PUREJAXPG = """
import sys, types
from purejaxpg.envs import env_names, make_env
env_names(), make_env("CartPole-v1"), make_env("Tabular-Random")
print(" ".join(n for n in ("seaborn", "matplotlib.pyplot", "pandas") if n in sys.modules))
from gymnax.environments.misc import pong
assert type(pong.sns).__name__ == "_ImportedOnFirstUse", type(pong.sns)
assert len(pong.sns.color_palette("cubehelix", 3)) == 3  # gymnax's renderer's call: loads seaborn
import seaborn
import matplotlib.pyplot as plt
assert type(seaborn) is types.ModuleType and type(plt) is types.ModuleType and pong.plt.figure is plt.figure
print("ok")
"""


def test_gymnax_is_imported_without_its_plotting_modules():
    """Plain ``import gymnax`` imports seaborn and matplotlib.pyplot (the reason for
    ``envs.gymnax.import_gymnax``: 1.3-1.4 s of a process's start); through purejaxpg it
    imports neither, and they load when gymnax's renderers or anyone else use them."""
    import subprocess
    import sys

    from children import child_env

    def run(code):
        proc = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout.splitlines()

    assert run(_PLAIN_IMPORT) == ["seaborn matplotlib.pyplot"]
    assert run(_THROUGH_PUREJAXPG) == ["", "ok"]
