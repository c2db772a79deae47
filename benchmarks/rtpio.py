"""RTP in and out of a load client without aiortc's encoder, decoder or jitter buffer.

Outbound: a pre-encoded loop (media.py) is sent as raw RTP on an aiortc sender's DTLS transport
(the SFU's own compiled ``transport.leg_of`` Leg protects and sends), with its own sequence numbers, timestamps, VP8 picture ids,
a 1024-packet history answering NACKs, and counters. The aiortc sender keeps an idle track so
its RTCP loop and SSRC stay in place.

Inbound: ``MeteredDtlsTransport`` replaces aiortc's DTLS transport in the load-client process.
Peers that only count adopt the SFU's own fast path (``media_server.transport.adopt`` with a
``MeterSink``: decrypt and meter synchronously in the socket callback), so a load client costs
about what the SFU costs per packet and the load generator is not the first thing to saturate.
After SRTP decryption it counts packets per SSRC (loss from sequence gaps, NACKs sent at once
for a gap, late packets counted as recovered), matches video payloads against what this process
sent to measure forwarding latency, and hands packets to aiortc's receivers (and so to a
decoder) only for the few peers that prove the stream is real.

Latency: a forwarding SFU does not change RTP payloads, and every VP8 payload carries a 15-bit
picture id this process writes, so the first 20 payload bytes identify a packet for ~18
minutes. Sender and receiver live in one process (both ends of a room), so latency is
one-monotonic-clock arrival minus send time of the same payload. A transcoding server (the
relay baseline) produces new payloads: no latency figure for it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import aiortc.rtcpeerconnection
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpSendParameters
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import (
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
)

from media_server.codecs import starts_keyframe
from media_server.faults import Faults
from media_server.transport import leg_of

from .media import EncodedLoop

log = logging.getLogger(__name__)

HISTORY = 1024
# Seconds between keyframe requests obliged; one in between is ignored. libwebrtc's
# EncoderRtcpFeedback (kMinKeyframeSendIntervalMs = 300, counted from the last request it
# obliged, not from the last keyframe): a PLI soon after the loop's own keyframe is answered.
KEYFRAME_MIN_INTERVAL = 0.3
LATENCY_KEY_BYTES = 20
SENT_MEMORY_SECONDS = 3.0
MAX_LATENCY_SAMPLES = 200_000
MAX_MISSING = 2000
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"


class SentPayloads:
    """Send time of recent video payloads of this process, by their first bytes."""

    def __init__(self) -> None:
        self.at: dict[bytes, float] = {}
        self._order: collections.deque[tuple[float, bytes]] = collections.deque()

    def add(self, key: bytes, now: float) -> None:
        self.at[key] = now
        self._order.append((now, key))
        horizon = now - SENT_MEMORY_SECONDS
        while self._order and self._order[0][0] < horizon:
            self.at.pop(self._order.popleft()[1], None)


SENT = SentPayloads()


class IdleTrack(MediaStreamTrack):
    """Keeps an aiortc sender (SSRC, RTCP loop) alive while RTP goes out raw."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._stopped = asyncio.Event()

    async def recv(self) -> Any:
        await self._stopped.wait()
        raise MediaStreamError

    def stop(self) -> None:
        super().stop()
        self._stopped.set()


def capture_parameters(sender: RTCRtpSender) -> asyncio.Future[RTCRtpSendParameters]:
    """A future of the parameters aiortc negotiates for ``sender`` (payload type, mid id)."""
    future: asyncio.Future[RTCRtpSendParameters] = asyncio.get_running_loop().create_future()
    original = sender.send

    async def send(parameters: RTCRtpSendParameters) -> None:
        if not future.done():
            future.set_result(parameters)
        await original(parameters)

    sender.send = send  # type: ignore[method-assign]
    return future


