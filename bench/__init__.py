"""Benchmarks for the worker pool: `python -m bench [--json]` (see bench/__main__.py)."""
