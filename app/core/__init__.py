"""Pure computation: specs, pre/postprocessing, calibration, graphs, metrics. No Qt, no GPU."""
