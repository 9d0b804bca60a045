"""GIFs of classic-control episodes: frame geometry, the recorded episode against a plain
loop, and ``purejaxpg eval DIR --gif`` end to end (the episode is the run's own evaluation
episode: same policy, normalisation and key)."""
import dataclasses
import json
import math
import os
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxpg.analysis import render
from purejaxpg.engine import plan, runner
from purejaxpg.envs import VecEnv, make_env

TINY_PPO = {"env": "CartPole-v1", "num_envs": 4, "num_steps": 16, "total_timesteps": 256, "hidden": (8,),
            "update_epochs": 1, "num_minibatches": 1, "num_eval_episodes": 1, "normalize_obs": True}  # 4 updates


def _module(env_name):
    """The gymnax module of a classic-control env."""
    from gymnax.environments.classic_control import (
        acrobot,
        cartpole,
        continuous_mountain_car,
        mountain_car,
        pendulum,
    )

    return {"CartPole-v1": cartpole, "Pendulum-v1": pendulum, "Acrobot-v1": acrobot, "MountainCar-v0": mountain_car,
            "MountainCarContinuous-v0": continuous_mountain_car}[env_name]


def _states(env_name, n, **fields):
    """``n`` gymnax env states stacked on a leading axis (the given fields broadcast, the others 0)
    and the env's default params."""
    module = _module(env_name)
    names = [f.name for f in dataclasses.fields(module.EnvState)]
    assert set(fields) <= set(names), (fields, names)
    state = module.EnvState(**{k: np.broadcast_to(np.asarray(fields.get(k, 0.0), np.float32), (n,)) for k in names})
    return state, make_env(env_name)[1]


def _state(env_name, **fields):
    """A gymnax env state with the given fields (the others 0) and the env's default params."""
    states, params = _states(env_name, 1, **fields)
    return jax.tree_util.tree_map(lambda a: a[0], states), params


def _pixels(img, color):
    """(rows, cols) of the pixels of exactly ``color``."""
    return np.nonzero(np.all(img == np.asarray(color, np.uint8), axis=-1))


def _centre(img, color):
    rows, cols = _pixels(img, color)
    assert rows.size > 0, f"no pixel of colour {color}"
    return rows.mean(), cols.mean()


def _pixel(x, y, xlim, ybottom, width=400, height=300):
    """(row, col) of the world point (x, y) in a frame showing ``xlim`` across and y from
    ``ybottom`` up, at the same scale (column c covers x0 + [c, c + 1] * scale)."""
    scale = (xlim[1] - xlim[0]) / width
    return height - (y - ybottom) / scale - 0.5, (x - xlim[0]) / scale - 0.5


def _angle_from_up(origin, point, clockwise=True):
    """Angle of the image vector origin -> point (both (row, col)) from straight up."""
    d_row, d_col = point[0] - origin[0], point[1] - origin[1]
    return math.atan2(d_col if clockwise else -d_col, -d_row)


PALETTE = {render.WHITE, render.TRACK, render.CART, render.POLE, render.AXLE, render.ROD, render.LINK, render.JOINT,
           render.GROUND, render.CAR, render.WHEEL, render.FLAG, render.TEXT}


@pytest.mark.parametrize("env_name", render.renderable_envs())
def test_frame_shape_and_dtype(env_name):
    state, params = _state(env_name)
    for width, height in ((400, 300), (160, 120), (333, 217)):
        img = render.FRAMES[env_name](state, params, width, height)
        chex.assert_shape(img, (height, width, 3))
        assert img.dtype == np.uint8
        colors = {tuple(int(v) for v in c) for c in np.unique(img.reshape(-1, 3), axis=0)}
        assert len(colors) >= 3  # background and at least two shapes
        assert colors <= PALETTE  # nothing antialiased: only the drawing colours


# The frames' world coordinates (400 x 300 pixels, default params): CartPole shows 1.2 x the
# track, the track a quarter up; Pendulum and Acrobot centre the pivot, 1.25 rod lengths and
# 1.1 x the two links above and below it; MountainCar spans [min_position, max_position] from y = -0.15.
CARTPOLE = dict(xlim=(-2.88, 2.88), ybottom=-0.25 * 5.76 * 0.75)
PENDULUM = dict(xlim=(-1.25 * 4 / 3, 1.25 * 4 / 3), ybottom=-1.25)
ACROBOT = dict(xlim=(-2.2 * 4 / 3, 2.2 * 4 / 3), ybottom=-2.2)
MOUNTAIN_CAR = dict(xlim=(-1.2, 0.6), ybottom=-0.15)


