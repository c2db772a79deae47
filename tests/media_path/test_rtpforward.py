"""The compiled per-packet path (media_server/rtpforward.c) against the Python it replaced and
against bad input: receive statistics equal aiortc's StreamStatistics, and no byte string
handed to a Leg crashes it or goes uncounted."""

from __future__ import annotations

import struct
from types import SimpleNamespace

import pytest
from aiortc.rtcrtpreceiver import StreamStatistics
from hypothesis import given, settings
from hypothesis import strategies as st

from media_server import rtpheader
from media_server.faults import Faults
from media_server.rtpforward import Inbound, Leg, Outbound
from media_server.transport import set_keys
from tests.fuzz import media as fuzz_media

MID = rtpheader.URI_MID


def rtp(seq: int, ts: int, ssrc: int = 5, pt: int = 96, payload: bytes = b"x") -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(-40, 300), st.integers(0, 5)), min_size=1, max_size=60),
       st.integers(0, 0xFFFF))  # fmt: skip
def test_receive_statistics_equal_aiortc(steps: list[tuple[int, int]], start: int) -> None:
    # Sequence numbers that skip, go back, repeat and wrap at 65535 (a packet 100 or more
    # behind the newest is a jump, RFC 3550 A.1, which aiortc does not know: not sent here).
    ours = Inbound(90000, 96)
    theirs = StreamStatistics(90000)
    seq = start
    sent = 0
    arrived: set[int] = set()
    for step, frame in steps:
        seq = (seq + step) & 0xFFFF
        if ours.max_seq is not None and (ours.max_seq - seq) & 0xFFFF in range(100, 0x8000):
            continue
        # A repeat is counted received (RFC 3550 A.3) but not taken in or forwarded.
        sent += seq not in arrived
        data = rtp(seq, 3000 * frame)
        assert ours.receive(data) == ("duplicate" if seq in arrived else None)
        arrived.add(seq)
        theirs.add(SimpleNamespace(sequence_number=seq, timestamp=3000 * frame))
        assert (ours.max_seq, ours.base_seq, ours.cycles, ours.packets_received) == (
            theirs.max_seq, theirs.base_seq, theirs.cycles, theirs.packets_received
        )  # fmt: skip
        assert ours.packets_lost == theirs.packets_lost
        assert ours.packets_expected == theirs.packets_expected
    assert ours.fraction_lost == theirs.fraction_lost  # each read moves the interval on
    assert ours.fraction_lost == theirs.fraction_lost
    assert ours.packets_in == sent


def test_payload_type_mismatch_and_malformed_packets_are_refused() -> None:
    inbound = Inbound(90000, 96)
    assert inbound.receive(rtp(1, 0, pt=97)) == "payload_type"
    assert inbound.receive(b"\x80\x60\x00") == "malformed_rtp"
    assert inbound.packets_in == 0 and inbound.max_seq is None


class Sink:
    def __init__(self) -> None:
        self.unrouted: list[bytes] = []
        self.rtcp: list[bytes] = []
        self.dropped: dict[str, int] = {}
        self.faults = Faults("test")


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=120), min_size=1, max_size=20), st.data())
def test_any_bytes_through_a_leg_are_forwarded_or_counted(
    garbage: list[bytes], data: st.DataObject
) -> None:
    sink = Sink()
    leg = Leg(on_rtp=sink.unrouted.append, on_rtcp=sink.rtcp.append, dropped=sink.dropped,
              faults=sink.faults)  # fmt: skip
    inbound = Inbound(90000, 96, faults=sink.faults)
    leg.routes[5] = inbound
    sent: list[bytes] = []
    dropped: dict[str, int] = {}
    out = Outbound(64, lambda packet: True, dropped, sink.faults)
    rewrite = rtpheader.ExtensionRewrite({MID: 1}, {MID: 3}, "123")
    out.set_route(sent.append, rewrite.plan)
    out.ssrc, out.payload_type, out.ready = 9, 100, True
    inbound.outbounds.append(out)
    packets = []
    for junk in garbage:
        # Half of them look like RTP for the routed SSRC, with whatever follows the header.
        if data.draw(st.booleans()) and len(junk) >= 12:
            junk = (
                bytes([0x80 | (junk[0] & 0x3F), 96]) + junk[2:8] + struct.pack("!I", 5) + junk[12:]
            )
        packets.append(junk)
        leg.receive_rtp(junk)
    accepted = inbound.packets_in
    refused = sum(sink.dropped.values())
    assert accepted + refused + len(sink.unrouted) == len(packets)
    assert len(sent) + sum(dropped.values()) == accepted and sink.faults.count == 0
    for packet in sent:
        header = rtpheader.parse(packet)  # every packet sent is well formed
        assert (header.ssrc, header.payload_type) == (9, 100)
    for packet in sink.unrouted:
        assert rtpheader.parse(packet).ssrc != 5


