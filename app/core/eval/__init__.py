"""Measuring variants: evaluation, metrics, agreement, benchmarks, reports."""
