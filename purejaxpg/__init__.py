"""purejaxpg: policy-gradient training compiled whole with JAX, vectorised over seeds.

Importing the package changes no process-wide state (environment, XLA flags, JAX config)
and does not import JAX. The settings that jaxlib 0.10's CPU backend needs are applied by
``purejaxpg.engine.compat.configure()``, which the command line and the runner call; a
program that uses purejaxpg as a library can call it before JAX starts its backends.
"""
__version__ = "0.1.0"

__all__ = ["train", "sweep", "load"]


def __getattr__(name):
    """``purejaxpg.train``, ``purejaxpg.sweep``, ``purejaxpg.load`` (purejaxpg.api), imported
    on first use so that ``import purejaxpg`` stays free of JAX."""
    if name in __all__:
        from purejaxpg import api

        return getattr(api, name)
    raise AttributeError(f"module 'purejaxpg' has no attribute {name!r}")
