import os

# Tests run on the host CPU even where an accelerator is present unless asked otherwise;
# many small programs compile faster there.
os.environ.setdefault("JAX_PLATFORMS", os.environ.get("PUREJAXPG_TEST_PLATFORM", "cpu"))

import purejaxpg  # noqa: E402,F401  (sets XLA flags before JAX's backend starts)
