"""gekodata's benchmarks: thin CLIs (``python -m benchmarks.<name>``) over :mod:`benchmarks.gekobench`."""
