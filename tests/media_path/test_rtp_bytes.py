"""The byte-level pieces of the forwarding path: header parsing and rewriting (the Python
planner and the compiled path that replays its plans), send history, NACK packing and retries,
keyframe detection."""

from __future__ import annotations

import struct

from aiortc.rtp import RtcpPacket, RtpPacket
from hypothesis import given, settings
from hypothesis import strategies as st

from media_server import rtcp, rtpheader
from media_server.faults import Faults
from media_server.rtpforward import Outbound, apply_plan

MID, AST, LEVEL = rtpheader.URI_MID, rtpheader.URI_ABS_SEND_TIME, rtpheader.URI_AUDIO_LEVEL


def packet(ids: dict[str, int], mid: str = "1", ast: int = 0x123456) -> bytes:
    p = RtpPacket(
        payload_type=96, sequence_number=65535, timestamp=0xFFFFFFF0, ssrc=1111, payload=b"payload!"
    )
    p.extensions.mid = mid
    p.extensions.abs_send_time = ast
    p.marker = 1
    return p.serialize(rtpheader.extension_map(ids))


def test_parse_reads_fixed_header_and_extensions() -> None:
    data = packet({MID: 4, AST: 2})
    h = rtpheader.parse(data)
    assert (h.payload_type, h.sequence_number, h.timestamp, h.ssrc, h.marker) == (
        96,
        65535,
        0xFFFFFFF0,
        1111,
        True,
    )
    assert rtpheader.element_value(data, h, 4) == b"1"
    assert rtpheader.abs_send_time(data, h, 2) == 0x123456
    assert data[h.payload_offset :] == b"payload!"


def rewrite(data: bytes, pub: dict[str, int], sub: dict[str, int], mid: str) -> RtpPacket:
    out = apply_plan(rtpheader.ExtensionRewrite(pub, sub, mid).plan(data), data)
    return RtpPacket.parse(out, rtpheader.extension_map(sub))


def test_extension_ids_are_renumbered_and_mid_replaced() -> None:
    # A browser's ids on the publish leg, aiortc's on the subscribe leg.
    out = rewrite(packet({MID: 4, AST: 2}), {MID: 4, AST: 2}, {MID: 1, AST: 3}, "7")
    assert out.extensions.mid == "7"
    assert out.extensions.abs_send_time == 0x123456
    assert out.payload == b"payload!"


def test_a_shorter_mid_is_padded_and_a_longer_one_rebuilds_the_block() -> None:
    out = rewrite(packet({MID: 1, AST: 3}, mid="12"), {MID: 1, AST: 3}, {MID: 1, AST: 3}, "3")
    assert (out.extensions.mid, out.extensions.abs_send_time, out.payload) == (
        "3",
        0x123456,
        b"payload!",
    )
    out = rewrite(packet({MID: 1, AST: 3}, mid="3"), {MID: 1, AST: 3}, {MID: 1, AST: 3}, "12")
    assert (out.extensions.mid, out.extensions.abs_send_time, out.payload) == (
        "12",
        0x123456,
        b"payload!",
    )


def test_extensions_the_subscriber_did_not_negotiate_are_blanked() -> None:
    out = rewrite(packet({MID: 1, AST: 3}), {MID: 1, AST: 3}, {MID: 1}, "1")
    assert out.extensions.mid == "1" and out.extensions.abs_send_time is None
    assert out.payload == b"payload!"


