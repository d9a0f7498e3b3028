"""One module per task panel; each runs on its own with `python -m app.gui.panels.<name>`."""
