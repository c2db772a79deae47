"""A publication: one incoming stream (audio or video) of one participant.

It is the *source* a Subscription reads from. The source interface a subscription relies on
(``attach``/``detach``, ``request_keyframe``, ``codec``, ``kind``, ``clock_rate``,
``last_sr``) is what a simulcast layer selector or a transcoding fallback will implement
later, so they plug in between a publication and its subscriptions without touching either.

Per packet, a publication is its compiled ``rtpforward.Inbound`` (``inbound``): receive
statistics (RFC 3550, as aiortc's StreamStatistics, which ``inbound`` stands in for in receiver
reports) and the fan-out to its subscriptions. This class holds what is not per packet: the
NACK list (the Inbound calls ``_on_disorder`` for a packet that is not the next in order), the
bandwidth estimate (``_on_frame``, once per frame), keyframe requests and sender reports.

Counters are plain ints (``dropped`` is reason -> int); the metrics collector reads them at
scrape time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from media_server import rtcp, rtpheader
from media_server.allocator import SINGLE_TOP_BPS, TRACE
from media_server.codecs import describe
from media_server.estimator import REMB_OVERUSE
from media_server.faults import Faults
from media_server.rtpforward import Inbound, Outbound
from media_server.uplink import UplinkEstimator

if TYPE_CHECKING:
    from media_server.subscription import Subscription

log = logging.getLogger(__name__)

LAYER_SILENT_SECONDS = 1.0  # a layer that sent nothing this long is not running
# What a simulcast layer costs before it was seen running, lowest first (the visit page's
# maxBitrate per layer, js/session.js simulcastLayers).
NOMINAL_BPS = (150_000, 500_000, 1_500_000)
LAYERS_HEADROOM = 1.15
LAYER_OFF_SECONDS = 3.0  # a layer nobody needed this long is switched off at its publisher


@dataclass(eq=False)
class Publication:
    participant_id: str
    kind: str  # "audio" | "video"
    mid: str
    codec: RTCRtpCodecParameters  # what the publisher sends now (learned from payload types)
    ssrc: int | None  # from a=ssrc; learned from the first routed packet otherwise
    extensions: dict[str, int]  # uri -> id on the publisher's leg
    # Sends RTCP (bytes) to the publisher; the owning Participant schedules it.
    send_rtcp: Callable[[bytes], None] = field(repr=False)
    rtcp_ssrc: int = 0  # our SSRC in feedback to the publisher
    # Called when a gap opens (NACKs went out at once; the owner schedules the retries).
    on_gap: Callable[[], None] | None = field(default=None, repr=False)
    faults: Faults | None = field(default=None, repr=False)  # exceptions in the hooks below
    # Every codec negotiated on the publisher's m-line (the publisher may send any of them);
    # empty = only ``codec``.
    codecs: list[RTCRtpCodecParameters] = field(default_factory=list)
    # RTX (RFC 4588) negotiated on the m-line: RTX payload type -> the media payload type it
    # repairs (codecs.rtx_types); its retransmissions are unwrapped by the Inbound.
    rtx_types: dict[int, int] = field(default_factory=dict)
    # Called after the publisher switched to another negotiated codec.
    on_codec: Callable[[Publication], None] | None = field(default=None, repr=False)
    # (primary of a simulcast m-line) called with the rids the publisher should send when
    # that changes (active_layers): the visit page turns the others off.
    on_layers: Callable[[Publication, list[str]], None] | None = field(default=None, repr=False)
    # Simulcast (simulcast.py): this layer's rid; one layer of the m-line is the ``primary``
    # the room subscribes to, and holds every layer of the m-line in ``layers`` (itself too),
    # lowest first (simulcast.lowest_first).
    rid: str | None = None
    primary: Publication | None = field(default=None, repr=False)
    layers: list[Publication] = field(default_factory=list, repr=False)
    # The publisher's leg gets transport-cc feedback (feedback.py): the publisher estimates
    # its uplink itself (libwebrtc's send-side estimator sees the same delays and losses, and
    # regains rate faster), so no receive-side estimate caps it (as mediasoup runs its REMB
    # estimator only where transport-cc is not negotiated). A second, slower AIMD on the same
    # signal held Chrome publishers under its estimate and flapped their top layer
    # (``uplink_limit``).
    uplink_feedback: bool = False

    nacks_sent: int = 0  # NACK packets
    nacked_packets: int = 0  # sequence numbers asked for (retries included)
    plis_sent: int = 0
    rembs_sent: int = 0  # sent at once when the cap changed (the periodic ones: Participant)
    keyframe_requests_throttled: int = 0
    srs_received: int = 0
    codec_switches: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    subscriptions: list[Subscription] = field(default_factory=list, repr=False)
    # Last sender report: (NTP, RTP timestamp), for translating SRs downstream.
    last_sr: tuple[int, int] | None = None
    _sr_lsr: int = 0
    _sr_received_at: float | None = None
    _last_pli_at: float = -1e9
    _pli_pending: bool = False  # a PLI went out and no keyframe came since
    _answered_at: float = -1e9  # when the keyframe answering the last PLI came
    _estimate: int | None = None
    _remb: tuple[float, int] | None = None  # (when, bits/s) of the last REMB sent at once
    _layers_on: int | None = None  # index of the top layer the publisher was asked to send
    _layers_off_since: float | None = None
    _rids_sent: list[str] | None = None

    def __post_init__(self) -> None:
        self.id = f"{self.participant_id}/{self.mid}"
        if self.primary is None:
            self.primary = self
        elif self.rid is not None:
            self.id += f"/{self.rid}"
        self._rate_at: tuple[float, int] | None = None  # (when, bytes_in) of the last rate
        self.bitrate = 0  # bits/s received, over the last ~second (``measure``)
        self.clock_rate = self.codec.clockRate
        self.payload_type = self.codec.payloadType
        self.nacks = rtcp.NackList() if self.kind == "video" else None
        self._mid_id = self.extensions.get(rtpheader.URI_MID)
        self._ast_id = (
            None if self.uplink_feedback else self.extensions.get(rtpheader.URI_ABS_SEND_TIME)
        )
        # The uplink's bandwidth estimator (uplink.py), made at the first frame: an idle member
        # needs none. Every layer of a simulcast m-line feeds its primary's: one uplink.
        self._estimator: UplinkEstimator | None = None
        self.inbound = Inbound(
            self.clock_rate,
            self.payload_type,
            on_disorder=self._on_disorder if self.nacks is not None else None,
            on_frame=self._on_frame if self._ast_id is not None else None,
            faults=self.faults,
            on_restart=self._on_restart,
            on_payload_type=self._on_payload_type,
        )
        self.inbound.vp8 = self.codec.name == "VP8"
        # Of ``bitrate``, the part the frames of temporal layers up to each TID carry (VP8
        # TID: libwebrtc's simulcast layers are L1T3), cumulative and lowest first, e.g.
        # (0.45, 0.65, 1.0); () while the stream carries no TID (``measure``).
        self.temporal_shares: tuple[float, ...] = ()
        self._temporal_at: tuple[int, ...] = (0, 0, 0, 0)
        if not self.codecs:
            self.codecs = [self.codec]
        self.set_rtx(self.rtx_types)

    def set_rtx(self, types: dict[int, int]) -> None:
        """The RTX payload types negotiated for this m-line (RTX type -> media type, RFC 4588
        ``apt``): a packet of one is unwrapped into the packet it repairs (Inbound.set_rtx).
        Raises ValueError for a type outside 0..127 or an apt that names an RTX type."""
        self.inbound.set_rtx(types)
        self.rtx_types = dict(types)

    @property
    def codec_name(self) -> str:
        return describe(self.codec)

    @property
    def packets_in(self) -> int:
        return self.inbound.packets_in

    @property
    def bytes_in(self) -> int:
        return self.inbound.bytes_in

    @property
    def last_packet_at(self) -> float | None:
        return self.inbound.last_packet_at

    @property
    def packets_lost(self) -> int:
        return self.inbound.packets_lost

    # ---- hooks of the compiled path -------------------------------------------------------

    def _on_disorder(self, seq: int, max_seq: int, now: float) -> None:
        """A packet that is not the next in order (``max_seq``: the newest one before it)."""
        nacks = self.nacks
        nacks.max_seq = max_seq  # type: ignore[union-attr]  # in-order packets skip the list
        if nacks.add(seq, now):  # type: ignore[union-attr]
            self.send_nacks(now)
            if self.on_gap is not None:
                self.on_gap()

    def _on_payload_type(self, payload_type: int) -> None:
        """A packet of another payload type: if it is one of the negotiated codecs, the
        publisher switched to it (after a server re-offer, or on its own); else it is dropped."""
        codec = next((c for c in self.codecs if c.payloadType == payload_type), None)
        if codec is not None:
            self.set_codec(codec)

    def set_codec(self, codec: RTCRtpCodecParameters) -> None:
        """The publisher sends ``codec`` from now on: every subscription starts again at its
        next keyframe, in whatever codec its subscriber negotiated for it."""
        if codec is self.codec:
            return
        log.info("publication %s: %s -> %s", self.id, self.codec_name, describe(codec))
        self.codec = codec
        self.payload_type = codec.payloadType
        self.inbound.payload_type = codec.payloadType
        self.inbound.vp8 = codec.name == "VP8"
        self.temporal_shares = ()
        self.codec_switches += 1
        for subscription in list(self.subscriptions):
            subscription.on_source_codec()
        if self.on_codec is not None:
            self.on_codec(self)

    def _on_frame(self, data: bytes, size: int, arrival_us: int) -> None:
        """The last packet of a frame (``size``: the frame's payload bytes), which arrived at
        ``arrival_us`` (microseconds, CLOCK_MONOTONIC: the kernel's receive time where the leg
        reads its socket, not when this runs): the estimator sees one packet per frame, as it
        groups a frame's packets by send time anyway."""
        header = rtpheader.parse(data)
        ast = rtpheader.abs_send_time(data, header, self._ast_id)
        if ast is not None:
            primary = self.primary or self
            if primary._estimator is None:
                primary._estimator = UplinkEstimator()
            remb = primary._estimator.add(
                abs_send_time=ast, arrival_time_ms=arrival_us // 1000, payload_size=size,
                ssrc=header.ssrc,
            )  # fmt: skip
            if remb is not None:
                primary._estimate = remb[0]

    def _on_restart(self) -> None:
        """The publisher's sequence numbers restarted (a jump the next packet confirmed, RFC
        3550 A.1): every subscription re-bases so its subscriber sees one contiguous stream, and
        the gaps of the old numbering are no longer asked for."""
        if self.nacks is not None:
            self.nacks.restart()
        for subscription in list(self.subscriptions):
            subscription.rebase()

    def rebind(self, ssrc: int) -> None:
        """The publisher carries on this stream under another SSRC (an encoder reset without
        renegotiation): route it, restart the receive statistics and re-base as on a restart."""
        self.ssrc = ssrc
        self.inbound.restart()
        self._on_restart()

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
        """Ask the publisher for a keyframe (PLI); False if held back. While a request is
        unanswered, at most one per 500 ms; once its keyframe came (``keyframe_arrived``), the
        next goes out as soon as the publisher's encoder would oblige it (300 ms after the
        last it obliged: libwebrtc drops requests in between) rather than 500 ms after the
        last PLI. As mediasoup's KeyFrameRequestManager, a request is pending until a keyframe:
        a subscription created just after a keyframe gets its own within 300 ms (join to
        first frame; before, it waited out the 500 ms, and the request the encoder dropped)."""
        if self.kind != "video" or self.ssrc is None:
            return False
        now = time.monotonic()
        if self._pli_pending:
            held = now - self._last_pli_at < rtcp.KEYFRAME_INTERVAL_SECONDS
        else:
            held = now - self._answered_at < rtcp.KEYFRAME_OBLIGED_SECONDS
        if held:
            self.keyframe_requests_throttled += 1
            return False
        self._last_pli_at = now
        self._pli_pending = True
        self.plis_sent += 1
        self.send_rtcp(rtcp.pack_pli(self.rtcp_ssrc, self.ssrc))
        return True

    def keyframe_arrived(self) -> None:
        """A subscription waiting for a keyframe saw one start: the pending request (if any)
        is answered."""
        if self._pli_pending:
            self._pli_pending = False
            self._answered_at = time.monotonic()

    def on_sender_report(self, ntp: int, rtp_timestamp: int, received_at: float) -> None:
        """The publisher's SR, which arrived at ``received_at`` (``time.monotonic`` s): our
        reports' delay since it (DLSR) counts from then, so the publisher's round trip leaves
        out the time it waited in the SFU."""
        self.srs_received += 1
        self.last_sr = (ntp, rtp_timestamp)
        self._sr_lsr = (ntp >> 16) & 0xFFFFFFFF
        self._sr_received_at = received_at
        for subscription in self.subscriptions:
            subscription.on_source_sender_report(ntp, rtp_timestamp)

    def report_block(self) -> rtcp.RtcpReceiverInfo | None:
        if self.ssrc is None or self.inbound.max_seq is None:
            return None
        return rtcp.report_block(self.ssrc, self.inbound, self._sr_lsr, self._sr_received_at)

    def measure(self, now: float) -> int:
        """Update and return ``bitrate`` (bits/s, smoothed; measured at most once per 0.5 s;
        0 once the layer is silent for a second)."""
        bytes_in = self.inbound.bytes_in
        if self._rate_at is None:
            self._rate_at = (now, bytes_in)
        elif now - self._rate_at[0] >= 0.5:
            at, before = self._rate_at
            self._rate_at = (now, bytes_in)
            rate = 8 * (bytes_in - before) / (now - at)
            # Smoothed over ~2 s: a keyframe doubles a half-second's rate, and a layer that
            # looks twice as dear for a moment would be left for a lower one.
            self.bitrate = int(rate if not self.bitrate else 0.7 * self.bitrate + 0.3 * rate)
            self._measure_temporal()
        last = self.last_packet_at
        if last is None or now - last > LAYER_SILENT_SECONDS:
            self.bitrate = 0
        return self.bitrate

    def _measure_temporal(self) -> None:
        """``temporal_shares`` from the bytes each temporal layer brought since the last
        measure, smoothed as ``bitrate`` is (a keyframe is TID 0, and makes it look dear)."""
        counts = self.inbound.temporal_bytes
        recent = [now - before for now, before in zip(counts, self._temporal_at, strict=True)]
        self._temporal_at = counts
        total = sum(recent)
        top = max((tid for tid, n in enumerate(recent) if n), default=0)
        # No TID, one temporal layer, or no base layer (TID 0: every other layer's frames
        # depend on it; a stream without it, say all TID 3, read shares of (0, 0, 0, 1), and
        # a lower frame rate that cost nothing forwarded nothing): nothing to choose among.
        if not total or not top or not recent[0]:
            self.temporal_shares = ()
            return
        shares = [sum(recent[: tid + 1]) / total for tid in range(top + 1)]
        if len(self.temporal_shares) == len(shares):
            old = self.temporal_shares
            shares = [0.7 * a + 0.3 * b for a, b in zip(old, shares, strict=True)]
        self.temporal_shares = tuple(shares)

    def nominal(self) -> int:
        """What this layer costs by its place among the layers (``NOMINAL_BPS``, lowest
        first): the browser's encoder starts a layer only when its REMB covers about this."""
        layers = self.primary.layers if self.primary is not None else []
        if len(layers) < 2 or self not in layers:
            return 0
        return NOMINAL_BPS[min(layers.index(self), len(NOMINAL_BPS) - 1)]

    def cost(self) -> int:
        """What forwarding this layer takes (bits/s): what it runs at, else its nominal cost
        (a layer that ran briefly while the encoder ramped up says little)."""
        return self.bitrate or self.nominal()

    @property
    def uplink_estimate(self) -> int | None:
        """Our receive-side estimate of the publisher's uplink (bits/s; libwebrtc's
        abs-send-time AIMD, fed one packet per frame of every layer of the m-line), None until
        it has one, and always None for a publisher that gets transport-cc feedback
        (``uplink_feedback``)."""
        return self._estimate

    def uplink_limit(self) -> int | None:
        """The uplink estimate when it says the uplink's queue grows (under ``REMB_OVERUSE``
        x what arrives on every layer), else None. It is bounded by 1.5x what arrives, so as
        a plain cap it would hold an encoder that is ramping up at 1.5x its start rate."""
        primary = self.primary or self
        estimate = primary._estimate
        incoming = sum(layer.bitrate for layer in primary.layers or [primary])
        if estimate is None or not incoming or estimate >= REMB_OVERUSE * incoming:
            return None
        return estimate

    def bitrate_cap(self) -> int | None:
        """The REMB for the publisher (bits/s; on the primary of a simulcast m-line), None
        when it is not video.

        One layer: the lowest share the subscribers' allocators give this stream (their REMB
        before an allocator has spoken; paused subscribers aside), ``SINGLE_TOP_BPS`` with
        none. Simulcast: every layer's nominal cost plus ``LAYERS_HEADROOM`` (layers nobody
        needs are switched off by the publisher itself: ``active_layers``; a REMB that turned
        them off would also pull the publisher's own bandwidth estimate down, and libwebrtc
        regains it at 8% a second). Both within ``uplink_limit``. From the first report on: a
        browser's estimate takes a REMB at once in the first two seconds of a call
        (libwebrtc's start phase) and only by 8% a second later."""
        if self.kind != "video":
            return None
        primary = self.primary or self
        if len(primary.layers) > 1:
            cap = int(LAYERS_HEADROOM * sum(layer.nominal() for layer in primary.layers))
        else:
            shares = [s.target_bps if s.target_bps is not None else s.remb
                      for s in self.subscriptions if not s.paused]  # fmt: skip
            shares = [share for share in shares if share is not None]
            cap = min(shares) if shares else SINGLE_TOP_BPS
        limit = self.uplink_limit()
        return cap if limit is None else min(cap, limit)

    def active_layers(self, now: float) -> list[str] | None:
        """(The primary of a simulcast m-line) the rids its publisher should send: every layer
        up to the highest one a subscriber is forwarded, switches to, wants, or is one step
        under (so switching up never waits for the publisher to start a layer); all of them
        while nobody subscribes. A layer is dropped only after ``LAYER_OFF_SECONDS`` unneeded."""
        layers = self.layers
        if len(layers) < 2:
            return None
        subs = [s for layer in layers for s in layer.subscriptions if not s.closed]
        top = len(layers) - 1
        if subs:
            top = 0
            for s in subs:
                current = layers.index(s.source) if s.source in layers else 0
                marks = [layers.index(x) for x in (s.pending, s.wanted) if x in layers]
                top = max(top, min(len(layers) - 1, current + 1), *marks)
        if self._layers_on is not None and top < self._layers_on:
            if self._layers_off_since is None:
                self._layers_off_since = now
            if now - self._layers_off_since < LAYER_OFF_SECONDS:
                top = self._layers_on
        else:
            self._layers_off_since = None
        self._layers_on = top
        return [layer.rid or "" for layer in layers[: top + 1]]

    def requested(self) -> bool:
        """(A simulcast layer) is it among the rids its publisher was last told to send
        (every one before the first ``active_layers`` notice)?"""
        primary = self.primary or self
        return primary._rids_sent is None or (self.rid or "") in primary._rids_sent

    def cap_changed(self) -> None:
        """A subscriber's allocation moved: tell the publisher at once (REMB) when the cap fell
        by more than 10% (at most every 200 ms) or rose by more than 25% (at most every 1 s),
        rather than at the next periodic report (0.5-1.5 s), and which simulcast layers to
        send (``on_layers``) when that changed."""
        if self.primary is not self and self.primary is not None:
            self.primary.cap_changed()
            return
        now = time.monotonic()
        rids = self.active_layers(now)
        if rids is not None and rids != self._rids_sent and self.on_layers is not None:
            self._rids_sent = rids
            TRACE.info("publish layers", extra={"participant": self.participant_id,
                                                "rids": rids})  # fmt: skip
            self.on_layers(self, rids)
        cap = self.bitrate_cap()
        ssrcs = [layer.ssrc for layer in self.layers or [self] if layer.ssrc is not None]
        if cap is None or not ssrcs:
            return
        if self._remb is not None:
            at, sent = self._remb
            fell, rose = cap < 0.9 * sent, cap > 1.25 * sent
            if not (fell and now - at >= 0.2) and not (rose and now - at >= 1.0):
                return
        self._remb = (now, cap)
        self.rembs_sent += 1
        TRACE.debug("remb", extra={"participant": self.participant_id, "remb_bps": cap})
        self.send_rtcp(rtcp.pack_remb(self.rtcp_ssrc, cap, ssrcs))

    # ---- the source interface of a subscription -------------------------------------------

    def attach(self, subscription: Subscription) -> None:
        if subscription not in self.subscriptions:
            self.subscriptions.append(subscription)
            self.inbound.outbounds.append(subscription.out)

    def detach(self, subscription: Subscription) -> None:
        if subscription in self.subscriptions:
            self.subscriptions.remove(subscription)
            self.inbound.outbounds.remove(subscription.out)

    def watch(self, outbound: Outbound) -> None:
        """Let ``outbound`` see every packet of this stream too (a subscription's watcher for
        the keyframe of a layer it switches to: Subscription.switch_layer)."""
        self.inbound.outbounds.append(outbound)

    def unwatch(self, outbound: Outbound) -> None:
        """Stop ``watch``. Soon when an event loop runs: a watcher is removed from inside the
        fan-out it is part of, and removing it there would skip the Outbound after it."""

        def remove() -> None:
            if outbound in self.inbound.outbounds:
                self.inbound.outbounds.remove(outbound)

        try:
            asyncio.get_running_loop().call_soon(remove)
        except RuntimeError:
            remove()

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
