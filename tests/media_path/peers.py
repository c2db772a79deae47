"""Real aiortc clients talking to server Participants in-process (SDP handed over directly).

A ``Client`` publishes a moving-pattern video (VP8 or H.264, encoded by aiortc) and audio,
opens the "chat" data channel, decodes what it receives and counts frames. ``Call`` wires two
clients to two server Participants and subscribes each to the other, like the room does.
Test-only loss hooks drop a fraction of RTP on one leg.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack

from config import load_settings
from config.settings import MediaSettings
from media_server import ports
from media_server.participant import Participant

CLIENT_GATHER = ports.GatherPolicy(addresses=("127.0.0.1",))
LOOPBACK = {"listen_addresses": ["127.0.0.1"], "ice_servers": []}


def media_settings(**overrides: Any) -> MediaSettings:
    return load_settings(environ={}, overrides={"media": {**LOOPBACK, **overrides}}).media


class PatternTrack(VideoStreamTrack):
    """aiortc's paced video track with a moving gradient instead of a flat frame."""

    def __init__(self, width: int, height: int) -> None:
        super().__init__()
        self.width, self.height = width, height
        self.frames = 0
        yy, xx = np.mgrid[0:height, 0:width]
        self._base = np.stack([(xx + yy) % 256, (2 * xx) % 256, (3 * yy) % 256], -1).astype(
            np.uint8
        )

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        self.frames += 1
        img = np.roll(self._base, self.frames * 5, axis=1)
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


class DecodeErrors(logging.Handler):
    """Counts aiortc's 'failed to decode' warnings (the receiver logs and carries on)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "failed to decode" in record.getMessage():
            self.count += 1


@dataclass
class Received:
    kind: str
    frames: int = 0
    width: int = 0
    height: int = 0
    times: list[float] = field(default_factory=list)


class Client:
    def __init__(self, name: str, codec: str = "VP8", size: tuple[int, int] = (320, 240)) -> None:
        self.name = name
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.video = PatternTrack(*size)
        self.pc.addTrack(AudioStreamTrack())
        video_sender = self.pc.addTrack(self.video)
        transceiver = next(t for t in self.pc.getTransceivers() if t.sender is video_sender)
        caps = RTCRtpSender.getCapabilities("video").codecs
        transceiver.setCodecPreferences(
            [c for c in caps if c.mimeType == f"video/{codec}"]
            + [c for c in caps if c.mimeType == "video/rtx"]
        )
        self.chat = self.pc.createDataChannel("chat")
        self.chat_received: list[str] = []
        self.chat.on("message", self.chat_received.append)
        self.received: list[Received] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.pc.on("track", self._on_track)

    def _on_track(self, track: Any) -> None:
        received = Received(track.kind)
        self.received.append(received)
        self._tasks.append(asyncio.ensure_future(self._consume(track, received)))

    async def _consume(self, track: Any, received: Received) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            received.frames += 1
            received.times.append(time.monotonic())
            if track.kind == "video":
                received.width, received.height = frame.width, frame.height

    def frames(self, kind: str) -> int:
        return sum(r.frames for r in self.received if r.kind == kind)

    def video_size(self) -> tuple[int, int]:
        video = [r for r in self.received if r.kind == "video" and r.frames]
        return (video[-1].width, video[-1].height) if video else (0, 0)

    async def offer(self) -> str:
        with ports.gathering(CLIENT_GATHER):
            await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept_answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))

    async def answer(self, offer: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        with ports.gathering(CLIENT_GATHER):
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp

    def dtls(self) -> Any:
        return self.pc.getTransceivers()[0].receiver.transport

    def drop_incoming_rtp(self, fraction: float, seed: int = 1) -> Callable[[], int]:
        """Lose ``fraction`` of the RTP arriving at this client (the server->client leg)."""
        ice = self.dtls().transport
        recv = ice._recv
        rng = random.Random(seed)
        dropped = [0]

        async def lossy() -> bytes:
            while True:
                data = await recv()
                is_rtp = 127 < data[0] < 192 and not 192 <= data[1] <= 208
                if is_rtp and rng.random() < fraction:
                    dropped[0] += 1
                    continue
                return data

        ice._recv = lossy
        return lambda: dropped[0]

    def drop_outgoing_rtp(self, fraction: float, seed: int = 2) -> Callable[[], int]:
        """Lose ``fraction`` of the RTP this client sends (the client->server leg)."""
        dtls = self.dtls()
        send = dtls._send_rtp
        rng = random.Random(seed)
        dropped = [0]

        async def lossy(data: bytes) -> None:
            if not 192 <= data[1] <= 208 and rng.random() < fraction:
                dropped[0] += 1
                return
            await send(data)

        dtls._send_rtp = lossy
        return lambda: dropped[0]

    async def close(self) -> None:
        await self.pc.close()
        for task in self._tasks:
            task.cancel()


class ServerSide:
    """A server Participant whose callbacks talk straight to one Client."""

    def __init__(self, name: str, settings: MediaSettings, client: Client) -> None:
        self.client = client
        self.states: list[str] = []
        self.chats: list[Any] = []
        self.offers = 0
        self.participant = Participant(
            name,
            settings=settings,
            on_offer=self._on_offer,
            on_publication=lambda publication: None,
            on_chat=lambda participant, message: self.chats.append(message),
            on_state=lambda participant, state: self.states.append(state),
        )
        self._answering: set[asyncio.Task[None]] = set()

    async def _on_offer(self, sdp: str) -> None:
        # Like a signaling channel: deliver, and let the answer come back later.
        self.offers += 1
        task = asyncio.ensure_future(self._answer(sdp))
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    async def _answer(self, sdp: str) -> None:
        await self.participant.handle_answer(await self.client.answer(sdp))

    async def connect(self) -> str:
        answer = await self.participant.handle_offer(await self.client.offer())
        await self.client.accept_answer(answer)
        return answer


class Call:
    """Two clients, two server participants, each subscribed to the other's publications."""

    def __init__(
        self, settings: MediaSettings, codec: str = "VP8", sizes=((320, 240), (320, 240))
    ) -> None:
        self.a = ServerSide("a", settings, Client("a", codec, sizes[0]))
        self.b = ServerSide("b", settings, Client("b", codec, sizes[1]))

    async def start(self) -> None:
        await self.a.connect()
        await self.b.connect()
        for subscriber, publisher in ((self.a, self.b), (self.b, self.a)):
            for publication in publisher.participant.publications:
                await subscriber.participant.subscribe(publication)

    async def close(self) -> None:
        for side in (self.a, self.b):
            await side.participant.close()
            await side.client.close()


async def keeps_receiving(
    *clients: Client, video: int = 0, audio: int = 0, seconds: float = 30
) -> None:
    """Wait until every client decoded ``video`` more video and ``audio`` more audio frames
    than it had when called."""
    before = [(c.frames("video"), c.frames("audio")) for c in clients]
    await wait_for(
        lambda: all(
            c.frames("video") >= v + video and c.frames("audio") >= a + audio
            for c, (v, a) in zip(clients, before, strict=True)
        ),
        seconds,
        f"{video} more video and {audio} more audio frames",
    )


async def wait_for(condition: Callable[[], Any], seconds: float, what: str) -> None:
    """Poll ``condition`` every 50 ms for at most ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
