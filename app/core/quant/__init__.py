"""Reduced precision: calibration, ranges, TensorRT tables, Q/DQ and FP16 graphs, rules."""
