"""Benchmarks: memory, temporal workload and speed of the learning rules (``solsa bench``)."""
