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

# With the flag above a 64-seed PPO program still hung once here (jaxlib 0.10.2: every XLA
# worker idle, block_until_ready waiting for ever), the signature of the CPU client's
# asynchronous dispatch losing a completion. A training run is one long program, so
# dispatching it synchronously costs nothing. Off unless the user set
# JAX_CPU_ENABLE_ASYNC_DISPATCH; read when the CPU backend starts, so set it here.
if "JAX_CPU_ENABLE_ASYNC_DISPATCH" not in _os.environ:
    import jax as _jax

    _jax.config.update("jax_cpu_enable_async_dispatch", False)
