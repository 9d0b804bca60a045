import os

# Tests run on the host CPU even where an accelerator is present unless asked otherwise;
# many small programs compile faster there.
# Host callbacks (the progress bar) need the CPU platform beside an accelerator.
_platform = os.environ.get("PUREJAXPG_TEST_PLATFORM", "cpu")
os.environ.setdefault("JAX_PLATFORMS", _platform if _platform == "cpu" else f"{_platform},cpu")
# One XLA device, in this process and the CLI processes tests start, whatever the core count:
# results recorded in tests/data and compared across runs assume it (the tests of several
# devices set XLA_FLAGS themselves).
os.environ.setdefault("PUREJAXPG_HOST_DEVICES", "1")

# JAX's persistent compilation cache (engine.cache): never the user's own directory, a fresh one
# for this session, shared with the CLI processes tests start (PUREJAXPG_COMPILE_CACHE=DIR or
# off, given from outside, is kept). tests/test_cache.py checks that a second run hits it.
if "PUREJAXPG_COMPILE_CACHE" not in os.environ:
    import atexit
    import shutil
    import tempfile

    _cache_dir = tempfile.mkdtemp(prefix="purejaxpg-test-compile-cache-")
    os.environ["PUREJAXPG_COMPILE_CACHE"] = _cache_dir
    atexit.register(shutil.rmtree, _cache_dir, True)

from purejaxpg.engine import cache, host

host.configure()  # the jaxlib 0.10 CPU settings, before JAX's backend starts (as the CLI does)
cache.configure()

# The modules with the longest tests first, so that pytest-xdist starts them on separate workers
# at once and the short tests fill the end of the run (pyproject.toml's addopts: one worker per
# core). Measured with `pytest --durations=40` on 2 cores: each of these has tests of 30-100 s.
SLOW_FIRST = ("test_docs.py", "test_physics_learning.py", "test_nothing_lost.py", "test_runner.py",
              "test_distributed.py", "test_determinism.py", "test_envs.py", "test_population.py", "test_cache.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOW_FIRST)))  # stable: file order otherwise
