"""GIFs of classic-control episodes: frame geometry, the recorded episode against a plain
loop, and ``purejaxpg eval DIR --gif`` end to end (the episode is the run's own evaluation
episode: same policy, normalisation and key)."""
import dataclasses
import json
import os
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxpg.analysis import render
from purejaxpg.engine import sweep
from purejaxpg.envs import VecEnv, make_env

TINY_PPO = {"env": "CartPole-v1", "num_envs": 4, "num_steps": 16, "total_timesteps": 256, "hidden": (8,),
            "update_epochs": 1, "num_minibatches": 1, "num_eval_episodes": 1, "normalize_obs": True}  # 4 updates


def _state(env_name, **fields):
    """A gymnax env state with the given fields (the others 0) and the env's default params."""
    from gymnax.environments.classic_control import (
        acrobot,
        cartpole,
        continuous_mountain_car,
        mountain_car,
        pendulum,
    )

    module = {"CartPole-v1": cartpole, "Pendulum-v1": pendulum, "Acrobot-v1": acrobot, "MountainCar-v0": mountain_car,
              "MountainCarContinuous-v0": continuous_mountain_car}[env_name]
    names = [f.name for f in dataclasses.fields(module.EnvState)]
    assert set(fields) <= set(names), (fields, names)
    state = module.EnvState(**{n: np.float32(fields.get(n, 0.0)) for n in names})
    return state, make_env(env_name)[1]


def _pixels(img, color):
    """(rows, cols) of the pixels of exactly ``color``."""
    return np.nonzero(np.all(img == np.asarray(color, np.uint8), axis=-1))


def _centre(img, color):
    rows, cols = _pixels(img, color)
    assert rows.size > 0, f"no pixel of colour {color}"
    return rows.mean(), cols.mean()


@pytest.mark.parametrize("env_name", render.renderable_envs())
def test_frame_shape_and_dtype(env_name):
    state, params = _state(env_name)
    for width, height in ((400, 300), (160, 120)):
        img = render.FRAMES[env_name](state, params, width, height)
        chex.assert_shape(img, (height, width, 3))
        assert img.dtype == np.uint8
        assert len(np.unique(img.reshape(-1, 3), axis=0)) >= 3  # background and at least two shapes


def test_cartpole_geometry():
    frames = {x: render.cartpole_frame(*_state("CartPole-v1", x=x, theta=0.0)) for x in (-1.0, 0.0, 1.0)}
    cols = [_centre(frames[x], render.CART)[1] for x in (-1.0, 0.0, 1.0)]
    assert cols[0] < cols[1] - 20 and cols[1] < cols[2] - 20  # the cart moves right with x
    assert abs(cols[1] - 199.5) < 1.0  # x = 0 is the middle of a 400-pixel frame
    np.testing.assert_allclose(cols[2] - cols[1], cols[1] - cols[0], atol=1.0)  # linear in x
    # theta = 0: an upright pole, centred on the cart and above it
    rows_p, cols_p = _pixels(frames[1.0], render.POLE)
    cart_row = _centre(frames[1.0], render.CART)[0]
    assert np.ptp(cols_p) <= 12 and abs(cols_p.mean() - cols[2]) < 1.0
    assert np.ptp(rows_p) > 50 and rows_p.max() < cart_row
    # theta > 0 leans right, theta < 0 left
    right = render.cartpole_frame(*_state("CartPole-v1", x=0.0, theta=0.3))
    left = render.cartpole_frame(*_state("CartPole-v1", x=0.0, theta=-0.3))
    top = lambda img: _pixels(img, render.POLE)[1][np.argmin(_pixels(img, render.POLE)[0])]
    assert top(right) > cols[1] + 10 and top(left) < cols[1] - 10


