"""What a model is: its spec (data), inspection and guessing, checks, sidecars, workspace."""
