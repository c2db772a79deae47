"""The transcoding fallback: one publication decoded once and encoded once per target codec.

The SFU never decodes, except here: when a member decodes none of the codecs a publisher can
send (a native app that only encodes VP8, watched on an H.264-only phone) and the publisher
cannot or will not switch, the room serves that member from a Transcoder. It is a *source*
for subscriptions, like a Publication (``attach``/``detach``, ``request_keyframe``, ``codec``,
``kind``, ``clock_rate``, ``last_sr``, ``extensions``, ``participant_id``), so a subscription
moves onto it and off it with ``switch_source`` and never knows the difference.

    publication --(its Inbound fans out to)--> Transcoder input Outbound (keyframe gate)
        --> _feed: whole frames (event loop, per packet: header parse, list append)
        --> worker thread: depayload, decode (PyAV), encode (libx264 constrained baseline
            42e01f, packetization-mode 1, zerolatency; or libvpx VP8), packetize (aiortc's)
        --> event loop (call_soon_threadsafe): RTP packets into the transcoder's own compiled
            Inbound, which fans out to every subscription of this (publication, codec).

One transcoder per (publication, target codec), shared by every subscription that needs it:
it starts with the first ``attach`` and stops with the last ``detach`` (``Transcoders`` is the
worker's registry of the running ones, so "is anything decoding in this process?" has an
answer). Decoding and encoding run on a thread of their own (PyAV releases the GIL inside
FFmpeg), so forwarding never waits for them; a frame that arrives while the thread is still
busy with an older one is dropped whole (``frames_dropped``) and the next keyframe is awaited.

Output RTP timestamps are the publisher's (both codecs run a 90 kHz clock), so the publisher's
sender reports translate unchanged and lip sync holds. A PLI from any subscriber forces a
keyframe (at most one per ``KEYFRAME_INTERVAL_SECONDS``). The bitrate follows
``target_bitrate()``: the lowest allocation of the subscriptions (``Subscription.target_bps``,
from each subscriber's downlink estimate; its REMB before that) within [MIN_BITRATE,
MAX_BITRATE]; the encoder is recreated
(a keyframe) when the target moved by over a quarter, at most every ``RETARGET_SECONDS``.
"""

from __future__ import annotations

import asyncio
import copy
import fractions
import logging
import queue
import random
import struct
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import av
from aiortc.codecs import depayload
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from media_server import codecs, rtpheader
from media_server.faults import Faults
from media_server.rtpforward import Inbound, Outbound

if TYPE_CHECKING:
    from media_server.publication import Publication
    from media_server.subscription import Subscription

log = logging.getLogger(__name__)

VIDEO_CLOCK = 90000
DEFAULT_BITRATE = 1_000_000  # bits/s until a subscriber's estimate arrives
MIN_BITRATE = 150_000
MAX_BITRATE = 2_500_000
RETARGET_SECONDS = 5.0
RETARGET_RATIO = 0.25
KEYFRAME_INTERVAL_SECONDS = 0.5
KEYFRAME_EVERY_FRAMES = 3000  # encoder GOP: keyframes come on request, not by the clock
QUEUE_FRAMES = 3  # whole frames waiting for the thread; more means it cannot keep up
FRAME_MAX_PACKETS = 2000  # a frame that never ends (lost marker) is given up after this

# What each target is encoded with (FFmpeg encoder name, options) and packetized with.
ENCODERS: dict[str, tuple[str, dict[str, str]]] = {
    "H264": (
        "libx264",
        # Constrained Baseline level 3.1 (x264's "baseline" sets constraint_set1: 42c01f,
        # which RFC 6184 matches with 42e01f), no lookahead, SPS/PPS before every IDR.
        {"profile": "baseline", "level": "3.1", "preset": "veryfast", "tune": "zerolatency"},
    ),
    "VP8": ("libvpx", {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}),
}
DECODERS = {"H264": "h264", "VP8": "libvpx"}


def targets() -> list[RTCRtpCodecParameters]:
    """The codecs a transcoder can produce: aiortc's VP8 and H.264 42e01f packetization-mode
    1 (copies; the payload type is only the transcoder's own)."""
    out = []
    for codec in codecs.local_codecs("video"):
        if codec.name == "VP8" or (
            codec.parameters.get("profile-level-id") == "42e01f"
            and codec.parameters.get("packetization-mode") == "1"
        ):
            out.append(copy.deepcopy(codec))
    return out


