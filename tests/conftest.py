import os

# Tests run on the host CPU even where an accelerator is present unless asked otherwise;
# many small programs compile faster there.
# Host callbacks (the progress bar) need the CPU platform beside an accelerator.
_platform = os.environ.get("PUREJAXPG_TEST_PLATFORM", "cpu")
os.environ.setdefault("JAX_PLATFORMS", _platform if _platform == "cpu" else f"{_platform},cpu")

from purejaxpg.engine import compat

compat.configure()  # the jaxlib 0.10 CPU settings, before JAX's backend starts (as the CLI does)
