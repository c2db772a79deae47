"""Clinic fixtures: each test runs on both stores (SQLite file, real redis-server) with the
matching event bus; the clock is a test clock so expiry needs no waiting."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from config import load_settings
from control.app import create_app
from control.clinic import api
from control.clinic.node import ClinicNode
from control.store.factory import open_bus, open_store
from tests.conftest import register_standin_sfu
from tests.web.conftest import browser, playwright_driver, screenshots  # noqa: F401 - fixtures

from .helpers import Clock


@pytest.fixture(params=["sqlite", "redis"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def settings(backend, tmp_path, request):
    store = {"backend": backend}
    if backend == "redis":
        store["redis_url"] = request.getfixturevalue("redis_url")
    return load_settings(
        environ={}, overrides={"server": {"data_dir": str(tmp_path)}, "store": store}
    )


@pytest.fixture
def reopenable_store(settings):
    """Opens a new Store on the same data each call (a node restarting)."""

    async def reopen():
        s = open_store(settings)
        await s.open()
        return s

    return reopen


@pytest.fixture
async def store(reopenable_store):
    s = await reopenable_store()
    yield s
    await s.close()


@pytest.fixture
async def bus(settings):
    b = open_bus(settings)
    await b.open()
    yield b
    await b.close()


@pytest.fixture
async def app(settings, store, bus):
    """The real control plane app; the test clock moves the clinic's time."""
    clock = Clock()
    await register_standin_sfu(store, clock)
    return create_app(settings, store, bus=bus, clock=clock, background=False)


@pytest.fixture
def node(app) -> ClinicNode:
    return app[api.NODE]


@pytest.fixture
async def client(app):
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c
