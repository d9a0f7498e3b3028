"""Inference runners behind one interface, and detection of what this machine can run."""
