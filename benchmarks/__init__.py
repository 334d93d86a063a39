"""Benchmarks for :mod:`mmfusion_sklearn` (not part of the installed package)."""
