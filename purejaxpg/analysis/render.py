"""One episode of a trained policy as a GIF (classic-control environments).

``purejaxpg eval DIR --gif PATH [--gif-run C,S]`` restores the last checkpoint of a
chunked run, plays one episode with the policy of configuration ``C``, seed ``S`` exactly
as the run's evaluation plays it (the algorithm's own ``train.eval_policy``: the same
greedy/sampling choice, the frozen observation-normalisation statistics and the run's
evaluation key), records the gymnax env state the policy acts on at every step, draws each
state on the host and writes the frames with Pillow.

The episode is one ``jax.lax.scan`` of the env's ``max_steps_in_episode`` steps on a
single environment (``VecEnv(env, 1)``), with the key handling of ``rollout.evaluate``;
the frames are cut at the first step that ends the episode (termination or time limit),
so a GIF has one frame per step of the episode: frame ``t`` shows the state on which
action ``t`` was taken (the terminal state itself is reset away by gymnax and not shown).
With the run's evaluation key the episode is the one ``train.evaluate`` plays with
``num_eval_episodes=1``.

Drawing is plain NumPy: every shape (rectangle, convex polygon, disk, thick segment,
the region under a curve) is a boolean mask over the pixel centres of its bounding box, in
world coordinates with equal scale on both axes. A small 3x5 digit font stamps the step number in the top
left corner, so no two frames are identical (Pillow would otherwise merge repeated
frames). Frames are ``uint8 [height, width, 3]`` RGB arrays.

Drawing conventions (from each environment's dynamics):

* CartPole-v1: ``x`` the cart position on a track drawn between ``-x_threshold`` and
  ``+x_threshold``; ``theta = 0`` is an upright pole, ``theta > 0`` leans right.
* Pendulum-v1: ``theta = 0`` points up, positive angles turn counter-clockwise; a bar
  under the pivot shows the last torque ``last_u``.
* Acrobot-v1: ``joint_angle1 = 0`` hangs straight down, ``joint_angle2`` is relative to
  the first link; the dashed line is the height the tip must pass to finish.
* MountainCar-v0 / MountainCarContinuous-v0: the hill ``0.45 sin(3x) + 0.55`` (its slope
  is the ``cos(3x)`` of the gravity term), the car tilted along it at ``position``, a
  flag at ``goal_position``.
"""
from __future__ import annotations

import json
import math
import os
from typing import Callable

import numpy as np

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