def test_pendulum_geometry():
    def rod(theta):
        img = render.pendulum_frame(*_state("Pendulum-v1", theta=theta, last_u=0.0))
        return _centre(img, render.ROD)

    pivot_row, pivot_col = 149.5, 199.5  # the pivot is the frame's centre
    up, down, ccw = rod(0.0), rod(np.pi), rod(np.pi / 2)
    assert up[0] < pivot_row - 30 and abs(up[1] - pivot_col) < 2  # theta = 0 points up
    assert down[0] > pivot_row + 30 and abs(down[1] - pivot_col) < 2
    assert ccw[1] < pivot_col - 30 and abs(ccw[0] - pivot_row) < 2  # positive angles turn counter-clockwise


def test_acrobot_geometry():
    hanging = render.acrobot_frame(*_state("Acrobot-v1", joint_angle1=0.0, joint_angle2=0.0))
    rows, cols = _pixels(hanging, render.LINK)
    assert rows.min() >= 149 - 10 and np.ptp(cols) <= 16  # both links straight down from the pivot
    up = render.acrobot_frame(*_state("Acrobot-v1", joint_angle1=np.pi, joint_angle2=0.0))
    rows_up = _pixels(up, render.LINK)[0]
    goal_row = 149.5 - 1.0 * 300 / (2 * 1.1 * 2.0)  # tip height 1 on a frame 2 x 1.1 x 2 units tall
    assert rows_up.max() <= 149 + 10 and rows_up.min() < goal_row  # straight up: the tip above the goal line
    bent = render.acrobot_frame(*_state("Acrobot-v1", joint_angle1=0.0, joint_angle2=np.pi / 2))
    rows_b, cols_b = _pixels(bent, render.LINK)
    elbow_row = 149.5 + 300 / (2 * 1.1 * 2.0)  # one link length below the pivot
    assert cols_b.max() > 199.5 + 40  # the second link turns right, level with the elbow
    assert abs(rows_b[cols_b > 199.5 + 40].mean() - elbow_row) < 2


@pytest.mark.parametrize("env_name", ["MountainCar-v0", "MountainCarContinuous-v0"])
def test_mountain_car_geometry(env_name):
    def car(position):
        img = render.mountain_car_frame(*_state(env_name, position=position, velocity=0.0))
        return _centre(img, render.CAR)

    valley, left, goal = car(-np.pi / 6), car(-1.0), car(0.45)
    assert left[1] < valley[1] < goal[1]  # position moves the car right
    assert goal[0] < valley[0] - 50 and left[0] < valley[0]  # both slopes are higher than the valley
    _, params = make_env(env_name)
    flag_col = _centre(render.mountain_car_frame(*_state(env_name)), render.FLAG)[1]
    expected = (float(params.goal_position) + 1.2) / 1.8 * 400  # the flag is at goal_position
    assert expected < flag_col < expected + 20


def test_step_numbers_make_frames_distinct():
    blank = np.full((20, 60, 3), 255, np.uint8)
    stamps = []
    for n in range(10):
        img = blank.copy()
        render.stamp_number(img, n)
        stamps.append(img)
    assert len({s.tobytes() for s in stamps}) == 10
    two = blank.copy()
    render.stamp_number(two, 12)
    assert (two != 255).any(axis=-1).sum() > (stamps[1] != 255).any(axis=-1).sum()


def test_record_episode_matches_a_plain_loop():
    """The scanned recording equals stepping the VecEnv by hand with the same keys."""
    venv = VecEnv("CartPole-v1", 1)

    def policy(params, obs, key):  # push right while the pole leans right (a poor balancer)
        return (obs[:, 2] > params).astype(jnp.int32), jnp.zeros(obs.shape[0])

    key = jax.random.PRNGKey(3)
    states, rewards, dones, returns = jax.jit(lambda k: render.record_episode(venv, policy, 0.0, None, k))(key)
    chex.assert_shape([rewards, dones, returns], (venv.max_episode_steps,))
    chex.assert_shape(states.x, (venv.max_episode_steps,))
    k_reset, k = jax.random.split(key)
    obs, st = venv.reset(k_reset)
    step = jax.jit(venv.step)
    ref_x, ref_done = [], []
    for _ in range(venv.max_episode_steps):
        k, k_act, k_env = jax.random.split(k, 3)
        action, _ = policy(0.0, obs, k_act)
        ref_x.append(float(st.env_state.x[0]))
        obs, st, r, term, trunc, _ = step(k_env, st, action)
        ref_done.append(bool(term[0] | trunc[0]))
        if ref_done[-1]:
            break
    n = len(ref_x)
    assert ref_done[-1] and 5 < n < 100
    np.testing.assert_allclose(np.asarray(states.x[:n]), ref_x, rtol=1e-6, atol=1e-6)
    assert np.flatnonzero(np.asarray(dones))[0] == n - 1
    assert float(returns[n - 1]) == n  # CartPole: one point per step


