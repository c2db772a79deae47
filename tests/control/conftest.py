"""Fixtures of the control API tests: the app on a real store (SQLite file or redis-server),
a clock the test moves, an organization with its API key, a department."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from config import load_settings
from control.app import create_app
from control.orgs import create_org
from control.store import Store
from tests.conftest import register_standin_sfu

from .helpers import Clock, department_body


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
def settings(tmp_path, settings_overrides):
    base: dict[str, Any] = {
        "server": {"data_dir": str(tmp_path / "data"), "public_url": "https://tv.example"},
        # Tests join many times from one address; the throttling test sets its own limits.
        "join": {
            "per_ip_per_minute": 100_000,
            "failed_per_ip_per_hour": 100_000,
            "failed_per_minute": 100_000,
        },
    }
    for section, values in settings_overrides.items():
        base[section] = {**base.get(section, {}), **values}
    return load_settings(environ={}, overrides=base)


@pytest.fixture
async def make_client(settings, clock):
    """A test client of a fresh app on the given store (several may share one store)."""
    clients: list[TestClient] = []

    async def make(store: Store, **kwargs: Any) -> TestClient:
        kwargs.setdefault("background", False)
        kwargs.setdefault("clock", clock)
        app = create_app(kwargs.pop("settings", settings), store, **kwargs)
        await register_standin_sfu(store, clock)
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def client(make_client, store) -> TestClient:
    return await make_client(store)


@pytest.fixture
async def org(store, clock) -> dict[str, str]:
    org, _, key = await create_org(store, "Kallio Vet", clock())
    return {"id": org["id"], "key": key, "auth": f"Bearer {key}"}


@pytest.fixture
def auth(org) -> dict[str, str]:
    return {"Authorization": org["auth"]}


@pytest.fixture
async def department(client, auth) -> dict[str, Any]:
    resp = await client.post("/api/v1/departments", json=department_body(), headers=auth)
    assert resp.status == 201, await resp.text()
    return await resp.json()


@pytest.fixture
async def from_address(client) -> AsyncIterator[Any]:
    """``post(address, body, headers, path)``: a POST (a join by default) from the loopback
    ``address`` (each 127.0.0.x is a client of its own)."""
    sessions: dict[str, aiohttp.ClientSession] = {}

    async def post(
        address: str, body: dict[str, Any], headers: dict | None = None, path: str = "/api/v1/join"
    ) -> int:
        session = sessions.get(address)
        if session is None:
            connector = aiohttp.TCPConnector(local_addr=(address, 0))
            session = sessions[address] = aiohttp.ClientSession(connector=connector)
        async with session.post(client.make_url(path), json=body, headers=headers or {}) as resp:
            await resp.read()
            return resp.status

    yield post
    for session in sessions.values():
        await session.close()
