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

from purejaxpg.engine import host

host.configure()  # the jaxlib 0.10 CPU settings, before JAX's backend starts (as the CLI does)
