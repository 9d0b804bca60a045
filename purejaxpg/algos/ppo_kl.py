"""PPO with an adaptive KL penalty instead of clipping: ``ppo`` with ``surrogate="kl"``."""
from __future__ import annotations

import sys
from dataclasses import dataclass

from purejaxpg.algos import ppo
from purejaxpg.algos.common import make_onpolicy_train

from .ppo import default_hparams, grad_steps_per_update, init_extra, update  # noqa: F401 (the algo interface)


@dataclass(frozen=True)
class Config(ppo.Config):
    surrogate: str = "kl"


def make_train(config: Config, callback=None):
    return make_onpolicy_train(config, sys.modules[__name__], callback)