def test_unknown_extensions_survive_untouched() -> None:
    # Element id 9 (say, video orientation) travels through when both legs agree on it.
    data = bytearray(packet({MID: 1, AST: 3}))
    h = rtpheader.parse(bytes(data))
    block = bytes(data[h.ext_offset : h.ext_end]).rstrip(b"\x00") + bytes([0x90, 0x05])
    block += bytes(-len(block) % 4)
    data = data[: h.ext_offset - 2] + struct.pack("!H", len(block) // 4) + block + data[h.ext_end :]
    pub = {MID: 1, AST: 3, "urn:3gpp:video-orientation": 9}
    data = bytes(data)
    out = apply_plan(rtpheader.ExtensionRewrite(pub, pub, "1").plan(data), data)
    assert rtpheader.element_value(out, rtpheader.parse(out), 9) == b"\x05"


# Issue 12: Opus with a two-byte-form block holding a zero-length audio-level element (id 2).
ZERO_LENGTH_LEVEL = bytes.fromhex("9060400c4cb2a20aaf56d4c21000000102000000f8fffe")


def test_a_zero_length_audio_level_never_reaches_a_receiver() -> None:
    ids = {MID: 1, LEVEL: 2}
    try:  # what it did to every aiortc subscriber: struct.error, which ends its receive task
        RtpPacket.parse(ZERO_LENGTH_LEVEL, rtpheader.extension_map(ids))
    except struct.error:
        pass
    else:
        raise AssertionError("aiortc parses it now: this test no longer shows the danger")
    sent: list[bytes] = []
    _outbound(sent, rtpheader.ExtensionRewrite(ids, ids, "0").plan).forward(ZERO_LENGTH_LEVEL)
    received = RtpPacket.parse(sent[0], rtpheader.extension_map(ids))
    assert received.extensions.audio_level is None
    assert received.payload == bytes.fromhex("f8fffe")


def test_padding_of_zero_length_is_malformed() -> None:
    # RFC 3550 5.1: the last padding octet counts itself; aiortc refuses a zero count.
    data = bytes.fromhex("a060000100000002000000030102030400")
    for parser in (rtpheader.parse, _outbound([]).forward):
        try:
            parser(data)
        except ValueError:
            continue
        raise AssertionError(f"{parser} accepted padding of length 0")


ORIENTATION = "urn:3gpp:video-orientation"
KNOWN = [MID, AST, LEVEL, rtpheader.URI_TOFFSET, rtpheader.URI_TRANSPORT_CC]
URIS = [*KNOWN, rtpheader.URI_RID, rtpheader.URI_REPAIRED_RID, ORIENTATION]


@st.composite
def _ids(draw: st.DrawFn, top: int) -> dict[str, int]:
    ids = draw(st.lists(st.integers(1, top), min_size=len(URIS), max_size=len(URIS), unique=True))
    keep = draw(st.lists(st.booleans(), min_size=len(URIS), max_size=len(URIS)))
    return {uri: i for uri, i, k in zip(URIS, ids, keep, strict=True) if k}


@st.composite
def _block(draw: st.DrawFn, two_byte: bool, ids: list[int]) -> bytes:
    block = b""
    for _ in range(draw(st.integers(0, 7))):
        kind = draw(st.sampled_from(["element", "element", "padding", "reserved"]))
        if kind == "padding":
            block += b"\x00"
        elif kind == "reserved" and not two_byte:
            block += bytes([0xF0 | draw(st.integers(0, 15))])
        else:
            ident = draw(st.sampled_from(ids) | st.integers(1, 255 if two_byte else 14))
            length = draw(st.integers(0 if two_byte else 1, 17 if two_byte else 16))
            value = draw(st.binary(min_size=length, max_size=length))
            head = bytes((ident, length)) if two_byte else bytes(((ident << 4) | (length - 1),))
            block += head + value
    return block


@settings(max_examples=1500, deadline=None)
@given(st.data())
def test_every_forwarded_packet_parses_at_the_subscriber(data: st.DataObject) -> None:
    # Any elements a publisher sends (known extensions of any length, unknown ids, padding, the
    # reserved id 15), through any pair of negotiated id maps (equal ones included: no
    # renumbering, no MID): what the subscriber receives parses with aiortc's parser under the
    # subscriber's own map.
    two_byte = data.draw(st.booleans())
    pub = data.draw(_ids(255 if two_byte else 14))
    sub = data.draw(st.just(pub) | _ids(14) | _ids(255))
    block = data.draw(_block(two_byte, list(pub.values()) or [1]))
    profile = rtpheader.TWO_BYTE_PROFILE if two_byte else rtpheader.ONE_BYTE_PROFILE
    packet = _with_extension(block, profile)
    rtpheader.parse(packet)  # well formed by construction
    mid = data.draw(st.sampled_from(["0", "12345"]))
    sent: list[bytes] = []
    _outbound(sent, rtpheader.ExtensionRewrite(pub, sub, mid).plan).forward(packet)
    received = RtpPacket.parse(sent[0], rtpheader.extension_map(sub))
    assert received.payload == b"payload"
    assert received.extensions.mid in (None, mid)
    assert received.extensions.rtp_stream_id is None


def _outbound(sent: list[bytes], plan_for=None) -> Outbound:  # noqa: ANN001
    out = Outbound(1000, lambda data: True, {})
    out.set_route(sent.append, plan_for)
    out.ssrc, out.payload_type, out.ready = 3, 96, True  # the test packets' own: no rewrite
    return out


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=80))
def test_parse_never_raises_anything_but_malformed(data: bytes) -> None:
    compiled = _outbound([])
    try:
        h = rtpheader.parse(data)
    except rtpheader.MalformedRtp:
        # The compiled parser refuses exactly what this one refuses.
        try:
            compiled.forward(data)
        except ValueError:
            return
        raise AssertionError("the compiled path accepted a packet parse() refuses") from None
    compiled.forward(data)
    assert h.payload_offset <= len(data)
    skip = 2 if h.two_byte else 1
    for offset, _, length in rtpheader.elements(data, h):
        assert h.ext_offset <= offset and offset + skip + length <= h.ext_end <= len(data)