def test_cartpole_cart_and_track():
    limit = float(make_env("CartPole-v1")[1].x_threshold)
    for x in (-limit, -1.0, 0.0, 1.0, limit):  # the cart is centred on x, its middle 0.15 above the track
        row, col = _centre(render.cartpole_frame(*_state("CartPole-v1", x=x)), render.CART)
        exp_row, exp_col = _pixel(x, 0.15, **CARTPOLE)
        assert abs(col - exp_col) < 1.0 and abs(row - exp_row) < 2.0, (x, row, col, exp_row, exp_col)
    img = render.cartpole_frame(*_state("CartPole-v1"))
    cols = _pixels(img, render.TRACK)[1]
    (row, left), right = _pixel(-limit, -0.02, **CARTPOLE), _pixel(limit, 0, **CARTPOLE)[1]
    assert abs(cols.min() - left) < 3 and abs(cols.max() - right) < 3  # the track ends at -/+ x_threshold
    assert np.all(img[round(row), round(left):round(right)] == np.asarray(render.TRACK, np.uint8))  # unbroken


@pytest.mark.parametrize("theta", [0.0, 0.3, -0.3, 1.2, -1.2])
def test_cartpole_pole(theta):
    """theta = 0 is upright, theta > 0 leans right: the pole's pixels lie on that side of the
    cart's centre, along the direction theta from the axle."""
    img = render.cartpole_frame(*_state("CartPole-v1", x=0.5, theta=theta))
    rows, cols = _pixels(img, render.POLE)
    cart_row, cart_col = _pixel(0.5, 0.15, **CARTPOLE)  # the cart's middle
    axle = _centre(img, render.AXLE)
    assert rows.size > 200 and rows.max() < cart_row  # the pole rises from the axle, above the cart's middle
    if theta > 0:
        assert cols.min() > cart_col - 4 and cols.mean() > cart_col + 10
    elif theta < 0:
        assert cols.max() < cart_col + 4 and cols.mean() < cart_col - 10
    else:
        assert abs(cols.mean() - cart_col) < 1 and np.ptp(cols) < 10
    assert abs(_angle_from_up(axle, (rows.mean(), cols.mean())) - theta) < 0.05


@pytest.mark.parametrize("theta", [0.0, np.pi, np.pi / 2, -np.pi / 2, 0.7])
def test_pendulum_rod(theta):
    """theta = 0 points up from the pivot (the frame's centre), positive angles turn
    counter-clockwise: the rod's tip is above the pivot at 0, below it at pi, left at pi/2."""
    img = render.pendulum_frame(*_state("Pendulum-v1", theta=theta))
    rows, cols = _pixels(img, render.ROD)
    pivot = _pixel(0.0, 0.0, **PENDULUM)
    reach = np.hypot(rows - pivot[0], cols - pivot[1]).max()
    assert abs(reach - 1.1 * 120) < 2  # the rod is 1 long with a round end of 0.1, 120 pixels per unit
    if theta == 0.0:
        assert rows.max() < pivot[0] + 15 and rows.min() < pivot[0] - 100
    if theta == np.pi:
        assert rows.min() > pivot[0] - 15 and rows.max() > pivot[0] + 100
    delta = (_angle_from_up(pivot, (rows.mean(), cols.mean()), clockwise=False) - theta + np.pi) % (2 * np.pi) - np.pi
    assert abs(delta) < 0.03


@pytest.mark.parametrize("last_u", [2.0, -1.0, 0.0])
def test_pendulum_torque_bar(last_u):
    """The bar under the pivot runs from the middle to last_u / max_torque of 0.8 rod lengths."""
    rows, cols = _pixels(render.pendulum_frame(*_state("Pendulum-v1", last_u=last_u)), render.TRACK)
    if last_u == 0.0:
        assert rows.size == 0
        return
    ends = sorted([0.0, 0.8 * last_u / 2.0])
    assert abs(cols.min() - _pixel(ends[0], 0, **PENDULUM)[1]) < 1.5
    assert abs(cols.max() - _pixel(ends[1], 0, **PENDULUM)[1]) < 1.5
    assert rows.min() > _pixel(0, -1.05, **PENDULUM)[0]  # under the swing of the rod