class Canvas:
    """A ``height x width`` RGB image addressed in world coordinates (y up), with the same
    scale on both axes: ``xlim`` spans the width, the visible y range starts at ``ybottom``."""

    def __init__(self, width: int, height: int, xlim, ybottom: float, background=WHITE):
        self.width, self.height = int(width), int(height)
        self.scale = (xlim[1] - xlim[0]) / self.width  # world units per pixel
        self.x0, self.y0 = float(xlim[0]), float(ybottom)
        self.img = np.empty((self.height, self.width, 3), np.uint8)
        self.img[:] = background
        xs = self.x0 + (np.arange(self.width) + 0.5) * self.scale
        ys = self.y0 + (self.height - np.arange(self.height) - 0.5) * self.scale  # row 0 on top
        self.X, self.Y = np.meshgrid(xs, ys)  # pixel centres, [H, W] each

    def to_pixel(self, x: float, y: float) -> tuple:
        """(column, row) of the world point (x, y), as floats."""
        return (x - self.x0) / self.scale - 0.5, self.height - (y - self.y0) / self.scale - 0.5

    def window(self, xmin, xmax, ymin, ymax):
        """Index of the pixels whose centres may lie in the world box (each shape tests only
        the pixels of its bounding box)."""
        c0 = int(np.floor((xmin - self.x0) / self.scale)) - 1
        c1 = int(np.ceil((xmax - self.x0) / self.scale)) + 1
        r0 = int(np.floor(self.height - (ymax - self.y0) / self.scale)) - 1
        r1 = int(np.ceil(self.height - (ymin - self.y0) / self.scale)) + 1
        return np.s_[max(0, r0):max(0, min(self.height, r1)), max(0, c0):max(0, min(self.width, c1))]

    def paint(self, box, inside: Callable, color) -> None:
        """Colour the pixels of ``box`` whose centres (X, Y) satisfy ``inside(X, Y)``."""
        X, Y = self.X[box], self.Y[box]
        if X.size:
            self.img[box][inside(X, Y)] = color  # img[box] is a view

    def rect(self, x0, y0, x1, y1, color) -> None:
        xa, xb, ya, yb = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
        self.paint(self.window(xa, xb, ya, yb), lambda X, Y: (X >= xa) & (X <= xb) & (Y >= ya) & (Y <= yb), color)

    def polygon(self, points, color) -> None:
        """A convex polygon (vertices in either orientation)."""
        p = np.asarray(points, np.float64)
        area = np.sum(p[:, 0] * np.roll(p[:, 1], -1) - np.roll(p[:, 0], -1) * p[:, 1])
        if area < 0:
            p = p[::-1]

        def inside(X, Y):
            mask = np.ones(X.shape, bool)
            for (ax, ay), (bx, by) in zip(p, np.roll(p, -1, axis=0)):
                mask &= (bx - ax) * (Y - ay) - (by - ay) * (X - ax) >= 0  # left of each edge
            return mask

        self.paint(self.window(p[:, 0].min(), p[:, 0].max(), p[:, 1].min(), p[:, 1].max()), inside, color)

    def disk(self, cx, cy, r, color) -> None:
        self.paint(self.window(cx - r, cx + r, cy - r, cy + r),
                   lambda X, Y: (X - cx) ** 2 + (Y - cy) ** 2 <= r * r, color)

    def segment(self, ax, ay, bx, by, width, color) -> None:
        """A segment of the given world width with round ends."""
        dx, dy, h = bx - ax, by - ay, width / 2

        def inside(X, Y):
            t = np.clip(((X - ax) * dx + (Y - ay) * dy) / max(dx * dx + dy * dy, 1e-12), 0.0, 1.0)
            return (X - ax - t * dx) ** 2 + (Y - ay - t * dy) ** 2 <= h * h

        self.paint(self.window(min(ax, bx) - h, max(ax, bx) + h, min(ay, by) - h, max(ay, by) + h), inside, color)

    def under(self, f: Callable, xmin, xmax, color) -> None:
        """The region below the curve y = f(x) for xmin <= x <= xmax."""
        box = self.window(xmin, xmax, self.y0, self.y0 + self.height * self.scale)
        # X is constant down each column: evaluate f once per column
        self.paint(box, lambda X, Y: (Y <= f(X[:1])) & (X >= xmin) & (X <= xmax), color)


# 3x5 bitmaps of the digits, one string of 15 bits (rows top to bottom) per digit.
_DIGITS = ("111101101101111", "010110010010111", "111001111100111", "111001111001111", "101101111001001",
           "111100111001111", "111100111101111", "111001001001001", "111101111101111", "111101111001111")


def stamp_number(img: np.ndarray, n: int, left: int = 6, top: int = 6, size: int = 2, color=TEXT) -> None:
    """Write the non-negative integer ``n`` into ``img`` (in place) with the 3x5 digit font."""
    for i, ch in enumerate(str(int(n))):
        glyph = np.array([int(b) for b in _DIGITS[int(ch)]], bool).reshape(5, 3)
        block = np.kron(glyph, np.ones((size, size), bool))
        x = left + i * 4 * size
        region = img[top:top + 5 * size, x:x + 3 * size]
        region[block[:region.shape[0], :region.shape[1]]] = color


def _f(x) -> float:
    return float(np.asarray(x).reshape(()))


# ---- one frame per environment state -------------------------------------------------

def cartpole_frame(state, params, width: int = 400, height: int = 300) -> np.ndarray:
    limit = _f(params.x_threshold)
    half = 1.2 * limit
    c = Canvas(width, height, (-half, half), -0.25 * 2 * half * height / width)  # track a quarter up
    c.rect(-limit, -0.04, limit, 0.0, TRACK)  # the track, as long as the cart may go
    for end in (-limit, limit):
        c.rect(end - 0.02, -0.04, end + 0.02, 0.15, TRACK)
    x, theta = _f(state.x), _f(state.theta)
    cart_w, cart_h = 0.5, 0.3
    c.rect(x - cart_w / 2, 0.0, x + cart_w / 2, cart_h, CART)
    pole = 2 * _f(params.length)  # params.length is the half-length
    px, py = x, 0.75 * cart_h
    c.segment(px, py, px + pole * math.sin(theta), py + pole * math.cos(theta), 0.1, POLE)
    c.disk(px, py, 0.05, AXLE)
    return c.img


