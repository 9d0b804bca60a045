"""Environments behind one vectorised interface (``VecEnv``): gymnax's registry, the tabular
MDPs (``purejaxpg.envs.tabular``) and anything added with ``register_env``."""
from purejaxpg.envs.gymnax import (
                                   ActionSpec,
                                   VecEnv,
                                   VecEnvState,
                                   action_spec,
                                   check_env_name,
                                   env_names,
                                   make_env,
                                   register_env,
                                   rescale_action,
)

__all__ = ["ActionSpec", "VecEnv", "VecEnvState", "action_spec", "check_env_name", "env_names", "make_env",
           "register_env", "rescale_action"]