@pytest.mark.parametrize("algo_name,env_name,fields", [
    # PPO (sampled actions, normalised observations) is also covered, from a checkpoint, by the CLI test below
    pytest.param("ppo", "CartPole-v1", {"num_envs": 4, "num_steps": 16, "total_timesteps": 64}, marks=pytest.mark.slow),
    ("sac", "Pendulum-v1", {"total_timesteps": 64, "learning_starts": 32, "minibatch_size": 16, "buffer_size": 64}),
])
def test_recorded_episode_is_the_evaluation_episode(algo_name, env_name, fields):
    """Through ``train.eval_policy`` the recording plays exactly what ``train.evaluate`` plays
    with one evaluation episode: the same actions (sampled for PPO, deterministic for SAC),
    observation normalisation and key."""
    from purejaxpg.algos import get_algo

    algo = get_algo(algo_name)
    config = algo.Config(env=env_name, hidden=(8,), num_eval_episodes=1, normalize_obs=True, **fields)
    train = algo.make_train(config)
    carry = jax.jit(train.init)(jax.random.PRNGKey(1), algo.default_hparams(config))
    expected = float(jax.jit(train.evaluate)(carry)[0])
    venv = VecEnv(env_name, 1)
    _, rewards, dones, returns = jax.jit(lambda c: render.record_episode(venv, *train.eval_policy(c)))(carry)
    end = int(np.flatnonzero(np.asarray(dones))[0])
    np.testing.assert_allclose(float(returns[end]), expected, rtol=1e-5)
    np.testing.assert_allclose(float(np.sum(rewards[:end + 1])), expected, rtol=1e-4)


def _write_spec(out, algo, base):
    os.makedirs(out)
    spec = {"algo": algo, "preset": "none", "base": base, "points": [{}], "num_seeds": 1, "seed": 0, "chunks": 1,
            "memory_limit_mb": 0.0, "single": True, "grid": {}, "ranges": {}, "samples": 0}
    with open(os.path.join(out, sweep.RUN_FILE), "w") as f:
        json.dump(spec, f)


def test_gif_run_picks_the_configuration_across_programs():
    """Configuration indices follow run.json's points, also when a shape-changing field splits
    the sweep into several programs."""
    grid = {"hidden": [(8,), (16,)], "lr": [1e-3, 3e-3]}
    points = sweep.configurations(grid, {}, 0, 0, "ppo")
    spec = {"algo": "ppo", "preset": "none", "base": {"env": "CartPole-v1"}, "num_seeds": 3,
            "points": [sweep._jsonable(p) for p in points]}
    _, groups = sweep.load_plan(spec)
    assert len(groups) == 2
    for c, point in enumerate(points):
        gi, k, name = render._locate_run(spec, groups, c, 2)
        assert groups[gi].swept[k] == point and name == groups[gi].names[k] and name.startswith(f"c{c:03d}_")
    with pytest.raises(ValueError, match="configuration 4 out of range"):
        render._locate_run(spec, groups, 4, 0)
    with pytest.raises(ValueError, match="seed 3 out of range"):
        render._locate_run(spec, groups, 0, 3)


