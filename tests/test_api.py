"""The Python API (purejaxpg.train / sweep / load) and bring-your-own environments."""
import doctest
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejaxpg
from purejaxpg import api
from purejaxpg.analysis import stats
from purejaxpg.core import rollout
from purejaxpg.envs import VecEnv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_docstring_examples_run():
    result = doctest.testmod(api, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 8 and result.failed == 0, result


def test_train_save_load_and_act_reproduce_the_evaluation(tmp_path):
    """A run written to disk and reopened with ``purejaxpg.load``: the same summary and
    metrics, and ``act`` plays exactly the policy the run's final evaluation played (the
    evaluation episodes, replayed through ``act``, give every seed's final return)."""
    out = str(tmp_path / "ppo")
    run = purejaxpg.train("ppo", env="CartPole-v1", num_seeds=2, total_timesteps=20480, hidden=(16,),
                          num_eval_episodes=4, out=out, quiet=True)
    assert run.summary["final_return"]["per_seed"] == pytest.approx(run.final_return.tolist())
    assert json.load(open(os.path.join(out, "summary.json")))["final_return"] == run.summary["final_return"]
    loaded = purejaxpg.load(out)
    np.testing.assert_array_equal(loaded.final_return, run.final_return)
    for k in run.metrics:
        np.testing.assert_array_equal(loaded.metrics[k], run.metrics[k], err_msg=k)
    venv = VecEnv("CartPole-v1", 4)
    for seed in range(2):
        p = loaded.policy(seed)

        def by_act(_, obs, key, seed=seed):
            return loaded.act(obs, seed, key), jnp.zeros(obs.shape[0])

        returns = rollout.evaluate(venv, by_act, None, None, p.key)  # act normalises observations itself
        assert float(returns.mean()) == pytest.approx(run.final_return[seed], rel=1e-6)
    fig = run.plot(str(tmp_path / "curve.png"))
    assert fig.axes and (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
    run.save(str(tmp_path / "copy"))
    assert sorted(os.listdir(tmp_path / "copy")) == ["config.json", "learning_curve.png", "metrics.npz",
                                                     "summary.json"]


def test_bad_settings_and_unknown_envs_are_one_line_errors():
    with pytest.raises(ValueError, match=r"clip_eps must lie in \(0, 1\]"):
        purejaxpg.train("ppo", clip_eps=0.0)
    with pytest.raises(ValueError, match="unknown environment 'Nope-v0'.*module:attribute"):
        purejaxpg.train("ppo", env="Nope-v0")
    with pytest.raises(ValueError, match="cannot load environment 'no_such_module:Env'"):
        purejaxpg.train("ppo", env="no_such_module:Env")


@pytest.mark.parametrize("call, message", [
    (lambda: purejaxpg.train("ppo", num_seeds=2.0), "num_seeds must be an integer, got 2.0"),
    (lambda: purejaxpg.train("ppo", num_seeds="4"), "num_seeds must be an integer, got '4'"),
    (lambda: purejaxpg.train("ppo", seed=0.5), "seed must be an integer"),
    (lambda: purejaxpg.train("ppo", env=123), "env must be a name .* got int 123"),
    (lambda: purejaxpg.sweep("ppo", grid=["lr"]), "grid must be a dict"),
    (lambda: purejaxpg.sweep("ppo", grid={"lr": 1e-3}), r"grid\['lr'\] must be a list of values, got 0.001"),
    (lambda: purejaxpg.sweep("ppo", grid={"lr": []}), r"grid\['lr'\] has no values"),
    (lambda: purejaxpg.sweep("ppo", ranges={"lr": (1e-4,)}, samples=2), r"ranges\['lr'\] must be \(low, high\)"),
    (lambda: purejaxpg.sweep("ppo", ranges={"lr": "1e-4:1e-3"}, samples=2), r"ranges\['lr'\] must be"),
    (lambda: purejaxpg.sweep("ppo", ranges={"lr": (0.0, 1e-3, "log")}, samples=2), "low > 0 on a log scale"),
])
def test_wrongly_typed_arguments_are_one_line_errors_before_compiling(call, message, monkeypatch):
    """Each was a TypeError or AttributeError from deep inside (a float seed count after
    compiling), or, for the empty grid, a sweep of nothing."""
    from purejaxpg.engine import runner

    monkeypatch.setattr(runner, "prepare", lambda *a, **k: pytest.fail("reached the compile stage"))
    with pytest.raises(ValueError, match=message):
        call()


@pytest.fixture
def point_mass(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "examples"))
    import point_mass

    return point_mass


@pytest.mark.parametrize("algo, settings", [
    # doing nothing scores about -31, uniform random actions about -61; these budgets reach about -3
    ("ppo", {"total_timesteps": 60_000, "num_envs": 8, "lr": 1e-3}),
    ("sac", {"total_timesteps": 3000, "learning_starts": 500, "buffer_size": 3000, "hidden": (32, 32),
             "minibatch_size": 128}),
])
def test_the_example_environment_trains_with_every_kind_of_algorithm(point_mass, algo, settings):
    """examples/point_mass.py, a gymnax-style env outside the package, by name
    (``module:attribute``, as the CLI takes it) for PPO and as an instance for SAC; its
    terminations (leaving the track) and truncations (the time limit) are its own."""
    env = "point_mass:PointMass" if algo == "ppo" else point_mass.PointMass()
    run = purejaxpg.train(algo, env=env, num_seeds=4, quiet=True, **settings)
    assert stats.iqm(run.final_return) > -15.0, run.final_return  # halfway from doing nothing to what it reaches
    # the env's own episode ends reach the engine: leaving the track terminates, the limit truncates
    venv = VecEnv("point_mass:PointMass", 2)
    _, state = venv.reset(jax.random.PRNGKey(0))
    inner = point_mass.State(time=jnp.asarray([5, 99]), x=jnp.asarray([1.99, 0.0]), v=jnp.asarray([1.0, 0.0]))
    _, _, reward, terminated, truncated, info = venv.step(jax.random.PRNGKey(1), state.replace(env_state=inner),
                                                          jnp.ones((2, 1)))
    assert terminated.tolist() == [True, False] and truncated.tolist() == [False, True]
    assert float(reward[0]) == -10.0 and float(info["final_observation"][0, 0]) > 2.0
