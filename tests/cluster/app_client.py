"""An aiortc "app" as a native client would be written: it asks the control plane where to
signal (POST /api/v1/join), joins there, publishes and decodes, and when its socket drops
without the session ending it asks again and rejoins by itself (the room may have moved to
another SFU worker), the way the visit page does (control/web/visit/js/session.js)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aiohttp

from tests.sfu.sfu_client import SfuClient

REJOIN_DELAYS = [0.5, 1.0, 2.0, 4.0]
STEP_SECONDS = 30.0


class AppClient:
    def __init__(self, base_url: str, body: dict[str, str]) -> None:
        self.base_url = base_url
        self.body = body  # {"pin": ...} or {"token": ...}
        self.answer: dict[str, Any] = {}
        self.client: SfuClient | None = None
        self.connections: list[SfuClient] = []
        self.rejoins = 0
        self.ended = False
        self._task: asyncio.Task[None] | None = None

    async def ask(self) -> dict[str, Any]:
        """POST /api/v1/join: where the room is now (the answer is kept)."""
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{self.base_url}/api/v1/join", json=self.body) as resp,
        ):
            data = await resp.json()
            if resp.status != 200:
                raise ConnectionError(f"join answered {resp.status}: {data}")
        self.answer = data
        self.body = {"token": data["token"]}  # a PIN's answer carries the token to rejoin with
        return data

    async def start(self) -> None:
        await self.ask()
        await self._connect()
        self._task = asyncio.get_running_loop().create_task(self._stay())

    async def _connect(self) -> None:
        client = SfuClient(self.answer["signaling_url"], self.answer["token"])
        self.client = client
        self.connections.append(client)
        await client.connect()
        await client.join()
        await client.publish()

    async def _stay(self) -> None:
        """Rejoin whenever the socket closes without `ended`."""
        while True:
            client = self.client
            assert client is not None
            await client.wait_for(lambda c=client: c.closed, float("inf"), "the socket to close")
            if client.last("ended"):
                self.ended = True
                return
            with contextlib.suppress(Exception):
                await client.close()
            for attempt in range(100):
                await asyncio.sleep(REJOIN_DELAYS[min(attempt, len(REJOIN_DELAYS) - 1)])
                try:
                    with contextlib.suppress(ConnectionError):
                        await self.ask()  # on failure: the last known address
                    await self._connect()
                    self.rejoins += 1
                    break
                except (OSError, ConnectionError, TimeoutError, aiohttp.ClientError):
                    continue

    @property
    def video_frames(self) -> int:
        return sum(c.video_frames for c in self.connections)

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [e for c in self.connections for e in c.of_type(kind)]

    async def hangup(self) -> None:
        assert self.client is not None
        await self.client.send({"type": "hangup"})

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for client in self.connections:
            with contextlib.suppress(Exception):
                await client.close()


async def decode_more(clients: list[AppClient], frames: int, seconds: float) -> float:
    """Wait until every client decoded ``frames`` more video frames; the seconds it took."""
    started = time.monotonic()
    marks = [c.video_frames for c in clients]
    deadline = started + seconds
    while not all(c.video_frames >= m + frames for c, m in zip(clients, marks, strict=True)):
        if time.monotonic() > deadline:
            got = [c.video_frames - m for c, m in zip(clients, marks, strict=True)]
            raise TimeoutError(f"decoded {got} new frames in {seconds} s, wanted {frames} each")
        await asyncio.sleep(0.05)
    return time.monotonic() - started
