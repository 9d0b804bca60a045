"""The algorithm registry: name -> ``Algorithm`` (engine.program).

A new algorithm in the package is one file that defines ``ALGORITHM`` and one line in
``REGISTRY``; an algorithm outside it is named by ``module:attribute`` (``purejaxpg train
my_algos.klpg:ALGORITHM``), imported on first use. docs/extending.md walks through both.
"""
from __future__ import annotations

import importlib

# name -> "module:attribute" of this package, imported on first use
REGISTRY = {
    "reinforce": "reinforce:ALGORITHM",
    "a2c": "a2c:ALGORITHM",
    "ppo": "ppo:ALGORITHM",
    "ppo-kl": "ppo:KL_ALGORITHM",
    "sac": "sac:ALGORITHM",
    "trpo": "trpo:ALGORITHM",
    "npg": "trpo:NPG_ALGORITHM",
    "impala": "impala:ALGORITHM",
}


def algo_names() -> list[str]:
    return list(REGISTRY)


def get_algo(name: str):
    """The ``Algorithm`` called ``name`` (a registered name, or ``module:attribute``);
    one-line ValueError naming the valid ones."""
    from purejaxpg.engine.program import Algorithm

    if name in REGISTRY:
        module, attr = f"{__name__}.{REGISTRY[name].split(':')[0]}", REGISTRY[name].split(":")[1]
    elif ":" in name:
        module, attr = name.split(":", 1)
    else:
        raise ValueError(f"unknown algorithm {name!r}; valid names: {', '.join(REGISTRY)}, or module:attribute")
    try:
        algo = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"cannot load algorithm {name!r}: {type(e).__name__}: {e}") from None
    if not isinstance(algo, Algorithm):
        raise ValueError(f"{name!r} is a {type(algo).__name__}, not a purejaxpg Algorithm")
    return algo
