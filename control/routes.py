"""The whole control API in one routes table (see ROUTES)."""
