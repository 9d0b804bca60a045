"""Plain NumPy references: Python loops over time, obvious by eye."""
import numpy as np


def reward_to_go(rewards, discounts, dones, next_values=None):
    T = len(rewards)
    nv = np.zeros_like(rewards) if next_values is None else next_values
    g = np.zeros_like(rewards, dtype=np.float64)
    for t in reversed(range(T)):
        if t == T - 1 or dones[t]:
            future = nv[t]  # cut: bootstrap (0 without a value function)
        else:
            future = g[t + 1]
        g[t] = rewards[t] + discounts[t] * future
    return g


def episode_start_values(x, dones):
    out = np.zeros_like(x, dtype=np.float64)
    start = x[0]
    for t in range(len(x)):
        if t > 0 and dones[t - 1]:
            start = x[t]
        out[t] = start
    return out


def gae(rewards, discounts, dones, values, next_values, lam):
    T = len(rewards)
    adv = np.zeros(T)
    for t in reversed(range(T)):
        delta = rewards[t] + discounts[t] * next_values[t] - values[t]
        later = 0.0 if (t == T - 1 or dones[t]) else adv[t + 1]
        adv[t] = delta + discounts[t] * lam * later
    return adv


def nstep_targets(rewards, discounts, dones, next_values, n):
    T = len(rewards)
    out = np.zeros(T)
    for t in range(T):
        g, scale, k = 0.0, 1.0, t
        while True:
            g += scale * rewards[k]
            scale *= discounts[k]
            if dones[k] or k == T - 1 or k - t + 1 == n:
                g += scale * next_values[k]
                break
            k += 1
        out[t] = g
    return out


def complete_episode_mask(dones, episode_step=None):
    T = len(dones)
    mask = np.zeros(T)
    for t in range(T):
        ends = any(dones[k] for k in range(t, T))
        started = True if episode_step is None else episode_step[t] <= t
        mask[t] = float(ends and started)
    return mask


def random_episodes(rng, T, p_term=0.1, p_trunc=0.05, gamma=0.9):
    """Random [T] step data with both kinds of episode end."""
    rewards = rng.normal(size=T).astype(np.float32)
    u = rng.uniform(size=T)
    terminated = u < p_term
    truncated = (~terminated) & (u < p_term + p_trunc)
    dones = terminated | truncated
    discounts = (gamma * (1.0 - terminated)).astype(np.float32)
    values = rng.normal(size=T).astype(np.float32)
    next_values = rng.normal(size=T).astype(np.float32)
    episode_step = np.zeros(T, np.int32)
    step = int(rng.integers(0, 5))  # the first episode may have started before the batch
    for t in range(T):
        episode_step[t] = step
        step = 0 if dones[t] else step + 1
    return dict(rewards=rewards, discounts=discounts, dones=dones, terminated=terminated,
                truncated=truncated, values=values, next_values=next_values, episode_step=episode_step)


def policy_evaluation(P, R, terminal, gamma, pi, sweeps=2000):
    """V^pi of a finite MDP by Bellman backups, state by state (terminal states: V = 0;
    no value flows back from them)."""
    S, A = R.shape
    V = np.zeros(S)
    for _ in range(sweeps):
        new = np.zeros(S)
        for s in range(S):
            if terminal[s]:
                continue
            for a in range(A):
                future = sum(P[s, a, t] * V[t] for t in range(S) if not terminal[t])
                new[s] += pi[s, a] * (R[s, a] + gamma * future)
        V = new
    return V


# ---- a test environment ------------------------------------------------------------------
# Imported lazily by the tests that need it (gymnax and flax are test-time dependencies here).
def endless_env_name() -> str:
    """Register (once) and return the name of "Endless-test": one state, reward 1 every step,
    never terminates; only the time limit (``max_steps_in_episode``, default 20) ends episodes,
    and the observation carries no time, so V cannot tell how close the limit is."""
    import jax.numpy as jnp
    from flax import struct
    from gymnax.environments import environment, spaces

    from purejaxpg.envs import env_names, register_env

    name = "Endless-test"
    if name in env_names():
        return name

    @struct.dataclass
    class State(environment.EnvState):
        pass

    @struct.dataclass
    class Params(environment.EnvParams):
        max_steps_in_episode: int = 20

    class Endless(environment.Environment):
        @property
        def default_params(self):
            return Params()

        def step_env(self, key, state, action, params):
            state = State(time=state.time + 1)
            return self.get_obs(state), state, jnp.float32(1.0), jnp.bool_(False), {}

        def reset_env(self, key, params):
            state = State(time=0)
            return self.get_obs(state), state

        def get_obs(self, state, params=None, key=None):
            return jnp.ones((1,), jnp.float32)

        def action_space(self, params=None):
            return spaces.Discrete(2)

        def observation_space(self, params):
            return spaces.Box(0.0, 1.0, (1,), jnp.float32)

    register_env(name, lambda **kw: (Endless(), Params(**kw)))
    return name


