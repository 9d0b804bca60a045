"""Pure functions and flax modules: returns and advantages, losses, networks, rollout, replay,
normalisation, the optimiser. Each is tested against a plain NumPy reference."""