def pendulum_frame(state, params, width: int = 400, height: int = 300) -> np.ndarray:
    length = _f(params.l)
    half_h = 1.25 * length
    c = Canvas(width, height, (-half_h * width / height, half_h * width / height), -half_h)
    theta = _f(state.theta)
    tip = (-length * math.sin(theta), length * math.cos(theta))  # theta = 0 points up
    u = _f(state.last_u) / _f(params.max_torque)
    bar = 0.8 * length * max(-1.0, min(1.0, u))
    c.rect(min(0.0, bar), -1.15 * length, max(0.0, bar), -1.08 * length, TRACK)
    c.segment(0.0, 0.0, tip[0], tip[1], 0.2 * length, ROD)
    c.disk(0.0, 0.0, 0.05 * length, TEXT)
    return c.img


def acrobot_frame(state, params, width: int = 400, height: int = 300) -> np.ndarray:
    l1, l2 = _f(params.link_length_1), _f(params.link_length_2)
    reach = 1.1 * (l1 + l2)
    c = Canvas(width, height, (-reach * width / height, reach * width / height), -reach)
    goal = 1.0  # gymnax ends the episode when -cos(a1) - cos(a1 + a2) > 1: the tip above this line
    for k in range(-12, 12, 2):  # a dashed line at the goal height
        x0 = k * reach / 10
        c.rect(x0, goal - 0.01, x0 + reach / 10, goal + 0.01, TRACK)
    a1, a2 = _f(state.joint_angle1), _f(state.joint_angle2)
    p1 = (l1 * math.sin(a1), -l1 * math.cos(a1))  # angle 0 hangs down
    p2 = (p1[0] + l2 * math.sin(a1 + a2), p1[1] - l2 * math.cos(a1 + a2))
    c.segment(0.0, 0.0, p1[0], p1[1], 0.15, LINK)
    c.segment(p1[0], p1[1], p2[0], p2[1], 0.15, LINK)
    c.disk(0.0, 0.0, 0.08, JOINT)
    c.disk(p1[0], p1[1], 0.08, JOINT)
    return c.img


def hill(x):
    """Height of the mountain-car track (drawing scale): its slope is proportional to cos(3x)."""
    return 0.45 * np.sin(3 * x) + 0.55


def mountain_car_frame(state, params, width: int = 400, height: int = 300) -> np.ndarray:
    lo, hi = _f(params.min_position), _f(params.max_position)
    c = Canvas(width, height, (lo, hi), -0.15)
    c.under(hill, lo, hi, GROUND)
    g = _f(params.goal_position)
    c.segment(g, hill(g), g, hill(g) + 0.15, 0.012, TEXT)
    c.polygon([(g, hill(g) + 0.15), (g, hill(g) + 0.11), (g + 0.07, hill(g) + 0.13)], FLAG)
    x = _f(state.position)
    angle = math.atan(0.45 * 3 * math.cos(3 * x))  # slope of the hill at x
    along, normal = np.array([math.cos(angle), math.sin(angle)]), np.array([-math.sin(angle), math.cos(angle)])
    base = np.array([x, hill(x)]) + 0.03 * normal
    w, h = 0.2, 0.08
    corners = [base - w / 2 * along, base + w / 2 * along, base + w / 2 * along + h * normal,
               base - w / 2 * along + h * normal]
    c.polygon(corners, CAR)
    for s in (-0.3, 0.3):
        wheel = base + s * w * along
        c.disk(wheel[0], wheel[1], 0.03, WHEEL)
    return c.img


