"""VP8 temporal layers in the compiled path (rtpforward.c, Outbound.temporal_target): a
subscription forwarded fewer temporal layers gets a stream a receiver takes as whole: no gap in
the sequence numbers or PictureIDs it could NACK or wait for, TL0PICIDX untouched, the layer
changing only where a decoder can follow, and late packets numbered as their neighbours
were."""

from __future__ import annotations

import struct

from aiortc.codecs.vpx import VpxPayloadDescriptor
from hypothesis import given, settings
from hypothesis import strategies as st

from media_server.rtpforward import Inbound, Outbound

PATTERN = (0, 2, 1, 2)  # libwebrtc's L1T3: TID of frame i is PATTERN[i % 4]
ALL = 255


def vp8_payload(pid: int, tl0: int, tid: int, sync: bool, start: bool) -> bytes:
    """RFC 7741 4.2 descriptor with X, I (15-bit PictureID), L and T, then a body."""
    first = 0x80 | (0x10 if start else 0)
    tidy = tid << 6 | (0x20 if sync else 0)
    return bytes([first, 0xE0, 0x80 | pid >> 8, pid & 0xFF, tl0, tidy]) + b"body"


def frames(count: int, per_frame: int = 2, first_seq: int = 100) -> list[tuple[int, bytes]]:
    """(tid, packet) for `count` L1T3 frames of `per_frame` packets; layer sync (Y) on the
    frames that reference layer 0 only (the first TID 1 and TID 2 after a TID 0)."""
    out = []
    seq = first_seq
    for i in range(count):
        tid = PATTERN[i % 4]
        sync = i % 4 in (1, 2)
        for k in range(per_frame):
            payload = vp8_payload(1000 + i, (i // 4) & 0xFF, tid, sync, start=k == 0)
            payload += struct.pack("!H", seq & 0xFFFF)  # the source's number, to trace it
            marker = 0x80 if k == per_frame - 1 else 0
            header = struct.pack("!BBHII", 0x80, marker | 96, seq & 0xFFFF, 3000 * i, 5)
            out.append((tid, header + payload))
            seq += 1
    return out


def outbound() -> tuple[Outbound, list[bytes]]:
    sent: list[bytes] = []
    out = Outbound(1024, lambda packet: True, {})
    out.set_route(sent.append, None)
    out.ssrc, out.payload_type, out.vp8, out.ready = 5, 96, True, True
    return out, sent


def fields(packet: bytes) -> dict:
    seq, ts = struct.unpack("!HI", packet[2:8])
    payload = packet[12:]
    if packet[0] & 0x20:
        return {"seq": seq, "padding": True}
    pid = (payload[2] & 0x7F) << 8 | payload[3]
    return {"seq": seq, "ts": ts, "pid": pid, "tl0": payload[4], "tid": payload[5] >> 6,
            "padding": False}  # fmt: skip


def test_every_layer_by_default_and_nothing_rewritten() -> None:
    out, sent = outbound()
    stream = frames(12)
    for _, packet in stream:
        out.forward(packet)
    assert sent == [p for _, p in stream] and out.temporal_layer == ALL


def test_lower_layers_only_close_up_sequence_numbers_and_picture_ids() -> None:
    out, sent = outbound()
    out.temporal_target = 0
    stream = frames(16)
    for _, packet in stream:
        out.forward(packet)
    got = [fields(p) for p in sent]
    assert [g["tid"] for g in got] == [0] * 8  # four TID 0 frames of two packets
    assert [g["seq"] for g in got] == list(range(100, 108))  # no gap to NACK
    assert [g["pid"] for g in got[::2]] == [1000, 1001, 1002, 1003]  # no PictureID to wait for
    assert [g["tl0"] for g in got[::2]] == [0, 1, 2, 3]  # TL0PICIDX as sent
    assert [g["ts"] for g in got[::2]] == [0, 12000, 24000, 36000]  # the frames' own times
    assert out.temporal_dropped == 24 and out.temporal_layer == 0


def test_a_layer_is_taken_up_only_where_a_decoder_can_follow() -> None:
    out, sent = outbound()
    out.temporal_target = 0
    stream = frames(12)
    for _, packet in stream[:8]:  # frames 0..3
        out.forward(packet)
    out.temporal_target = 1
    for _, packet in stream[8:]:  # frames 4..11: TID 0, 2, 1, 2, 0, 2, 1, 2
        out.forward(packet)
    assert [fields(p)["tid"] for p in sent[::2]] == [0, 0, 1, 0, 1]
    # Up to 2 after a frame without layer sync (frame 3, TID 2, Y clear): it waits for the
    # next frame that is TID 0 or a sync frame of a layer up to the target.
    out, sent = outbound()
    out.temporal_target = 1
    for _, packet in stream[:6]:  # frames 0..2 (TID 0, 2, 1): 0 and 1 forwarded
        out.forward(packet)
    out.temporal_target = 2
    for _, packet in stream[6:]:  # frame 3 (TID 2, no sync) stays out; 4 (TID 0) on: all
        out.forward(packet)
    assert [fields(p)["tid"] for p in sent[::2]] == [0, 1, 0, 2, 1, 2, 0, 2, 1, 2]
    assert out.temporal_layer == 2
    # Down at the next frame start, not in the middle of a frame.
    out, sent = outbound()
    for _, packet in stream[:3]:  # frame 0, and the first packet of frame 1 (TID 2)
        out.forward(packet)
    out.temporal_target = 0
    for _, packet in stream[3:6]:  # the rest of frame 1 goes; frame 2 (TID 1) does not
        out.forward(packet)
    assert [fields(p)["tid"] for p in sent] == [0, 0, 2, 2] and out.temporal_layer == 0


def test_a_re_based_stream_starts_its_skips_again() -> None:
    """A layer switch re-bases the numbering (Subscription._prepare sets the offsets from the
    last ones sent): the skips of the old layer are not taken off the new one's again."""
    sent: list[bytes] = []

    def prepare(packet: bytes) -> bool:  # as Subscription._prepare re-bases
        source_seq = struct.unpack("!H", packet[2:4])[0]
        source_pid = (packet[14] & 0x7F) << 8 | packet[15]
        if out.last_seq is not None:
            out.seq_offset = (out.last_seq + 1 - source_seq) & 0xFFFF
            out.picture_id_offset = (out.last_picture_id + 1 - source_pid) & 0x7FFF
        out.ready = True
        return True

    out = Outbound(1024, prepare, {})
    out.set_route(sent.append, None)
    out.ssrc, out.payload_type, out.vp8, out.temporal_target = 5, 96, True, 0
    for _, packet in frames(8):
        out.forward(packet)
    assert out.temporal_dropped == 12
    out.ready = False  # the switch
    for _, packet in frames(4, first_seq=5000):
        out.forward(packet)
    got = [fields(p) for p in sent]
    assert [g["seq"] for g in got] == list(range(100, 100 + 6))
    assert [g["pid"] for g in got[::2]] == [1000, 1001, 1002]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 200), st.sampled_from([0, 1, 2, ALL])), max_size=6),
    st.lists(st.tuples(st.integers(0, 200), st.integers(1, 20)), max_size=12),
    st.integers(1, 3),
)
def test_reordered_packets_keep_numbers_whole_and_in_order(
    changes: list[tuple[int, int]], delays: list[tuple[int, int]], per_frame: int
) -> None:
    """With packets reordered (late by up to 20) and the target changing anywhere, every
    sequence number sent is used once, none is skipped, and packets forwarded keep their
    order; a frame is forwarded whole or not at all (a late packet goes as its frame went:
    padding alone for one not forwarded, though its layer is forwarded now), under one
    PictureID that no other frame forwarded has."""
    stream = frames(60, per_frame=per_frame)
    order = list(range(len(stream)))
    for at, late in delays:  # move packet `at` later by `late` places
        if at < len(order):
            order.insert(min(len(order), at + late), order.pop(at))
    targets = dict(changes)
    dropped: dict[str, int] = {}
    sent: list[bytes] = []
    out = Outbound(1024, lambda packet: True, dropped)
    out.set_route(sent.append, None)
    out.ssrc, out.payload_type, out.vp8, out.ready = 5, 96, True, True
    for step, index in enumerate(order):
        if step in targets:
            out.temporal_target = targets[step]
        out.forward(stream[index][1])
    seqs = [struct.unpack("!H", p[2:4])[0] for p in sent]
    assert sorted(seqs) == list(range(100, 100 + len(seqs)))  # each once, no gap
    media = [(struct.unpack("!H", p[-2:])[0], struct.unpack("!H", p[2:4])[0])
             for p in sent if not p[0] & 0x20]  # fmt: skip
    assert [m[1] for m in sorted(media)] == sorted(m[1] for m in media)  # order kept
    assert dropped == {}  # none too late to number
    by_frame: dict[int, list[int]] = {}  # source frame (by its timestamp) -> PictureIDs sent
    for packet in sent:
        if not packet[0] & 0x20:
            ts = struct.unpack("!I", packet[4:8])[0]
            by_frame.setdefault(ts, []).append(fields(packet)["pid"])
    assert all(len(pids) == per_frame for pids in by_frame.values()), by_frame  # whole
    assert all(len(set(pids)) == 1 for pids in by_frame.values())
    assert len({pids[0] for pids in by_frame.values()}) == len(by_frame)  # one each