def _with_extension(block: bytes, profile: int) -> bytes:
    block += bytes(-len(block) % 4)
    return (
        bytes([0x90, 96, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3])
        + struct.pack("!HH", profile, len(block) // 4)
        + block
        + b"payload"
    )


# A small alphabet of element headers, padding and values, so that different blocks often
# share a layout (random bytes almost never would).
_BLOCKS = st.lists(st.sampled_from([0x00, 0x01, 0x02, 0x10, 0x11, 0x21, 0x22, 0xF0]), max_size=12)


@settings(max_examples=1000, deadline=None)
@given(
    _BLOCKS.map(bytes),
    _BLOCKS.map(bytes),
    st.sampled_from([rtpheader.ONE_BYTE_PROFILE, rtpheader.TWO_BYTE_PROFILE]),
    st.sampled_from(["7", "12345"]),
)
def test_a_replayed_plan_equals_a_fresh_one(a: bytes, b: bytes, profile: int, mid: str) -> None:
    # The Outbound replays one plan for every packet whose extension layout it has seen: that
    # is only right if its layout signature pins down every element's offset, id and length.
    packets = [_with_extension(block, profile) for block in (a, b)]
    try:
        for data in packets:
            rtpheader.parse(data)
    except rtpheader.MalformedRtp:
        return
    rewrite = rtpheader.ExtensionRewrite({MID: 1, AST: 2}, {MID: 2, AST: 1}, mid)
    sent: list[bytes] = []
    out = _outbound(sent, rewrite.plan)
    for data in packets:
        out.forward(data)
    assert sent == [apply_plan(rewrite.plan(data), data) for data in packets]


def test_a_plan_is_worked_out_once_per_layout() -> None:
    # One sender's packets differ only in values (abs-send-time, audio level): one plan.
    first = _with_extension(bytes([0x10, 0x31, 0x22, 1, 2, 3]), rtpheader.ONE_BYTE_PROFILE)
    second = _with_extension(bytes([0x10, 0x32, 0x22, 9, 8, 7]), rtpheader.ONE_BYTE_PROFILE)
    other = _with_extension(bytes([0x31, 0x22, 1, 2, 3]), rtpheader.ONE_BYTE_PROFILE)
    rewrite = rtpheader.ExtensionRewrite({MID: 1, AST: 2}, {MID: 2, AST: 1}, "5")
    planned: list[bytes] = []

    def plan_for(data: bytes) -> rtpheader.Plan:
        planned.append(data)
        return rewrite.plan(data)

    sent: list[bytes] = []
    out = _outbound(sent, plan_for)
    for data in (first, second, other, first):
        out.forward(data)
    assert planned == [first, other]
    assert sent[1] == apply_plan(rewrite.plan(second), second)


def test_a_plan_that_does_not_fit_the_packet_is_refused() -> None:
    data = _with_extension(bytes([0x10, 0x31]), rtpheader.ONE_BYTE_PROFILE)
    for plan in (((0, 400),), ((0, 4),), ("text",), ((5, 2),)):
        try:
            apply_plan(plan, data)
        except (ValueError, TypeError):
            continue
        raise AssertionError(f"{plan} accepted")
    sent: list[bytes] = []
    dropped: dict[str, int] = {}
    faults = Faults("test")
    out = Outbound(16, lambda data: True, dropped, faults)
    out.set_route(sent.append, lambda data: ((0, 400),))
    out.ready = True
    out.forward(data)  # counted and dropped, never raised out of the per-packet path
    assert sent == [] and dropped == {"send_error": 1}
    assert faults.by_place == {"subscription.forward": 1}


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=4, max_size=40), st.integers(0, 14))
def test_rewrite_of_any_parsed_packet_stays_parseable(block: bytes, ident: int) -> None:
    words = (len(block) + 3) // 4
    block = block + bytes(words * 4 - len(block))
    data = (
        struct.pack("!BBHII", 0x90, 96, 1, 2, 3) + struct.pack("!HH", 0xBEDE, words) + block + b"xy"
    )
    try:
        h = rtpheader.parse(data)
    except rtpheader.MalformedRtp:
        return
    rewrite = rtpheader.ExtensionRewrite({MID: ident or 1, AST: 3}, {MID: 2, AST: 5}, "10")
    out = apply_plan(rewrite.plan(data), data)
    assert out.endswith(b"xy") and h.payload_offset <= len(data)
    rtpheader.parse(out)