def test_unsupported_env_is_refused_before_compiling(tmp_path, capsys):
    from purejaxpg.cli import main

    with pytest.raises(ValueError, match="cannot render 'Breakout-MinAtar'.*CartPole-v1, Pendulum-v1"):
        render.check_renderable("Breakout-MinAtar")
    out = str(tmp_path / "minatar")
    _write_spec(out, "ppo", {"env": "Breakout-MinAtar"})  # no checkpoint: an error after planning would differ
    assert main(["eval", out, "--gif", str(tmp_path / "x.gif")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot render 'Breakout-MinAtar'" in err and "MountainCar-v0" in err
    assert not os.path.exists(tmp_path / "x.gif")


def _gif_frames(path):
    from PIL import Image, ImageSequence

    with Image.open(path) as im:
        assert im.format == "GIF" and im.info.get("loop") == 0
        return [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]


def test_cli_gif_of_a_chunked_cartpole_run(tmp_path, capsys):
    from purejaxpg.cli import main

    out = str(tmp_path / "cp")
    sweep.sweep("ppo", out, base=TINY_PPO, num_seeds=2, chunks=2, single=True, quiet=True, preset="none")
    gif = str(tmp_path / "gifs" / "cp.gif")
    for bad, msg in ((["--gif-run", "0,2"], "seed 2 out of range"), (["--gif-run", "1,0"], "configuration 1 out"),
                     (["--gif-run", "0"], "CONFIG_INDEX,SEED")):
        assert main(["eval", out, "--gif", gif, *bad]) == 2
        assert msg in capsys.readouterr().err
    # --episodes 1: the evaluation plays the same episode (the run's evaluation key) as the GIF
    assert main(["eval", out, "--episodes", "1", "--gif", gif, "--gif-run", "0,1"]) == 0
    text = capsys.readouterr().out
    per_seed = re.search(r"per seed: (\S+), (\S+)", text).groups()
    m = re.search(r"wrote (\S+): CartPole-v1, run seed 1, (\d+) frames \(episode return (\S+)\)", text)
    assert m and m.group(1) == gif, text
    assert m.group(3) == per_seed[1]
    frames = _gif_frames(gif)
    assert len(frames) == int(m.group(2)) == round(float(m.group(3)))  # CartPole: return = episode length
    chex.assert_shape(frames, (300, 400, 3))
    assert len({f.tobytes() for f in frames}) == len(frames)
    cart_cols = [_centre(f, render.CART)[1] for f in frames]  # the cart moves during the episode
    assert np.ptp(cart_cols) > 0


@pytest.mark.slow  # a second trained run (~15 s of compilation); the hook itself is tested above
def test_gif_of_pendulum_sac_matches_its_evaluation(tmp_path):
    out = str(tmp_path / "pd")
    base = {"env": "Pendulum-v1", "total_timesteps": 64, "learning_starts": 32, "minibatch_size": 16,
            "buffer_size": 64, "hidden": (8,), "num_eval_episodes": 1}
    sweep.sweep("sac", out, base=base, num_seeds=2, chunks=2, single=True, quiet=True, preset="none")
    r = render.render_run(out, str(tmp_path / "pd.gif"), (0, 1))
    assert r["length"] == r["frames"] == 200 and r["updates"] == 64  # Pendulum ends at its time limit
    # the run's final evaluation (one episode per seed, its evaluation key) played the same episode
    with open(os.path.join(out, "summary.json")) as f:
        per_seed = json.load(f)["final_return"]["per_seed"]
    np.testing.assert_allclose(r["return"], per_seed[1], rtol=1e-4)
    assert r["return"] != pytest.approx(per_seed[0], rel=1e-4)  # and not the other seed's
    frames = _gif_frames(r["path"])
    assert len(frames) == 200
    rods = np.asarray([_centre(f, render.ROD) for f in frames])
    assert np.ptp(rods[:, 0]) > 5 or np.ptp(rods[:, 1]) > 5  # the pendulum swings