@dataclass
class KeyframeRequests:
    """PLIs to a replayed loop, obliged as libwebrtc's EncoderRtcpFeedback obliges them: a
    request is answered with a keyframe unless one was answered less than
    ``KEYFRAME_MIN_INTERVAL`` seconds ago (then it is dropped); the loop's own keyframe does not
    count, so a subscriber joining just after it gets its keyframe at once."""

    wanted: bool = False  # a PLI came since the last frame
    last_obliged: float = float("-inf")  # monotonic seconds

    def take(self, now: float) -> bool:
        """Called once per frame sent: does this frame restart the loop at its keyframe?"""
        due = self.wanted and now - self.last_obliged >= KEYFRAME_MIN_INTERVAL
        if due:
            self.last_obliged = now
        self.wanted = False
        return due


@dataclass
class Outbound:
    """One raw RTP stream replaying ``loop`` on ``sender``'s transport."""

    loop: EncodedLoop
    sender: RTCRtpSender
    parameters: RTCRtpSendParameters
    packets: int = 0
    bytes: int = 0
    retransmitted: int = 0
    nacked: int = 0  # sequence numbers the SFU asked again for (upstream NACK)
    plis: int = 0
    keyframes_on_request: int = 0
    lost_reported: int = 0  # cumulative loss in the SFU's receiver reports
    frames: int = 0

    def __post_init__(self) -> None:
        self.ssrc = self.sender._ssrc
        self.transport = self.sender.transport
        self._header = self._template()
        self._seq = 1000
        self._ts = 0
        self._history: list[bytes | None] = [None] * HISTORY
        self.keyframe_requests = KeyframeRequests()
        self._send: Any = None  # the transport's Leg, once run() starts

    def request_keyframe(self) -> None:
        """A PLI: restart the loop at its keyframe (as an encoder would send one)."""
        self.plis += 1
        self.keyframe_requests.wanted = True

    def _template(self) -> bytes:
        pt = self.parameters.codecs[0].payloadType
        header = struct.pack("!BBHII", 0x90, pt, 0, 0, self.ssrc)
        mid = (self.parameters.muxId or "").encode()
        ext_id = next((e.id for e in self.parameters.headerExtensions if e.uri == MID_URI), None)
        if ext_id is None or not mid:
            return bytes([0x80]) + header[1:]
        body = bytes([(ext_id << 4) | (len(mid) - 1)]) + mid
        body += b"\0" * (-len(body) % 4)
        return header + struct.pack("!HH", 0xBEDE, len(body) // 4) + body

    async def run(self, stop: asyncio.Event, max_seconds: float) -> None:
        """Send the loop in real time until ``stop`` or ``max_seconds``."""
        meter = getattr(self.transport, "meter", None)
        if meter is not None:
            meter.outbound[self.ssrc] = self
        video = self.loop.kind == "video"
        send = self._send = leg_of(self.transport)
        frames, period, ticks = self.loop.frames, self.loop.period, self.loop.ticks
        start = time.monotonic()
        end = start + max_seconds
        index = 0
        position = 0  # in the loop; jumps back to its keyframe on a PLI
        try:
            while not stop.is_set():
                due = start + index * period
                now = time.monotonic()
                if due > now:
                    # A plain sleep: wait_for(stop.wait()) built a task and a timeout per frame.
                    await asyncio.sleep(due - now)
                    if stop.is_set():
                        break
                if due > end:
                    break
                if self.keyframe_requests.take(now):
                    position = 0
                    self.keyframes_on_request += 1
                payloads = frames[position % len(frames)]
                position += 1
                last = len(payloads) - 1
                picture_id = (0x8000 | (index & 0x7FFF)) if video else 0
                for i, payload in enumerate(payloads):
                    packet = bytearray(self._header)
                    packet += payload
                    hlen = len(self._header)
                    struct.pack_into("!HI", packet, 2, self._seq, self._ts)
                    if i == last:
                        packet[1] |= 0x80
                    if video:
                        struct.pack_into("!H", packet, hlen + 2, picture_id)
                        SENT.add(bytes(packet[hlen : hlen + LATENCY_KEY_BYTES]), time.monotonic())
                    data = bytes(packet)
                    self._history[self._seq % HISTORY] = data
                    send(data)
                    self.packets += 1
                    self.bytes += len(payload)
                    self._seq = (self._seq + 1) & 0xFFFF
                self.frames += 1
                self._ts = (self._ts + ticks) & 0xFFFFFFFF
                index += 1
        except ConnectionError:
            pass  # the peer connection closed under us: the stream is over

    def retransmit(self, seqs: list[int]) -> None:
        send = self._send
        for seq in seqs:
            self.nacked += 1
            data = self._history[seq % HISTORY]
            if (
                send is not None
                and data is not None
                and struct.unpack_from("!H", data, 2)[0] == seq
            ):
                try:
                    send(data)
                except ConnectionError:
                    return
                self.retransmitted += 1


@dataclass
class Inbound:
    """What arrived on one SSRC after SRTP decryption."""

    kind: str
    packets: int = 0
    bytes: int = 0
    expected: int = 0
    recovered: int = 0  # late arrivals of sequence numbers we had seen missing (retransmits)
    duplicates: int = 0
    nacks_sent: int = 0
    first_at: float = 0.0
    highest: int = -1  # extended sequence number
    missing: set[int] = field(default_factory=set)

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.packets)


