"""Record the on-policy results that tests/test_runner.py pins bit for bit, for this host's
instruction set (``purejaxpg.engine.host.vector_isa``): writes tests/data/onpolicy_<isa>.json.

    python tests/data/record_onpolicy.py

XLA:CPU and YNNPACK compile for the host's vector instructions, and AVX-512 and AVX2 hosts
round differently in the last bits, so each instruction set has its own expected values.
For an instruction set that has no file yet: record one with code whose results are trusted,
add it to ``test_runner._recorded``, and name the commit and the machine in the commit
message. Runs in the test session's settings (tests/conftest.py: one host device, the CPU
flags). About a minute on 2 cores."""
import json
import os
import sys

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TESTS)

import conftest  # noqa: F401  (the test session's environment and JAX settings)
import numpy as np
import test_runner as t

from purejaxpg.engine import host, runner

from reference import train_seeds


def main() -> int:
    isa = host.vector_isa()
    if not isa:
        print("unknown instruction set (no /proc/cpuinfo, or neither AVX-512 nor AVX2)", file=sys.stderr)
        return 2
    out = {}
    for name, (algo, overrides) in t._RECORDED_CASES.items():
        r, = runner.train(algo, overrides, num_seeds=4, quiet=True).groups
        out[f"{name}/sweep/chunks=1"] = {"final_return": [float(x) for x in r.final[0]],
                                         "metrics": t._digest({k: v[0] for k, v in r.metrics.items()})}
        plain = train_seeds(algo, overrides, seeds=4)[3]
        out[f"{name}/plain/quiet=True"] = {
            "final_return": [float(x) for x in np.asarray(plain["eval_returns"]).mean(-1)],
            "metrics": t._digest(plain["metrics"])}
    path = os.path.join(TESTS, "data", f"onpolicy_{isa}.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
