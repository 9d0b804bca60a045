"""One episode of a trained policy as a GIF (classic-control environments).

``purejaxpg eval DIR --gif PATH [--gif-run C,S]`` restores the last checkpoint of a run
(engine.runner.restore), plays one episode with the policy of configuration ``C``, seed
``S`` exactly as the run's evaluation plays it (``Program.act``: the same greedy/sampling
choice, the frozen observation-normalisation statistics and the run's evaluation key),
records the gymnax env state the policy acts on at every step, draws each state on the
host and writes the frames with Pillow.

The episode is one ``jax.lax.scan`` of the env's ``max_steps_in_episode`` steps on a
single environment (``VecEnv(env, 1)``), with the key handling of ``rollout.evaluate``;
the frames are cut at the first step that ends the episode (termination or time limit),
so a GIF has one frame per step of the episode: frame ``t`` shows the state on which
action ``t`` was taken (the terminal state itself is reset away by gymnax and not shown).
With the run's evaluation key the episode is the one ``Program.evaluate`` plays with
``num_eval_episodes=1``.

Drawing is matplotlib's Agg backend (a ``Figure`` with its own ``FigureCanvasAgg``, no
pyplot state): one axes fills the figure, in world coordinates with equal scale on both
axes. A ``Scene`` draws an env's fixed parts once and moves its artists from state to
state, so an episode reuses one figure. The step number is written in the top left
corner, so no two frames are identical (Pillow would otherwise merge repeated frames).
Nothing is antialiased: a frame holds only the few colours below, so its GIF palette (at
most 256 colours) is exact. Frames are ``uint8 [height, width, 3]`` RGB arrays.

Drawing conventions (from each environment's dynamics):

* CartPole-v1: ``x`` the cart position on a track drawn between ``-x_threshold`` and
  ``+x_threshold``; ``theta = 0`` is an upright pole, ``theta > 0`` leans right.
* Pendulum-v1: ``theta = 0`` points up, positive angles turn counter-clockwise; a bar
  under the pivot shows the last torque ``last_u`` (positive to the right).
* Acrobot-v1: ``joint_angle1 = 0`` hangs straight down, ``joint_angle2`` is relative to
  the first link; the dashed line is the height the tip must pass to finish.
* MountainCar-v0 / MountainCarContinuous-v0: the hill ``0.45 sin(3x) + 0.55`` (its slope
  is the ``cos(3x)`` of the gravity term), the car tilted along it at ``position``, a
  flag at ``goal_position``.
"""
from __future__ import annotations

import math
import os
from typing import Callable

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, Polygon, Rectangle

# ---- colours (RGB) -----------------------------------------------------------------

WHITE = (255, 255, 255)
TRACK = (90, 90, 90)
CART = (30, 30, 30)
POLE = (204, 153, 102)
AXLE = (129, 132, 203)
ROD = (200, 60, 60)
LINK = (0, 120, 200)
JOINT = (240, 180, 0)
GROUND = (120, 170, 90)
CAR = (40, 40, 160)
WHEEL = (80, 80, 80)
FLAG = (220, 190, 0)
TEXT = (0, 0, 0)

DPI = 100  # pixels per inch of the figure: sets the size of the step number (10 points: 14 pixels)


def _rgb(color) -> tuple:
    """A 0-255 RGB colour as matplotlib's 0-1 floats."""
    return tuple(v / 255 for v in color)


class Scene:
    """A ``width x height`` pixel figure drawing states of one env: ``draw(ax, params)``
    sets the world coordinates (see ``_world``), adds the env's artists and returns
    ``update(state)``, which moves them to a state."""

    def __init__(self, draw: Callable, params, width: int, height: int):
        self.figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor=_rgb(WHITE))
        self.canvas = FigureCanvasAgg(self.figure)
        ax = self.figure.add_axes((0, 0, 1, 1))
        ax.set_axis_off()
        self.update = draw(ax, params)
        self.label = ax.text(0.015, 0.985, "", transform=ax.transAxes, ha="left", va="top", fontsize=10,
                             color=_rgb(TEXT), antialiased=False, zorder=10)

    def frame(self, state, label: str = "") -> np.ndarray:
        """The ``uint8 [height, width, 3]`` image of ``state``, with ``label`` in the top left corner."""
        self.update(state)
        self.label.set_text(label)
        self.canvas.draw()
        return np.asarray(self.canvas.buffer_rgba())[:, :, :3].copy()


