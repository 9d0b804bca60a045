"""The classic single-process approach, for comparison: textbook REINFORCE on gymnasium's
CartPole-v1, one environment, one episode per update, on the CPU.

* ``torch``: a PyTorch policy (4-128-2 MLP, ReLU), Adam lr 1e-2, gamma 0.99, normalised
  reward-to-go, one gradient step per episode -- the form of the well-known PyTorch example.
  Needs ``pip install torch`` (an optional benchmark dependency).
* ``numpy``: the same algorithm with a hand-written NumPy MLP, backward pass and Adam.

Each runs until ``env_steps`` environment steps have been taken, then evaluates the final
policy on 16 episodes (sampling, like purejaxpg's default evaluation). Reports env steps/s
of training (the evaluation excluded) and the mean evaluation return.
"""
from __future__ import annotations

import time

import numpy as np


def _returns_to_go(rewards, gamma):
    out, g = np.zeros(len(rewards), np.float32), 0.0
    for t in reversed(range(len(rewards))):
        g = rewards[t] + gamma * g
        out[t] = g
    return (out - out.mean()) / (out.std() + 1e-8)


def _run(act, learn, env_steps: int, seed: int, eval_episodes: int = 16) -> dict:
    """Generic loop: ``act(obs) -> (action, record)``, ``learn(records, weights)``."""
    import gymnasium as gym

    env = gym.make("CartPole-v1")
    steps, episodes = 0, 0
    t0 = time.perf_counter()
    obs, _ = env.reset(seed=seed)
    while steps < env_steps:
        records, rewards, done = [], [], False
        while not done:
            action, rec = act(obs)
            obs, r, term, trunc, _ = env.step(action)
            records.append(rec)
            rewards.append(r)
            done = term or trunc
            steps += 1
        learn(records, _returns_to_go(rewards, 0.99))
        episodes += 1
        obs, _ = env.reset()
    train_s = time.perf_counter() - t0
    returns = []
    for i in range(eval_episodes):
        obs, _ = env.reset(seed=10_000 + seed * 100 + i)
        total, done = 0.0, False
        while not done:
            action, _ = act(obs)
            obs, r, term, trunc, _ = env.step(action)
            total += r
            done = term or trunc
        returns.append(total)
    return {"env_steps": steps, "episodes": episodes, "train_seconds": train_s,
            "env_steps_per_second": steps / train_s, "final_return_mean": float(np.mean(returns))}


def torch_reinforce(env_steps: int = 100_000, seed: int = 0) -> dict:
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    policy = torch.nn.Sequential(torch.nn.Linear(4, 128), torch.nn.ReLU(), torch.nn.Linear(128, 2))
    opt = torch.optim.Adam(policy.parameters(), lr=1e-2)

    def act(obs):
        logits = policy(torch.as_tensor(obs, dtype=torch.float32))
        dist = torch.distributions.Categorical(logits=logits)
        a = dist.sample()
        return int(a), dist.log_prob(a)

    def learn(log_probs, weights):
        loss = -(torch.stack(log_probs) * torch.as_tensor(weights)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()

    out = _run(act, learn, env_steps, seed)
    return {"name": f"torch {torch.__version__} REINFORCE (gymnasium CartPole-v1, 1 env, CPU)", **out}


def numpy_reinforce(env_steps: int = 100_000, seed: int = 0, lr: float = 1e-2) -> dict:
    rng = np.random.default_rng(seed)
    params = [rng.uniform(-0.5, 0.5, (4, 128)), np.zeros(128), rng.uniform(-0.09, 0.09, (128, 2)), np.zeros(2)]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    count = [0]

    def act(obs):
        h = np.maximum(obs @ params[0] + params[1], 0.0)
        logits = h @ params[2] + params[3]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        a = int(rng.random() < p[1])
        return a, (obs, h, p, a)

    def learn(records, weights):
        grads = [np.zeros_like(p) for p in params]
        for (obs, h, p, a), w in zip(records, weights):
            dlogits = p.copy()  # d(-log pi(a)) / dlogits = p - onehot(a)
            dlogits[a] -= 1.0
            dlogits *= w
            grads[2] += np.outer(h, dlogits)
            grads[3] += dlogits
            dh = (params[2] @ dlogits) * (h > 0)
            grads[0] += np.outer(obs, dh)
            grads[1] += dh
        count[0] += 1
        for i, g in enumerate(grads):
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g * g
            params[i] -= lr * (m[i] / (1 - 0.9 ** count[0])) / (np.sqrt(v[i] / (1 - 0.999 ** count[0])) + 1e-8)

    out = _run(act, learn, env_steps, seed)
    return {"name": "NumPy REINFORCE (gymnasium CartPole-v1, 1 env)", **out}
