"""Benchmarks of purejaxpg: ``python -m benchmarks --mode quick|full`` (see __main__.py)."""
