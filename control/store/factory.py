"""Open the store and the event bus the settings choose (store.backend)."""

from __future__ import annotations

from config.settings import Settings
from control.bus import EventBus, InProcessBus, RedisBus
from control.store.base import Store


def open_store(settings: Settings) -> Store:
    """The configured Store, not yet opened (call ``await store.open()``)."""
    if settings.store.backend == "redis":
        from control.store.redis import RedisStore

        return RedisStore(settings.store.redis_url)
    from control.store.sqlite import SqliteStore

    path = settings.sqlite_path
    path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteStore(path)


def open_bus(settings: Settings) -> EventBus:
    """One node (sqlite) keeps events in process; several nodes (redis) share them over Redis."""
    if settings.store.backend == "redis":
        return RedisBus(settings.store.redis_url)
    return InProcessBus()