def test_send_history_keeps_the_last_packets_by_sequence_number() -> None:
    sent: list[bytes] = []
    out = _outbound(sent)
    assert out.history_capacity == 1024
    for seq in range(65000, 65536 + 1500):
        out.forward(struct.pack("!BBHII", 0x80, 96, seq & 0xFFFF, 0, 3) + b"x")
    newest = (65536 + 1499) & 0xFFFF
    assert out.sent(newest) == sent[-1] and out.sent(newest)[2:4] == struct.pack("!H", newest)
    assert out.sent((newest - 1023) & 0xFFFF) is not None
    assert out.sent((newest - 1024) & 0xFFFF) is None  # overwritten, never resent for another


def test_nack_packing_wraps_and_round_trips() -> None:
    seqs = [65530, 65535, 0, 3, 40]
    (parsed,) = RtcpPacket.parse(rtcp.pack_nack(1, 2, seqs))
    assert sorted(rtcp.nack_seqs(parsed.lost)) == sorted(seqs)
    assert parsed.media_ssrc == 2


def test_nack_list_retries_then_gives_up() -> None:
    nacks = rtcp.NackList()
    nacks.add(10, 0.0)
    assert nacks.add(13, 0.0)  # 11 and 12 missing
    assert nacks.due(0.0, 0.0) == [11, 12]
    assert nacks.due(0.01, 0.0) == []  # not before the retry interval
    nacks.add(11, 0.02)  # retransmission arrived
    assert nacks.recovered == 1
    times = [0.05 * i for i in range(1, 10)]
    asked = [nacks.due(t, 0.0) for t in times]
    assert sum(1 for a in asked if a == [12]) == rtcp.NACK_MAX_RETRIES - 1
    assert nacks.missing == {} and nacks.given_up == 1


def test_nack_list_treats_a_huge_jump_as_a_restart() -> None:
    nacks = rtcp.NackList()
    nacks.add(1, 0.0)
    assert not nacks.add(30000, 0.0)
    assert nacks.missing == {}