def test_a_leg_that_is_not_connected_refuses_to_send() -> None:
    leg = Leg(on_rtp=None, on_rtcp=None, dropped={}, faults=None)
    try:
        leg(rtp(1, 0))
    except ConnectionError:
        pass
    else:
        raise AssertionError("sent without keys or a connection")
    # An Outbound sending through it drops and counts, and keeps waiting for a keyframe.
    dropped: dict[str, int] = {}
    out = Outbound(16, lambda packet: True, dropped)
    out.set_route(leg, None)
    out.ready = True
    out.forward(rtp(1, 0))
    assert dropped == {"not_connected": 1} and not out.ready and out.packets_out == 0


def test_a_sequence_jump_is_a_restart_only_when_the_next_packet_follows() -> None:
    # RFC 3550 A.1: more than 3000 ahead or 100 behind is a jump; one stray packet is dropped,
    # two in a row restart the statistics and tell the publication (which re-bases).
    restarts: list[int | None] = []
    inbound = Inbound(90000, 96, on_restart=lambda: restarts.append(inbound.max_seq))
    for seq in range(10, 20):
        assert inbound.receive(rtp(seq, 0)) is None
    assert inbound.receive(rtp(30_000, 0)) == "sequence_jump"
    assert inbound.receive(rtp(20, 0)) is None and restarts == []
    assert inbound.receive(rtp(65_500, 0)) is None  # 56 behind 20, across the wrap: reordered
    assert inbound.receive(rtp(20 - 100, 0)) == "sequence_jump"  # 100 behind: a jump
    assert inbound.receive(rtp(40_000, 0)) == "sequence_jump"
    assert inbound.receive(rtp(40_001, 0)) is None
    assert restarts == [None]  # statistics reset before the hook ran
    assert (inbound.base_seq, inbound.max_seq, inbound.packets_received) == (40_001, 40_001, 1)
    assert inbound.packets_in == 13


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.integers(-3, 5), st.integers(0, 0xFFFF).map(lambda s: ("to", s))),
                min_size=1, max_size=80))  # fmt: skip
def test_any_publisher_numbering_keeps_the_outgoing_srtp_stream_valid(steps: list) -> None:
    # Whatever sequence numbers a publisher sends (steps, repeats, jumps anywhere), what the
    # subscriber's leg sends is protected by SRTP and decrypts at the receiver, and nothing is
    # counted as a fault or a send_error (the send side's replay window never sees the jump).
    sfu = fuzz_media.Sfu()
    seq = 1000
    for i, step in enumerate(steps):
        seq = step[1] if isinstance(step, tuple) else (seq + step) & 0xFFFF
        sfu.publisher_leg.receive_rtp(rtp(seq, 960 * i, ssrc=fuzz_media.AUDIO_SSRC, pt=111))
        sfu.check()


def test_a_packet_its_rewrite_grows_past_the_mtu_is_a_drop_not_a_fault() -> None:
    # A near-MTU packet whose one-byte MID must grow for the subscriber ("1" -> "12345"): once
    # protected it would be over 1500 bytes, which aiortc's receiver cannot unprotect (its
    # receive loop ends). It is the publisher's packet: a counted drop, never a send_error or a
    # media fault.
    sent: list[bytes] = []
    leg = Leg(on_rtp=None, on_rtcp=None, dropped={}, faults=None)
    set_keys(leg, fuzz_media._session(b"k" * 30, True), fuzz_media._session(b"k" * 30, False))
    leg.send_queued, leg.connected = sent.append, True
    dropped: dict[str, int] = {}
    faults = Faults("test")
    out = Outbound(16, lambda packet: True, dropped, faults)
    out.set_route(leg, rtpheader.ExtensionRewrite({MID: 1}, {MID: 1}, "12345").plan)
    out.ssrc, out.payload_type, out.ready = 9, 100, True
    block = bytes([0x10, ord("1"), 0, 0])
    head = struct.pack("!BBHII", 0x90, 96, 1, 0, 5) + struct.pack("!HH", 0xBEDE, 1) + block
    out.forward(head + bytes(1500 - len(head)))
    assert dropped == {"too_long": 1} and faults.count == 0 and sent == []
    out.forward(head + bytes(1476 - len(head)))  # 1484 once the MID grew: fits with a tag
    assert len(sent) == 1 and len(sent[0]) <= 1500 and dropped == {"too_long": 1}
    out.forward(head + bytes(1477 - len(head)))
    assert len(sent) == 1 and dropped == {"too_long": 2} and faults.count == 0


