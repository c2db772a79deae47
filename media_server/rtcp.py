"""RTCP pieces the SFU terminates per leg: NACK with retries, reports, REMB, keyframe requests.

Parsing and packet classes come from aiortc (``aiortc.rtp``); what aiortc lacks is here:
wrap-safe NACK packing, a NACK list that retries on a timer, FIR parsing, and report blocks
built from aiortc's ``StreamStatistics``.
"""

from __future__ import annotations

import struct
import time

from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    pack_remb_fci,
    pack_rtcp_packet,
)

RTCP_RTPFB = 205
RTCP_RTPFB_TRANSPORT_CC = 15
NACK_MAX_RETRIES = 5
NACK_MAX_AGE_SECONDS = 1.0
NACK_MAX_TRACKED = 512
NACK_MIN_INTERVAL_SECONDS = 0.04
KEYFRAME_INTERVAL_SECONDS = 0.5
# A publisher's encoder obliges one keyframe request per this long and drops the others
# (libwebrtc's EncoderRtcpFeedback, kMinKeyframeSendIntervalMs).
KEYFRAME_OBLIGED_SECONDS = 0.3
NTP_OFFSET_MS = 2_208_988_800_000  # 1900-01-01 to 1970-01-01


# What aiortc's RTCP parsers raise on a packet they cannot read (struct.error is not a
# ValueError: a REMB FCI shorter than its SSRC count raises it).
MALFORMED = (ValueError, IndexError, struct.error)
HEADER = struct.Struct("!BBH")


def split_compound(data: bytes) -> tuple[list[bytes], bool]:
    """The packets of an RTCP compound (RFC 3550 6.1), each cut at its own header's length
    (RFC 3550 6.4.1: length in 32-bit words minus one), with whether the whole datagram was
    framed so: (packets, framed). Nothing past a header that overruns the datagram can be
    framed; each packet is then parsed on its own, so one malformed packet costs only itself."""
    parts = []
    pos, size = 0, len(data)
    while pos + HEADER.size <= size:
        end = pos + 4 * (HEADER.unpack_from(data, pos)[2] + 1)
        if end > size:
            return parts, False
        parts.append(data[pos:end])
        pos = end
    return parts, pos == size


def is_transport_feedback(packet: bytes) -> bool:
    """Is ``packet`` (one of a compound) transport-cc feedback: RTPFB (205) with FMT 15
    (draft-holmer-rmcat-transport-wide-cc-extensions-01 3.1)?"""
    return (
        len(packet) > 1 and packet[1] == RTCP_RTPFB and packet[0] & 0x1F == RTCP_RTPFB_TRANSPORT_CC
    )


def ntp_ms() -> int:
    """``aiortc.clock.current_ms`` (milliseconds since 1900) from ``time.time()``: aiortc's
    goes through two datetimes and a timedelta, ~1.5 us a call."""
    return int(time.time() * 1000) + NTP_OFFSET_MS


def seq_newer(a: int, b: int) -> bool:
    """RFC 1982 comparison of 16-bit sequence numbers: a comes after b."""
    return a != b and ((a - b) & 0xFFFF) < 0x8000


def pack_nack(sender_ssrc: int, media_ssrc: int, seqs: list[int]) -> bytes:
    """A generic NACK (RFC 4585 6.2.1) for ``seqs`` (any order, wrap-safe)."""
    items = []
    pid = blp = None
    for seq in sorted(seqs, key=lambda s: (s - seqs[0] + 0x8000) & 0xFFFF):
        if pid is not None:
            d = (seq - pid - 1) & 0xFFFF
            if d < 16:
                blp |= 1 << d
                continue
            items.append(struct.pack("!HH", pid, blp))
        pid, blp = seq, 0
    if pid is not None:
        items.append(struct.pack("!HH", pid, blp))
    payload = struct.pack("!LL", sender_ssrc, media_ssrc) + b"".join(items)
    return pack_rtcp_packet(RTCP_RTPFB, RTCP_RTPFB_NACK, payload)


def nack_seqs(lost: list[int]) -> list[int]:
    """aiortc's NACK parser does not wrap bitmask entries past 65535."""
    return [seq & 0xFFFF for seq in lost]


def pack_pli(sender_ssrc: int, media_ssrc: int) -> bytes:
    return bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=sender_ssrc, media_ssrc=media_ssrc))