class TransportMeter:
    """Counters of one peer connection's DTLS transport."""

    def __init__(self, passthrough: bool = False) -> None:
        self.passthrough = passthrough
        self.inbound: dict[int, Inbound] = {}
        self.outbound: dict[int, Outbound] = {}
        self.kinds: dict[int, str] = {}
        self.latencies: list[float] = []
        self.first_keyframe_at = 0.0
        self.local_ssrc = 1

    def learn_sdp(self, sdp: str) -> None:
        """Payload type -> kind from an SDP (the SFU may rewrite payload types per leg)."""
        kind = ""
        for line in sdp.splitlines():
            if line.startswith("m="):
                kind = line[2:].split()[0]
            elif m := re.match(r"a=rtpmap:(\d+) ", line):
                self.kinds[int(m.group(1))] = kind

    def on_rtp(self, data: bytes, now: float) -> list[int]:
        """Count one packet; return sequence numbers to NACK."""
        if len(data) < 12:
            return []
        pt = data[1] & 0x7F
        seq, ssrc = struct.unpack_from("!H", data, 2)[0], struct.unpack_from("!I", data, 8)[0]
        stream = self.inbound.get(ssrc)
        if stream is None:
            stream = self.inbound[ssrc] = Inbound(self.kinds.get(pt, "unknown"), first_at=now)
        if stream.kind == "video":
            offset = 12 + 4 * (data[0] & 0x0F)
            if data[0] & 0x10 and len(data) >= offset + 4:
                offset += 4 + 4 * struct.unpack_from("!H", data, offset + 2)[0]
            # The first frame a decoder can show starts at a keyframe: a delta frame forwarded
            # before it (Janus does) is not a first frame, whatever it costs to forward.
            if not self.first_keyframe_at and starts_keyframe("VP8", data[offset:]):
                self.first_keyframe_at = now
            sent = SENT.at.get(data[offset : offset + LATENCY_KEY_BYTES])
            if sent is not None and len(self.latencies) < MAX_LATENCY_SAMPLES:
                self.latencies.append(now - sent)
        if stream.highest < 0:
            stream.highest = seq
            stream.expected, stream.packets, stream.bytes = 1, 1, len(data)
            return []
        ext = (stream.highest & ~0xFFFF) | seq
        if ext < stream.highest - 0x8000:
            ext += 0x10000
        elif ext > stream.highest + 0x8000:
            ext -= 0x10000
        lost: list[int] = []
        if ext > stream.highest:
            gap = ext - stream.highest - 1
            if 0 < gap and len(stream.missing) + gap <= MAX_MISSING:
                lost = [(stream.highest + i + 1) & 0xFFFF for i in range(gap)]
                stream.missing.update(range(stream.highest + 1, ext))
            stream.expected += ext - stream.highest
            stream.highest = ext
        elif ext in stream.missing:
            stream.missing.discard(ext)
            stream.recovered += 1
        else:
            stream.duplicates += 1
            return []
        stream.packets += 1
        stream.bytes += len(data)
        if lost and not self.passthrough:
            stream.nacks_sent += len(lost)
            return lost
        return []

    def snapshot(self) -> dict[str, Any]:
        """Cumulative counters (the orchestrator takes differences between two snapshots)."""
        inbound = [s for s in self.inbound.values() if s.kind in ("audio", "video")]
        return {
            "rx_packets": sum(s.packets for s in inbound),
            "rx_bytes": sum(s.bytes for s in inbound),
            "rx_expected": sum(s.expected for s in inbound),
            "rx_recovered": sum(s.recovered for s in inbound),
            "rx_duplicates": sum(s.duplicates for s in inbound),
            "nacks_sent": sum(s.nacks_sent for s in inbound),
            "tx_packets": sum(s.packets for s in self.outbound.values()),
            "tx_bytes": sum(s.bytes for s in self.outbound.values()),
            "tx_retransmitted": sum(s.retransmitted for s in self.outbound.values()),
            "nacks_received": sum(s.nacked for s in self.outbound.values()),
            "plis_received": sum(s.plis for s in self.outbound.values()),
            "up_lost_reported": sum(s.lost_reported for s in self.outbound.values()),
        }


