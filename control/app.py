"""Builds the aiohttp application: middlewares, services on app keys, the routes table."""
