"""purejaxpg: policy-gradient training compiled whole with JAX, vectorised over seeds.

Importing the package changes no process-wide state (environment, XLA flags, JAX config)
and does not import JAX. The settings that jaxlib 0.10's CPU backend needs are applied by
``purejaxpg.engine.compat.configure()``, which the command line and the runner call; a
program that uses purejaxpg as a library can call it before JAX starts its backends.
"""
__version__ = "0.1.0"
