"""Bundled data (presets, label lists, icons, desktop entry); installed as `app_resources`."""
