"""RTCP compounds are split by each packet's own length and every packet is acted on by itself:
one that aiortc cannot parse costs only itself (counted ``malformed_rtcp``, never a fault)."""

from __future__ import annotations

import struct
import time

from media_server import rtcp
from tests.fuzz.media import SUBSCRIBED, Sfu


def pli(media: int) -> bytes:
    return struct.pack("!BBHII", 0x81, 206, 2, 1, media)


def nack(media: int, seq: int) -> bytes:
    return struct.pack("!BBHIIHH", 0x81, 205, 3, 1, media, seq, 0)


def test_each_packet_of_a_compound_is_acted_on_by_itself() -> None:
    sfu = Sfu()
    subscriber = sfu.subscriber
    audio, _, video = subscriber.subscriptions
    short_remb = struct.pack("!BBHII", 0x8F, 206, 4, 1, 0) + b"REMB" + bytes([2, 0, 1, 0])
    bad_rr = struct.pack("!BBHI", 0x82, 201, 7, 1) + bytes(24)  # claims 2 blocks, holds 1
    receiver_report = struct.pack("!BBHI", 0x81, 201, 7, 1) + struct.pack(
        "!IB3sIIII", SUBSCRIBED[0][0], 12, b"\0\0\1", 0, 0, 0, 0
    )
    compound = receiver_report + short_remb + nack(SUBSCRIBED[0][0], 5) + bad_rr
    compound += pli(SUBSCRIBED[2][0])
    subscriber.on_rtcp(compound, time.monotonic_ns() // 1000)
    assert audio.fraction_lost == 12  # the report before the bad packets
    assert audio.nacks_received == 1  # the NACK between them
    assert video.keyframe_requests == 1  # the PLI after them
    assert subscriber.dropped == {"malformed_rtcp": 2}  # the short REMB and the bad RR
    assert subscriber.faults.count == 0
    # A length that overruns the datagram: what came before it still counts.
    subscriber.on_rtcp(
        pli(SUBSCRIBED[2][0]) + struct.pack("!BBH", 0x81, 206, 9) + bytes(8),
        time.monotonic_ns() // 1000,
    )
    assert video.keyframe_requests == 2 and subscriber.dropped == {"malformed_rtcp": 3}


def test_split_compound_frames_by_length() -> None:
    a, b = pli(1), nack(2, 3)
    assert rtcp.split_compound(a + b) == ([a, b], True)
    assert rtcp.split_compound(a + b[:-1]) == ([a], False)
    assert rtcp.split_compound(a + b"\x80") == ([a], False)
    assert rtcp.split_compound(b"") == ([], True)
