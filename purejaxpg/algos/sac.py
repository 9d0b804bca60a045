"""SAC: soft actor-critic, with its replay buffer inside the compiled program.

One run is ``num_updates`` updates; each update

1. steps ``num_envs`` environments ``num_steps`` times (uniform random actions while
   fewer than ``learning_starts`` env steps have been taken, then samples of the policy)
   and writes the ``batch_size = num_envs * num_steps`` transitions into the buffer;
2. takes ``grad_steps`` gradient steps, each on ``minibatch_size`` transitions drawn
   uniformly from the buffer. The replay ratio (gradient steps per env step) is
   ``grad_steps / batch_size``: 1 env x 1 step x 1 grad step is the classic one-to-one,
   ``num_steps=4, grad_steps=1`` is 0.25, ``grad_steps=4`` with one env step is 4.

A gradient step updates actor, critics and temperature together, from one forward pass
per network, then moves the target critics by Polyak averaging:

* critics: 0.5 sum_k (Q_k(s, a) - y)^2 with y = r + gamma (1 - terminated) (min_k Q'_k(s', a')
  - alpha log pi(a'|s')), a' ~ pi(.|s') from the current policy, Q' the target critics.
  Truncated episodes bootstrap: s' is the observation before the automatic reset.
* actor: alpha log pi(a|s) - min_k Q_k(s, a), a ~ pi(.|s) reparameterised (a tanh-squashed
  Gaussian); the critic's parameters are held constant. The Q-values used are those of the
  critic before this step's update (the critic and actor updates are computed together).
* temperature: log_alpha (H - H_target) with the entropy estimate H = -mean log pi(a|s),
  H_target = -target_entropy_scale x |A| by default; or a fixed alpha (learn_alpha=False).

Discrete action spaces use the discrete variant: a categorical policy, Q(s, .) heads, and
the expectation over actions in closed form in the target, the actor loss and the entropy
(H_target = target_entropy_scale x log |A|).

Observations are stored raw; with ``normalize_obs`` a running mean/std (in the train
state) normalises them whenever a network sees them, so old and new entries are treated
alike. Everything that shapes arrays is in ``Config``; learning rates, gamma, tau, the
initial temperature and the target-entropy scale are traced hyperparameters, so a sweep
over them compiles once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.flatten_util import ravel_pytree

from purejaxpg.algos.common import UpdateBudget, progress_cadence
from purejaxpg.core import prng, replay, rollout
from purejaxpg.core.losses import (
    discrete_sac_actor_loss,
    discrete_soft_value,
    polyak_update,
    sac_actor_loss,
    sac_critic_loss,
    soft_td_target,
    temperature_loss,
)
from purejaxpg.core.networks import (
    ACTIVATIONS,
    CategoricalSACActor,
    EnsembleQ,
    SquashedGaussian,
    SquashedGaussianActor,
)
from purejaxpg.core.normalize import RunningMeanStd
from purejaxpg.core.optim import adam_direction
from purejaxpg.envs import VecEnv

# Counter-based generators for the random numbers drawn inside the program. JAX's default,
# threefry2x32, is lowered on CPU as a rolled loop of many tiny kernels; Philox is emitted
# unrolled and fuses into one kernel per draw, which matters when every env step and
# gradient step draws (see benchmarks/NOTES.md). "philox4x32" is purejaxpg.core.prng's
# implementation, which (unlike jax.random's) compiles when partitioned over devices.
RNG_IMPLS = ("philox4x32", "threefry2x32")


def rng_impl(name: str):
    return prng.impl() if name == "philox4x32" else name


@dataclass(frozen=True)
class Config(UpdateBudget):
    """Static settings: they fix array shapes and the program's structure."""

    env: str = "Pendulum-v1"
    num_envs: int = 1  # parallel environments per seed
    num_steps: int = 1  # env steps per environment per update
    grad_steps: int = 1  # gradient steps per update; replay ratio = grad_steps / batch_size
    total_timesteps: int = 20_000  # env steps per seed (rounded down to whole updates)
    buffer_size: int = 100_000  # transitions kept per seed (a ring: the oldest go first)
    minibatch_size: int = 256  # transitions per gradient step
    learning_starts: int = 1_000  # env steps per seed of uniform random actions before learning
    hidden: tuple = (256, 256)  # hidden widths of the actor and of each critic
    activation: str = "relu"
    num_q: int = 2  # critics in the ensemble; targets and the actor use their minimum
    learn_alpha: bool = True  # False: alpha stays at the init_alpha hyperparameter
    log_std_min: float = -5.0  # bounds of the Gaussian's log-std (continuous actions)
    log_std_max: float = 2.0
    normalize_obs: bool = False  # running mean/std per seed, kept in the train state
    bootstrap_truncation: bool = True  # False: treat time limits as terminations (biased; for study)
    num_eval_episodes: int = 16  # final evaluation: one episode in each of this many envs
    eval_deterministic: bool = True  # evaluate tanh(mean) (argmax for discrete) instead of sampling
    memory_limit_mb: float = 0.0  # refuse runs whose buffers exceed this; 0: half the free memory
    rng_impl: str = "philox4x32"  # PRNG inside the program (the seed key is converted); see RNG_IMPLS
    fuse_passes: bool = False  # one actor and one online-critic matmul chain per step (same maths; slower on CPU)
    progress_every: int = 0  # host callback cadence in updates; 0 picks about 20 per run

    @property
    def num_warmup_updates(self) -> int:
        """Updates with random actions and no gradient steps."""
        return math.ceil(self.learning_starts / self.batch_size)

    @property
    def replay_ratio(self) -> float:
        return self.grad_steps / self.batch_size

    def validate(self) -> None:
        self.check_budget(("grad_steps", "total_timesteps", "buffer_size", "minibatch_size", "num_q",
                           "num_eval_episodes"))
        if self.buffer_size < self.minibatch_size:
            raise ValueError(f"buffer_size={self.buffer_size} is smaller than minibatch_size={self.minibatch_size}")
        if self.buffer_size < self.batch_size:
            raise ValueError(f"buffer_size={self.buffer_size} is smaller than the env steps of one update "
                             f"(num_envs x num_steps = {self.batch_size})")
        if self.learning_starts < 0 or self.num_warmup_updates >= self.num_updates:
            raise ValueError(f"learning_starts={self.learning_starts} leaves no update for learning: random actions "
                             f"fill the first {self.num_warmup_updates} of {self.num_updates} updates "
                             f"({self.batch_size} env steps each); lower it or raise total_timesteps")
        if not self.hidden or any(int(h) <= 0 for h in self.hidden):
            raise ValueError(f"hidden widths must be positive and at least one, got {self.hidden}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        if not self.log_std_min < self.log_std_max:
            raise ValueError(f"log_std_min={self.log_std_min} must be below log_std_max={self.log_std_max}")
        if self.rng_impl not in RNG_IMPLS:
            raise ValueError(f"rng_impl must be one of {', '.join(RNG_IMPLS)}, got {self.rng_impl!r}")
        if self.memory_limit_mb < 0:
            raise ValueError(f"memory_limit_mb must be >= 0 (0: automatic), got {self.memory_limit_mb}")


def default_hparams(config: Optional[Config] = None) -> dict:
    """Traced hyperparameters. ``target_entropy_scale`` means -scale x |A| for Box actions and
    scale x log|A| for Discrete ones (0.89: a nearly uniform policy's entropy, the common
    discrete-SAC default)."""
    discrete = config is not None and VecEnv(config.env, 1).action_spec.discrete
    return {
        "actor_lr": 3e-4,
        "critic_lr": 1e-3,
        "alpha_lr": 1e-3,
        "gamma": 0.99,
        "tau": 0.005,  # Polyak step of the target critics per gradient step
        "init_alpha": 1.0,  # initial (or, with learn_alpha=False, fixed) temperature
        "target_entropy_scale": 0.89 if discrete else 1.0,
        "adam_eps": 1e-8,
    }


def validate_hparams(hparams: dict) -> None:
    """One-line errors for values outside their range (call on concrete values)."""
    hp = {k: np.asarray(v) for k, v in hparams.items()}
    for k in ("actor_lr", "critic_lr", "alpha_lr", "init_alpha", "adam_eps"):
        if k in hp and not np.all(hp[k] > 0):
            raise ValueError(f"hyperparameter {k} must be > 0, got {hparams[k]}")
    if "tau" in hp and not np.all((hp["tau"] > 0) & (hp["tau"] <= 1)):
        raise ValueError(f"tau must lie in (0, 1], got {hparams['tau']}")
    if "gamma" in hp and not np.all((hp["gamma"] >= 0) & (hp["gamma"] <= 1)):
        raise ValueError(f"gamma must lie in [0, 1], got {hparams['gamma']}")


class AdamState(NamedTuple):
    """Adam's moments for all parameters as one flat vector (one fused update per step
    instead of a few small ops per parameter array)."""

    mu: jax.Array
    nu: jax.Array
    count: jax.Array


def adam_init(flat_params) -> AdamState:
    return AdamState(jnp.zeros_like(flat_params), jnp.zeros_like(flat_params), jnp.int32(0))


def adam_update(state: AdamState, grad, eps, b1: float = 0.9, b2: float = 0.999):
    """Adam's bias-corrected step direction m_hat / (sqrt(v_hat) + eps) (to be scaled by the
    learning rate and subtracted), as optax.scale_by_adam computes it (see purejaxpg.core.optim)."""
    count = state.count + 1
    mu = b1 * state.mu + (1.0 - b1) * grad
    nu = b2 * state.nu + (1.0 - b2) * grad * grad
    return adam_direction(mu, nu, count, eps, b1, b2), AdamState(mu, nu, count)


@struct.dataclass
class SACState:
    params: Any  # {"actor", "critic", "log_alpha"}
    target_critic: Any
    opt_state: Any  # one Adam state over all of params
    env: rollout.EnvCarry
    buffer: replay.ReplayBuffer
    obs_rms: Optional[RunningMeanStd]  # None when observation normalisation is off


def buffer_entry(venv: VecEnv) -> dict:
    """Shapes and dtypes of one stored transition."""
    spec = venv.action_spec
    obs = jax.ShapeDtypeStruct(venv.obs_shape, jnp.float32)
    action = jax.ShapeDtypeStruct((), jnp.int32) if spec.discrete else jax.ShapeDtypeStruct((spec.num_actions,), jnp.float32)
    scalar = jax.ShapeDtypeStruct((), jnp.float32)
    return {"obs": obs, "action": action, "reward": scalar, "terminated": jax.ShapeDtypeStruct((), jnp.bool_),
            "next_obs": obs}


def memory_estimate(config: Config, num_seeds: int = 1) -> int:
    """Bytes the replay buffers of ``num_seeds`` seeds take."""
    return replay.memory_bytes(buffer_entry(VecEnv(config.env, 1)), config.buffer_size, num_seeds)


def check_resources(config: Config, num_seeds: int = 1) -> int:
    """Refuse (one-line ValueError, before compiling) a run whose buffers would not fit;
    returns the estimate in bytes."""
    config.validate()
    return replay.check_memory(buffer_entry(VecEnv(config.env, 1)), config.buffer_size, num_seeds,
                               limit_bytes=config.memory_limit_mb * 2**20)


def build_networks(config: Config, venv: VecEnv):
    spec = venv.action_spec
    hidden = tuple(config.hidden)
    if spec.discrete:
        actor = CategoricalSACActor(spec.num_actions, hidden, config.activation)
        critic = EnsembleQ(config.num_q, hidden, config.activation, spec.num_actions)
    else:
        actor = SquashedGaussianActor(spec.num_actions, hidden, config.activation,
                                      config.log_std_min, config.log_std_max)
        critic = EnsembleQ(config.num_q, hidden, config.activation)
    return actor, critic


def target_entropy(venv: VecEnv, scale):
    spec = venv.action_spec
    return scale * math.log(spec.num_actions) if spec.discrete else -scale * spec.num_actions


def make_train(config: Config, callback: Optional[Callable] = None, num_seeds: int = 1):
    """Build ``train(key, hparams) -> dict`` (pure; jit/vmap-able).

    Output: ``{"state": SACState, "metrics": {name: [num_updates]}, "eval_returns":
    [num_eval_episodes]}``. Loss metrics are NaN in the updates before learning starts;
    ``episode_return`` is NaN in updates where no episode finished. ``num_seeds`` is used
    only for the memory check (the buffers of that many seeds must fit).
    """
    check_resources(config, num_seeds)
    venv = VecEnv(config.env, config.num_envs)
    eval_env = VecEnv(config.env, config.num_eval_episodes)
    spec = venv.action_spec
    if not spec.discrete and not (np.all(np.isfinite(spec.low)) and np.all(np.isfinite(spec.high))):
        raise ValueError(f"{config.env}: SAC needs a Box action space with finite bounds")
    actor, critic = build_networks(config, venv)
    num_updates, num_warmup = config.num_updates, config.num_warmup_updates
    every = progress_cadence(config)
    normalize = config.normalize_obs

    def norm(rms, obs):
        return obs if rms is None else rms.normalize(obs)

    # ---- acting -------------------------------------------------------------------
    def random_policy(params, obs, key):
        n = obs.shape[0]
        if spec.discrete:
            return jax.random.randint(key, (n,), 0, spec.num_actions), jnp.zeros(n)
        return jax.random.uniform(key, (n, spec.num_actions), minval=-1.0, maxval=1.0), jnp.zeros(n)

    def sample_policy(params, obs, key):  # params = (actor params, obs_rms)
        dist = actor.apply(params[0], norm(params[1], obs))
        if spec.discrete:
            a = dist.sample(seed=key)
            return a, dist.log_prob(a)
        return dist.sample_and_log_prob(key)

    def greedy_policy(params, obs, key):
        dist = actor.apply(params[0], norm(params[1], obs))
        a = dist.mode()
        return a, jnp.zeros(a.shape[0])

    def collect(state: SACState, key, policy):
        env, traj = rollout.collect(venv, policy, (state.params["actor"], state.obs_rms), state.env, key,
                                    config.num_steps)
        terminated = traj.terminated if config.bootstrap_truncation else traj.done
        flat = lambda x: x.reshape((-1,) + x.shape[2:])
        entries = {"obs": flat(traj.obs), "action": flat(traj.action), "reward": flat(traj.reward),
                   "terminated": flat(terminated), "next_obs": flat(traj.next_obs)}
        rms = state.obs_rms.update(entries["next_obs"]) if normalize else None
        state = state.replace(env=env, buffer=replay.add(state.buffer, entries), obs_rms=rms)
        return state, rollout.episode_metrics(traj)

    # ---- learning -----------------------------------------------------------------
    # With fuse_passes, the actor runs once on [obs; next_obs] and the online critics once on
    # [(obs, a); (obs, a_pi)]: 2B rows, of which only the first B train the parameters (the
    # others treat them as constants, see networks.dense's grad_rows). Same losses and
    # gradients as separate passes in fewer, larger matmuls; on CPU the row slices this
    # needs in the backward pass cost more than the kernels saved (benchmarks/NOTES.md), so
    # it is off by default. It is meant for accelerators, where kernel count matters more.
    B = config.minibatch_size
    actor_2b = actor.clone(grad_rows=B, freeze_later_rows=True) if config.fuse_passes else None
    critic_2b = critic.clone(grad_rows=B) if config.fuse_passes else None

    def policy_now_and_next(actor_params, obs, next_obs):
        """Actor outputs at s (trainable) and at s' (constant: the target's policy)."""
        if config.fuse_passes:
            out = actor_2b.apply(actor_params, jnp.concatenate([obs, next_obs]))
            now = jax.tree_util.tree_map(lambda x: x[:B], out)
            nxt = jax.tree_util.tree_map(lambda x: jax.lax.stop_gradient(x[B:]), out)
            return now, nxt
        frozen = jax.lax.stop_gradient(actor_params)
        return actor.apply(actor_params, obs), actor.apply(frozen, next_obs)

    def losses(params, target_critic, batch, key, hp, h_target):
        """Critic, actor and temperature losses of one minibatch, summed. Stop-gradients make
        each train only its own parameters, so one backward pass serves all three."""
        alpha = jnp.exp(params["log_alpha"]) if config.learn_alpha else hp["init_alpha"]
        alpha = jax.lax.stop_gradient(alpha)
        discount = hp["gamma"] * (1.0 - batch["terminated"].astype(jnp.float32))
        obs, next_obs = batch["obs"], batch["next_obs"]
        if spec.discrete:
            dist, next_dist = policy_now_and_next(params["actor"], obs, next_obs)
            log_pi = jax.nn.log_softmax(dist.logits)
            next_log_pi = jax.nn.log_softmax(next_dist.logits)
            probs = jnp.exp(log_pi)
            next_q = critic.apply(target_critic, next_obs).min(0)  # [B, A]
            next_v = discrete_soft_value(jnp.exp(next_log_pi), next_log_pi, next_q, alpha)
            y = soft_td_target(batch["reward"], discount, next_v, jnp.zeros_like(next_v), alpha)
            q_all = critic.apply(params["critic"], obs)  # [K, B, A]; also the actor's Q, as a constant
            q = jnp.take_along_axis(q_all, batch["action"][None, :, None], axis=-1)[..., 0]
            critic_loss = sac_critic_loss(q, y)
            actor_loss = discrete_sac_actor_loss(probs, log_pi, q_all.min(0), alpha)
            entropy = -(probs * log_pi).sum(-1).mean()
        else:
            dist, next_dist = policy_now_and_next(params["actor"], obs, next_obs)
            if config.fuse_passes:  # one draw of 2B noise vectors
                both = SquashedGaussian(jnp.concatenate([dist.mean, next_dist.mean]),
                                        jnp.concatenate([dist.log_std, next_dist.log_std]))
                a_all, log_pi_all = both.sample_and_log_prob(key)
                a_pi, log_pi = a_all[:B], log_pi_all[:B]
                next_a, next_log_pi = a_all[B:], log_pi_all[B:]
            else:
                k_pi, k_next = jax.random.split(key)
                next_a, next_log_pi = next_dist.sample_and_log_prob(k_next)
                a_pi, log_pi = dist.sample_and_log_prob(k_pi)
            next_q = critic.apply(target_critic, next_obs, jax.lax.stop_gradient(next_a)).min(0)
            y = soft_td_target(batch["reward"], discount, next_q, next_log_pi, alpha)  # a constant
            if config.fuse_passes:
                q_all = critic_2b.apply(params["critic"], jnp.concatenate([obs, obs]),
                                        jnp.concatenate([batch["action"], a_pi]))  # [K, 2B]
                q, q_pi = q_all[:, :B], q_all[:, B:].min(0)
            else:
                q = critic.apply(params["critic"], obs, batch["action"])  # [K, B]
                q_pi = critic.apply(jax.lax.stop_gradient(params["critic"]), obs, a_pi).min(0)
            critic_loss = sac_critic_loss(q, y)
            actor_loss = sac_actor_loss(log_pi, q_pi, alpha)
            entropy = -log_pi.mean()
        alpha_loss = temperature_loss(params["log_alpha"], entropy, h_target) if config.learn_alpha else 0.0
        metrics = {"critic_loss": critic_loss, "actor_loss": actor_loss, "alpha": alpha,
                   "entropy": jax.lax.stop_gradient(entropy), "q_mean": jax.lax.stop_gradient(q).mean()}
        return critic_loss + actor_loss + alpha_loss, metrics

    def grad_step(state: SACState, key, hp, lr_flat, h_target):
        k_sample, k_loss = jax.random.split(key)
        batch = replay.sample(state.buffer, k_sample, config.minibatch_size)
        if normalize:
            batch = {**batch, "obs": state.obs_rms.normalize(batch["obs"]),
                     "next_obs": state.obs_rms.normalize(batch["next_obs"])}
        grads, metrics = jax.grad(losses, has_aux=True)(state.params, state.target_critic, batch, k_loss, hp, h_target)
        flat_params, unravel = ravel_pytree(state.params)
        step, opt_state = adam_update(state.opt_state, ravel_pytree(grads)[0], hp["adam_eps"])
        params = unravel(flat_params - lr_flat * step)
        target = polyak_update(state.target_critic, params["critic"], hp["tau"])
        return state.replace(params=params, opt_state=opt_state, target_critic=target), metrics

    # ---- the run: init -> updates (in one scan per phase, or in chunks) -> evaluate --------
    # ``init``, ``run_updates`` over consecutive chunks and ``evaluate`` are also what
    # purejaxpg.engine.sweep uses for checkpointed runs. Keys are carried as raw uint32 data
    # (checkpointable).
    nan_losses = {k: jnp.float32(jnp.nan) for k in ("critic_loss", "actor_loss", "alpha", "entropy", "q_mean")}

    def wrap(data):
        return jax.random.wrap_key_data(data, impl=rng_impl(config.rng_impl))

    def chunk_setup(params, hparams):
        hp = {k: jnp.asarray(v, jnp.float32) for k, v in hparams.items()}
        # Per-parameter learning rates as one flat vector, matching the flat Adam state.
        lr_flat = ravel_pytree({
            "actor": jax.tree_util.tree_map(lambda p: jnp.full(p.shape, hp["actor_lr"]), params["actor"]),
            "critic": jax.tree_util.tree_map(lambda p: jnp.full(p.shape, hp["critic_lr"]), params["critic"]),
            "log_alpha": hp["alpha_lr"]})[0]
        return hp, lr_flat, target_entropy(venv, hp["target_entropy_scale"])

    def init(key, hparams):
        hp = {k: jnp.asarray(v, jnp.float32) for k, v in hparams.items()}
        key = wrap(jax.random.bits(key, (2,), jnp.uint32))
        k_actor, k_critic, k_env, k_train, k_eval = jax.random.split(key, 5)
        dummy_obs = jnp.zeros((1,) + venv.obs_shape, jnp.float32)
        if spec.discrete:
            critic_params = critic.init(k_critic, dummy_obs)
        else:
            critic_params = critic.init(k_critic, dummy_obs, jnp.zeros((1, spec.num_actions)))
        params = {"actor": actor.init(k_actor, dummy_obs), "critic": critic_params,
                  "log_alpha": jnp.log(hp["init_alpha"])}
        env = rollout.reset(venv, k_env, False)
        rms = RunningMeanStd.create(venv.obs_shape).update(env.obs) if normalize else None
        state = SACState(params, critic_params, adam_init(ravel_pytree(params)[0]), env,
                         replay.init(buffer_entry(venv), config.buffer_size), rms)
        return state, jax.random.key_data(k_train), jax.random.key_data(k_eval)

    def warmup_step(state, key):
        key, k_collect = jax.random.split(key)
        state, ep = collect(state, k_collect, random_policy)
        return state, key, {**ep, **nan_losses}

    def learn_step(state, key, hp, lr_flat, h_target):
        key, k_collect, k_grad = jax.random.split(key, 3)
        state, ep = collect(state, k_collect, sample_policy)
        step = lambda s, k: grad_step(s, k, hp, lr_flat, h_target)
        if config.grad_steps == 1:
            state, m = step(state, k_grad)
        else:
            state, m = jax.lax.scan(step, state, jax.random.split(k_grad, config.grad_steps))
            m = jax.tree_util.tree_map(lambda x: x.mean(0), m)
        return state, key, {**ep, **m}

    def scan_updates(step_fn, state, key, indices):
        """``step_fn(state, key, i) -> (state, key, metrics)`` for each update index i,
        reporting progress through the callback."""
        def body(carry, i):
            state, key, metrics = step_fn(*carry, i)
            if callback is not None:
                jax.lax.cond(((i + 1) % every == 0) | (i + 1 == num_updates),
                             lambda: jax.debug.callback(callback, i, metrics), lambda: None)
            return (state, key), metrics

        return jax.lax.scan(body, (state, key), indices)

    def run_updates(carry, hparams, start, n: int):
        """Updates start .. start+n-1; a chunk may straddle the end of the warm-up, so each
        update picks its phase with a conditional on the (unbatched) update index."""
        state, key_data, k_eval = carry
        hp, lr_flat, h_target = chunk_setup(state.params, hparams)

        def step(state, key, i):
            return jax.lax.cond(i < num_warmup, warmup_step,
                                lambda s, k: learn_step(s, k, hp, lr_flat, h_target), state, key)

        (state, key), metrics = scan_updates(step, state, wrap(key_data), start + jnp.arange(n))
        return (state, jax.random.key_data(key), k_eval), metrics

    def eval_policy(carry):
        """``(policy_fn, params, obs_rms, key)``: how ``evaluate`` plays the policy in ``carry``
        (also used by purejaxpg.analysis.render to record an episode the same way)."""
        state, _, k_eval = carry
        act = greedy_policy if config.eval_deterministic else sample_policy
        # rollout.evaluate normalises observations itself with the frozen statistics
        return act, (state.params["actor"], None), state.obs_rms, wrap(k_eval)

    def evaluate(carry, key=None):
        act, params, obs_rms, k_eval = eval_policy(carry)
        return rollout.evaluate(eval_env, act, params, obs_rms, k_eval if key is None else key)

    def train(key, hparams):
        state, k_train, k_eval = init(key, hparams)
        hp, lr_flat, h_target = chunk_setup(state.params, hparams)
        key, parts = wrap(k_train), []
        if num_warmup:  # two scans, no per-update conditional
            (state, key), m = scan_updates(lambda s, k, i: warmup_step(s, k), state, key, jnp.arange(num_warmup))
            parts.append(m)
        (state, key), m = scan_updates(lambda s, k, i: learn_step(s, k, hp, lr_flat, h_target), state, key,
                                       jnp.arange(num_warmup, num_updates))
        parts.append(m)
        metrics = jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *parts)
        return {"state": state, "metrics": metrics, "eval_returns": evaluate((state, None, k_eval))}

    def carry_axes(carry):
        """vmap axes of a carry: the buffer's write position and size stay unbatched (see replay.add)."""
        state = jax.tree_util.tree_map(lambda _: 0, carry[0])
        return state.replace(buffer=state.buffer.replace(pos=None, size=None)), 0, 0

    train.init, train.run_updates, train.evaluate = init, run_updates, evaluate
    train.num_updates, train.carry_axes = num_updates, carry_axes
    train.eval_policy = eval_policy
    return train
