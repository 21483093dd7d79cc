"""Benchmarks run on demand: pytest tests/benchmarks --benchmark-only."""
