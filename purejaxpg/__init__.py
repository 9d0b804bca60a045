"""purejaxpg: policy-gradient training compiled whole with JAX, vectorised over seeds."""
import os as _os

__version__ = "0.1.0"

# XLA's multi-threaded Eigen pool on CPU can wedge (every thread parked on a futex, the
# program never finishes) on vmapped training programs; the small ops of RL training gain
# nothing from intra-op threads anyway. Turn it off unless the user set it explicitly.
# Takes effect only if purejaxpg is imported before JAX initialises its CPU backend.
_FLAG = "--xla_cpu_multi_thread_eigen"
if _FLAG not in _os.environ.get("XLA_FLAGS", ""):
    _os.environ["XLA_FLAGS"] = (_os.environ.get("XLA_FLAGS", "") + f" {_FLAG}=false").strip()
