"""Presets for the physics suites (``playground/TASK``, ``brax/NAME``; purejaxpg.envs.suites).

**Source.** MuJoCo Playground's published Brax settings for its DM Control suite,
``mujoco_playground/config/dm_control_suite_params.py`` (``brax_ppo_config``,
``brax_sac_config``; playground 0.2.0), as Playground's training scripts
(``learning/train_jax_ppo.py``, ``train_jax_sac.py``) hand them to ``brax.training``.
They are sized for a GPU (2048 environments, 6e7 env steps for PPO), so each family has two
presets:

* ``playground/*/gpu``: the published settings translated to purejaxpg (below), chosen with
  ``--preset playground/*/gpu`` (or ``playground/TASK/gpu``);
* ``playground/*``: a CPU-sized version, the automatic choice for every ``playground/TASK``:
  fewer environments, smaller networks and budgets, the published discount, learning rate,
  entropy cost, clip range and normalisation kept. Measured on CartpoleBalance only
  (docs/physics.md); other tasks may need more steps than its budget.

Tasks whose published settings differ from the family's (discount 0.95 for BallInCup and
FingerSpin; longer PPO budgets for the Acrobot, Swimmer and WalkerRun tasks; SAC budgets)
have their own entries. ``PendulumSwingUp``'s action repeat of 4 is not carried over: the
published config tests for ``"PendulumSwingUp"`` while the task is called
``PendulumSwingup``, so Playground's own runs use repeat 1 too.

**Translation of Brax's PPO settings.** One Brax PPO iteration collects ``batch_size x
num_minibatches`` sequences of ``unroll_length`` steps from ``num_envs`` environments
(``batch_size x num_minibatches / num_envs`` unrolls each) and makes ``num_updates_per_batch``
passes of ``num_minibatches`` minibatches: purejaxpg's ``num_steps = unroll_length x
batch_size x num_minibatches / num_envs``, ``update_epochs = num_updates_per_batch``.
Brax's ``reward_scaling`` (a constant factor) becomes ``scale_rewards`` (division by the
running std of the return); its clip range 0.3 and constant learning rate are kept
(``anneal_lr`` off); Brax clips no gradients (Playground sets no ``max_grad_norm``), here the
default 0.5 stays. Networks: Brax's defaults are a 4 x 32 policy and a 5 x 256 value network
(swish); purejaxpg's actor and critic share one ``hidden``, so the GPU preset takes the value
network's 5 x 256 (silu = swish) for both.

**SAC.** ``num_envs`` 128, ``grad_updates_per_step`` 8 (``grad_steps`` 8 per step of the 128
envs), ``batch_size`` 512, replay 4 x 2^20, ``min_replay_size`` 8192 random steps, learning
rate 1e-3 for actor, critics and temperature, discount 0.99, observation normalisation, Brax's
256 x 256 networks (relu). Brax's Q networks use layer norm (``q_network_layer_norm``); purejaxpg's
do not.

The GPU presets have not been run (no GPU was lent to issue 16).

``Presets`` is the table type of ``PRESETS[algo]``: an environment name with options
(``playground/CheetahRun@warp``) takes the name's preset, and a suite's task without its own
entry takes the suite's ``SUITE/*``.
"""
from __future__ import annotations


class Presets(dict):
    """{env: settings}. Lookups (``get``, ``in``, ``[]``) also answer for ``NAME@options``
    (as ``NAME``) and for ``SUITE/TASK`` and ``SUITE/TASK/gpu`` without an entry of their own
    (as ``SUITE/*`` and ``SUITE/*/gpu``)."""

    def key(self, name: str):
        if dict.__contains__(self, name):
            return name
        suffix = "/gpu" if name.endswith("/gpu") else ""
        base = (name[:-len(suffix)] if suffix else name).split("@", 1)[0]
        candidates = [base + suffix] + ([base.split("/", 1)[0] + "/*" + suffix] if "/" in base else [])
        return next((k for k in candidates if dict.__contains__(self, k)), None)

    def get(self, name, default=None):
        k = self.key(name)
        return default if k is None else dict.__getitem__(self, k)

    def __contains__(self, name) -> bool:
        return self.key(name) is not None

    def __getitem__(self, name):
        k = self.key(name)
        if k is None:
            raise KeyError(name)
        return dict.__getitem__(self, k)