FRAMES = {
    "CartPole-v1": cartpole_frame,
    "Pendulum-v1": pendulum_frame,
    "Acrobot-v1": acrobot_frame,
    "MountainCar-v0": mountain_car_frame,
    "MountainCarContinuous-v0": mountain_car_frame,
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
    arrays with a leading time axis), each stamped with its step number."""
    import jax

    check_renderable(env)
    draw = FRAMES[env]
    frames = []
    for t in range(int(length)):
        img = draw(jax.tree_util.tree_map(lambda a: np.asarray(a)[t], states), params, width, height)
        stamp_number(img, t)
        frames.append(img)
    return frames


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


def _locate_run(spec: dict, groups: list, config_index: int, seed_index: int):
    """(group index, index within the group, configuration name) of configuration ``config_index``."""
    from purejaxpg.engine.sweep import _untuple, config_name

    points = spec["points"]
    if not 0 <= int(config_index) < len(points):
        raise ValueError(f"--gif-run configuration {config_index} out of range: the run has {len(points)} "
                         f"configuration(s), 0..{len(points) - 1}")
    if not 0 <= int(seed_index) < spec["num_seeds"]:
        raise ValueError(f"--gif-run seed {seed_index} out of range: the run has {spec['num_seeds']} seed(s), "
                         f"0..{spec['num_seeds'] - 1}")
    name = config_name(_untuple(points[config_index]), config_index)
    for gi, g in enumerate(groups):
        if name in g.names:
            return gi, g.names.index(name), name
    raise ValueError(f"configuration {config_index} ({name}) is not in the run's plan")  # not reached


def render_run(out_dir: str, path: str, run=(0, 0), greedy: bool | None = None, width: int = 400,
               height: int = 300, duration_ms: int | None = None) -> dict:
    """Write a GIF of one episode of the policy of ``run = (configuration, seed)`` from the
    last checkpoint of the chunked run (or sweep) in ``out_dir``. ``greedy`` overrides the
    run's evaluation setting (``eval_greedy`` / ``eval_deterministic``) as in ``eval``.
    Returns {"path", "name", "seed", "env", "frames", "length", "return", "updates"}."""
    plan = check_run(out_dir, run)
    return _render_group(*plan, int(run[1]), path, greedy, width, height, duration_ms)


def check_run(out_dir: str, run=(0, 0)):
    """Validate a GIF request before anything compiles (one-line ValueErrors: no run.json,
    an env that cannot be drawn, a run out of range). Returns (spec, out_dir, groups,
    group index, index within the group, configuration name)."""
    from purejaxpg.engine.sweep import RUN_FILE, load_plan

    spec_path = os.path.join(out_dir, RUN_FILE)
    if not os.path.exists(spec_path):
        raise ValueError(f"{out_dir} holds no {RUN_FILE}: render a run made by purejaxpg sweep or train --chunks")
    with open(spec_path) as f:
        spec = json.load(f)
    _, groups = load_plan(spec)
    if len(run) != 2:
        raise ValueError(f"--gif-run expects CONFIG_INDEX,SEED, got {','.join(map(str, run))!r}")
    gi, c, name = _locate_run(spec, groups, *run)
    check_renderable(groups[gi].config.env)  # (a sweep may span envs: the chosen run's)
    return spec, out_dir, groups, gi, c, name


def _render_group(spec, out_dir, groups, gi, c, name, s, path, greedy, width, height, duration_ms) -> dict:
    import jax

    from purejaxpg.analysis.evaluate import with_eval_mode
    from purejaxpg.engine.sweep import carry_axes, restore_latest
    from purejaxpg.envs import VecEnv

    config = with_eval_mode(groups[gi].config, greedy)
    _, pr, carry, k = restore_latest(spec, out_dir, gi, config)
    b = c * pr.S + s  # run b of the batch (see sweep._prepare)
    axes = carry_axes(pr.train, carry)
    one = jax.tree_util.tree_map(lambda a, x: x if a is None else x[b], axes, carry, is_leaf=lambda a: a is None)
    venv = VecEnv(config.env, 1)
    record = jax.jit(lambda carry1: record_episode(venv, *pr.train.eval_policy(carry1)))
    states, _, dones, returns = jax.device_get(record(one))
    ends = np.flatnonzero(np.asarray(dones))
    length = int(ends[0]) + 1 if ends.size else int(np.asarray(dones).shape[0])
    frames = render_frames(config.env, states, venv.params, length, width, height)
    write_gif(path, frames, duration_ms or DURATION_MS[config.env])
    return {"path": path, "name": name, "seed": s, "env": config.env, "frames": len(frames), "length": length,
            "return": float(returns[length - 1]) if ends.size else None, "updates": int(sum(pr.lengths[:k]))}