def packetize(codec_name: str, data: bytes, picture_id: int) -> list[bytes]:
    """RTP payloads of one encoded frame (aiortc's packetizers: RFC 6184 mode 1, RFC 7741)."""
    if codec_name == "H264":
        return H264Encoder._packetize(H264Encoder._split_bitstream(data))
    return Vp8Encoder._packetize(data, picture_id)


class _Input:
    """What the transcoder hangs on its publication: a subscription-shaped receiver whose
    Outbound passes packets unchanged (once a keyframe starts them) to ``feed``."""

    def __init__(self, transcoder: Transcoder) -> None:
        self.transcoder = transcoder
        # What the publication reads of its subscribers to cap the publisher's bitrate: the
        # transcoder asks for nothing (its own subscribers' estimates set its encoder).
        self.remb: int | None = None
        self.target_bps: int | None = None
        self.paused = False
        self.dropped: dict[str, int] = {}
        self.out = Outbound(2, self._prepare, self.dropped, transcoder.faults)
        self.out.set_route(transcoder._feed, None)

    def _prepare(self, data: bytes) -> bool:
        source = self.transcoder.source
        header = rtpheader.parse(data)
        if not codecs.starts_keyframe(source.codec.name, data[header.payload_offset :]):
            self.dropped["awaiting_keyframe"] = self.dropped.get("awaiting_keyframe", 0) + 1
            source.request_keyframe()
            return False
        out = self.out
        out.ssrc, out.payload_type = header.ssrc, header.payload_type
        out.seq_offset = out.ts_offset = 0
        out.ready = True
        return True

    def on_source_codec(self) -> None:
        self.out.ready = False

    def rebase(self) -> None:
        self.out.ready = False

    def on_source_sender_report(self, ntp: int, rtp_timestamp: int) -> None:
        # Our timestamps are the publisher's: its report holds for our stream as it is.
        for subscription in list(self.transcoder.subscriptions):
            subscription.on_source_sender_report(ntp, rtp_timestamp)


