"""Benchmarks: tuneloop side by side with peer libraries on the same data, in one run."""
