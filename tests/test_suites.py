"""The physics suites (purejaxpg.envs.suites): ``playground/TASK`` and ``brax/NAME`` names,
their options, the lazy import, install hints, presets, and the real tasks behind the
adapter. Tests that build a task need the ``mujoco`` extra and skip without it; CI installs
it (.ci/run)."""
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxpg.algos import get_algo
from purejaxpg.envs import VecEnv, check_env_name, suites
from purejaxpg.envs.physics import flatten_obs

needs_playground = pytest.mark.skipif(not suites.SUITES["playground"].installed(),
                                      reason="needs the mujoco extra (pip install -e '.[mujoco]')")
needs_brax = pytest.mark.skipif(not suites.SUITES["brax"].installed(),
                                reason="needs the mujoco extra (pip install -e '.[mujoco]')")


def test_names_and_options_parse():
    suite, task, opts = suites.parse("playground/CheetahRun@warp@episode_length=500")
    assert suite.prefix == "playground" and task == "CheetahRun"
    assert opts == {"impl": "warp", "episode_length": "500"}
    assert suites.suite_of("brax/ant").prefix == "brax" and suites.suite_of("CartPole-v1") is None
    for bad in ("playground/CheetahRun@", "playground/CheetahRun@impl=", "playground/X@warp@impl=jax"):
        with pytest.raises(ValueError):
            suites.parse(bad)


