"""Algorithm registry: name -> module with ``Config``, ``default_hparams`` and ``make_train``."""
from __future__ import annotations

import importlib

_MODULES = {"reinforce": "reinforce", "a2c": "a2c", "ppo": "ppo", "ppo-kl": "ppo_kl", "sac": "sac"}


def algo_names() -> list[str]:
    return list(_MODULES)


def get_algo(name: str):
    if name not in _MODULES:
        raise ValueError(f"unknown algorithm {name!r}; valid names: {', '.join(_MODULES)}")
    return importlib.import_module(f"{__name__}.{_MODULES[name]}")
