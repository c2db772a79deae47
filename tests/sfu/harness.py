"""The SFU under test: the signaling handler in a small aiohttp app on loopback.

``start_sfu`` serves GET /ws with a real Worker (real aiortc participants) and an authorizer
that knows the tokens the test issued with ``sfu.token(room, role, name)``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from config import Settings
from media_server.signaling import websocket_handler
from media_server.worker import Worker

from .sfu_client import SfuClient

LOOPBACK_MEDIA = {"listen_addresses": ["127.0.0.1"], "ice_servers": []}


@dataclass(frozen=True)
class Grant:
    room_id: str
    name: str
    role: str
    appointment_id: str = "appt"
    expires_at: float = 0.0
    device: str | None = None  # set on grants a PIN join issued


class TokenRefused(Exception):
    reason = "invalid"


@dataclass
class Sfu:
    server: TestServer
    worker: Worker
    settings: Settings
    grants: dict[str, Grant] = field(default_factory=dict)
    clients: list[SfuClient] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        return str(self.server.make_url("/ws"))

    def token(self, room_id: str, role: str, name: str, device: str | None = None) -> str:
        """A token for the grant; ``device``: as a PIN join issues it (control.join)."""
        token = secrets.token_urlsafe(16)
        self.grants[token] = Grant(room_id, name, role, device=device)
        return token

    async def authorize(self, token: str) -> Grant:
        grant = self.grants.get(token)
        if grant is None:
            raise TokenRefused("unknown token")
        return grant

    async def client(self, token: str, **options: Any) -> SfuClient:
        client = SfuClient(self.ws_url, token, **options)
        self.clients.append(client)
        await client.connect()
        return client


async def start_sfu(settings: Settings) -> Sfu:
    worker = Worker(settings.media)
    app = web.Application()
    sfu = Sfu(server=None, worker=worker, settings=settings)  # type: ignore[arg-type]
    app.router.add_get("/ws", websocket_handler(worker, sfu.authorize))
    sfu.server = TestServer(app, host="127.0.0.1")
    await sfu.server.start_server()
    return sfu


async def pair(
    sfu: Sfu,
    room: str = "room-1",
    guest: dict[str, Any] | None = None,
    host: dict[str, Any] | None = None,
) -> tuple[SfuClient, SfuClient]:
    """A guest and a host joined and publishing in one room (options go to SfuClient)."""
    g = await sfu.client(sfu.token(room, "guest", "Pat Guest"), **(guest or {}))
    await g.join()
    await g.publish()
    h = await sfu.client(sfu.token(room, "host", "Dr Host"), **(host or {}))
    await h.join()
    await h.publish()
    return g, h


async def both_decode(a: SfuClient, b: SfuClient, frames: int = 15, seconds: float = 60) -> None:
    """Each client decodes ``frames`` more video frames from the other."""
    start_a, start_b = a.video_frames, b.video_frames
    await a.wait_for(lambda: a.video_frames >= start_a + frames, seconds, "video at the first")
    await b.wait_for(lambda: b.video_frames >= start_b + frames, seconds, "video at the second")