def pack_remb(sender_ssrc: int, bitrate: int, ssrcs: list[int]) -> bytes:
    return bytes(
        RtcpPsfbPacket(
            fmt=RTCP_PSFB_APP, ssrc=sender_ssrc, media_ssrc=0, fci=pack_remb_fci(bitrate, ssrcs)
        )
    )


def fir_ssrcs(fci: bytes) -> list[int]:
    """The media SSRCs a FIR (RFC 5104 4.3.1) asks keyframes for (8-byte FCI entries)."""
    return [struct.unpack_from("!L", fci, pos)[0] for pos in range(0, len(fci) - 7, 8)]


class NackList:
    """Missing sequence numbers of one incoming stream, NACKed at once and retried.

    aiortc's NackGenerator NACKs a gap once; a NACK or the retransmission can itself be lost,
    so each missing packet is asked for again every ``max(rtt, 40 ms)`` up to
    ``NACK_MAX_RETRIES`` times and forgotten after ``NACK_MAX_AGE_SECONDS``.
    """

    __slots__ = ("max_seq", "missing", "recovered", "given_up")

    def __init__(self) -> None:
        self.max_seq: int | None = None
        # seq -> [first seen missing, last NACK sent, NACKs sent]
        self.missing: dict[int, list[float]] = {}
        self.recovered = 0
        self.given_up = 0

    def add(self, seq: int, now: float) -> bool:
        """Record a received packet; True when it opened a gap (NACK now)."""
        max_seq = self.max_seq
        if max_seq is not None and seq == (max_seq + 1) & 0xFFFF:  # in order: most packets
            self.max_seq = seq
            return False
        if max_seq is None:
            self.max_seq = seq
            return False
        if seq_newer(seq, self.max_seq):
            gap = (seq - self.max_seq - 1) & 0xFFFF
            if gap > NACK_MAX_TRACKED:  # a jump (source restart), not loss
                self.missing.clear()
                gap = 0
            for i in range(gap):
                self.missing[(self.max_seq + 1 + i) & 0xFFFF] = [now, 0.0, 0]
            self.max_seq = seq
            if len(self.missing) > NACK_MAX_TRACKED:
                for old in list(self.missing)[: len(self.missing) - NACK_MAX_TRACKED]:
                    del self.missing[old]
                    self.given_up += 1
            return gap > 0
        if self.missing.pop(seq, None) is not None:
            self.recovered += 1
        return False

    def restart(self) -> None:
        """The stream's numbering restarted: what was missing is not coming."""
        self.missing.clear()
        self.max_seq = None

    def due(self, now: float, rtt: float) -> list[int]:
        """Sequence numbers to NACK now (marks them sent)."""
        interval = max(rtt, NACK_MIN_INTERVAL_SECONDS)
        out = []
        for seq, entry in list(self.missing.items()):
            first, last, sent = entry
            if sent >= NACK_MAX_RETRIES or now - first > NACK_MAX_AGE_SECONDS:
                del self.missing[seq]
                self.given_up += 1
                continue
            if sent == 0 or now - last >= interval:
                entry[1] = now
                entry[2] = sent + 1
                out.append(seq)
        return out


def report_block(
    ssrc: int, stats: StreamStatistics, lsr: int, lsr_time: float | None
) -> RtcpReceiverInfo:
    """One receiver report block for an incoming stream (RFC 3550 6.4.1)."""
    dlsr = 0
    if lsr_time is not None:
        delay = time.monotonic() - lsr_time
        if 0 < delay < 65536:
            dlsr = int(delay * 65536)
    return RtcpReceiverInfo(
        ssrc=ssrc,
        fraction_lost=stats.fraction_lost,
        packets_lost=stats.packets_lost,
        highest_sequence=(stats.cycles + stats.max_seq) & 0xFFFFFFFF,
        jitter=stats.jitter,
        lsr=lsr,
        dlsr=dlsr,
    )


def rtt_from_report(
    lsr: int, dlsr: int, sent: dict[int, float], received_at: float
) -> float | None:
    """Round trip (s) from a report block echoing one of our SRs (``sent``: lsr -> send time)
    that arrived at ``received_at`` (RFC 3550 6.4.1; times in ``time.monotonic`` s)."""
    when = sent.get(lsr)
    if not lsr or when is None:
        return None
    rtt = received_at - when - dlsr / 65536
    return rtt if rtt >= 0 else None