def _world(ax, x0: float, x1: float, y0: float) -> None:
    """Show world x from ``x0`` to ``x1`` across the axes and world y from ``y0`` up, with the
    same scale on both axes."""
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y0 + (x1 - x0) * _aspect(ax))


def _aspect(ax) -> float:
    """Height over width of the axes, in pixels."""
    width, height = ax.figure.bbox.size
    return height / width


def _points(ax, world: float) -> float:
    """A length in world units as a line width in points (after ``_world``)."""
    x0, x1 = ax.get_xlim()
    return world * ax.figure.bbox.width / (x1 - x0) * 72 / ax.figure.dpi


def _rect(ax, x, y, w, h, color, **kw) -> Rectangle:
    """A ``w x h`` rectangle from its lower left corner ``(x, y)``. Patches (also ``_disk``,
    ``_polygon``) are filled without an edge line: they cover exactly their world geometry."""
    return ax.add_patch(Rectangle((x, y), w, h, color=_rgb(color), linewidth=0, antialiased=False, **kw))


def _disk(ax, x, y, r, color, **kw) -> Circle:
    """A disk of radius ``r`` centred on ``(x, y)``."""
    return ax.add_patch(Circle((x, y), r, color=_rgb(color), linewidth=0, antialiased=False, **kw))


def _polygon(ax, points, color, **kw) -> Polygon:
    """A filled polygon through ``points`` (world coordinates)."""
    return ax.add_patch(Polygon(points, color=_rgb(color), linewidth=0, antialiased=False, **kw))


def _segments(ax, width: float, color, **kw) -> Line2D:
    """A polyline (empty until ``set_data``) of the given world width with round ends and joints."""
    return ax.add_line(Line2D([], [], linewidth=_points(ax, width), color=_rgb(color), antialiased=False,
                              solid_capstyle="round", solid_joinstyle="round", **kw))


def _f(x) -> float:
    """A scalar (0-d or one-element array) as a Python float."""
    return float(np.asarray(x).reshape(()))


# ---- one scene per environment: fixed parts drawn once, moving parts updated ---------

def cartpole_scene(ax, params) -> Callable:
    """CartPole-v1: the track from ``-x_threshold`` to ``+x_threshold`` (with end stops) a
    quarter up the frame, a 0.5 x 0.3 cart centred on ``x``, and the pole (``2 *
    params.length`` long) hinged at the axle: ``theta = 0`` upright, ``theta > 0`` leaning right."""
    limit = _f(params.x_threshold)
    half = 1.2 * limit
    _world(ax, -half, half, -0.25 * 2 * half * _aspect(ax))
    _rect(ax, -limit, -0.04, 2 * limit, 0.04, TRACK)
    for end in (-limit, limit):
        _rect(ax, end - 0.02, -0.04, 0.04, 0.19, TRACK)
    cart_w, cart_h = 0.5, 0.3
    axle_y, pole = 0.75 * cart_h, 2 * _f(params.length)  # params.length is the half-length
    cart = _rect(ax, 0.0, 0.0, cart_w, cart_h, CART)
    rod = _segments(ax, 0.1, POLE, zorder=2)
    axle = _disk(ax, 0.0, axle_y, 0.05, AXLE, zorder=3)

    def update(state):
        x, theta = _f(state.x), _f(state.theta)
        cart.set_x(x - cart_w / 2)
        rod.set_data([x, x + pole * math.sin(theta)], [axle_y, axle_y + pole * math.cos(theta)])
        axle.set_center((x, axle_y))

    return update


