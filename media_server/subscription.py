"""A subscription: one outgoing stream to one subscriber - the SFU's per-packet path.

    publisher --SRTP--> socket's datagram_received (transport.py: decrypt)
        --> Participant.on_rtp (route by SSRC)
        --> Publication.on_rtp (stats, NACK upstream, bandwidth estimate)
        --> Subscription.forward (this file) --> transport.send_now (encrypt, sendto)

All of it is synchronous: one datagram in, its copies out, before the event loop moves on.

A video subscription starts (and restarts after ``switch_source``) at a keyframe: earlier
packets would only give the subscriber's decoder errors, so they are dropped (counted as
``awaiting_keyframe``) while a keyframe is requested (throttled per publication).

``forward`` copies the packet into a bytearray and rewrites, in place, the four things that
belong to the subscriber's leg: SSRC, payload type, sequence number and timestamp (continuous
across a publisher reconnect: ``switch_source`` re-bases the offsets) and the header extension
ids / MID value. Nothing is decoded or re-encoded and unknown header extensions survive.
Every packet sent is kept in a ``SendHistory`` to answer the subscriber's NACKs.

The subscription reads from a *source* (today a Publication). Simulcast layer choice, bandwidth
adaptation and a transcoding fallback are sources too (a selector over several publications, a
decoder/encoder producing the subscriber's codec): they plug in as ``source`` without changing
this path.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from aiortc.rtp import RtcpByePacket, RtcpSenderInfo, RtcpSrPacket

from media_server import rtcp, rtpheader
from media_server.codecs import interchangeable, starts_keyframe
from media_server.faults import Faults
from media_server.publication import Publication
from media_server.sendhistory import SendHistory

log = logging.getLogger(__name__)

# Encrypts and sends one RTP packet now; raises ConnectionError while the leg is not up.
SendRtp = Callable[[bytes], None]


class CodecMismatch(ValueError):
    """switch_source to a publication whose codec the subscriber did not negotiate."""


class Subscription:
    """Created by ``Participant.subscribe``; carries packets once its m-line is negotiated."""

    def __init__(self, source: Publication, *, history_packets: int, faults: Faults) -> None:
        self.source = source
        self.kind = source.kind
        self.ssrc = 0  # our sender's SSRC on the subscriber's leg (bound at negotiation)
        self.payload_type = 0
        self.mid: str | None = None
        self.closed = False
        self._send: SendRtp | None = None
        self._send_rtcp: Callable[[bytes], None] | None = None
        self._ext: rtpheader.ExtensionRewrite | None = None
        self._subscriber_ext: dict[str, int] = {}
        self._history = SendHistory(history_packets)
        self._faults = faults
        # Output = input + offset (mod 2^16 / 2^32); re-based on the first packet of a source.
        self._rebase = True
        self._gate_keyframes = source.kind == "video"
        self._seq_offset = 0
        self._ts_offset = 0
        self._next_seq = random.randrange(0x8000)  # like aiortc: low start avoids SRTP rollover
        self._last_seq: int | None = None
        self._last_ts = random.randrange(1 << 32)
        self._last_sent_at: float | None = None
        self._sr_sent: dict[int, float] = {}  # lsr -> when (RTT from receiver reports)

        self.packets_out = 0
        self.bytes_out = 0
        self.payload_bytes_out = 0
        self.nacks_received = 0
        self.retransmissions = 0
        self.retransmissions_missed = 0  # NACKed packets no longer in the history
        self.keyframe_requests = 0  # PLI/FIR from the subscriber
        self.srs_sent = 0
        self.switches = 0
        self.remb: int | None = None
        self.fraction_lost = 0  # from the subscriber's receiver reports (0-255)
        self.packets_lost = 0
        self.jitter = 0
        self.rtt: float | None = None
        self.dropped: dict[str, int] = {}
        source.attach(self)

    # ---- binding -----------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self._send is not None and not self.closed

    def bind(
        self,
        *,
        ssrc: int,
        payload_type: int,
        mid: str,
        extensions: dict[str, int],
        send_rtp: SendRtp,
        send_rtcp: Callable[[bytes], None],
    ) -> None:
        """The subscriber accepted our m-line: start carrying packets (and ask for a keyframe)."""
        self.ssrc = ssrc
        self.payload_type = payload_type
        self.mid = mid
        self._subscriber_ext = extensions
        self._ext = rtpheader.ExtensionRewrite(self.source.extensions, extensions, mid)
        self._send = send_rtp
        self._send_rtcp = send_rtcp
        self.source.request_keyframe()

    def switch_source(self, publication: Publication) -> None:
        """The publisher came back on a new connection: carry on from its new publication.

        Sequence numbers continue from the last one sent and timestamps advance by the wall
        time that passed, so the subscriber sees one stream with a gap rather than a new one.
        Raises CodecMismatch when the new publication's codec differs from the negotiated one
        (a publisher that came back with H.264 instead of VP8): subscribe to it anew.
        """
        if publication is self.source:
            return
        if not interchangeable(self.source.codec, publication.codec):
            raise CodecMismatch(
                f"{publication.id} sends {publication.codec_name}; this subscription was "
                f"negotiated for {self.source.codec_name}: subscribe to it instead"
            )
        self.source.detach(self)
        self.source = publication
        self.switches += 1
        self._rebase = True
        if self._send is not None:
            self._ext = rtpheader.ExtensionRewrite(
                publication.extensions, self._subscriber_ext, self.mid or ""
            )
        publication.attach(self)
        publication.request_keyframe()

    # ---- the per-packet path ------------------------------------------------------------------

    def forward(self, data: bytes, header: rtpheader.Header) -> None:
        send = self._send
        if send is None:
            self._drop("not_negotiated")
            return
        if self._rebase:
            # A fresh or switched stream starts at a keyframe: anything before it would only
            # give the subscriber's decoder errors (and a PLI storm).
            if self._gate_keyframes and not starts_keyframe(
                self.source.codec.name, data[header.payload_offset :]
            ):
                self._drop("awaiting_keyframe")
                self.source.request_keyframe()
                return
            self._rebase_on(header)
        seq = (header.sequence_number + self._seq_offset) & 0xFFFF
        ts = (header.timestamp + self._ts_offset) & 0xFFFFFFFF
        buf = bytearray(data)
        buf[1] = (data[1] & 0x80) | self.payload_type
        rtpheader.SEQ_TS_SSRC.pack_into(buf, 2, seq, ts, self.ssrc)
        if header.layout and not self._ext.identity:
            buf = self._ext.rewrite(buf, header)
        # The bytearray itself is kept and sent (no bytes() copy): nothing writes to it again.
        packet = buf
        self._history.store(seq, packet)
        try:
            send(packet)
        except ConnectionError:
            self._drop("not_connected")
            if self._last_seq is None:
                self._rebase = True  # nothing reached the subscriber yet: start at a keyframe
            return
        except Exception as exc:  # a packet pylibsrtp refuses (too long), a closed socket...
            self._drop("send_error")
            self._faults.record("subscription.forward", exc)
            return
        self.packets_out += 1
        self.bytes_out += len(packet)
        self.payload_bytes_out += len(packet) - header.payload_offset
        last = self._last_seq
        if last is None or (seq != last and ((seq - last) & 0xFFFF) < 0x8000):  # seq_newer
            self._last_seq = seq
            self._last_ts = ts
            self._last_sent_at = time.monotonic()

    def _rebase_on(self, header: rtpheader.Header) -> None:
        if self._last_seq is not None:
            self._next_seq = (self._last_seq + 1) & 0xFFFF
            elapsed = time.monotonic() - (self._last_sent_at or time.monotonic())
            next_ts = self._last_ts + max(1, int(elapsed * self.source.clock_rate))
        else:
            next_ts = self._last_ts
        self._seq_offset = (self._next_seq - header.sequence_number) & 0xFFFF
        self._ts_offset = (next_ts - header.timestamp) & 0xFFFFFFFF
        self._rebase = False

    def _drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    # ---- RTCP from the subscriber ---------------------------------------------------------

    def on_nack(self, seqs: list[int]) -> None:
        """Resend what the subscriber lost from our history (same SSRC and sequence number)."""
        self.nacks_received += 1
        send = self._send
        if send is None:
            return
        for seq in seqs:
            packet = self._history.get(seq)
            if packet is None:
                self.retransmissions_missed += 1
                continue
            try:
                send(packet)
            except ConnectionError:
                return
            except Exception as exc:
                self._faults.record("subscription.retransmit", exc)
                return
            self.retransmissions += 1

    def on_keyframe_request(self) -> None:
        self.keyframe_requests += 1
        self.source.request_keyframe()

    def on_receiver_report(self, report: rtcp.RtcpReceiverInfo) -> None:
        self.fraction_lost = report.fraction_lost
        self.packets_lost = report.packets_lost
        self.jitter = report.jitter
        rtt = rtcp.rtt_from_report(report.lsr, report.dlsr, self._sr_sent)
        if rtt is not None:
            self.rtt = rtt

    def on_remb(self, bitrate: int) -> None:
        self.remb = bitrate

    # ---- RTCP to the subscriber -------------------------------------------------------------

    def on_source_sender_report(self, ntp: int, rtp_timestamp: int) -> None:
        """Translate the publisher's SR onto our leg: same NTP time, our RTP timeline and our
        counts. Receivers use it to line audio and video up (lip sync) and for RTT."""
        if self._send_rtcp is None or self._last_seq is None or self._rebase:
            return
        sr = RtcpSrPacket(
            ssrc=self.ssrc,
            sender_info=RtcpSenderInfo(
                ntp_timestamp=ntp,
                rtp_timestamp=(rtp_timestamp + self._ts_offset) & 0xFFFFFFFF,
                packet_count=self.packets_out & 0xFFFFFFFF,
                octet_count=self.payload_bytes_out & 0xFFFFFFFF,
            ),
        )
        lsr = (ntp >> 16) & 0xFFFFFFFF
        self._sr_sent[lsr] = time.monotonic()
        if len(self._sr_sent) > 8:
            del self._sr_sent[next(iter(self._sr_sent))]
        self.srs_sent += 1
        self._send_rtcp(bytes(sr))

    async def close(self) -> None:
        """Stop carrying packets; the subscriber gets an RTCP BYE for our SSRC."""
        if self.closed:
            return
        self.closed = True
        self.source.detach(self)
        if self._send_rtcp is not None:
            self._send_rtcp(bytes(RtcpByePacket(sources=[self.ssrc])))
        self._send = None
