"""A publication: one incoming stream (audio or video) of one participant.

It is the *source* a Subscription reads from. The source interface a subscription relies on
(``attach``/``detach``, ``request_keyframe``, ``codec``, ``kind``, ``clock_rate``,
``last_sr``) is what a simulcast layer selector or a transcoding fallback will implement
later, so they plug in between a publication and its subscriptions without touching either.

Counters are plain ints (``dropped`` is reason -> int); the metrics collector reads them at
scrape time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiortc.rate import RemoteBitrateEstimator
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import StreamStatistics

from media_server import rtcp, rtpheader
from media_server.codecs import describe
from media_server.rtcp import ntp_ms

if TYPE_CHECKING:
    from media_server.subscription import Subscription

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Publication:
    participant_id: str
    kind: str  # "audio" | "video"
    mid: str
    codec: RTCRtpCodecParameters
    ssrc: int | None  # from a=ssrc; learned from the first routed packet otherwise
    extensions: dict[str, int]  # uri -> id on the publisher's leg
    # Sends RTCP (bytes) to the publisher; the owning Participant schedules it.
    send_rtcp: Callable[[bytes], None] = field(repr=False)
    rtcp_ssrc: int = 0  # our SSRC in feedback to the publisher
    # Called when a gap opens (NACKs went out at once; the owner schedules the retries).
    on_gap: Callable[[], None] | None = field(default=None, repr=False)
    # Arrival time in ms for the bandwidth estimator (aiortc's NTP-based milliseconds).
    clock_ms: Callable[[], int] = field(default=ntp_ms, repr=False)

    packets_in: int = 0
    bytes_in: int = 0
    nacks_sent: int = 0  # NACK packets
    nacked_packets: int = 0  # sequence numbers asked for (retries included)
    plis_sent: int = 0
    keyframe_requests_throttled: int = 0
    srs_received: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    subscriptions: list[Subscription] = field(default_factory=list, repr=False)
    last_packet_at: float | None = None
    # Last sender report: (NTP, RTP timestamp), for translating SRs downstream.
    last_sr: tuple[int, int] | None = None
    _sr_lsr: int = 0
    _sr_received_at: float | None = None
    _last_pli_at: float = -1e9
    _estimate: int | None = None
    _frame_bytes: int = 0  # payload bytes of the frame under way (for the estimator)

    def __post_init__(self) -> None:
        self.id = f"{self.participant_id}/{self.mid}"
        self.clock_rate = self.codec.clockRate
        self.payload_type = self.codec.payloadType
        self.stats = StreamStatistics(self.clock_rate)
        self.nacks = rtcp.NackList() if self.kind == "video" else None
        self._mid_id = self.extensions.get(rtpheader.URI_MID)
        self._ast_id = self.extensions.get(rtpheader.URI_ABS_SEND_TIME)
        self._estimator = RemoteBitrateEstimator() if self._ast_id is not None else None

    @property
    def codec_name(self) -> str:
        return describe(self.codec)

    @property
    def packets_lost(self) -> int:
        return self.stats.packets_lost if self.stats.max_seq is not None else 0

    # ---- per packet ------------------------------------------------------------------------

    def on_rtp(self, data: bytes, header: rtpheader.Header) -> None:
        """One decrypted packet from the publisher: account for it, then forward it."""
        now = time.monotonic()
        self.packets_in += 1
        self.bytes_in += len(data)
        self.last_packet_at = now
        # StreamStatistics reads only .sequence_number and .timestamp, which Header has too.
        self.stats.add(header)  # type: ignore[arg-type]
        if self.nacks is not None and self.nacks.add(header.sequence_number, now):
            self.send_nacks(now)
            if self.on_gap is not None:
                self.on_gap()
        if self._estimator is not None:
            # The estimator sees one packet per frame (the marker packet, carrying the frame's
            # bytes): it groups a frame's packets by send time anyway, and fed per packet it
            # costs ~3.4 us a packet, the biggest single item on this path.
            self._frame_bytes += len(data) - header.payload_offset
            if header.marker:
                self._estimate_frame(data, header)
        for subscription in self.subscriptions:
            subscription.forward(data, header)

    def _estimate_frame(self, data: bytes, header: rtpheader.Header) -> None:
        size, self._frame_bytes = self._frame_bytes, 0
        ast = rtpheader.abs_send_time(data, header, self._ast_id)
        if ast is not None:
            remb = self._estimator.add(  # type: ignore[union-attr]
                abs_send_time=ast, arrival_time_ms=self.clock_ms(), payload_size=size,
                ssrc=header.ssrc,
            )  # fmt: skip
            if remb is not None:
                self._estimate = remb[0]

    # ---- feedback to the publisher ---------------------------------------------------------

    def send_nacks(self, now: float, rtt: float = 0.0) -> None:
        """NACK what is missing now (new gaps at once, older ones on their retry timer)."""
        if self.nacks is None or self.ssrc is None:
            return
        seqs = self.nacks.due(now, rtt)
        if seqs:
            self.nacks_sent += 1
            self.nacked_packets += len(seqs)
            self.send_rtcp(rtcp.pack_nack(self.rtcp_ssrc, self.ssrc, seqs))

    def request_keyframe(self) -> bool:
        """Ask the publisher for a keyframe (PLI), at most once per 500 ms; False if throttled."""
        if self.kind != "video" or self.ssrc is None:
            return False
        now = time.monotonic()
        if now - self._last_pli_at < rtcp.KEYFRAME_INTERVAL_SECONDS:
            self.keyframe_requests_throttled += 1
            return False
        self._last_pli_at = now
        self.plis_sent += 1
        self.send_rtcp(rtcp.pack_pli(self.rtcp_ssrc, self.ssrc))
        return True

    def on_sender_report(self, ntp: int, rtp_timestamp: int) -> None:
        self.srs_received += 1
        self.last_sr = (ntp, rtp_timestamp)
        self._sr_lsr = (ntp >> 16) & 0xFFFFFFFF
        self._sr_received_at = time.monotonic()
        for subscription in self.subscriptions:
            subscription.on_source_sender_report(ntp, rtp_timestamp)

    def report_block(self) -> rtcp.RtcpReceiverInfo | None:
        if self.ssrc is None or self.stats.max_seq is None:
            return None
        return rtcp.report_block(self.ssrc, self.stats, self._sr_lsr, self._sr_received_at)

    def bitrate_cap(self) -> int | None:
        """What the publisher should send at most: the lowest of its subscribers' REMBs and
        our own receive-side estimate (None when nobody has said anything yet)."""
        caps = [s.remb for s in self.subscriptions if s.remb is not None]
        if self._estimate is not None:
            caps.append(self._estimate)
        return min(caps) if caps else None

    # ---- the source interface of a subscription -------------------------------------------

    def attach(self, subscription: Subscription) -> None:
        if subscription not in self.subscriptions:
            self.subscriptions.append(subscription)

    def detach(self, subscription: Subscription) -> None:
        if subscription in self.subscriptions:
            self.subscriptions.remove(subscription)

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
