"""The environment of a test's child process: this checkout first on ``PYTHONPATH`` (the
child imports the code under test, not an installed copy) and JAX on the CPU."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child_env(drop=(), **extra) -> dict:
    """``os.environ`` without the names in ``drop``, with the checkout on the path, the CPU
    backend and ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), **extra)
    return env