def test_inbound_counts_bytes_by_temporal_layer() -> None:
    inbound = Inbound(90000, 96)
    inbound.vp8 = True
    stream = frames(8)
    for _, packet in stream:
        assert inbound.receive(packet) is None
    size = len(stream[0][1])
    assert inbound.temporal_bytes == (4 * size, 4 * size, 8 * size, 0)
    plain = Inbound(90000, 96)
    plain.receive(stream[0][1])
    assert plain.temporal_bytes == (0, 0, 0, 0)  # not VP8: not looked at


def descriptors() -> list[bytes]:
    """Every form of RFC 7741 4.2 descriptor: X with each of I (7- or 15-bit), L, T, K."""
    out = [bytes([0x10])]  # no X
    for ext in range(16):
        body = [0x90, ext << 4]
        if ext & 8:
            out.append(bytes(body + [0x05]))
            body += [0x81, 0x02]  # 15-bit PictureID below
        if ext & 4:
            body.append(0x07)
        if ext & 3:
            body.append(0x60)  # TID 1, Y, KEYIDX 0
        out.append(bytes(body))
    return out


def accepted_by_aiortc(payload: bytes) -> bool:
    """aiortc's depacketizer parses it and finds VP8 data after the descriptor."""
    try:
        _, data = VpxPayloadDescriptor.parse(payload)
    except ValueError:
        return False
    return bool(data)


