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
