"""open_store / open_bus pick the backend the settings name."""

from config import load_settings
from control.bus import InProcessBus, RedisBus
from control.store.factory import open_bus, open_store
from control.store.redis import RedisStore
from control.store.sqlite import SqliteStore


async def test_sqlite_backend_creates_its_directory(tmp_path):
    data_dir = tmp_path / "not" / "yet"
    settings = load_settings(environ={}, overrides={"server": {"data_dir": str(data_dir)}})
    store = open_store(settings)
    assert isinstance(store, SqliteStore) and store.path == str(data_dir / "televisit.db")
    await store.open()
    try:
        await store.create("k", "i", {"ok": True})
    finally:
        await store.close()
    assert (data_dir / "televisit.db").exists()
    assert isinstance(open_bus(settings), InProcessBus)


async def test_sqlite_path_setting_wins(tmp_path):
    path = tmp_path / "elsewhere" / "x.db"
    settings = load_settings(environ={}, overrides={"store": {"sqlite_path": str(path)}})
    store = open_store(settings)
    assert store.path == str(path) and path.parent.is_dir()


async def test_redis_backend(redis_url):
    settings = load_settings(
        environ={}, overrides={"store": {"backend": "redis", "redis_url": redis_url}}
    )
    store, bus = open_store(settings), open_bus(settings)
    assert isinstance(store, RedisStore) and isinstance(bus, RedisBus)
    await store.open()
    await bus.open()
    try:
        async with bus.subscribe("k") as feed:
            await store.create("k", "i", {"ok": True})
            await bus.publish("k", {"created": "i"})
            assert await feed.get() == {"created": "i"}
        assert (await store.get("k", "i")).data == {"ok": True}
    finally:
        await bus.close()
        await store.close()
