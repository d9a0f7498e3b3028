"""Finding layers that lose accuracy and keeping them in higher precision."""