def test_acrobot_links():
    pivot_row, pivot_col = _pixel(0.0, 0.0, **ACROBOT)
    goal_row = _pixel(0.0, 1.0, **ACROBOT)[0]
    unit = 300 / 4.4  # pixels per world unit; the links are 1 long

    # joint angles 0: both links hang straight down from the pivot
    hanging = render.acrobot_frame(*_state("Acrobot-v1"))
    rows, cols = _pixels(hanging, render.LINK)
    assert np.all(np.abs(cols - pivot_col) < 6) and rows.min() > pivot_row - 6
    assert abs(rows.max() - (pivot_row + 2.075 * unit)) < 2  # two links and a round end below the pivot
    joints = _pixels(hanging, render.JOINT)[0]
    assert abs(joints.max() - (pivot_row + 1.08 * unit)) < 2  # the elbow joint one link down

    # the dashed goal line at height 1, across the frame
    rows, cols = _pixels(hanging, render.TRACK)
    assert np.all(np.abs(rows - goal_row) < 2) and cols.min() < 20 and cols.max() > 380
    assert 100 < len(np.unique(cols)) < 350  # dashes: gaps between them

    # joint_angle1 = pi: straight up, the tip above the goal line
    rows = _pixels(render.acrobot_frame(*_state("Acrobot-v1", joint_angle1=np.pi)), render.LINK)[0]
    assert rows.max() < pivot_row + 6 and rows.min() < goal_row - 10

    # joint_angle1 = pi / 2 swings both links out to the right (counter-clockwise from hanging)
    rows, cols = _pixels(render.acrobot_frame(*_state("Acrobot-v1", joint_angle1=np.pi / 2)), render.LINK)
    assert np.all(np.abs(rows - pivot_row) < 6) and abs(cols.max() - (pivot_col + 2.075 * unit)) < 2

    # joint_angle2 is relative to the first link: pi / 2 turns the second link right, level with the elbow
    rows, cols = _pixels(render.acrobot_frame(*_state("Acrobot-v1", joint_angle2=np.pi / 2)), render.LINK)
    elbow_row = pivot_row + unit
    assert cols.max() > pivot_col + unit and abs(rows[cols > pivot_col + 10].mean() - elbow_row) < 2


@pytest.mark.parametrize("env_name", ["MountainCar-v0", "MountainCarContinuous-v0"])
@pytest.mark.parametrize("position", [-1.1, -np.pi / 6, -0.2, 0.45])
def test_mountain_car_on_the_hill(env_name, position):
    """The car sits on the hill 0.45 sin(3x) + 0.55 at ``position`` (its middle 0.07 above
    the hill along the normal), tilted along the slope."""
    img = render.mountain_car_frame(*_state(env_name, position=position))
    rows, cols = _pixels(img, render.CAR)
    slope = math.atan(1.35 * math.cos(3 * position))
    middle = (position - 0.07 * math.sin(slope), 0.45 * math.sin(3 * position) + 0.55 + 0.07 * math.cos(slope))
    exp_row, exp_col = _pixel(*middle, **MOUNTAIN_CAR)
    assert abs(cols.mean() - exp_col) < 2 and abs(rows.mean() - exp_row) < 3, (rows.mean(), cols.mean(), exp_row,
                                                                              exp_col)
    cov = np.cov(np.stack([cols, -rows]))  # the car's long axis: the principal axis of its pixels
    axis = np.linalg.eigh(cov)[1][:, -1]
    tilt = math.atan(axis[1] / axis[0])
    assert abs(tilt - slope) < 0.1, (tilt, slope)
    ground_rows, ground_cols = _pixels(img, render.GROUND)
    left_end = _pixel(-1.2, 0.45 * math.sin(-3.6) + 0.55, **MOUNTAIN_CAR)[0]
    assert abs(ground_rows[ground_cols == 0].min() - left_end) < 2  # the ground up to the hill, at the left end


@pytest.mark.parametrize("env_name", ["MountainCar-v0", "MountainCarContinuous-v0"])
def test_mountain_car_flag(env_name):
    _, params = make_env(env_name)
    goal = float(params.goal_position)
    rows, cols = _pixels(render.mountain_car_frame(*_state(env_name)), render.FLAG)
    g_row, g_col = _pixel(goal, 0.45 * math.sin(3 * goal) + 0.55, **MOUNTAIN_CAR)
    assert g_col - 1 < cols.min() and cols.max() < g_col + 0.07 * 400 / 1.8 + 1  # right of the pole at goal_position
    assert rows.max() < g_row - 0.1 * 400 / 1.8  # on the pole, above the hill


def test_step_numbers_make_frames_distinct():
    """render_frames labels frame t with t in the top left corner: frames of one repeated
    state differ there only."""
    states, params = _states("CartPole-v1", 12, x=0.3, theta=0.1)
    frames = render.render_frames("CartPole-v1", states, params, 12)
    assert len({f.tobytes() for f in frames}) == 12
    plain = render.cartpole_frame(*_state("CartPole-v1", x=0.3, theta=0.1))
    for t, f in enumerate(frames):
        rows, cols = np.nonzero(np.any(f != plain, axis=-1))
        assert rows.max() < 25 and cols.max() < 6 + 10 * len(str(t))  # the number only
        assert np.all(f[rows, cols] == np.asarray(render.TEXT, np.uint8))


