"""What reads a run's outputs: statistics across seeds, comparisons, plots, GIFs."""
