"""The scorer benchmark: `python benchmarks/bench.py` (see benchmarks/README.md)."""
