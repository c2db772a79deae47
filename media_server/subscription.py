"""A subscription: one outgoing stream to one subscriber.

    publisher --SRTP--> Leg.datagram_received (decrypt)          rtpforward.c
        --> Inbound (statistics, fan-out)                         rtpforward.c
        --> Outbound (rewrite, send history)                      rtpforward.c, ``out`` here
        --> the subscriber's Leg (encrypt, send)                  rtpforward.c

All of it is synchronous and compiled: one datagram in, its copies out, before the event loop
moves on. This class holds what is not per packet and is reached from the Outbound through
hooks.

A video subscription starts (and restarts after ``switch_source``) at a keyframe: earlier
packets would only give the subscriber's decoder errors, so they are dropped (counted as
``awaiting_keyframe``) while a keyframe is requested (throttled per publication). Until the
Outbound is ``ready`` it asks ``_prepare`` about every packet; ``_prepare`` holds packets back
until a keyframe and then re-bases: sequence numbers and timestamps continue across a
publisher reconnect.

Per packet the Outbound rewrites the four things that belong to the subscriber's leg: SSRC,
payload type, sequence number and timestamp (output = input + offset), and the header
extension ids / MID value by a plan that ``rtpheader.ExtensionRewrite.plan`` works out once per
extension layout. Nothing is decoded or re-encoded and unknown header extensions survive.
Every packet sent is kept to answer the subscriber's NACKs: for ``history_seconds`` (0.3 s by
default, or three round trips when longer, as libwebrtc's RtpPacketHistory keeps max(1 s,
3 RTT): ``HISTORY_SECONDS`` says why less than its second), in a ring of
bytes in the Outbound sized to what the stream sent that long, an eighth to spare, smaller
again when it slows (``history_max_bytes`` at most), allocated at the first packet, and
never further back than the leg's SRTP replay window lets a packet be protected again
(``SRTP_REPLAY_WINDOW``).

A NACK is answered within bounds (``on_nack``): each packet is resent at most once per round
trip (``RESEND_MIN_INTERVAL_SECONDS`` at least) and ``RESEND_MAX_TIMES`` times, and every resend
spends from the subscriber leg's ``ResendBudget`` (a share of its downlink estimate): what does
not fit is not sent (counted), so a policed link is never flooded with retransmissions. Where
the subscriber accepted RTX for the codec (RFC 4588: ``out.set_rtx``, from each answer: video only) a
resend goes out on the RTX SSRC of the m-line's ``ssrc-group:FID``, with the RTX stream's own
sequence numbers and the original one (OSN) before the payload, so the subscriber's statistics
and jitter buffer take it for a retransmission, not a duplicate; otherwise as it was sent.

The subscription reads from a *source* (today a Publication). Simulcast layer choice, bandwidth
adaptation and a transcoding fallback are sources too (a selector over several publications, a
decoder/encoder producing the subscriber's codec): they plug in as ``source`` without changing
this path.
"""

from __future__ import annotations

import copy
import logging
import random
import time
from collections import deque
from collections.abc import Callable

from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtcpByePacket, RtcpSenderInfo, RtcpSrPacket

from media_server import rtcp, rtpheader
from media_server.allocator import TEMPORAL_ALL
from media_server.codecs import decodes, same_format, starts_keyframe
from media_server.estimator import ResendBudget
from media_server.faults import Faults
from media_server.publication import Publication
from media_server.rtpforward import Outbound

log = logging.getLogger(__name__)

# Encrypts and sends one RTP packet now; raises ConnectionError while the leg is not up. The
# subscriber's rtpforward.Leg is one (and the Outbound then sends without leaving C).
SendRtp = Callable[[bytes], None]

# aiortc keys every leg's outbound SRTP with a replay window of 1024 packets
# (RTCDtlsTransport._start_srtp, tx_policy.window_size): libsrtp refuses to protect a packet
# further behind the newest one sent on its SSRC (replay_old). test_hooks checks the value.
SRTP_REPLAY_WINDOW = 1024
# The send history's defaults (media.send_history_ms / send_history_max_bytes). A packet is
# kept HISTORY_SECONDS, or 3 round trips when longer (HISTORY_ROUND_TRIPS, libwebrtc's
# RtpPacketHistory kMinPacketDurationRtt): a receiver's first NACK comes a round trip after
# the packet was sent, and Chromium's NackRequester repeats it at most once per round trip
# (100 ms while it knows none; its 20 ms processing period at least), 10 times; we resend a
# packet at most once per round trip, RESEND_MAX_TIMES times. So the first NACK and at least
# the next one are answered on any path (three on a path under 100 ms), where libwebrtc's own
# sender keeps 1 s (1.3x that second's bytes per subscription: 0.23 MB of a live consult's
# 0.52 MB per participant) and Janus 1.1 max(200 ms, round trip + 100 ms), culled once a
# second. 1 MiB holds a second at 8 Mbit/s.
HISTORY_SECONDS = 0.3
HISTORY_ROUND_TRIPS = 3
HISTORY_MAX_BYTES = 1 << 20
RESEND_MIN_INTERVAL_SECONDS = 0.02  # and at least one round trip between resends of a packet
RESEND_MAX_TIMES = 4  # resends of one packet
RESEND_FORGET_SECONDS = 2.0  # a sequence number resent longer ago than this is a new packet
IN_FLIGHT_MAX = 1024  # packets sent past a receiver report's highest: more is a stale report
PAD_DEPTH = 16  # probe padding resends the newest packets, this many back at most


