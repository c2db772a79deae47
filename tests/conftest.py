"""Shared fixtures: a real redis-server on a free loopback port, free_port(), and stores.

- ``redis_server``: one server for the whole session (AOF, appendfsync always).
- ``redis_url``: its URL with the database flushed before the test (use this one).
- ``make_redis_server``: a private server per call (for tests that kill or restart it).
- ``opened``: opens things with open()/close() (stores, buses); closes them after the test.
- ``backend`` (sqlite, redis), ``make_store`` (another client of the test's data per call)
  and ``store``: a test asking for them runs on both backends.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:  # the media tests need no store code
    from control.store import Store

STANDIN_SFU_URL = "wss://tv.example/ws"
REDIS_BINARY = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_START_SECONDS = 30.0


async def register_standin_sfu(
    store: Store, clock: Callable[[], float] = time.time, url: str = STANDIN_SFU_URL
) -> None:
    """Register a live SFU worker that never expires, so join answers have somewhere to send
    clients in tests of the control plane alone (no media server runs)."""
    from control.cluster.registry import Registry, WorkerInfo

    info = WorkerInfo(id="standin", node="test", url=url)
    await Registry(store, clock=clock).beat(info, ttl=10 * 365 * 86400.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A redis-server child process; restartable on the same directory (same AOF)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, port: int | None = None) -> None:
        """Start on ``port`` (a restart keeping its address) or on a free one."""
        self.port = port or free_port()
        self.proc = subprocess.Popen(
            [
                REDIS_BINARY,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--daemonize",
                "no",
                "--logfile",
                str(self.dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + REDIS_START_SECONDS
        while not _ping(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server did not answer PING on {self.port}:\n{log}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final fsync; what survives is what the AOF already had."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.proc = None


def _require_redis() -> None:
    if not os.access(REDIS_BINARY, os.X_OK):
        pytest.skip("redis-server is not installed (apt-get install redis-server)")


@pytest.fixture(scope="session")
def make_redis_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[], RedisServer]]:
    started: list[RedisServer] = []

    def make() -> RedisServer:
        _require_redis()
        server = RedisServer(tmp_path_factory.mktemp("redis"))
        server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def redis_server(make_redis_server: Callable[[], RedisServer]) -> RedisServer:
    return make_redis_server()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    import redis

    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    return redis_server.url


Openable = TypeVar("Openable")


@pytest.fixture
async def opened() -> AsyncIterator[Callable[[Openable], Awaitable[Openable]]]:
    things: list[Any] = []

    async def open_(thing: Openable) -> Openable:
        await thing.open()  # type: ignore[attr-defined]
        things.append(thing)
        return thing

    yield open_
    for thing in things:
        await thing.close()


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_store(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, opened: Any
) -> Callable[[], Awaitable[Store]]:
    """Open a store of the test's backend; each call opens another client of the same data."""
    from control.store.redis import RedisStore
    from control.store.sqlite import SqliteStore

    url = request.getfixturevalue("redis_url") if backend == "redis" else None

    async def make() -> Store:
        return await opened(SqliteStore(tmp_path / "store.db") if url is None else RedisStore(url))

    return make


@pytest.fixture
async def store(make_store: Callable[[], Awaitable[Store]]) -> Store:
    return await make_store()
