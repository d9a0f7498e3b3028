"""From a frame to a result: sources, image I/O, pre/postprocessing, drawing, pipelines."""
