"""A load-client peer connection: raw pre-encoded streams out, metered packets in."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from media_server import ports
from media_server.transport import adopt

from . import rtpio
from .media import EncodedLoop

# aioice skips 127.0.0.1; load clients gather on it explicitly (the SFU's own policy code).
LOOPBACK = ports.GatherPolicy(addresses=("127.0.0.1",))
NEGOTIATION_SECONDS = 20.0


class LoadPeer:
    """One RTCPeerConnection of a synthetic participant.

    ``decode``: hand received packets to aiortc's receivers and decode video (proof that the
    stream is real); otherwise packets are only counted.
    """

    def __init__(self, decode: bool = False) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.meter = rtpio.TransportMeter(passthrough=decode)
        self.decoded_frames = 0
        self.decoded_size: tuple[int, int] | None = None
        self._senders: list[tuple[EncodedLoop, Any, asyncio.Future[Any]]] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._stop = asyncio.Event()
        self.outbound: list[rtpio.Outbound] = []
        if decode:
            self.pc.on("track", self._on_track)

    def publish(self, loops: list[EncodedLoop]) -> None:
        for loop in loops:
            sender = self.pc.addTrack(rtpio.IdleTrack(loop.kind))
            self._senders.append((loop, sender, rtpio.capture_parameters(sender)))

    def receive(self, kinds: tuple[str, ...] = ("audio", "video")) -> None:
        for kind in kinds:
            self.pc.addTransceiver(kind, direction="recvonly")

    def _attach(self) -> None:
        for transport in rtpio.transports(self.pc):
            transport.meter = self.meter  # Outbound registers its stream here
            if not self.meter.passthrough and transport.state == "new":
                # Only counting: the SFU's synchronous receive path, a fraction of the CPU.
                adopt(transport, rtpio.MeterSink(transport, self.meter))

    async def offer(self) -> str:
        with ports.gathering(LOOPBACK):
            await self.pc.setLocalDescription(await self.pc.createOffer())
        self._attach()
        return self.pc.localDescription.sdp

    async def accept(self, answer: str) -> None:
        self.meter.learn_sdp(answer)
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        self._attach()

    async def answer(self, offer: str) -> str:
        self.meter.learn_sdp(offer)
        await self.pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        self._attach()
        with ports.gathering(LOOPBACK):
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._attach()
        return self.pc.localDescription.sdp

    async def start_sending(self, max_seconds: float) -> None:
        """Once negotiated, replay each published loop as raw RTP (bounded by ``max_seconds``)."""
        for loop, sender, parameters in self._senders:
            params = await asyncio.wait_for(parameters, NEGOTIATION_SECONDS)
            out = rtpio.Outbound(loop, sender, params)
            self.outbound.append(out)
            self._tasks.append(asyncio.create_task(self._send(out, max_seconds)))

    async def _send(self, out: rtpio.Outbound, max_seconds: float) -> None:
        # DTLS must be up before _send_rtp works; wait for it (bounded).
        for _ in range(int(NEGOTIATION_SECONDS / 0.05)):
            if self.pc.connectionState == "connected" or self._stop.is_set():
                break
            await asyncio.sleep(0.05)
        self.meter.local_ssrc = out.ssrc
        await out.run(self._stop, max_seconds)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video":
            self._tasks.append(asyncio.create_task(self._decode(track)))

    async def _decode(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if isinstance(frame, av.VideoFrame):
                    self.decoded_frames += 1
                    self.decoded_size = (frame.width, frame.height)

    async def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.pc.close(), 10)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