def pendulum_scene(ax, params) -> Callable:
    """Pendulum-v1: the rod (``params.l`` long) from the pivot at the centre of the frame,
    ``theta = 0`` pointing up and positive angles counter-clockwise, and under it a bar
    from the middle as long as ``last_u / max_torque`` of 0.8 rod lengths (positive to the right)."""
    length = _f(params.l)
    half_h = 1.25 * length
    _world(ax, -half_h / _aspect(ax), half_h / _aspect(ax), -half_h)
    bar = _rect(ax, 0.0, -1.15 * length, 0.0, 0.07 * length, TRACK)
    rod = _segments(ax, 0.2 * length, ROD, zorder=2)
    _disk(ax, 0.0, 0.0, 0.05 * length, TEXT, zorder=3)
    max_torque = _f(params.max_torque)

    def update(state):
        theta = _f(state.theta)
        rod.set_data([0.0, -length * math.sin(theta)], [0.0, length * math.cos(theta)])
        u = 0.8 * length * max(-1.0, min(1.0, _f(state.last_u) / max_torque))
        bar.set_x(min(0.0, u))
        bar.set_width(abs(u))

    return update


def acrobot_scene(ax, params) -> Callable:
    """Acrobot-v1: two links from the pivot at the centre of the frame, ``joint_angle1 = 0``
    hanging straight down, ``joint_angle2`` relative to the first link, and a dashed line at
    height 1 (gymnax ends the episode when ``-cos(a1) - cos(a1 + a2) > 1``: the tip above it)."""
    l1, l2 = _f(params.link_length_1), _f(params.link_length_2)
    reach = 1.1 * (l1 + l2)
    _world(ax, -reach / _aspect(ax), reach / _aspect(ax), -reach)
    ax.axhline(1.0, color=_rgb(TRACK), linewidth=_points(ax, 0.02), linestyle=(0, (8, 6)), antialiased=False)
    links = _segments(ax, 0.15, LINK, zorder=2)
    _disk(ax, 0.0, 0.0, 0.08, JOINT, zorder=3)
    elbow = _disk(ax, 0.0, 0.0, 0.08, JOINT, zorder=3)

    def update(state):
        a1, a2 = _f(state.joint_angle1), _f(state.joint_angle2)
        p1 = (l1 * math.sin(a1), -l1 * math.cos(a1))
        p2 = (p1[0] + l2 * math.sin(a1 + a2), p1[1] - l2 * math.cos(a1 + a2))
        links.set_data([0.0, p1[0], p2[0]], [0.0, p1[1], p2[1]])
        elbow.set_center(p1)

    return update


def hill(x):
    """Height of the mountain-car track (drawing scale): its slope is proportional to cos(3x)."""
    return 0.45 * np.sin(3 * x) + 0.55


def mountain_car_scene(ax, params) -> Callable:
    """MountainCar-v0 / MountainCarContinuous-v0: the ground under ``hill`` from
    ``min_position`` to ``max_position`` (the frame's width), a flag at ``goal_position``
    and a 0.2 x 0.08 car on two wheels, its bottom centre on the hill at ``position`` and
    tilted along the slope there."""
    lo, hi = _f(params.min_position), _f(params.max_position)
    _world(ax, lo, hi, -0.15)
    xs = np.linspace(lo, hi, 400)
    ax.fill_between(xs, hill(xs), -0.15, color=_rgb(GROUND), antialiased=False, linewidth=0)
    g = _f(params.goal_position)
    ax.add_line(Line2D([g, g], [hill(g), hill(g) + 0.15], linewidth=_points(ax, 0.012), color=_rgb(TEXT),
                       antialiased=False))
    _polygon(ax, [(g, hill(g) + 0.15), (g, hill(g) + 0.11), (g + 0.07, hill(g) + 0.13)], FLAG)
    w, h = 0.2, 0.08
    car = _polygon(ax, np.zeros((4, 2)), CAR, zorder=2)
    wheels = [_disk(ax, 0.0, 0.0, 0.03, WHEEL, zorder=3) for _ in range(2)]

    def update(state):
        x = _f(state.position)
        angle = math.atan(0.45 * 3 * math.cos(3 * x))  # slope of the hill at x
        along, normal = np.array([math.cos(angle), math.sin(angle)]), np.array([-math.sin(angle), math.cos(angle)])
        base = np.array([x, hill(x)]) + 0.03 * normal
        car.set_xy([base - w / 2 * along, base + w / 2 * along, base + w / 2 * along + h * normal,
                    base - w / 2 * along + h * normal])
        for wheel, s in zip(wheels, (-0.3, 0.3)):
            wheel.set_center(base + s * w * along)

    return update


