"""The event bus across the processes of one host (the embedded SQLite setup): the control
process serves its InProcessBus on a Unix socket (``<data_dir>/bus.sock``), and its SFU worker
processes (and ``televisit admin drain``) use it through SocketBus.

Protocol: one JSON object per line. Client to hub: ``{"op": "sub"|"unsub", "key": K}``,
``{"op": "pub", "topic": T, "event": E}``. Hub to client: ``{"op": "subbed", "key": K}``
once a subscription is listening, ``{"key": K, "event": E}`` for each event. The same best
effort as every bus (control/bus.py): a client that reconnects subscribes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from typing import Any

from config.settings import Settings
from control.bus import EventBus, RedisBus, _check_topic, _encode

log = logging.getLogger(__name__)

LINE_LIMIT = 1 << 20
RECONNECT_PAUSE_SECONDS = 0.5
SUBSCRIBE_TIMEOUT_SECONDS = 15.0


def hub_path(settings: Settings) -> Path:
    return settings.server.data_dir / "bus.sock"


def process_bus(settings: Settings) -> EventBus:
    """The bus of a process beside the control process: Redis across hosts, else the hub."""
    if settings.store.backend == "redis":
        return RedisBus(settings.store.redis_url)
    return SocketBus(hub_path(settings))


class BusHub:
    """Serves ``bus`` to the other processes of this host on a Unix socket at ``path``."""

    def __init__(self, bus: EventBus, path: Path) -> None:
        self.bus = bus
        self.path = path
        self._server: asyncio.AbstractServer | None = None
        self._clients: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        self.path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._serve, self.path, limit=LINE_LIMIT)
        self.path.chmod(0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._clients):
                task.cancel()
            await asyncio.gather(*self._clients, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None
        self.path.unlink(missing_ok=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        feeds: dict[str, asyncio.Task[None]] = {}
        lock = asyncio.Lock()

        async def send(message: dict[str, Any]) -> None:
            async with lock:
                writer.write(json.dumps(message).encode() + b"\n")
                await writer.drain()

        async def forward(key: str, ready: asyncio.Event) -> None:
            async with self.bus.subscribe(key) as feed:
                ready.set()
                async for event in feed:
                    await send({"key": key, "event": event})

        try:
            while line := await reader.readline():
                try:
                    message = json.loads(line)
                    op = message["op"]
                    if op == "pub":
                        await self.bus.publish(message["topic"], message["event"])
                    elif op == "sub" and message["key"] not in feeds:
                        key = _check_topic(message["key"], pattern=True)
                        ready = asyncio.Event()
                        feeds[key] = asyncio.create_task(forward(key, ready))
                        await ready.wait()
                        await send({"op": "subbed", "key": key})
                    elif op == "unsub" and message["key"] in feeds:
                        feeds.pop(message["key"]).cancel()
                except (ValueError, TypeError, KeyError) as exc:
                    log.warning("bus hub: bad message from a local client: %s", exc)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            for feed in feeds.values():
                feed.cancel()
            await asyncio.gather(*feeds.values(), return_exceptions=True)
            writer.close()
            self._clients.discard(task)


class SocketBus(EventBus):
    """The EventBus of a process using a BusHub on the same host."""

    def __init__(self, path: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = path
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._confirmed: dict[str, asyncio.Event] = {}

    async def open(self) -> None:
        await self._connect()
        self._reader_task = asyncio.create_task(self._run(), name="socket-bus-reader")

    async def _connect(self) -> None:
        reader, self._writer = await asyncio.open_unix_connection(self.path, limit=LINE_LIMIT)
        self._reader = reader
        for key in self._confirmed:
            self._write({"op": "sub", "key": key})

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
            self._reader_task = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _write(self, message: dict[str, Any]) -> None:
        if self._writer is None or self._writer.is_closing():
            raise ConnectionError(f"the bus hub at {self.path} is not connected")
        self._writer.write(json.dumps(message).encode() + b"\n")

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        _check_topic(topic, pattern=False)
        self._write({"op": "pub", "topic": topic, "event": json.loads(_encode(event))})
        assert self._writer is not None
        await self._writer.drain()

    async def _listen(self, key: str) -> None:
        confirmed = self._confirmed.setdefault(key, asyncio.Event())
        self._write({"op": "sub", "key": key})
        try:
            await asyncio.wait_for(confirmed.wait(), SUBSCRIBE_TIMEOUT_SECONDS)
        except TimeoutError:
            raise ConnectionError(f"the bus hub did not confirm {key}") from None

    async def _unlisten(self, key: str) -> None:
        self._confirmed.pop(key, None)
        with contextlib.suppress(ConnectionError):
            self._write({"op": "unsub", "key": key})

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                line = await self._reader.readline()
                if not line:
                    raise ConnectionError("the bus hub closed the connection")
                message = json.loads(line)
                if message.get("op") == "subbed":
                    event = self._confirmed.get(message["key"])
                    if event is not None:
                        event.set()
                else:
                    self._deliver(message["key"], json.dumps(message["event"]))
                failures = 0
            except (ConnectionError, OSError) as exc:
                failures += 1
                if failures == 1:
                    log.warning("bus: lost the local hub (%s); reconnecting", exc)
                await asyncio.sleep(RECONNECT_PAUSE_SECONDS)
                with contextlib.suppress(OSError):
                    await self._connect()
