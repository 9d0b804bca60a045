"""purejaxpg: policy-gradient training compiled whole with JAX, vectorised over seeds."""
__version__ = "0.1.0"