class Transcoder:
    """Decodes ``source`` once and encodes it as ``target`` for its subscriptions.

    Counters (plain ints, read by metrics): ``frames_in`` (whole frames handed to the thread),
    ``frames_decoded``, ``frames_encoded``, ``keyframes_encoded``, ``frames_dropped`` (thread
    busy, broken frames), ``decode_errors``, ``cpu_seconds`` (the thread's CPU time).
    Raises nothing into the event loop: failures are counted in ``faults`` (logged once).
    """

    kind = "video"
    clock_rate = VIDEO_CLOCK

    def __init__(
        self,
        source: Publication,
        target: RTCRtpCodecParameters,
        *,
        faults: Faults,
        on_started: Callable[[Transcoder], None] = lambda t: None,
        on_stopped: Callable[[Transcoder], None] = lambda t: None,
    ) -> None:
        if target.name not in ENCODERS:
            raise ValueError(f"cannot transcode to {target.name}")
        self.source = source
        self.codec = target
        self.faults = faults
        self.participant_id = source.participant_id  # the publisher's msid stream: lip sync
        self.id = f"{source.id}>{codecs.describe(target)}"
        self.extensions: dict[str, int] = {}  # our packets carry no header extensions
        self.ssrc = random.randrange(1, 1 << 32)
        self.subscriptions: list[Subscription] = []
        self.inbound = Inbound(VIDEO_CLOCK, target.payloadType, faults=faults)
        self.running = False
        self.started_at: float | None = None
        self._on_started = on_started
        self._on_stopped = on_stopped
        self._input = _Input(self)
        self._seq = random.randrange(0x8000)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: queue.Queue[tuple[str, list[bytes], int] | None] = queue.Queue(QUEUE_FRAMES)
        self._thread: threading.Thread | None = None
        # The frame being gathered: (timestamp, next sequence number, payloads).
        self._frame: tuple[int, int, list[bytes]] | None = None
        self._need_keyframe = True
        self._force_keyframe = False
        self._last_keyframe_request = -1e9

        self.frames_in = 0
        self.frames_decoded = 0
        self.frames_encoded = 0
        self.keyframes_encoded = 0
        self.frames_dropped = 0
        self.decode_errors = 0
        self.cpu_seconds = 0.0
        self.bitrate = DEFAULT_BITRATE

    # ---- the source interface of a subscription ------------------------------------------

    @property
    def codec_name(self) -> str:
        return codecs.describe(self.codec)

    @property
    def last_sr(self) -> tuple[int, int] | None:
        return self.source.last_sr

    def attach(self, subscription: Subscription) -> None:
        if subscription not in self.subscriptions:
            self.subscriptions.append(subscription)
            self.inbound.outbounds.append(subscription.out)
        if not self.running:
            self._start()

    def detach(self, subscription: Subscription) -> None:
        if subscription in self.subscriptions:
            self.subscriptions.remove(subscription)
            self.inbound.outbounds.remove(subscription.out)
        if not self.subscriptions and self.running:
            self.stop()

    def request_keyframe(self) -> bool:
        """A subscriber lost the picture: the next encoded frame is a keyframe (throttled)."""
        now = time.monotonic()
        if now - self._last_keyframe_request < KEYFRAME_INTERVAL_SECONDS:
            return False
        self._last_keyframe_request = now
        self._force_keyframe = True
        return True

    def keyframe_arrived(self) -> None:
        """A subscription saw our keyframe: the next request may force another at once."""
        self._last_keyframe_request = -1e9

    def cap_changed(self) -> None:
        """A subscriber's allocation moved: nothing to tell anyone now, the next frame's
        ``target_bitrate`` reads it (the publisher's cap is its own subscribers' business)."""

    def target_bitrate(self) -> int:
        """Bits/s to encode at: the lowest share the subscribers' allocators give this stream
        (``Subscription.target_bps``; their REMB before an allocator has spoken), paused
        subscribers aside, within [MIN_BITRATE, MAX_BITRATE]."""
        estimates = [
            s.target_bps if s.target_bps is not None else s.remb
            for s in self.subscriptions
            if not s.paused
        ]
        estimates = [e for e in estimates if e]
        wanted = min(estimates) if estimates else DEFAULT_BITRATE
        return max(MIN_BITRATE, min(MAX_BITRATE, wanted))

    # ---- lifecycle --------------------------------------------------------------------------

    def _start(self) -> None:
        self.running = True
        self.started_at = time.monotonic()
        self._loop = asyncio.get_running_loop()
        self._need_keyframe = True
        self._frame = None
        self._input.out.ready = False
        self._thread = threading.Thread(target=self._run, name=f"transcode {self.id}", daemon=True)
        self._thread.start()
        self.source.attach(self._input)  # type: ignore[arg-type]  # subscription-shaped
        self.source.request_keyframe()
        self._on_started(self)
        log.info("transcoder %s started", self.id)

    def stop(self) -> None:
        """Stop decoding (the thread ends after the frame it is on)."""
        if not self.running:
            return
        self.running = False
        self.source.detach(self._input)  # type: ignore[arg-type]
        _put_latest(self._queue, None)
        log.info(
            "transcoder %s stopped: %d frames decoded, %d encoded, %.1f s CPU",
            self.id, self.frames_decoded, self.frames_encoded, self.cpu_seconds,
        )  # fmt: skip
        self._on_stopped(self)

    @property
    def thread_alive(self) -> bool:
        """Is the worker thread still on a frame (it may be for one after ``stop``)?"""
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float = 5.0) -> None:
        """Wait for the worker thread to end (tests, shutdown)."""
        if self._thread is not None:
            self._thread.join(timeout)

    # ---- event loop side: frames in, packets out ---------------------------------------------

    def _feed(self, packet: bytes) -> None:
        """One packet of the publication (from the input Outbound): gather whole frames."""
        header = rtpheader.parse(packet)
        frame = self._frame
        if frame is not None and (
            header.timestamp != frame[0] or header.sequence_number != frame[1]
        ):
            self._broken()  # a lost packet or a frame without its marker
            frame = None
        if frame is None:
            payload = packet[header.payload_offset :]
            if self._need_keyframe and not codecs.starts_keyframe(self.source.codec.name, payload):
                self.source.request_keyframe()  # again until one comes (it throttles itself)
                return
            frame = self._frame = (header.timestamp, header.sequence_number, [])
        frame[2].append(packet[header.payload_offset :])
        self._frame = (frame[0], (header.sequence_number + 1) & 0xFFFF, frame[2])
        if header.marker:
            self._frame = None
            self._need_keyframe = False
            self.frames_in += 1
            if not _put_latest(self._queue, (self.source.codec.name, frame[2], frame[0])):
                self.frames_dropped += 1  # the thread fell behind: start again at a keyframe
                self._need_keyframe = True
                self.source.request_keyframe()
        elif len(frame[2]) > FRAME_MAX_PACKETS:
            self._broken()

    def _broken(self) -> None:
        self._frame = None
        self.frames_dropped += 1
        self._need_keyframe = True
        self.source.request_keyframe()

    def _emit(self, payloads: list[bytes], timestamp: int) -> None:
        """Encoded payloads of one frame: RTP packets into our Inbound (the fan-out)."""
        if not self.running:
            return
        last = len(payloads) - 1
        for i, payload in enumerate(payloads):
            second = (0x80 if i == last else 0) | self.codec.payloadType
            head = struct.pack("!BBHII", 0x80, second, self._seq, timestamp, self.ssrc)
            self._seq = (self._seq + 1) & 0xFFFF
            self.inbound.receive(head + payload)

    def _upstream_keyframe(self) -> None:
        self._need_keyframe = True
        self.source.request_keyframe()

    # ---- the worker thread ----------------------------------------------------------------

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        decoder: Any = None
        decoder_name = ""
        encoder: Any = None
        retargeted_at = 0.0
        picture_id = random.randrange(1 << 15)
        first_ts: int | None = None
        last_pts = -1
        name, options = ENCODERS[self.codec.name]
        while True:
            item = self._queue.get()
            if item is None:
                break
            started = time.thread_time()
            codec_name, payloads, timestamp = item
            try:
                if decoder is None or decoder_name != codec_name:
                    decoder, decoder_name = (
                        av.CodecContext.create(DECODERS[codec_name], "r"),
                        codec_name,
                    )
                data = b"".join(depayload(self.source.codec, p) for p in payloads)
                try:
                    frames = decoder.decode(av.Packet(data))
                except av.error.FFmpegError:
                    self.decode_errors += 1
                    loop.call_soon_threadsafe(self._upstream_keyframe)
                    continue
                for frame in frames:
                    self.frames_decoded += 1
                    if first_ts is None:
                        first_ts = timestamp
                    pts = max(last_pts + 1, (timestamp - first_ts) & 0xFFFFFFFF)
                    last_pts = pts
                    wanted = self.target_bitrate()
                    now = time.monotonic()
                    if encoder is not None and (
                        (frame.width, frame.height) != (encoder.width, encoder.height)
                        or (
                            abs(wanted - encoder.bit_rate) > RETARGET_RATIO * encoder.bit_rate
                            and now - retargeted_at > RETARGET_SECONDS
                        )
                    ):
                        encoder = None
                    if encoder is None:
                        encoder = _encoder(name, options, frame.width, frame.height, wanted)
                        self.bitrate = wanted
                        retargeted_at = now
                    keyframe = self._force_keyframe
                    self._force_keyframe = False
                    frame = frame.reformat(format="yuv420p")
                    frame.pts, frame.time_base = pts, fractions.Fraction(1, VIDEO_CLOCK)
                    frame.pict_type = (
                        av.video.frame.PictureType.I
                        if keyframe
                        else av.video.frame.PictureType.NONE
                    )
                    encoded = encoder.encode(frame)
                    out = b"".join(bytes(p) for p in encoded)
                    if not out:
                        continue
                    self.frames_encoded += 1
                    if any(p.is_keyframe for p in encoded):
                        self.keyframes_encoded += 1
                    chunks = packetize(self.codec.name, out, picture_id)
                    picture_id = (picture_id + 1) % (1 << 15)
                    loop.call_soon_threadsafe(self._emit, chunks, timestamp)
            except Exception as exc:  # counted and logged once; the next keyframe starts over
                self.faults.record("transcoder", exc)
                decoder = None
                loop.call_soon_threadsafe(self._upstream_keyframe)
            finally:
                self.cpu_seconds += time.thread_time() - started