def receiver() -> tuple[Inbound, Outbound, list[bytes], dict]:
    dropped: dict[str, int] = {}
    out = Outbound(1024, lambda packet: True, dropped)
    sent: list[bytes] = []
    out.set_route(sent.append, None)
    out.ssrc, out.payload_type, out.vp8, out.ready = 5, 96, True, True
    inbound = Inbound(90000, 96)
    inbound.vp8 = True
    inbound.outbounds.append(out)
    return inbound, out, sent, dropped


def rtp(seq: int, payload: bytes, padding: bytes = b"") -> bytes:
    first = 0xA0 if padding else 0x80
    return struct.pack("!BBHII", first, 0x80 | 96, seq, 3000 * seq, 5) + payload + padding


def test_a_broken_descriptor_is_dropped_for_every_subscriber_and_touches_nothing() -> None:
    """Every descriptor cut short (a field its X/I/L/T/K bits announce missing, or no VP8
    octet after it), also where its padding would fill the gap, is dropped at the Inbound as
    malformed_vp8: aiortc's depacketizer raises on it and libwebrtc's drops it. The receive
    state is untouched and the stream goes on gapless; whole descriptors go through."""
    for descriptor in descriptors():
        for cut in range(1, len(descriptor) + 2):
            payload = (descriptor + b"\x9d")[:cut]
            for padding in (b"", b"\x81\x02\x07\x60\x05"):  # would complete it
                inbound, out, sent, _ = receiver()
                ok = accepted_by_aiortc(payload)
                assert inbound.receive(rtp(100, b"\x10k")) is None
                reason = inbound.receive(rtp(101, payload, padding))
                assert reason == (None if ok else "malformed_vp8"), (payload, padding)
                assert inbound.packets_in == 1 + ok and inbound.max_seq == 100 + ok
                assert inbound.receive(rtp(102, b"\x10k")) is None
                seqs = [struct.unpack("!H", p[2:4])[0] for p in sent]
                assert seqs == ([100, 101, 102] if ok else [100, 102])
                for packet in sent:  # what a subscriber gets, it can parse
                    rest = packet[12 : len(packet) - (packet[-1] if packet[0] & 0x20 else 0)]
                    assert accepted_by_aiortc(rest)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=12), st.integers(0, 4), st.sampled_from([0, 1, 2, ALL]))
def test_whatever_a_publisher_sends_a_subscriber_can_parse(
    payload: bytes, padding: int, target: int
) -> None:
    """Any payload, any padding, any temporal target: what is forwarded is padding alone or a
    descriptor aiortc's depacketizer takes, with VP8 data after it."""
    inbound, out, sent, _ = receiver()
    out.temporal_target = target
    pad = bytes(padding - 1) + bytes([padding]) if padding else b""
    inbound.receive(rtp(100, bytes([0x90, 0x20, 0x00]) + b"k"))  # TID 0 start: layer taken
    inbound.receive(rtp(101, payload, pad))
    for packet in sent:
        pad_len = packet[-1] if packet[0] & 0x20 else 0
        rest = packet[12 : len(packet) - pad_len]
        assert not rest or accepted_by_aiortc(rest), packet.hex()