def vp8_numbering(payload: bytes) -> tuple[int | None, int | None]:
    """(PictureID, TL0PICIDX) of a VP8 payload descriptor (RFC 7741 4.2); None where absent."""
    if len(payload) < 2 or not payload[0] & 0x80:
        return None, None
    pos, picture_id, tl0 = 2, None, None
    if payload[1] & 0x80 and len(payload) > pos:
        if payload[pos] & 0x80 and len(payload) > pos + 1:
            picture_id = (payload[pos] & 0x7F) << 8 | payload[pos + 1]
            pos += 2
        else:
            picture_id = payload[pos] & 0x7F
            pos += 1
    if payload[1] & 0x40 and len(payload) > pos:
        tl0 = payload[pos]
    return picture_id, tl0


# Packets held for a subscriber not up yet: a keyframe and ~2 s of video after it at
# 640x480 (a keyframe is 30-60 packets, then ~130 packets a second).
HOLD_PACKETS = 300


class CodecMismatch(ValueError):
    """switch_source to a publication whose codec the subscriber did not negotiate."""


class Subscription:
    """Created by ``Participant.subscribe``; carries packets once its m-line is negotiated."""

    def __init__(
        self,
        source: Publication,
        *,
        history_packets: int,
        faults: Faults,
        history_seconds: float = HISTORY_SECONDS,
        history_max_bytes: int = HISTORY_MAX_BYTES,
        budget: ResendBudget | None = None,
    ) -> None:
        self.source = source
        self.kind = source.kind
        self.ssrc = 0  # our sender's SSRC on the subscriber's leg (bound at negotiation)
        self.payload_type = 0
        self.mid: str | None = None
        # The codecs the subscriber negotiated on our m-line (any of them may be sent; the
        # one the source sends now is chosen per keyframe).
        self.codecs: list[RTCRtpCodecParameters] = []
        self.closed = False
        self._send_rtcp: Callable[[bytes], None] | None = None
        self._subscriber_ext: dict[str, int] = {}
        self._faults = faults
        self.dropped: dict[str, int] = {}
        self.out = Outbound(
            history_packets, self._prepare, self.dropped, faults, SRTP_REPLAY_WINDOW,
            history_seconds, history_max_bytes,
        )  # fmt: skip
        self._history_seconds = history_seconds
        self.budget = budget  # the subscriber leg's; None: resends are not rate-limited
        # The allocator's decisions (allocator.py): what this stream may carry (bits/s) and
        # whether it is paused for the subscriber's connection; ``on_paused(self, paused)``
        # tells the subscriber.
        self.target_bps: int | None = None
        self.wanted: Publication | None = None  # the simulcast layer the allocator aims for
        # A gapless layer switch in flight (switch_layer): the layer whose keyframe it waits
        # for, and the Outbound that watches that layer's packets meanwhile.
        self.pending: Publication | None = None
        self._watcher: Outbound | None = None
        self.paused = False
        self.on_paused: Callable[[Subscription, bool], None] | None = None
        self.stream_id = source.participant_id  # the msid stream the subscriber knows it by
        self._resent: dict[int, tuple[float, int]] = {}  # seq -> (last resent at, times)
        self._gate_keyframes = source.kind == "video"
        self._first_seq = random.randrange(0x8000)  # like aiortc: low start avoids SRTP rollover
        self._first_ts = random.randrange(1 << 32)
        self._sr_sent: dict[int, float] = {}  # lsr -> when (RTT from receiver reports)

        self.nacks_received = 0
        self.retransmissions = 0
        self.retransmissions_missed = 0  # NACKed packets no longer in the history
        self.retransmitted_bytes = 0
        self.retransmissions_throttled = 0  # resent too recently or too often
        self.retransmissions_over_budget = 0  # the leg's resend budget was spent
        self.retransmissions_superseded = 0  # sent before the keyframe we restarted at
        # Our sequence number of the keyframe the stream last (re)started at (a layer switch,
        # a resume, a new source): what was sent before it no longer serves the decoder.
        self._restarted_at: int | None = None
        self.retransmissions_failed = 0  # the send itself failed (counted in faults)
        self.keyframe_requests = 0  # PLI/FIR from the subscriber
        self.srs_sent = 0
        self.switches = 0
        # Why the subscriber refused this stream's m-line ("rejected", "no_common_codec",
        # "inactive"), None while it is accepted or not negotiated yet.
        self.refused: str | None = None
        self.rebases = 0  # switches, restarts and SSRC changes of the source
        self.remb: int | None = None
        self.fraction_lost = 0  # from the subscriber's receiver reports (0-255)
        self.packets_lost = 0
        self.jitter = 0
        self.rtt: float | None = None
        # Packets our leg carried and lost, cumulative (_leg_loss): what we forwarded against
        # what the subscriber reports received, so the publisher's uplink loss is not ours.
        self.leg_expected = 0
        self.leg_lost = 0
        self.leg_lost_raw = 0  # ... and before repair (RTX repairs not added back)
        # (forwarded, received, highest, received before repair)
        self._report_counts: tuple[int, int, int, int] | None = None
        # RTX packets the subscriber reports received on our RTX SSRC (on_rtx_report), and
        # (extended highest, cumulative lost) of its last report block for that SSRC.
        self.rtx_received = 0
        self._rtx_counts = (-1, 0)
        self.rtx_tally = (0, 0)  # (expected, lost) on our RTX SSRC as its reports say so far
        # Probe padding (pad): RTX resends that repair nothing. Their RTX sequence numbers,
        # oldest first, until a report block covers them (on_rtx_report leaves them out of
        # the repairs); the media payload types the answer gave an RTX type (_follow_rtx).
        self.probe_packets = 0
        self.probe_bytes = 0
        self._probe_seqs: deque[int] = deque(maxlen=4 * IN_FLIGHT_MAX)  # a leg never reporting
        self._pad_back = 0  # the next padding resends the packet this far behind the newest
        self.rtx_repairs: frozenset[int] = frozenset()
        # A keyframe and what followed it, held while the subscriber cannot receive yet (see
        # _hold): empty once delivered, so an established subscription holds nothing.
        self._held: list[bytes] = []
        self.held_delivered = 0  # packets sent from the hold (join-to-first-frame)
        source.attach(self)
        # A sibling still holding a keyframe (its subscriber is not up yet) gives this one the
        # same start: in a wave of joins, those after the keyframe need not wait for the
        # publisher's next (its encoder obliges one request per 300 ms). The bytes are shared.
        sibling = next((s._held for s in source.subscriptions if s._held), None)
        if sibling:
            self._held = list(sibling)
        else:
            # Ask at once: the keyframe arrives while the m-line is negotiated and DTLS comes
            # up, is held, and goes out the moment the subscriber can take it (deliver_held).
            source.request_keyframe()

    # ---- binding -----------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self.out.send is not None and not self.closed

    @property
    def packets_out(self) -> int:
        return self.out.packets_out

    @property
    def bytes_out(self) -> int:
        return self.out.bytes_out

    @property
    def payload_bytes_out(self) -> int:
        return self.out.payload_bytes_out

    @property
    def temporal(self) -> int:
        """The highest VP8 temporal layer (TID) forwarded, TEMPORAL_ALL: every one."""
        return self.out.temporal_target

    def set_temporal(self, tid: int) -> None:
        """Forward the VP8 frames of temporal layers up to ``tid`` only (TEMPORAL_ALL: all): a
        lower frame rate at once, no keyframe needed. The compiled path changes layer at the
        next frame a decoder can take it up from, and closes up the sequence numbers and
        PictureIDs over what it leaves out (rtpforward.c, Temporal)."""
        self.out.temporal_target = tid

    @property
    def temporal_dropped(self) -> int:
        """Packets not forwarded for their temporal layer (late ones sent as padding too)."""
        return self.out.temporal_dropped

    @property
    def retransmissions_rtx(self) -> int:
        """Resends that went out on the RTX stream (RFC 4588), out of ``retransmissions``
        (probe padding is not one)."""
        return self.out.rtx_packets_out - self.probe_packets

    @property
    def can_pad(self) -> bool:
        """Can ``pad`` send now: a video the subscriber takes RTX for, being forwarded."""
        out = self.out
        return (bool(out.rtx_ssrc and self.rtx_repairs) and out.send is not None
                and out.last_seq is not None and not self.paused and not self.closed)  # fmt: skip

    def pad(self, nbytes: int) -> int:
        """Send about ``nbytes`` (at least, by a packet at most) of probe padding: RTX resends
        of the newest ``PAD_DEPTH`` packets, newest first and round again (libwebrtc's pacer
        pads the same way: the subscriber throws the duplicates away, after counting them on
        the RTX SSRC). Outside the resend budget and the per-packet limits: the estimator
        asked for it (DownlinkEstimator.probe_goal). Returns the bytes sent (before SRTP); 0
        when there is nothing to pad with (``can_pad`` false, no packet of an RTX-repaired
        payload type held). A send that fails ends this padding; it is counted, not raised."""
        if not self.can_pad:
            return 0
        out = self.out
        sent = misses = 0
        while sent < nbytes and misses < PAD_DEPTH:
            seq = (out.last_seq - self._pad_back) & 0xFFFF
            self._pad_back = (self._pad_back + 1) % PAD_DEPTH
            packet = out.sent(seq)
            if packet is None or packet[1] & 0x7F not in self.rtx_repairs:
                misses += 1  # a resend on the media SSRC would be a duplicate, not padding
                continue
            rtx_seq = out.rtx_seq & 0xFFFF
            try:
                size = out.resend(seq, padding=True)
            except ConnectionError:
                self._drop("pad_not_connected")
                break
            except Exception as exc:
                self._faults.record("subscription.pad", exc)
                break
            if size is None:
                misses += 1
                continue
            self._probe_seqs.append(rtx_seq)
            self.probe_packets += 1
            self.probe_bytes += size
            sent += size
        return sent

    def bind(
        self,
        *,
        ssrc: int,
        payload_type: int,
        mid: str,
        extensions: dict[str, int],
        send_rtp: SendRtp,
        send_rtcp: Callable[[bytes], None],
        codecs: list[RTCRtpCodecParameters] | None = None,
    ) -> None:
        """The subscriber accepted our m-line: start carrying packets (and ask for a keyframe).

        ``codecs``: what it negotiated (payload types of its leg); None = only the source's
        codec, as ``payload_type``. RTX (RFC 4588) is set apart, from each answer
        (``out.set_rtx``: the participant's ``_follow_rtx``); its numbering starts here.
        """
        self.ssrc = ssrc
        self.payload_type = payload_type
        if codecs is None:
            codecs = [copy.copy(self.source.codec)]
            codecs[0].payloadType = payload_type
        self.codecs = codecs
        self.mid = mid
        self._subscriber_ext = extensions
        self.out.ssrc = ssrc
        self.out.payload_type = payload_type
        self.out.rtx_seq = random.randrange(0x8000)  # as _first_seq: no SRTP rollover soon
        self._rtx_counts = (self.out.rtx_seq - 1, 0)  # its first: received once reported
        self.out.history_seconds = self._history_kept()
        self._send_rtcp = send_rtcp
        self._route(send_rtp)
        self.deliver_held()

    def deliver_held(self) -> None:
        """Send the held keyframe and the packets after it now, if the subscriber can take
        them (bound and its leg up); with nothing held, ask the publisher for a keyframe."""
        if self.closed or not self._receiving():
            return
        held, self._held = self._held, []
        if not held:
            self.source.request_keyframe()
            return
        for packet in held:  # through _prepare: re-based at the keyframe, then as live
            self.out.forward(packet)
        self.held_delivered += len(held)

    def _receiving(self) -> bool:
        send = self.out.send
        return send is not None and getattr(send, "connected", True)

    def _hold(self, data: bytes, keyframe: bool) -> None:
        """Keep the newest keyframe and what follows it (video), bounded: replayed by
        deliver_held so the first frame does not wait for another keyframe request."""
        if keyframe:
            self._held = [data]
        elif self._held:
            if len(self._held) >= HOLD_PACKETS:  # the subscriber is slow to come up
                self._held = []
                self.source.request_keyframe()
            else:
                self._held.append(data)
        else:
            self.source.request_keyframe()

    def follow_transport_cc(self, ext_id: int | None) -> None:
        """The latest answer on our m-line keeps transport-cc under ``ext_id`` (None: it dropped
        it): packets forwarded from now on carry the leg's transport-wide sequence number under
        that id, or none (re-planned; resends and probe padding follow the plan: a resend of a
        packet sent with the element gets no new sequence once it is dropped)."""
        extensions = {
            uri: i for uri, i in self._subscriber_ext.items() if uri != rtpheader.URI_TRANSPORT_CC
        }
        if ext_id is not None:
            extensions[rtpheader.URI_TRANSPORT_CC] = ext_id
        if extensions != self._subscriber_ext:
            self._subscriber_ext = extensions
            self._route(self.out.send)

    def _route(self, send: SendRtp | None) -> None:
        rewrite = rtpheader.ExtensionRewrite(
            self.source.extensions, self._subscriber_ext, self.mid or "", self.source.id
        )
        # Always a plan, even when ids and MID match: it also blanks malformed elements.
        self.out.set_route(send, rewrite.plan, transport_seq=rewrite.stamps)

    def switch_source(self, publication: Publication, at_keyframe: bool = False) -> None:
        """The publisher came back on a new connection: carry on from its new publication.

        Sequence numbers continue from the last one sent and timestamps advance by the wall
        time that passed, so the subscriber sees one stream with a gap rather than a new one.
        Raises CodecMismatch when the subscriber negotiated no codec that takes the new
        publication's (a publisher that came back with H.264 to a VP8-only subscriber):
        subscribe to it anew. ``publication`` may be any source (a transcoder too).
        ``at_keyframe``: the next packet it forwards is a keyframe (no need to ask for one).
        """
        if publication is self.source:
            return
        if self.codecs and self.payload_type_for(publication.codec) is None:
            raise CodecMismatch(
                f"{publication.id} sends {publication.codec_name}; this subscription was "
                f"negotiated for {', '.join(c.name for c in self.codecs)}: subscribe to it "
                "instead"
            )
        self.source.detach(self)
        self.source = publication
        self.switches += 1
        self.set_temporal(TEMPORAL_ALL)  # a layer is switched to whole (the allocator decides)
        if self.out.send is not None:
            self._route(self.out.send)
        publication.attach(self)
        self.rebase(ask=not at_keyframe)

    def switch_layer(self, layer: Publication) -> None:
        """Carry another simulcast layer of the same m-line, without a gap: the current layer
        is forwarded until ``layer`` sends a keyframe (asked for now, and again while it does
        not come), and that keyframe is the new layer's first packet out. Sequence numbers,
        timestamps and the VP8 PictureID continue (``_prepare``). Switching back to the
        current layer cancels a pending switch; a paused or not yet receiving subscription
        switches at once (nothing is forwarded that a gap could interrupt)."""
        if layer is self.source:
            self._cancel_pending()
            return
        if layer is self.pending:
            return
        self._cancel_pending()
        if self.paused or not self.out.ready:
            self.switch_source(layer)
            return
        self.pending = layer
        self._watcher = Outbound(2, self._watch_pending, {}, self._faults, SRTP_REPLAY_WINDOW)
        layer.watch(self._watcher)
        layer.request_keyframe()

    def _watch_pending(self, data: bytes) -> bool:
        """A packet of the pending layer (its watcher never sends): at its keyframe the
        subscription moves over and this very packet is the first it forwards from it (the
        Inbound's fan-out reaches the subscription's Outbound after the watcher)."""
        layer = self.pending
        if layer is None:
            return False
        header = rtpheader.parse(data)
        if not starts_keyframe(layer.codec.name, data[header.payload_offset :]):
            layer.request_keyframe()  # throttled per publication
            return False
        layer.keyframe_arrived()
        self._cancel_pending()
        self.switch_source(layer, at_keyframe=True)
        return False

    def _cancel_pending(self) -> None:
        """Forget a pending layer switch; its watcher leaves the layer's fan-out (soon, not now:
        this may run inside that very fan-out)."""
        layer, watcher = self.pending, self._watcher
        self.pending = self._watcher = None
        if layer is not None and watcher is not None:
            layer.unwatch(watcher)

    def rebase(self, ask: bool = True) -> None:
        """The source's numbering and timeline changed (a new source, a restarted or rebound
        stream): carry on from the last packet sent at the next keyframe (``_prepare``),
        asked for unless ``ask`` is False."""
        self.rebases += 1
        self.out.ready = False
        self._held = []  # the old numbering
        if ask:
            self.source.request_keyframe()

    def payload_type_for(self, codec: RTCRtpCodecParameters) -> int | None:
        """Our leg's payload type for a stream of ``codec`` (None: the subscriber did not
        negotiate anything that decodes it). The very codec first, then a compatible one."""
        for match in (same_format, decodes):
            for negotiated in self.codecs:
                if match(negotiated, codec):
                    return negotiated.payloadType
        return None

    @property
    def decodable(self) -> bool:
        """Is what the source sends now something the subscriber negotiated?"""
        return not self.codecs or self.payload_type_for(self.source.codec) is not None

    def on_source_codec(self) -> None:
        """The source switched codec: start again at its next keyframe, with our leg's
        payload type for the new codec (sequence numbers and timestamps continue)."""
        self.out.ready = False

    # ---- hooks of the compiled path -----------------------------------------------------------

    def set_paused(self, paused: bool) -> None:
        """Stop (True) or restart (False) carrying video for the subscriber's connection. A
        restart waits for a keyframe and continues the sequence numbers (no gap to NACK)."""
        if paused == self.paused or self.kind != "video":
            return
        self.paused = paused
        self.out.ready = False  # every packet asks _prepare: dropped while paused
        if not paused:
            self.source.request_keyframe()
        if self.on_paused is not None:
            try:
                self.on_paused(self, paused)
            except Exception as exc:
                self._faults.record("subscription.on_paused", exc)

    def _prepare(self, data: bytes) -> bool:
        """A packet while the Outbound is not ready: may it go out (re-based)?"""
        header = rtpheader.parse(data)
        keyframe = not self._gate_keyframes or starts_keyframe(
            self.source.codec.name, data[header.payload_offset :]
        )
        if keyframe and self._gate_keyframes:
            self.source.keyframe_arrived()  # a later subscription's request goes out at once
        if not self._receiving():
            if self._gate_keyframes:
                self._hold(data, keyframe)
            self._drop("not_negotiated" if self.out.send is None else "not_connected")
            return False
        if self.paused:
            self._drop("paused_for_bandwidth")
            return False
        payload_type = self.payload_type_for(self.source.codec)
        if payload_type is None:
            self._drop("codec_not_negotiated")  # until the room changes the source
            return False
        self.out.payload_type = self.payload_type = payload_type
        # A fresh or switched stream starts at a keyframe: anything before it would only give
        # the subscriber's decoder errors (and a PLI storm).
        if not keyframe:
            self._drop("awaiting_keyframe")
            self.source.request_keyframe()
            return False
        out = self.out
        if out.last_seq is not None:
            next_seq = (out.last_seq + 1) & 0xFFFF
            elapsed = time.monotonic() - (out.last_sent_at or time.monotonic())
            next_ts = out.last_ts + max(1, int(elapsed * self.source.clock_rate))
        else:
            next_seq, next_ts = self._first_seq, self._first_ts
        out.seq_offset = (next_seq - header.sequence_number) & 0xFFFF
        out.ts_offset = (next_ts - header.timestamp) & 0xFFFFFFFF
        self._continue_vp8(data[header.payload_offset :])
        out.ready = True
        self._restarted_at = next_seq
        return True

    def _continue_vp8(self, payload: bytes) -> None:
        """A VP8 stream's PictureID and TL0PICIDX go on from the last ones sent (the compiled
        path adds the offsets): each simulcast layer numbers its pictures itself, and a
        receiver that orders frames by PictureID would take the new layer's for old ones."""
        out = self.out
        out.vp8 = self.source.codec.name == "VP8"
        if not out.vp8:
            return
        picture_id, tl0 = vp8_numbering(payload)
        if picture_id is not None and out.last_picture_id >= 0:
            out.picture_id_offset = (out.last_picture_id + 1 - picture_id) & 0x7FFF
        if tl0 is not None and out.last_tl0 >= 0:
            out.tl0_offset = (out.last_tl0 + 1 - tl0) & 0xFF

    def _drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    # ---- RTCP from the subscriber ---------------------------------------------------------

    def on_nack(self, seqs: list[int]) -> None:
        """Resend what the subscriber lost from our history (as RTX where it accepted RTX, else
        with the same SSRC and sequence number), within the per-packet bounds and the leg's
        resend budget, never one sent before the keyframe the stream last restarted at (a
        layer switch). A packet that cannot be resent never keeps the others of the same NACK
        from going out."""
        self.nacks_received += 1
        out = self.out
        if out.send is None:
            return
        now = time.monotonic()
        interval = max(self.rtt or 0.0, RESEND_MIN_INTERVAL_SECONDS)
        resent = self._resent
        restarted = self._restarted_at
        for seq in seqs:
            if restarted is not None and 0 < (restarted - seq) & 0xFFFF < 0x8000:
                # The old layer's packets, after the new one's keyframe: resending them
                # spends the budget the keyframe's own repairs need on a congested leg.
                self.retransmissions_superseded += 1
                continue
            size = out.resendable(seq)
            if size is None:
                self.retransmissions_missed += 1
                continue
            last_at, times = resent.get(seq, (-1e9, 0))
            if now - last_at > RESEND_FORGET_SECONDS:
                times = 0
            elif times >= RESEND_MAX_TIMES or now - last_at < interval:
                self.retransmissions_throttled += 1
                continue
            if self.budget is not None and not self.budget.take(size):
                self.retransmissions_over_budget += 1
                continue
            try:
                sent = out.resend(seq)
            except ConnectionError:
                self._drop("retransmit_not_connected")
                return  # the leg is down: every other resend would fail the same way
            except Exception as exc:
                self.retransmissions_failed += 1
                self._faults.record("subscription.retransmit", exc)
                continue
            if sent is None:  # its age crossed history_seconds since resendable()
                self.retransmissions_missed += 1
                continue
            resent[seq] = (now, times + 1)
            self.retransmissions += 1
            self.retransmitted_bytes += sent
        if len(resent) > 2 * SRTP_REPLAY_WINDOW:
            for old in [k for k, (at, _) in resent.items() if now - at > RESEND_FORGET_SECONDS]:
                del resent[old]

    def on_keyframe_request(self) -> None:
        self.keyframe_requests += 1
        self.source.request_keyframe()

    def _history_kept(self) -> float:
        """Seconds the send history keeps (the setting, or ``HISTORY_ROUND_TRIPS`` round trips
        when longer: a long path's NACKs and our resends come that much later); 0 when
        the subscriber negotiated no NACK (RFC 4585 ``a=rtcp-fb:* nack``) for any codec of
        the m-line: it will ask for no resends (browsers and aiortc send Opus without), so
        keeping its packets is memory for nothing."""
        if not any(
            f.type == "nack" and not f.parameter for c in self.codecs for f in c.rtcpFeedback
        ):
            return 0.0
        return max(self._history_seconds, HISTORY_ROUND_TRIPS * (self.rtt or 0.0))

    def reported_past(self, seq: int | None) -> bool:
        """Has a receiver report of the subscriber reached sequence number ``seq`` (ours)?"""
        if seq is None:
            return True
        counts = self._report_counts
        return counts is not None and (counts[2] - seq) & 0xFFFF < 0x8000

    def rtx_reported_past(self, rtx_seq: int) -> bool:
        """Has a report block for our RTX SSRC reached its sequence number ``rtx_seq``?"""
        highest = self._rtx_counts[0]
        return highest >= 0 and (highest - rtx_seq) & 0xFFFF < 0x8000

    def on_receiver_report(self, report: rtcp.RtcpReceiverInfo, received_at: float) -> None:
        """The subscriber's report block on this stream, which arrived at ``received_at``
        (``time.monotonic`` s): the round trip ends there, not when the SFU got to it."""
        self.fraction_lost = report.fraction_lost
        self.packets_lost = report.packets_lost
        self.jitter = report.jitter
        rtt = rtcp.rtt_from_report(report.lsr, report.dlsr, self._sr_sent, received_at)
        if rtt is not None:
            self.rtt = rtt
            self.out.history_seconds = self._history_kept()
        self._leg_loss(report.highest_sequence, report.packets_lost)

    def _leg_loss(self, highest: int, lost: int) -> None:
        """Add what *our* leg carried and lost since the previous report to ``leg_expected``
        and ``leg_lost``.

        The subscriber's counts (RFC 3550 6.4.1: extended highest sequence and cumulative lost)
        give what it received up to ``highest`` (``highest - lost`` grows by exactly that);
        what we forwarded up to the same sequence number is our packets out less those sent
        after it (still in flight, found in the send history). Their difference is our leg's
        loss alone: the gaps the publisher's uplink left are in neither count (we keep them,
        so NACKs reach the publisher), and a repair the publisher sends later is in both.
        Before, the source's own loss rate was subtracted, read when the report arrived: its
        counter runs ahead of the subscriber's ``highest``, so with a report per NACK the
        uplink's losses landed in a later window with nothing to subtract (a clean leg whose
        publisher was policed at 300 kbit/s read 60-90% loss, and its video was paused).
        With RTX the subscriber counts a repair on the RTX SSRC, not here: ``rtx_received``
        adds it back, so the loss is after repair either way; ``leg_lost_raw`` leaves it out
        (with RTX: the loss before repair, which a probe is judged by)."""
        out = self.out
        ahead = 0 if out.last_seq is None else (out.last_seq - highest) & 0xFFFF
        previous = self._report_counts
        if ahead >= IN_FLIGHT_MAX or (previous is not None and highest <= previous[2]):
            return  # a stale report, or nothing new: the window stays open
        in_flight = sum(1 for k in range(1, ahead + 1)
                        if out.sent((highest + k) & 0xFFFF) is not None)  # fmt: skip
        raw = highest - lost
        counts = self._report_counts = (
            out.packets_out - in_flight,
            raw + self.rtx_received,
            highest,
            raw,
        )
        if previous is None:
            return
        forwarded, received = counts[0] - previous[0], counts[1] - previous[1]
        if forwarded <= 0:
            return
        self.leg_expected += forwarded
        self.leg_lost += max(0, min(forwarded, forwarded - received))
        self.leg_lost_raw += max(0, min(forwarded, forwarded - (raw - previous[3])))

    def on_rtx_report(self, report: rtcp.RtcpReceiverInfo) -> None:
        """The subscriber's report block for our RTX SSRC: what arrived on it since the last
        one (RFC 3550 6.4.1: the extended highest sequence number less the cumulative lost
        grows by exactly that) joins ``rtx_received``. libwebrtc and aiortc leave a packet
        repaired through RTX out of the media SSRC's counts (RFC 4588 streams are counted
        apart), where a resend on the media SSRC counted as received: without this the leg's
        loss would read before repair with RTX, and 10% random loss paused a subscriber's
        video that repairs kept playing."""
        highest, lost = report.highest_sequence, report.packets_lost
        previous = self._rtx_counts
        advanced = highest - previous[0]
        if advanced <= 0:
            return  # stale, or nothing new
        if advanced > (self.out.rtx_seq - 1 - previous[0]) & 0xFFFF:
            # Past the RTX numbers we used: not a count of our stream (a bug or a forgery;
            # taken, 2**32 - 1 once read every later loss as repaired, every later block stale).
            self._drop("rtx_report_invalid")
            return
        received = min(advanced, max(0, advanced - (lost - previous[1])))
        self.rtx_tally = (self.rtx_tally[0] + advanced, self.rtx_tally[1] + advanced - received)
        # Probe padding the block covers repaired nothing: its share of what arrived (the
        # block tells how many, not which) is left out, or a probe would hide media losses.
        probes, covered = self._probe_seqs, highest & 0xFFFF
        padding = 0
        while probes and 0 <= (covered - probes[0]) & 0xFFFF < 0x8000:
            probes.popleft()
            padding += 1
        self.rtx_received += received - round(received * min(1.0, padding / advanced))
        self._rtx_counts = (highest, lost)

    def on_remb(self, bitrate: int) -> None:
        self.remb = bitrate

    # ---- RTCP to the subscriber -------------------------------------------------------------

    def on_source_sender_report(self, ntp: int, rtp_timestamp: int) -> None:
        """Translate the publisher's SR onto our leg: same NTP time, our RTP timeline and our
        counts. Receivers use it to line audio and video up (lip sync) and for RTT.

        Once resends have gone out as RTX, the same compound carries an SR for the RTX SSRC
        too (RFC 3550 6.4.1: one per SSRC we send on; RFC 4588 6; libwebrtc and mediasoup do):
        the RTX stream's packets and payload octets (OSN included), on the media's RTP
        timeline, which RTX packets keep (RFC 4588 4)."""
        out = self.out
        if self._send_rtcp is None or out.last_seq is None or not out.ready:
            return
        timestamp = (rtp_timestamp + out.ts_offset) & 0xFFFFFFFF
        streams = [(self.ssrc, self.packets_out, self.payload_bytes_out)]
        if out.rtx_ssrc and out.rtx_packets_out:
            streams.append((out.rtx_ssrc, out.rtx_packets_out, out.rtx_payload_bytes_out))
        data = b"".join(
            bytes(RtcpSrPacket(ssrc=ssrc, sender_info=RtcpSenderInfo(
                ntp_timestamp=ntp, rtp_timestamp=timestamp, packet_count=packets & 0xFFFFFFFF,
                octet_count=octets & 0xFFFFFFFF)))
            for ssrc, packets, octets in streams
        )  # fmt: skip
        lsr = (ntp >> 16) & 0xFFFFFFFF
        self._sr_sent[lsr] = time.monotonic()
        if len(self._sr_sent) > 8:
            del self._sr_sent[next(iter(self._sr_sent))]
        self.srs_sent += 1
        self._send_rtcp(data)

    async def close(self) -> None:
        """Stop carrying packets; the subscriber gets an RTCP BYE for our SSRC and, where
        resends go as RTX, for the RTX SSRC: both streams end (RFC 3550 6.6, RFC 4588 6)."""
        if self.closed:
            return
        self.closed = True
        self._cancel_pending()
        self.source.detach(self)
        if self._send_rtcp is not None:
            sources = [self.ssrc] + ([self.out.rtx_ssrc] if self.out.rtx_ssrc else [])
            self._send_rtcp(bytes(RtcpByePacket(sources=sources)))
        self.out.set_route(None, None)
