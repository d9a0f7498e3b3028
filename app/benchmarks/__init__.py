"""Benchmark commands: print tables and write JSON; ratios within one run, never thresholds."""