def test_a_late_packet_longer_than_a_datagram_is_counted_not_copied() -> None:
    """Inbound.receive and Outbound.forward take packets of any length from Python; a late one
    of a layer no longer forwarded becomes padding in an MTU-sized buffer. One longer than any
    datagram (16 KB of header extension here: it used to overrun that buffer and crash the
    process) is dropped as too_long, and the stream goes on."""
    for through_inbound in (False, True):
        inbound, out, sent, dropped = receiver()
        out.temporal_target = 0
        forward = inbound.receive if through_inbound else out.forward
        head = struct.pack("!BBHII", 0x90, 0x80 | 96, 101, 3000, 5)
        huge = head + struct.pack("!HH", 0xBEDE, 4000) + bytes(16000) + b"\x90\x20\x80k"
        forward(rtp(100, b"\x90\x20\x00k"))  # TID 0: forwarded
        forward(rtp(102, b"\x90\x20\x80k"))  # TID 2: dropped
        forward(huge)  # late, TID 2
        forward(rtp(103, b"\x90\x20\x00k"))
        assert dropped == {"too_long": 1}
        # 103 numbered as after the dropped 102; the too-long one leaves its gap
        assert [struct.unpack("!H", p[2:4])[0] for p in sent] == [100, 102]


def test_a_repeated_packet_is_not_forwarded_again() -> None:
    """A packet the network delivers twice is counted (RFC 3550 A.3 counts it received) and
    not forwarded again: a repeat of one a lower frame rate left out would go as padding
    under the number the packet after it took, and a subscriber that lost that packet would
    take the padding for it and never ask for it again."""
    inbound, out, sent, _ = receiver()
    out.temporal_target = 0
    stream = frames(5, per_frame=1)  # TID 0, 2, 1, 2, 0
    for _, packet in stream[:3]:
        assert inbound.receive(packet) is None
    for _, packet in (stream[1], stream[0], stream[2]):
        assert inbound.receive(packet) == "duplicate"
    for _, packet in stream[3:]:
        assert inbound.receive(packet) is None
    assert [(fields(p)["seq"], fields(p)["padding"]) for p in sent] == [(100, False), (101, False)]
    assert inbound.packets_received == 8 and inbound.packets_in == 5


def test_padding_leaves_the_frame_it_follows_as_it_went() -> None:
    """Padding (a publisher's probe on the media SSRC) carries the timestamp of the last
    frame; it takes on nothing of that frame's verdict: the late rest of a frame left out
    still goes as padding, not as media under the PictureID of the frame before it."""
    inbound, out, sent, _ = receiver()
    out.temporal_target = 0

    def packet(seq: int, ts: int, payload: bytes, padding: bytes = b"") -> bytes:
        first = 0xA0 if padding else 0x80
        return struct.pack("!BBHII", first, 0x80 | 96, seq, ts, 5) + payload + padding

    def vp8(pid: int, tid: int, start: bool) -> bytes:
        return bytes([0x90 if start else 0x80, 0xA0, 0x80 | pid >> 8, pid & 0xFF, tid << 6]) + b"k"

    inbound.receive(packet(1000, 0, vp8(100, 0, True)))
    inbound.receive(packet(1001, 3000, vp8(101, 2, True)))  # left out (1002 is late)
    inbound.receive(packet(1003, 3000, b"", bytes(9) + b"\x0a"))  # padding, frame 1's time
    inbound.receive(packet(1004, 6000, vp8(102, 0, True)))
    inbound.receive(packet(1002, 3000, vp8(101, 2, False)))  # frame 1's rest, late
    got = [(fields(p)["seq"], fields(p).get("pid")) for p in sent]
    assert got == [(1000, 100), (1002, None), (1003, 101), (1001, None)]


def _measured_shares(stream: list[tuple[int, bytes]]) -> tuple[float, ...]:
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    from media_server.publication import Publication

    vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    pub = Publication(participant_id="p", kind="video", mid="1", codec=vp8, ssrc=5,
                      extensions={}, send_rtcp=lambda data: None)  # fmt: skip
    pub.measure(0.0)
    for _, packet in stream:
        pub.inbound.receive(packet)
    pub.measure(1.0)
    return pub.temporal_shares


def test_a_stream_without_a_base_temporal_layer_offers_no_frame_rate_to_choose() -> None:
    # Every frame labelled TID 3 (a publisher's odd or hostile encoder): the shares read
    # (0, 0, 0, 1), a lower frame rate cost nothing, and the allocator chose one that
    # forwarded nothing at all, with no pause to tell the subscriber. Without TID 0 frames
    # there is no lower frame rate: the stream is forwarded whole or by its spatial layer.
    normal = _measured_shares(frames(8))
    assert len(normal) == 3 and 0 < normal[0] < normal[1] < normal[2] == 1.0
    odd = []
    for _, packet in frames(8):
        header, payload = packet[:12], bytearray(packet[12:])
        payload[5] = 3 << 6 | (payload[5] & 0x3F)  # TID 3
        odd.append((3, header + bytes(payload)))
    assert _measured_shares(odd) == ()