# ---- one frame of one state ------------------------------------------------------------

def cartpole_frame(state, params, width: int = 400, height: int = 300) -> np.ndarray:
    """One CartPole-v1 frame (``cartpole_scene``), without a step number."""
    return Scene(cartpole_scene, params, width, height).frame(state)


def pendulum_frame(state, params, width: int = 400, height: int = 300) -> np.ndarray:
    """One Pendulum-v1 frame (``pendulum_scene``), without a step number."""
    return Scene(pendulum_scene, params, width, height).frame(state)


def acrobot_frame(state, params, width: int = 400, height: int = 300) -> np.ndarray:
    """One Acrobot-v1 frame (``acrobot_scene``), without a step number."""
    return Scene(acrobot_scene, params, width, height).frame(state)


def mountain_car_frame(state, params, width: int = 400, height: int = 300) -> np.ndarray:
    """One MountainCar-v0 / MountainCarContinuous-v0 frame (``mountain_car_scene``), without a step number."""
    return Scene(mountain_car_scene, params, width, height).frame(state)


FRAMES = {
    "CartPole-v1": cartpole_frame,
    "Pendulum-v1": pendulum_frame,
    "Acrobot-v1": acrobot_frame,
    "MountainCar-v0": mountain_car_frame,
    "MountainCarContinuous-v0": mountain_car_frame,
}
SCENES = {
    "CartPole-v1": cartpole_scene,
    "Pendulum-v1": pendulum_scene,
    "Acrobot-v1": acrobot_scene,
    "MountainCar-v0": mountain_car_scene,
    "MountainCarContinuous-v0": mountain_car_scene,
}

# GIF frame durations (ms): the env's time step where it has one and a GIF can show it
# (browsers slow frames shorter than 20 ms down), else 30 ms.
DURATION_MS = {"CartPole-v1": 20, "Pendulum-v1": 50, "Acrobot-v1": 50, "MountainCar-v0": 30,
               "MountainCarContinuous-v0": 30}


def renderable_envs() -> list:
    return list(FRAMES)


def check_renderable(env: str) -> None:
    """One-line ValueError for an env this module cannot draw."""
    if env not in FRAMES:
        raise ValueError(f"cannot render {env!r} to a GIF; renderable (classic-control) envs: "
                         f"{', '.join(FRAMES)}")


def render_frames(env: str, states, params, length: int, width: int = 400, height: int = 300) -> list:
    """Frames of the first ``length`` states of ``states`` (an env-state pytree of host
    arrays with a leading time axis), each labelled with its step number; one figure for all."""
    import jax

    check_renderable(env)
    scene = Scene(SCENES[env], params, width, height)
    return [scene.frame(jax.tree_util.tree_map(lambda a: np.asarray(a)[t], states), str(t))
            for t in range(int(length))]


def write_gif(path: str, frames: list, duration_ms: int) -> None:
    """Write ``frames`` (uint8 [H, W, 3] arrays) as a looping GIF."""
    from PIL import Image  # imported lazily: only GIF output needs Pillow

    if not frames:
        raise ValueError("no frames to write")
    images = [Image.fromarray(np.asarray(f, np.uint8), "RGB") for f in frames]
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=int(duration_ms), loop=0)


