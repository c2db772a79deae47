"""The test client itself: a close code it was sent is never lost (tests rely on 4009 & co)."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestServer
from aiortc import RTCConfiguration, RTCPeerConnection

from media_server import ports

from .sfu_client import Closed, SfuClient

LOOPBACK = ports.GatherPolicy(addresses=("127.0.0.1",))


async def test_a_close_that_cuts_the_clients_answer_short_keeps_its_code() -> None:
    """A server that closes TCP right behind its close frame, while the client answers its
    offer: the answer meets a closing transport, and the client still reports the code."""
    offerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    offerer.addTransceiver("audio", direction="sendonly")
    with ports.gathering(LOOPBACK):
        await offerer.setLocalDescription(await offerer.createOffer())

    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"type": "offer", "sdp": offerer.localDescription.sdp})
        # Closing while another task waits in receive(): aiohttp then drops TCP at once.
        reading = asyncio.ensure_future(ws.receive())
        await asyncio.sleep(0)  # the reader is waiting
        await ws.close(code=4009, message=b"replaced by a newer connection")
        await reading
        return ws

    app = web.Application()
    app.router.add_get("/ws", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    client = SfuClient(str(server.make_url("/ws")), "token")
    client.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        await client.connect()
        await client.wait_for(lambda: client.closed, 20, "the close")
        assert client.closed == Closed(4009, "replaced by a newer connection")
    finally:
        await client.close()
        await offerer.close()
        await server.close()