# ---- running programs in tests -------------------------------------------------------------
def train_seeds(algo_name: str, overrides: dict, seeds: int, seed: int = 0, preset: str = "auto"):
    """(config, hparams, program, output of ``program.train`` vmapped over ``seeds`` seeds): the
    whole run as one jitted program, as a user composing jit and vmap by hand would write it."""
    import jax

    from purejaxpg.algos import get_algo

    algo = get_algo(algo_name)
    config, hparams = algo.resolve(overrides, preset)
    program = algo.make_program(config)
    keys = jax.random.split(jax.random.PRNGKey(seed), seeds)
    return config, hparams, program, jax.jit(jax.vmap(program.train, in_axes=(0, None)))(keys, hparams)


# ---- natural gradient, TRPO, V-trace -------------------------------------------------------
def fisher_categorical(jac, probs):
    """Mean over states of J^T (diag(p) - p p^T) J: the Fisher of a categorical policy whose
    logits have the Jacobian ``jac`` [B, A, P] with respect to the P parameters."""
    B, A, P = jac.shape
    F = np.zeros((P, P))
    for b in range(B):
        M = np.diag(probs[b]) - np.outer(probs[b], probs[b])
        F += jac[b].T @ M @ jac[b]
    return F / B


def fisher_gaussian(jac, std):
    """Mean over states of J^T diag(1/std^2, 2) J: the Fisher of a diagonal Gaussian in its
    (mean, log std) coordinates; ``jac`` [B, 2A, P] of (mean, log std) w.r.t. the parameters."""
    B, two_a, P = jac.shape
    M = np.diag(np.concatenate([1.0 / np.asarray(std) ** 2, 2.0 * np.ones(two_a // 2)]))
    F = np.zeros((P, P))
    for b in range(B):
        F += jac[b].T @ M @ jac[b]
    return F / B


def conjugate_gradient(A, b, iters):
    """Textbook CG from x = 0, ``iters`` iterations (stops early at an exactly zero residual)."""
    x = np.zeros_like(b)
    r = b.copy()
    p = r.copy()
    rr = r @ r
    for _ in range(iters):
        if rr == 0:
            break
        Ap = A @ p
        alpha = rr / (p @ Ap)
        x = x + alpha * p
        r = r - alpha * Ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x, np.sqrt(rr / (b @ b))


def line_search(objective, kl, x0, step, max_kl, shrink, max_backtracks):
    """TRPO's backtracking: the first of x0 + shrink^k step, k = 0 .. max_backtracks - 1,
    that improves the objective and keeps the KL within max_kl. Returns (x, fraction, tries)."""
    f0 = objective(x0)
    for k in range(max_backtracks):
        frac = shrink ** k
        x = x0 + frac * step
        if objective(x) > f0 and kl(x) <= max_kl:
            return x, frac, k + 1
    return x0, 0.0, max_backtracks


def vtrace(rewards, discounts, dones, values, next_values, log_rhos, rho_bar, c_bar, lam):
    """V-trace as the sum in its definition: v_s = V_s + sum_t (prod_{i<t} d_i c_i) delta_t
    over the rest of the episode inside the batch; A_s = rho_s (r_s + d_s v'_s - V_s)."""
    T = len(rewards)
    ratio = np.exp(log_rhos)
    rho = np.minimum(rho_bar, ratio)
    c = lam * np.minimum(c_bar, ratio)
    delta = rho * (rewards + discounts * next_values - values)
    vs = np.zeros(T)
    for s in range(T):
        acc, coef, t = 0.0, 1.0, s
        while True:
            acc += coef * delta[t]
            if dones[t] or t == T - 1:
                break
            coef *= discounts[t] * c[t]
            t += 1
        vs[s] = values[s] + acc
    adv = np.zeros(T)
    for s in range(T):
        nxt = next_values[s] if (dones[s] or s == T - 1) else vs[s + 1]
        adv[s] = rho[s] * (rewards[s] + discounts[s] * nxt - values[s])
    return vs, adv


def tabular_fisher(d, pi):
    """sum_s d(s) sum_a pi(a|s) g g^T, g = d log softmax(theta[s])_a / d theta = e_{s,a} - pi(.|s)
    on row s (0 elsewhere); [S*A, S*A]."""
    S, A = pi.shape
    F = np.zeros((S * A, S * A))
    for s in range(S):
        for a in range(A):
            g = np.zeros(S * A)
            g[s * A:(s + 1) * A] = -pi[s]
            g[s * A + a] += 1.0
            F += d[s] * pi[s, a] * np.outer(g, g)
    return F


def off_policy_weights(rewards, rho, values, gamma):
    """One episode's weights on grad log pi(a_t|s_t): whole-trajectory, per-decision, per-decision
    minus the V baseline, and per-decision with min(1, rho), by loops over t and k."""
    T = len(rewards)
    out = {n: np.zeros(T) for n in ("is_whole", "is_per_decision", "is_per_decision_value", "clipped_per_decision")}
    G0 = sum(gamma ** k * rewards[k] for k in range(T))
    for t in range(T):
        out["is_whole"][t] = np.prod(rho) * G0
        for k in range(t, T):
            out["is_per_decision"][t] += gamma ** k * rewards[k] * np.prod(rho[:k + 1])
            out["clipped_per_decision"][t] += gamma ** k * rewards[k] * np.prod(np.minimum(1.0, rho[:k + 1]))
        out["is_per_decision_value"][t] = out["is_per_decision"][t] - np.prod(rho[:t + 1]) * gamma ** t * values[t]
    return out