def _encoder(name: str, options: dict[str, str], width: int, height: int, bitrate: int) -> Any:
    encoder = av.CodecContext.create(name, "w")
    encoder.width, encoder.height = width, height
    encoder.pix_fmt = "yuv420p"
    encoder.time_base = fractions.Fraction(1, VIDEO_CLOCK)
    encoder.framerate = fractions.Fraction(30, 1)
    encoder.bit_rate = bitrate
    encoder.gop_size = KEYFRAME_EVERY_FRAMES
    encoder.options = dict(options)
    return encoder


def _put_latest(frames: queue.Queue[Any], item: Any) -> bool:
    """Queue a frame without waiting (False: the queue is full and the frame is dropped); the
    stop sentinel None always gets in, ahead of anything that waits."""
    try:
        frames.put_nowait(item)
        return True
    except queue.Full:
        if item is not None:
            return False
        while True:
            try:
                frames.get_nowait()
            except queue.Empty:
                break
        frames.put_nowait(None)
        return True


class Transcoders:
    """The worker's running transcoders, one per (publication, target codec).

    ``get`` returns the running one or starts a new one (None when ``max_running`` run
    already). A transcoder leaves the registry when it stops (its last subscription left);
    ``started`` and the folded counters of stopped ones (``retired``) feed the metrics. A
    stopped one's thread still ends the frame it is on, so its counters are folded once the
    thread has ended, and counted live until then (folded at stop, that frame was lost).
    """

    def __init__(self, max_running: int, faults: Faults | None = None) -> None:
        self.max_running = max_running
        self.running: dict[tuple[str, str], Transcoder] = {}
        self.started = 0
        self.retired: dict[str, float] = {}
        self._stopping: list[Transcoder] = []  # stopped, their thread maybe still on a frame
        self.faults = faults or Faults("transcoders")

    @staticmethod
    def key(publication: Publication, target: RTCRtpCodecParameters) -> tuple[str, str]:
        return publication.id, codecs.describe(target)

    def get(self, publication: Publication, target: RTCRtpCodecParameters) -> Transcoder | None:
        """The transcoder of (publication, target): the running one, or a new one that joins
        the registry when its first subscription attaches; None when ``max_running`` run."""
        key = self.key(publication, target)
        found = self.running.get(key)
        if found is not None and found.source is publication:
            return found
        if len(self.running) >= self.max_running:
            return None
        return Transcoder(
            publication, target, faults=self.faults, on_started=self._started,
            on_stopped=self._stopped,
        )  # fmt: skip

    def _started(self, transcoder: Transcoder) -> None:
        self.running[self.key(transcoder.source, transcoder.codec)] = transcoder
        self.started += 1

    def _stopped(self, transcoder: Transcoder) -> None:
        key = self.key(transcoder.source, transcoder.codec)
        if self.running.get(key) is transcoder:
            del self.running[key]
        self._stopping.append(transcoder)

    def totals(self) -> dict[str, float]:
        """Counters of every transcoder this worker ran (running ones included)."""
        for transcoder in [t for t in self._stopping if not t.thread_alive]:
            self._stopping.remove(transcoder)
            _add(self.retired, counters(transcoder))
        out = dict(self.retired)
        for transcoder in [*self.running.values(), *self._stopping]:
            _add(out, counters(transcoder))
        return out

    def stop_all(self) -> None:
        for transcoder in list(self.running.values()):
            transcoder.stop()


def _add(into: dict[str, float], values: dict[str, float]) -> None:
    for name, value in values.items():
        into[name] = into.get(name, 0) + value


def counters(transcoder: Transcoder) -> dict[str, float]:
    return {
        "frames_decoded": transcoder.frames_decoded,
        "frames_encoded": transcoder.frames_encoded,
        "keyframes_encoded": transcoder.keyframes_encoded,
        "frames_dropped": transcoder.frames_dropped,
        "decode_errors": transcoder.decode_errors,
        "cpu_seconds": transcoder.cpu_seconds,
    }
