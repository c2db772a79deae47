import pytest

from control.store.sqlite import SqliteStore

BACKENDS = ["sqlite", "redis"]


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
async def make_store(backend, request, tmp_path):
    """Open a store of the test's backend; each call opens another client of the same data."""
    if backend == "redis":
        from control.store.redis import RedisStore

        url = request.getfixturevalue("redis_url")
    opened = []

    async def make():
        store = SqliteStore(tmp_path / "store.db") if backend == "sqlite" else RedisStore(url)
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
async def store(make_store):
    return await make_store()