def test_nothing_imports_the_suites_unless_asked(tmp_path):
    """A gymnax env, the name check, `purejaxpg list` and the presets import no MuJoCo,
    MJX, Brax or Playground."""
    code = ("import sys\nfrom purejaxpg.envs import VecEnv, check_env_name, env_names\n"
            "from purejaxpg import cli\nfrom purejaxpg.algos import get_algo\n"
            "VecEnv('CartPole-v1', 2); check_env_name('Pendulum-v1'); env_names()\n"
            "cli.main(['list']); get_algo('ppo').resolve({'env': 'CartPole-v1'})\n"
            "bad = [m for m in ('mujoco', 'brax', 'mujoco_playground') if m in sys.modules]\n"
            "assert not bad, bad\nprint('CLEAN')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "CLEAN" in out.stdout, out.stderr[-2000:]
    assert "playground/TASK" in out.stdout and "brax/TASK" in out.stdout  # `purejaxpg list` shows the suites


def test_a_missing_suite_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(suites.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match=r"pip install .*purejaxpg\[mujoco\]"):
        check_env_name("playground/CartpoleBalance")
    assert any("not installed: pip install" in line for line in suites.describe())


def test_presets_cover_suite_tasks_and_options():
    pytest.importorskip("mujoco_playground", reason="the mujoco extra is not installed")
    ppo, sac = get_algo("ppo"), get_algo("sac")
    cpu = ppo.preset("playground/CheetahRun")
    assert cpu["num_envs"] == 32 and cpu["gamma"] == 0.995  # the family's CPU version
    assert ppo.preset("playground/CheetahRun@warp") == cpu  # options do not change the preset
    gpu = ppo.preset("playground/CheetahRun", "playground/CheetahRun/gpu")
    assert gpu["num_envs"] == 2048 and gpu["num_steps"] * 2048 == 30 * 1024 * 32  # Brax's batch
    assert ppo.preset("playground/BallInCup")["gamma"] == 0.95
    assert ppo.preset("playground/WalkerRun", "ppo/playground/WalkerRun/gpu")["total_timesteps"] == 100_000_000
    assert sac.preset("playground/HopperHop", "playground/HopperHop/gpu")["total_timesteps"] == 10_000_000
    assert get_algo("ppo-kl").preset("playground/CartpoleBalance") == cpu
    assert ppo.preset("brax/ant") == {}  # no preset: the plain defaults
    config, hp = ppo.resolve({"env": "playground/CartpoleBalance@reset=first"})
    assert config.num_envs == 32 and hp["gamma"] == 0.995


@needs_playground
def test_task_lists_match_the_installed_packages():
    from purejaxpg.envs import playground

    assert tuple(playground.task_names()) == suites.SUITES["playground"].tasks


@needs_brax
def test_brax_task_list_matches_the_installed_package():
    from purejaxpg.envs import brax

    assert tuple(brax.task_names()) == suites.SUITES["brax"].tasks


@needs_playground
def test_unknown_tasks_and_options_list_the_valid_ones():
    with pytest.raises(ValueError, match="valid: playground/AcrobotSwingup, .*playground/CartpoleBalance"):
        check_env_name("playground/CartpoleBalanse")
    with pytest.raises(ValueError, match="impl must be one of jax, warp"):
        check_env_name("playground/CartpoleBalance@mjx")
    with pytest.raises(ValueError, match="unknown option"):
        check_env_name("playground/CartpoleBalance@frames=3")


@needs_playground
def test_playground_time_limit_and_reset():
    """CartpoleBalance with a 5-step limit: the 5th step truncates (never terminates), its
    final observation is the task's own next observation, and the observation returned is
    that of a fresh reset with the step's key. One compiled program (the MJX step compiles in
    tens of seconds on a CPU; run eagerly it takes as long per call)."""
    from mujoco_playground import registry

    venv = VecEnv("playground/CartpoleBalance@episode_length=5", 3)
    raw = registry.load("CartpoleBalance", config_overrides={"impl": "jax"})
    assert venv.obs_shape == (5,) and venv.action_spec.num_actions == 1 and venv.max_episode_steps == 5
    # built once per name and options (loading a model takes seconds; its traces are shared)
    assert VecEnv("playground/CartpoleBalance@episode_length=5", 7).env is venv.env
    assert VecEnv("playground/CartpoleBalance@episode_length=6", 3).env is not venv.env
    action = jnp.full((3, 1), 0.3)

    @jax.jit
    def run():
        _, state = venv.reset(jax.random.PRNGKey(0))

        def body(state, i):
            inner = jax.vmap(venv.env.task_state)(state.env_state)
            obs, state, reward, term, trunc, info = venv.step(jax.random.PRNGKey(i), state, action)
            expected = jax.vmap(raw.step)(inner, action).obs
            return state, (obs, term, trunc, info["final_observation"], expected, info["episode_length"],
                           info["episode_return"])

        _, out = jax.lax.scan(body, state, jnp.arange(5))
        fresh = jax.vmap(venv.env.reset)(jax.random.split(jax.random.PRNGKey(4), 3))[0]
        return out, fresh

    (obs, term, trunc, final, expected, length, ret), fresh = jax.tree.map(np.asarray, run())
    assert not term.any() and (trunc == (np.arange(5) == 4)[:, None]).all()
    np.testing.assert_allclose(final, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(obs[4], fresh, rtol=1e-6)
    np.testing.assert_allclose(obs[:4], final[:4])  # no reset before the limit
    assert not np.allclose(obs[4], final[4])
    assert (length[4] == 5).all() and (ret[4] > 4.0).all()


@needs_playground
@pytest.mark.slow
def test_warp_contact_task_matches_the_task_stepped_directly():
    """CheetahRun on MJX-Warp (its kernels run on a CPU, slowly: about a minute with a cold
    Warp cache), 3 envs, 2 task steps per agent step, a 4-step limit. Warp keeps contact
    buffers shared by all the envs of a vmap; the adapter does not carry them (each step
    rewrites them), so until the limit its observations and rewards are exactly those of the
    task stepped by itself with its buffers carried; past the limit the envs go on."""
    from mujoco_playground import registry

    n = 3
    venv = VecEnv("playground/CheetahRun@warp@episode_length=8@action_repeat=2", n)
    raw = registry.load("CheetahRun", config_overrides={"impl": "warp"})
    actions = jax.random.uniform(jax.random.PRNGKey(1), (6, n, 6), minval=-1.0, maxval=1.0)

    @jax.jit
    def run():
        _, state = venv.reset(jax.random.PRNGKey(0))
        task = jax.vmap(raw.reset)(jax.random.split(jax.random.PRNGKey(0), n))

        def body(carry, x):
            state, task = carry
            i, action = x
            obs, state, reward, term, trunc, _ = venv.step(jax.random.PRNGKey(i), state, action)
            first = jax.vmap(raw.step)(task, action)
            task = jax.vmap(raw.step)(first, action)
            expected = jax.vmap(flatten_obs)(task.obs), first.reward + task.reward
            return (state, task), (obs, reward, term, trunc, expected)

        return jax.lax.scan(body, (state, task), (jnp.arange(6), actions))[1]

    obs, reward, term, trunc, (expected_obs, expected_reward) = jax.tree.map(np.asarray, run())
    assert not term.any() and (trunc == (np.arange(6) == 3)[:, None]).all()
    np.testing.assert_array_equal(obs[:3], expected_obs[:3])
    np.testing.assert_array_equal(reward[:4], expected_reward[:4])
    assert np.isfinite(obs).all() and not np.allclose(obs[4], expected_obs[4])  # reset at the limit


@needs_brax
def test_brax_termination_is_not_a_truncation():
    """inverted_pendulum pushed one way falls over (|angle| > 0.2): a termination, reported
    with the fallen observation; the next observation is upright again. One compiled program
    of 100 steps."""
    venv = VecEnv("brax/inverted_pendulum", 2)

    @jax.jit
    def run():
        _, state = venv.reset(jax.random.PRNGKey(0))

        def body(state, i):
            obs, state, reward, term, trunc, info = venv.step(jax.random.PRNGKey(i), state, jnp.ones((2, 1)))
            return state, (obs, term, trunc, info["final_observation"], info["episode_length"])

        return jax.lax.scan(body, state, jnp.arange(100))[1]

    obs, term, trunc, final, length = jax.tree.map(np.asarray, run())
    assert not trunc.any() and term.any(axis=0).all()
    i = int(np.argmax(term.any(axis=1)))  # the first step at which one of them fell
    assert term[i].all(), term[i]  # same start and push: both fall at once
    assert (np.abs(final[i, :, 1]) > 0.2).all() and (np.abs(obs[i, :, 1]) < 0.05).all()
    assert (np.abs(obs[:i, :, 1]) <= 0.2).all() and (length[i] == i + 1).all()
