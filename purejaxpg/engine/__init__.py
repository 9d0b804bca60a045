"""The engine: the algorithm interface, the two training loops, settings, and the one runner."""