def test_our_report_on_the_media_ssrc_counts_a_packet_repaired_by_rtx_as_lost() -> None:
    # RFC 4588: a repair arrives on the RTX SSRC, and libwebrtc's receivers leave it out of the
    # media SSRC's report. Counted as received, a publisher policed at 300 kbit/s read little
    # loss, kept sending more than its uplink carried, and its subscribers' video froze.
    inbound = Inbound(90000, 96)
    inbound.set_rtx({97: 96})
    for seq in (10, 11, 13):
        assert inbound.receive(rtp(seq, 3000 * seq)) is None
    repair = rtp(500, 3000 * 12, ssrc=6, pt=97, payload=struct.pack("!H", 12) + b"m12")
    assert inbound.receive(repair) is None
    assert inbound.packets_received == 4 and inbound.rtx_in == 1  # forwarded and counted
    assert inbound.packets_lost == 1
    assert inbound.fraction_lost == (1 << 8) // 4


def test_rtx_from_the_publisher_is_unwrapped_into_the_packet_it_repairs_once() -> None:
    # RFC 4588: RTX payload type 97 repairs 96 on an SSRC of its own; its payload starts with
    # the original sequence number (OSN). libwebrtc also resends packets that arrived (as
    # bandwidth probes) and sends padding alone on RTX: neither reaches the subscribers.
    sent: list[bytes] = []
    inbound = Inbound(90000, 96)
    out = Outbound(64, lambda data: True, {})
    out.set_route(sent.append, None)
    out.ssrc, out.payload_type, out.ready = 5, 96, True  # the test packets' own: no rewrite
    inbound.outbounds.append(out)
    inbound.set_rtx({97: 96})
    for seq in (10, 11, 13):
        assert inbound.receive(rtp(seq, 3000 * seq, payload=b"m%d" % seq)) is None

    def rtx(rtx_seq: int, osn: int, payload: bytes) -> bytes:
        return rtp(rtx_seq, 3000 * osn, ssrc=6, pt=97, payload=struct.pack("!H", osn) + payload)

    assert inbound.receive(rtx(500, 12, b"m12")) is None
    assert inbound.receive(rtx(501, 12, b"m12")) == "rtx_unrepaired"  # repaired already
    assert inbound.receive(rtx(502, 11, b"m11")) == "rtx_unrepaired"  # it had arrived
    padding = bytearray(rtp(503, 0, ssrc=6, pt=97, payload=bytes(9) + b"\x0a"))
    padding[0] |= 0x20
    assert inbound.receive(bytes(padding)) == "rtx_padding"
    assert inbound.rtx_in == 1 and inbound.packets_received == 4
    assert [(p[1] & 0x7F, struct.unpack("!H", p[2:4])[0], p[12:]) for p in sent] == [
        (96, 10, b"m10"), (96, 11, b"m11"), (96, 13, b"m13"), (96, 12, b"m12")
    ]  # fmt: skip
    for bad in ({97: 97}, {128: 96}, {97: 98, 98: 96}):  # an RTX type naming itself or RTX
        with pytest.raises(ValueError):
            inbound.set_rtx(bad)


def test_a_packet_from_before_a_re_base_is_not_given_a_number_already_sent() -> None:
    """A re-base (a layer or source switch at its keyframe, a resume) continues the numbering
    from the last packet sent. A packet of the new source from before the packet re-based at
    (reordered) would be numbered before it, with a number a packet of the old source went
    out under: it is dropped as before_restart, until nothing that old can arrive."""
    sent: list[bytes] = []
    dropped: dict[str, int] = {}

    def prepare(packet: bytes) -> bool:  # as Subscription._prepare re-bases
        source_seq = struct.unpack("!H", packet[2:4])[0]
        if out.last_seq is not None:
            out.seq_offset = (out.last_seq + 1 - source_seq) & 0xFFFF
        out.ready = True
        return True

    out = Outbound(1024, prepare, dropped)
    out.set_route(sent.append, None)
    out.ssrc, out.payload_type = 5, 96
    for seq in (1000, 1001, 1002):
        out.forward(rtp(seq, seq))
    out.ready = False  # the switch: 5000 is the new source's keyframe
    for seq in (5000, 5001, 4999, 4998, 5002):
        out.forward(rtp(seq, seq))
    assert [struct.unpack("!H", p[2:4])[0] for p in sent] == [1000, 1001, 1002, 1003, 1004, 1005]
    assert dropped == {"before_restart": 2}
    for seq in range(5003, 5003 + 0x1000):  # far on: the next packets are the new source's
        out.forward(rtp(seq, seq))
    out.forward(rtp(5003 + 0x1000 + 0x7000, 0))  # seq_newer holds: forwarded
    assert dropped == {"before_restart": 2} and len(sent) == 6 + 0x1000 + 1
