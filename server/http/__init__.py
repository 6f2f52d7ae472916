"""The HTTP layer: Flask views, the access decorator, error mapping, logs and the overview."""