# ---- PPO ---------------------------------------------------------------------------------
# brax_ppo_config: num_envs 2048, unroll_length 30, batch_size 1024, num_minibatches 32,
# num_updates_per_batch 16, discounting 0.995, learning_rate 1e-3, entropy_cost 1e-2,
# reward_scaling 10, normalize_observations, num_timesteps 6e7; episode_length 1000.
_PPO_GPU = {"num_envs": 2048, "num_steps": 30 * 1024 * 32 // 2048, "update_epochs": 16, "num_minibatches": 32,
            "total_timesteps": 60_000_000, "gamma": 0.995, "lr": 1e-3, "anneal_lr": False, "ent_coef": 1e-2,
            "clip_eps": 0.3, "gae_lambda": 0.95, "normalize_obs": True, "scale_rewards": True,
            "hidden": (256,) * 5, "activation": "silu"}
# CPU version: 32 envs x 256 steps per update, 4 epochs of 8 minibatches, 64 x 64 tanh
# networks, 1e6 steps per seed (CartpoleBalance, 1 seed: 996 at 1e6 steps).
_PPO_CPU = {**_PPO_GPU, "num_envs": 32, "num_steps": 256, "update_epochs": 4, "num_minibatches": 8,
            "total_timesteps": 1_000_000, "hidden": (64, 64), "activation": "tanh"}

# ---- SAC ---------------------------------------------------------------------------------
# brax_sac_config: num_envs 128, batch_size 512, grad_updates_per_step 8, max_replay_size
# 4 x 2^20, min_replay_size 8192, learning_rate 1e-3, discounting 0.99, normalize_observations,
# num_timesteps 5e6.
_SAC_GPU = {"num_envs": 128, "num_steps": 1, "grad_steps": 8, "minibatch_size": 512, "buffer_size": 4 * 2 ** 20,
            "learning_starts": 8192, "actor_lr": 1e-3, "critic_lr": 1e-3, "alpha_lr": 1e-3, "gamma": 0.99,
            "normalize_obs": True, "total_timesteps": 5_000_000, "hidden": (256, 256), "activation": "relu"}
# CPU version: 8 envs, replay ratio 0.5 (4 gradient steps per 8 env steps), minibatch 256,
# 128 x 128 networks, 1e5 steps per seed, 5000 random steps first.
_SAC_CPU = {**_SAC_GPU, "num_envs": 8, "grad_steps": 4, "minibatch_size": 256, "buffer_size": 100_000,
            "learning_starts": 5_000, "total_timesteps": 100_000, "hidden": (128, 128)}


def _family(cpu: dict, gpu: dict, tasks: dict) -> dict:
    out = {"playground/*": dict(cpu), "playground/*/gpu": dict(gpu)}
    for task, (both, gpu_only) in tasks.items():
        out[f"playground/{task}"] = {**cpu, **both}
        out[f"playground/{task}/gpu"] = {**gpu, **both, **gpu_only}
    return out


_PPO_TASKS = {  # task: (changes for both presets, changes for the published one only)
    "BallInCup": ({"gamma": 0.95}, {}),
    "FingerSpin": ({"gamma": 0.95}, {}),
    **{t: ({}, {"total_timesteps": 100_000_000})
       for t in ("AcrobotSwingup", "AcrobotSwingupSparse", "SwimmerSwimmer6", "WalkerRun")},
}
_SAC_TASKS = {t: ({}, {"total_timesteps": 10_000_000}) for t in (
    "AcrobotSwingup", "AcrobotSwingupSparse", "SwimmerSwimmer6", "FingerSpin", "FingerTurnEasy", "FingerTurnHard",
    "HopperHop", "HopperStand", "CheetahRun", "HumanoidWalk", "WalkerRun")}

# Brax's inverted_pendulum on a CPU (own choice, not a published setting): the CPU PPO
# preset with gamma 0.99 and 2e5 steps per seed.
_BRAX_PPO = {"brax/inverted_pendulum": {**_PPO_CPU, "gamma": 0.99, "total_timesteps": 200_000}}


def physics_presets(algo: str) -> dict:
    """The entries for ``algo`` (ppo, ppo-kl, sac)."""
    if algo in ("ppo", "ppo-kl"):
        return {**_family(_PPO_CPU, _PPO_GPU, _PPO_TASKS), **_BRAX_PPO}
    if algo == "sac":
        return _family(_SAC_CPU, _SAC_GPU, _SAC_TASKS)
    return {}
