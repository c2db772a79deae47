"""A real signaling client for the SFU: aiohttp WebSocket + aiortc peer connection.

It joins with a token, publishes a synthetic moving-pattern video track and a sine audio track,
opens the `chat` data channel, answers the server's renegotiation offers, decodes whatever it
receives (counting frames and remembering their size) and records every server event. Reusable
by benchmarks: nothing here depends on pytest.

    client = SfuClient(ws_url, token, name="guest")
    await client.connect(); await client.join(); await client.publish()
    await client.wait_for(lambda: client.video_frames >= 10, 20, "video")
"""

from __future__ import annotations

import asyncio
import fractions
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from media_server import ports

VIDEO_CLOCK = 90000
AUDIO_RATE = 48000
AUDIO_SAMPLES = 960  # 20 ms


class PacedTrack(MediaStreamTrack):
    """Frames at a fixed rate on the wall clock (like aiortc's own test tracks)."""

    def __init__(self, rate: float, clock: int) -> None:
        super().__init__()
        self._period = 1.0 / rate
        self._clock = clock
        self._start: float | None = None
        self._index = 0

    async def _tick(self) -> tuple[int, int]:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._index += 1
            await asyncio.sleep(
                max(0.0, self._start + self._index * self._period - time.monotonic())
            )
        return self._index, int(self._index * self._period * self._clock)