def _nack(sender_ssrc: int, media_ssrc: int, seqs: list[int]) -> bytes:
    return bytes(RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=sender_ssrc, media_ssrc=media_ssrc,
                                 lost=seqs))  # fmt: skip


class MeteredDtlsTransport(RTCDtlsTransport):
    meter: TransportMeter | None = None

    async def _handle_rtp_data(self, data: bytes, arrival_time_ms: int) -> None:
        meter = self.meter
        if meter is not None:
            meter_rtp(meter, data, leg_of(self))
            if not meter.passthrough:
                return
        await super()._handle_rtp_data(data, arrival_time_ms)

    async def _handle_rtcp_data(self, data: bytes) -> None:
        if self.meter is not None:
            meter_rtcp(self.meter, data)
        await super()._handle_rtcp_data(data)


def meter_rtp(meter: TransportMeter, data: bytes, send: Any) -> None:
    """Count one decrypted packet; NACK a gap at once through ``send`` (the transport's Leg)."""
    lost = meter.on_rtp(data, time.monotonic())
    if lost:
        try:
            send(_nack(meter.local_ssrc, struct.unpack_from("!I", data, 8)[0], lost))
        except ConnectionError:
            pass


def meter_rtcp(meter: TransportMeter, data: bytes) -> None:
    """Loss reports, NACKs (answered from the stream's history) and PLIs for our streams."""
    if not meter.outbound:
        return
    try:
        packets = RtcpPacket.parse(data)
    except ValueError:
        return
    for packet in packets:
        if isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            for report in packet.reports:
                if (out := meter.outbound.get(report.ssrc)) is not None:
                    out.lost_reported = report.packets_lost
        elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            if (out := meter.outbound.get(packet.media_ssrc)) is not None:
                out.retransmit(packet.lost)
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_PLI:
            if (out := meter.outbound.get(packet.media_ssrc)) is not None:
                out.request_keyframe()


class MeterSink:
    """What ``media_server.transport``'s fast path hands decrypted packets to, for a counting
    (non-decoding) load client: the same metering as MeteredDtlsTransport, synchronously."""

    def __init__(self, transport: RTCDtlsTransport, meter: TransportMeter) -> None:
        self.meter = meter
        self.dropped: dict[str, int] = {}
        self.faults = Faults("load client")
        self._send = leg_of(transport)

    def on_rtp(self, data: bytes) -> None:
        meter_rtp(self.meter, data, self._send)

    def on_rtcp(self, data: bytes, arrival_us: int) -> None:
        meter_rtcp(self.meter, data)


def install() -> None:
    """Every peer connection created after this in the process gets a metered transport."""
    aiortc.rtcpeerconnection.RTCDtlsTransport = MeteredDtlsTransport  # type: ignore[misc]


def transports(pc: aiortc.RTCPeerConnection) -> list[MeteredDtlsTransport]:
    found = {id(t.sender.transport): t.sender.transport for t in pc.getTransceivers()}
    for t in pc.getTransceivers():
        found.setdefault(id(t.receiver.transport), t.receiver.transport)
    return [t for t in found.values() if isinstance(t, MeteredDtlsTransport)]
