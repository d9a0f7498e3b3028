"""Headless command line: the same work as the GUI, for scripts, CI and tests."""