class PatternVideoTrack(PacedTrack):
    """A moving gradient with a bright square sweeping across: every frame differs."""

    kind = "video"

    def __init__(self, width: int = 320, height: int = 240, fps: float = 15.0) -> None:
        super().__init__(fps, VIDEO_CLOCK)
        self.width, self.height = width, height
        x = np.arange(width, dtype=np.uint16)
        y = np.arange(height, dtype=np.uint16)[:, None]
        self._base = np.stack(
            [(x + y) % 256, (2 * x) % 256 + 0 * y, (3 * y) % 256 + 0 * x], axis=-1
        ).astype(np.uint8)

    async def recv(self) -> av.VideoFrame:
        index, pts = await self._tick()
        img = np.roll(self._base, index * 4, axis=1)
        side = max(8, self.height // 6)
        left = (index * 6) % max(1, self.width - side)
        top = (self.height - side) // 2
        img[top : top + side, left : left + side] = 255
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = pts
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return frame


class SineAudioTrack(PacedTrack):
    kind = "audio"

    def __init__(self, hz: float = 440.0) -> None:
        super().__init__(AUDIO_RATE / AUDIO_SAMPLES, AUDIO_RATE)
        self._hz = hz

    async def recv(self) -> av.AudioFrame:
        index, pts = await self._tick()
        t = (np.arange(AUDIO_SAMPLES) + index * AUDIO_SAMPLES) / AUDIO_RATE
        samples = (np.sin(2 * math.pi * self._hz * t) * 8000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = index * AUDIO_SAMPLES
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        return frame


@dataclass
class Received:
    """What one remote track delivered."""

    kind: str
    frames: int = 0
    width: int = 0
    height: int = 0
    ended: bool = False


@dataclass
class Closed:
    code: int | None
    reason: str


@dataclass
class SfuClient:
    ws_url: str
    token: str
    video_codec: str | None = None  # "VP8" / "H264" to force what this client sends
    width: int = 320
    height: int = 240
    fps: float = 15.0
    # aioice skips 127.0.0.1: gather there explicitly so a loopback-only namespace works.
    gather_addresses: tuple[str, ...] = ("127.0.0.1",)
    events: list[dict[str, Any]] = field(default_factory=list)
    chats: list[dict[str, Any]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    closed: Closed | None = None
    pc: RTCPeerConnection | None = None
    # Rewrites each answer to a server offer before it is sent (e.g. to refuse a section as a
    # device that cannot decode it would).
    munge_answer: Callable[[str], str] | None = None
    munge_offer: Callable[[str], str] | None = None  # the same for the client's one offer

    def __post_init__(self) -> None:
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reader: asyncio.Task[None] | None = None
        self.channel: Any = None

    # ---- signaling -------------------------------------------------------------------------

    async def connect(self) -> None:
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(self.ws_url, heartbeat=None, autoping=True)
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def send(self, message: dict[str, Any]) -> None:
        assert self._ws is not None
        await self._ws.send_str(json.dumps(message))

    async def send_raw(self, data: str | bytes) -> None:
        assert self._ws is not None
        if isinstance(data, bytes):
            await self._ws.send_bytes(data)
        else:
            await self._ws.send_str(data)

    async def join(
        self, token: str | None = None, seconds: float = 20.0, **extra: Any
    ) -> dict[str, Any]:
        """Send `join`; return `joined` (raises if the server closes instead)."""
        await self.send({"type": "join", "token": token or self.token, "client": "test", **extra})
        await self.wait_for(lambda: self.last("joined") or self.closed, seconds, "joined")
        if self.closed is not None:
            raise ConnectionError(f"closed {self.closed.code}: {self.closed.reason}")
        return self.last("joined") or {}

    async def _read(self) -> None:
        ws = self._ws
        assert ws is not None
        code, reason = None, ""
        try:
            while True:
                msg = await ws.receive()
                if msg.type is aiohttp.WSMsgType.CLOSE:
                    code, reason = msg.data, msg.extra or ""
                    break
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    if msg.type in (
                        aiohttp.WSMsgType.CLOSING,
                        aiohttp.WSMsgType.CLOSED,
                        aiohttp.WSMsgType.ERROR,
                    ):
                        break
                    continue
                data = json.loads(msg.data)
                try:
                    await self._handle(data)
                except ConnectionError:
                    # The server closed while this client was answering it (a replaced
                    # connection answering an offer): its close frame, if it sent one, is
                    # already queued behind; read on rather than end here without its code.
                    pass
                await self._record(data)
        finally:
            self.closed = Closed(code if code is not None else ws.close_code, reason)
            await self._notify()

    async def _handle(self, data: dict[str, Any]) -> None:
        if data["type"] == "offer":
            await self._answer(data["sdp"])
        elif data["type"] == "answer":
            assert self.pc is not None
            await self.pc.setRemoteDescription(RTCSessionDescription(data["sdp"], "answer"))
        elif data["type"] == "chat":
            self.chats.append({**data, "via": "ws"})

    async def _record(self, data: dict[str, Any]) -> None:
        self.events.append(data)
        await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    def last(self, kind: str) -> dict[str, Any] | None:
        found = self.of_type(kind)
        return found[-1] if found else None

    async def wait_for(self, condition: Callable[[], Any], seconds: float, what: str) -> Any:
        """Wait until condition() is truthy; bounded by ``seconds``."""
        deadline = time.monotonic() + seconds
        async with self._changed:
            while not (result := condition()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"timed out after {seconds} s waiting for {what}")
                try:
                    # Also wake up periodically: frame counters change without a notify.
                    await asyncio.wait_for(self._changed.wait(), min(remaining, 0.2))
                except TimeoutError:
                    pass
        return result

    # ---- media -----------------------------------------------------------------------------

    async def publish(self, video: bool = True, audio: bool = True) -> None:
        """Create the peer connection, publish, open the chat channel and send the offer."""
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc = pc
        pc.on("track", self._on_track)
        if audio:
            pc.addTrack(SineAudioTrack())
        if video:
            pc.addTrack(PatternVideoTrack(self.width, self.height, self.fps))
            if self.video_codec:
                prefer(pc, self.video_codec)
        self.channel = pc.createDataChannel("chat")

        @self.channel.on("message")
        def _on_message(raw: str) -> None:
            self.chats.append({**json.loads(raw), "via": "datachannel"})
            asyncio.ensure_future(self._notify())

        with ports.gathering(ports.GatherPolicy(addresses=self.gather_addresses)):
            await pc.setLocalDescription(await pc.createOffer())
        offer = pc.localDescription.sdp
        if self.munge_offer is not None:
            offer = self.munge_offer(offer)
        await self.send({"type": "offer", "sdp": offer})

    async def _answer(self, sdp: str) -> None:
        assert self.pc is not None
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        with ports.gathering(ports.GatherPolicy(addresses=self.gather_addresses)):
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        answer = self.pc.localDescription.sdp
        if self.munge_answer is not None:
            answer = self.munge_answer(answer)
        await self.send({"type": "answer", "sdp": answer})

    def _on_track(self, track: MediaStreamTrack) -> None:
        stats = Received(track.kind)
        self.received.append(stats)
        task = asyncio.get_running_loop().create_task(self._consume(track, stats))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _consume(self, track: MediaStreamTrack, stats: Received) -> None:
        try:
            while True:
                frame = await track.recv()
                stats.frames += 1
                if isinstance(frame, av.VideoFrame):
                    stats.width, stats.height = frame.width, frame.height
        except MediaStreamError:
            stats.ended = True

    @property
    def video_frames(self) -> int:
        return sum(r.frames for r in self.received if r.kind == "video")

    @property
    def audio_frames(self) -> int:
        return sum(r.frames for r in self.received if r.kind == "audio")

    def video_size(self) -> tuple[int, int] | None:
        for r in reversed(self.received):
            if r.kind == "video" and r.frames:
                return r.width, r.height
        return None

    def chat(self, text: str) -> None:
        """Send chat on the data channel (the normal path)."""
        assert self.channel is not None and self.channel.readyState == "open"
        self.channel.send(json.dumps({"text": text}))

    async def close(self) -> None:
        """Close everything this client opened (bounded)."""
        if self.pc is not None:
            await asyncio.wait_for(self.pc.close(), 10)
        if self._ws is not None and not self._ws.closed:
            await asyncio.wait_for(self._ws.close(), 10)
        if self._reader is not None:
            await asyncio.wait_for(asyncio.gather(self._reader, return_exceptions=True), 10)
        for task in list(self._tasks):
            task.cancel()
        if self._http is not None:
            await self._http.close()


def prefer(pc: RTCPeerConnection, codec: str) -> None:
    """Make the video transceiver send only ``codec`` (plus its RTX)."""
    wanted = {f"video/{codec}".lower(), "video/rtx"}
    codecs = [
        c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType.lower() in wanted
    ]
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "video":
            transceiver.setCodecPreferences(codecs)
