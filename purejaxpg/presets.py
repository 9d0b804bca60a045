"""Tuned settings per algorithm and environment.

``PRESETS[algo][env]`` is a dict of config fields and hyperparameters, applied before the
user's own overrides. ``purejaxpg train`` picks the preset of the chosen env
automatically (``--preset auto``, the default); ``--preset none`` uses the plain
defaults. Each entry says where its numbers come from.
"""
from __future__ import annotations

PRESETS: dict[str, dict[str, dict]] = {}


def preset_names() -> list[str]:
    """``algo/env`` for every preset."""
    return [f"{algo}/{env}" for algo, envs in PRESETS.items() for env in envs]


def resolve(algo: str, env: str, preset: str = "auto") -> dict:
    """The overrides a preset choice stands for.

    ``preset``: ``"auto"`` (the preset for ``env`` if there is one, else nothing),
    ``"none"``, or an env name / ``algo/env`` naming a preset of ``algo``.
    """
    table = PRESETS.get(algo, {})
    if preset == "none":
        return {}
    if preset == "auto":
        return dict(table.get(env, {}))
    name = preset.split("/", 1)[1] if preset.startswith(algo + "/") else preset
    if name not in table:
        valid = ", ".join(["auto", "none"] + [f"{algo}/{e}" for e in table])
        raise ValueError(f"unknown preset {preset!r} for {algo}; valid: {valid}")
    return dict(table[name])


# ---- PPO and PPO-KL (purejaxpg.algos.ppo) ---------------------------------------------
# Classic control: CartPole is the configuration of PureJaxRL's ppo.py (also issue 3's
# throughput setting and ``ppo.Config``'s defaults); Acrobot reuses it. Pendulum and
# MountainCarContinuous follow the usual continuous-control recipe (more envs and longer
# rollouts, 10 epochs, observation normalisation and reward scaling, gamma 0.95 for
# Pendulum's short horizon); MountainCarContinuous starts from a wide policy (log-std 0) and
# needs the entropy bonus to find the goal. MinAtar: the conv torso with the settings of
# the gymnax baselines (64 envs x 128 steps, 4 epochs x 8 minibatches), with lr 1e-3 and
# gamma 0.999 chosen by a grid on Breakout (scripts/tune_ppo_grid.py, 8 configs x 3 seeds on
# an H100: lr 5e-4 reached IQM 7-11 at 1e7 steps, lr 1e-3 26-39; results/tune-breakout.json).
# Results: scripts/ppo_acceptance.py -> benchmarks/results/ppo_acceptance*.json.
_PPO_CLASSIC = {"num_envs": 4, "num_steps": 128, "update_epochs": 4, "num_minibatches": 4,
                "total_timesteps": 500_000, "lr": 2.5e-4, "ent_coef": 0.01}
_PPO_CONTINUOUS = {"num_envs": 16, "num_steps": 256, "update_epochs": 10, "num_minibatches": 32,
                   "normalize_obs": True, "scale_rewards": True, "total_timesteps": 1_000_000,
                   "lr": 1e-3, "ent_coef": 0.0, "gamma": 0.95, "gae_lambda": 0.95}
_PPO_MINATAR = {"torso": "conv", "hidden": (256,), "activation": "relu", "num_envs": 64, "num_steps": 128,
                "update_epochs": 4, "num_minibatches": 8, "total_timesteps": 10_000_000,
                "lr": 1e-3, "ent_coef": 0.01, "gamma": 0.999}
PRESETS["ppo"] = {
    "CartPole-v1": dict(_PPO_CLASSIC),
    "Acrobot-v1": dict(_PPO_CLASSIC),
    "Pendulum-v1": dict(_PPO_CONTINUOUS),
    "MountainCarContinuous-v0": {**_PPO_CONTINUOUS, "gamma": 0.99, "ent_coef": 0.01},
    **{f"{game}-MinAtar": dict(_PPO_MINATAR)
       for game in ("Breakout", "Asterix", "Freeway", "SpaceInvaders", "Seaquest")},
}
PRESETS["ppo-kl"] = {env: dict(p) for env, p in PRESETS["ppo"].items()}
