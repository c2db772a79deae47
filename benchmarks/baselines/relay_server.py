"""The baseline: what a Python developer would write first - aiortc with MediaRelay.

Each participant of a 1:1 room publishes on one peer connection and receives the other one's
tracks on a second. The received tracks are relayed with ``aiortc.contrib.media.MediaRelay``,
which decodes every incoming frame once and lets aiortc re-encode it for each receiver.

    python -m benchmarks.baselines.relay_server --port 8765

Signaling (JSON): POST /rooms/{room}/{role}/publish {"sdp": offer} -> {"sdp": answer};
POST /rooms/{room}/{role}/subscribe {"sdp": recvonly offer} -> {"sdp": answer} once the other
participant has published (waits up to 20 s). The only change from a tutorial server: ICE
gathers on 127.0.0.1 (aioice skips loopback; the benchmark runs on loopback only).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from dataclasses import dataclass, field

import uvloop
from aiohttp import web
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay

from media_server import ports

LOOPBACK = ports.GatherPolicy(addresses=("127.0.0.1",))
WAIT_SECONDS = 20.0


@dataclass
class Room:
    tracks: dict[str, list[MediaStreamTrack]] = field(default_factory=dict)
    published: dict[str, asyncio.Event] = field(default_factory=dict)

    def event(self, role: str) -> asyncio.Event:
        return self.published.setdefault(role, asyncio.Event())


rooms: dict[str, Room] = {}
relay = MediaRelay()
pcs: set[RTCPeerConnection] = set()


async def _answer(pc: RTCPeerConnection, sdp: str) -> web.Response:
    await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
    with ports.gathering(LOOPBACK):
        await pc.setLocalDescription(await pc.createAnswer())
    return web.json_response({"sdp": pc.localDescription.sdp})


def _new_pc() -> RTCPeerConnection:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pcs.add(pc)

    @pc.on("connectionstatechange")
    async def _changed() -> None:
        if pc.connectionState in ("failed", "closed"):
            pcs.discard(pc)
            await pc.close()

    return pc


async def publish(request: web.Request) -> web.Response:
    room = rooms.setdefault(request.match_info["room"], Room())
    role = request.match_info["role"]
    pc = _new_pc()
    tracks = room.tracks.setdefault(role, [])

    @pc.on("track")
    def _track(track: MediaStreamTrack) -> None:
        tracks.append(track)
        if len(tracks) == 2:
            room.event(role).set()

    return await _answer(pc, (await request.json())["sdp"])


async def subscribe(request: web.Request) -> web.Response:
    room = rooms.setdefault(request.match_info["room"], Room())
    other = "host" if request.match_info["role"] == "guest" else "guest"
    try:
        await asyncio.wait_for(room.event(other).wait(), WAIT_SECONDS)
    except TimeoutError:
        raise web.HTTPConflict(text="the other participant has not published") from None
    pc = _new_pc()
    for track in room.tracks[other]:
        pc.addTrack(relay.subscribe(track))
    return await _answer(pc, (await request.json())["sdp"])


async def _run(port: int) -> None:
    app = web.Application()
    app.router.add_post("/rooms/{room}/{role}/publish", publish)
    app.router.add_post("/rooms/{room}/{role}/subscribe", subscribe)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"relay baseline on http://127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    for pc in list(pcs):
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pc.close(), 5)
    await runner.cleanup()


def main() -> None:
    p = argparse.ArgumentParser(description="aiortc MediaRelay baseline (decode + re-encode)")
    p.add_argument("--port", type=int, required=True)
    uvloop.run(_run(p.parse_args().port))


if __name__ == "__main__":
    main()