# ---- one episode of a trained policy --------------------------------------------------

def record_episode(venv, policy_fn, params, obs_rms, key):
    """Play the policy on ``venv`` (one env) for ``venv.max_episode_steps`` steps with the
    key handling of ``rollout.evaluate``. Returns ``(env_states [T, ...], rewards [T],
    dones [T], episode_returns [T])``, where row t is the state acted on at step t and
    ``episode_returns[t]`` the return of an episode that ended at step t. Pure; jit-able."""
    import jax

    from purejaxpg.core.rollout import policy_step

    if venv.num_envs != 1:
        raise ValueError(f"record_episode needs a VecEnv of one environment, got {venv.num_envs}")
    k_reset, k_loop = jax.random.split(key)
    obs, state = venv.reset(k_reset)

    def step(carry, _):
        obs, state, k = carry
        k, next_obs, next_state, reward, done, info = policy_step(venv, policy_fn, params, obs_rms, obs, state, k)
        out = (jax.tree_util.tree_map(lambda a: a[0], state.env_state), reward[0], done[0], info["episode_return"][0])
        return (next_obs, next_state, k), out

    _, out = jax.lax.scan(step, (obs, state, k_loop), None, length=venv.max_episode_steps)
    return out


def render_run(out_dir: str, path: str, run=(0, 0), greedy: bool | None = None, width: int = 400,
               height: int = 300, duration_ms: int | None = None) -> dict:
    """Write a GIF of one episode of the policy of ``run = (configuration, seed)`` from the
    last checkpoint of the run (or sweep) in ``out_dir``, played as its evaluation plays
    it (``Program.act``). ``greedy`` overrides the run's ``eval_greedy`` as in ``eval``.
    Returns {"path", "name", "seed", "env", "frames", "length", "return", "updates"}."""
    import jax

    from purejaxpg.analysis.evaluate import eval_settings
    from purejaxpg.engine import runner
    from purejaxpg.envs import VecEnv

    gi, c = check_run(out_dir, run)
    g, batch, carry, updates = runner.restore(out_dir, gi, eval_settings(greedy=greedy))
    venv = VecEnv(g.config.env, 1)
    policy = batch.program.act(batch.run_carry(carry, c, int(run[1])))
    record = jax.jit(lambda params, obs_rms, key: record_episode(venv, policy.fn, params, obs_rms, key))
    states, _, dones, returns = jax.device_get(record(policy.params, policy.obs_rms, policy.key))
    ends = np.flatnonzero(np.asarray(dones))
    length = int(ends[0]) + 1 if ends.size else int(np.asarray(dones).shape[0])
    frames = render_frames(g.config.env, states, venv.params, length, width, height)
    write_gif(path, frames, duration_ms or DURATION_MS[g.config.env])
    return {"path": path, "name": g.names[c], "seed": int(run[1]), "env": g.config.env, "frames": len(frames),
            "length": length, "return": float(returns[length - 1]) if ends.size else None, "updates": updates}


def check_run(out_dir: str, run=(0, 0)) -> tuple:
    """Validate a GIF request before anything compiles (one-line ValueErrors: no run.json,
    a run out of range, an env that cannot be drawn). Returns (group index, index of the
    configuration within its group)."""
    from purejaxpg.engine.plan import Plan, groups, locate

    plan = Plan.read(out_dir)
    if len(run) != 2:
        raise ValueError(f"--gif-run expects CONFIG_INDEX,SEED, got {','.join(map(str, run))!r}")
    group_list = groups(plan)
    gi, c = locate(group_list, int(run[0]))
    if not 0 <= int(run[1]) < plan.num_seeds:
        raise ValueError(f"--gif-run seed {run[1]} out of range: the run has {plan.num_seeds} seed(s), "
                         f"0..{plan.num_seeds - 1}")
    check_renderable(group_list[gi].config.env)  # (a sweep may span envs: the chosen run's)
    return gi, c