@pytest.mark.parametrize("env_name", render.renderable_envs())
def test_one_figure_draws_each_state_afresh(env_name):
    """render_frames reuses one figure for an episode: apart from the step number each frame
    is the frame drawn on its own (nothing left over from the previous state)."""
    rng = np.random.default_rng(0)
    names = [f.name for f in dataclasses.fields(_module(env_name).EnvState) if f.name != "time"]
    states, params = _states(env_name, 4, **{k: rng.uniform(-1.0, 1.0, 4) for k in names})
    frames = render.render_frames(env_name, states, params, 4, 160, 120)
    for t, f in enumerate(frames):
        alone = render.FRAMES[env_name](jax.tree_util.tree_map(lambda a: a[t], states), params, 160, 120)
        f, alone = f.copy(), alone.copy()
        f[:25, :40] = alone[:25, :40] = 0
        np.testing.assert_array_equal(f, alone)


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
    """Through ``Program.act`` the recording plays exactly what ``Program.evaluate`` plays
    with one evaluation episode: the same actions (sampled for PPO, deterministic for SAC),
    observation normalisation and key."""
    from purejaxpg.algos import get_algo

    algo = get_algo(algo_name)
    config, hp = algo.resolve(dict(env=env_name, hidden=(8,), num_eval_episodes=1, normalize_obs=True, **fields),
                              preset="none")
    program = algo.make_program(config)
    carry = jax.jit(program.init)(jax.random.PRNGKey(1), hp)
    expected = float(jax.jit(program.evaluate)(carry)[0])
    venv = VecEnv(env_name, 1)
    p = program.act(carry)
    _, rewards, dones, returns = jax.jit(lambda *a: render.record_episode(venv, p.fn, *a))(p.params, p.obs_rms, p.key)
    end = int(np.flatnonzero(np.asarray(dones))[0])
    np.testing.assert_allclose(float(returns[end]), expected, rtol=1e-5)
    np.testing.assert_allclose(float(np.sum(rewards[:end + 1])), expected, rtol=1e-4)


def _write_plan(out, algo, base):
    plan.Plan(algo, base, num_seeds=1, preset="none").write(out)


def test_gif_run_picks_the_configuration_across_programs(tmp_path):
    """Configuration indices follow run.json's points, also when a shape-changing setting
    splits the sweep into several programs."""
    grid = {"hidden": [(8,), (16,)], "lr": [1e-3, 3e-3]}
    points = plan.configurations(grid, {}, 0, 0, "ppo")
    p = plan.Plan("ppo", {"env": "CartPole-v1"}, tuple(points), num_seeds=3, preset="none", single=False)
    p.write(str(tmp_path))
    groups = plan.groups(p)
    assert len(groups) == 2
    for c, point in enumerate(points):
        gi, k = render.check_run(str(tmp_path), (c, 2))
        assert groups[gi].swept[k] == point and groups[gi].names[k].startswith(f"c{c:03d}_")
    with pytest.raises(ValueError, match="configuration 4 out of range"):
        render.check_run(str(tmp_path), (4, 0))
    with pytest.raises(ValueError, match="seed 3 out of range"):
        render.check_run(str(tmp_path), (0, 3))


def test_unsupported_env_is_refused_before_compiling(tmp_path, capsys):
    from purejaxpg.cli import main

    with pytest.raises(ValueError, match="cannot render 'Breakout-MinAtar'.*CartPole-v1, Pendulum-v1"):
        render.check_renderable("Breakout-MinAtar")
    out = str(tmp_path / "minatar")
    _write_plan(out, "ppo", {"env": "Breakout-MinAtar"})  # no checkpoint: an error after planning would differ
    assert main(["eval", out, "--gif", str(tmp_path / "x.gif")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot render 'Breakout-MinAtar'" in err and "MountainCar-v0" in err
    assert not os.path.exists(tmp_path / "x.gif")


def _gif_frames(path):
    from PIL import Image, ImageSequence

    with Image.open(path) as im:
        assert im.format == "GIF" and im.info.get("loop") == 0
        return [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]


def test_gif_holds_the_frames_exactly(tmp_path):
    """Frames have few colours (nothing is antialiased), so the GIF's palette keeps them exactly."""
    states, params = _states("MountainCar-v0", 5, position=np.linspace(-1.1, 0.4, 5))
    frames = render.render_frames("MountainCar-v0", states, params, 5, 160, 120)
    path = str(tmp_path / "mc.gif")
    render.write_gif(path, frames, render.DURATION_MS["MountainCar-v0"])
    np.testing.assert_array_equal(np.stack(_gif_frames(path)), np.stack(frames))


def test_cli_gif_of_a_chunked_cartpole_run(tmp_path, capsys):
    from purejaxpg.cli import main

    out = str(tmp_path / "cp")
    runner.train("ppo", TINY_PPO, num_seeds=2, out_dir=out, chunks=2, quiet=True, preset="none")
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
    runner.train("sac", base, num_seeds=2, out_dir=out, chunks=2, quiet=True, preset="none")
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
