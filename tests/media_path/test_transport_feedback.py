"""Transport-wide congestion control feedback (rtpforward.Arrivals) read back by a parser
written here from draft-holmer-rmcat-transport-wide-cc-extensions-01 section 3.1 alone:
which sequence numbers arrived, and when, to the 250 us tick."""

from __future__ import annotations

import asyncio
import struct

from media_server import feedback as feedback_module
from media_server import rtpheader, sdpextras
from media_server.faults import Faults
from media_server.feedback import FeedbackClock, TransportFeedback
from media_server.participant import Participant
from media_server.rtpforward import Arrivals, Leg, apply_plan

TICK_US = 250
REFERENCE_US = 64000
EXT_ID = 3


def parse(packet: bytes) -> dict:
    """One RTPFB FMT=15 packet: header fields and {sequence: arrival us or None}."""
    first, pt, length = struct.unpack_from("!BBH", packet)
    assert first >> 6 == 2 and first & 0x1F == 15 and pt == 205
    assert len(packet) == 4 * (length + 1)
    end = len(packet) - (packet[-1] if first & 0x20 else 0)  # RFC 3550 padding
    sender, media, base, count = struct.unpack_from("!IIHH", packet, 4)
    reference = int.from_bytes(packet[16:19], "big", signed=True)
    fb_count = packet[19]
    symbols: list[int] = []
    pos = 20
    while len(symbols) < count:
        (chunk,) = struct.unpack_from("!H", packet, pos)
        pos += 2
        if not chunk >> 15:  # run length: T=0, S (2 bits), 13-bit run
            symbols += [(chunk >> 13) & 3] * (chunk & 0x1FFF)
        elif not (chunk >> 14) & 1:  # one-bit vector of 14
            symbols += [(chunk >> (13 - k)) & 1 for k in range(14)]
        else:  # two-bit vector of 7
            symbols += [(chunk >> (12 - 2 * k)) & 3 for k in range(7)]
    symbols = symbols[:count]
    assert 3 not in symbols
    at = reference * REFERENCE_US
    arrivals: dict[int, int | None] = {}
    for i, symbol in enumerate(symbols):
        seq = (base + i) & 0xFFFF
        if symbol == 0:
            arrivals[seq] = None
            continue
        if symbol == 1:
            delta = packet[pos]
            pos += 1
        else:
            (delta,) = struct.unpack_from("!h", packet, pos)
            pos += 2
        at += delta * TICK_US
        arrivals[seq] = at
    assert pos <= end
    return {"sender": sender, "media": media, "count": fb_count, "arrivals": arrivals}


def reported(packets: list[bytes]) -> dict[int, int | None]:
    out: dict[int, int | None] = {}
    for packet in packets:
        out.update(parse(packet)["arrivals"])
    return out


def tick(us: int) -> int:
    return us - us % TICK_US  # what 250 us resolution keeps (the reference is a whole tick)


def test_feedback_reports_arrivals_across_the_wrap_with_a_gap_reordering_and_a_duplicate() -> None:
    arrivals = Arrivals(EXT_ID)
    t0 = 5_000_000_123
    times = {65533: t0, 65534: t0 + 1_000, 0: t0 + 3_000, 65535: t0 + 2_600, 3: t0 + 9_900}
    for seq in (65533, 65534, 0, 65535, 3):  # 65535 after 0; 1 and 2 lost
        arrivals.record(seq, times[seq])
    arrivals.record(0, t0 + 50_000)  # a duplicate: the first arrival counts
    packets = arrivals.feedback(0x1234)
    assert len(packets) == 1
    fb = parse(packets[0])
    assert fb["sender"] == 0x1234 and fb["count"] == 0
    assert list(fb["arrivals"]) == [65533, 65534, 65535, 0, 1, 2, 3]
    assert fb["arrivals"][1] is None and fb["arrivals"][2] is None
    for seq, at in times.items():
        assert tick(at) - TICK_US < fb["arrivals"][seq] <= at  # floor, no drift
    assert arrivals.duplicates == 1
    assert arrivals.feedback(0x1234) == []  # all reported
    arrivals.record(4, t0 + 12_000)
    (later,) = arrivals.feedback(0x1234)
    assert parse(later)["count"] == 1 and list(parse(later)["arrivals"]) == [4]


def test_a_delta_too_large_for_two_bytes_starts_a_new_feedback_packet() -> None:
    # 2^15 ticks of 250 us = 8.192 s: a packet 9 s after the one before cannot be a delta.
    arrivals = Arrivals(EXT_ID)
    t0 = 1_000_000_000
    arrivals.record(100, t0)
    arrivals.record(101, t0 + 300)
    arrivals.record(102, t0 - 2_000)  # arrived earlier than 101: a negative (large) delta
    arrivals.record(104, t0 + 9_000_000)
    first, second = arrivals.feedback(7)
    a, b = parse(first), parse(second)
    assert list(a["arrivals"]) == [100, 101, 102] and list(b["arrivals"]) == [103, 104]
    assert b["arrivals"][103] is None
    assert abs(a["arrivals"][102] - (t0 - 2_000)) < TICK_US
    assert abs(b["arrivals"][104] - (t0 + 9_000_000)) < TICK_US
    assert (a["count"], b["count"]) == (0, 1)


def test_a_late_packet_reported_lost_is_reported_again_as_received() -> None:
    arrivals = Arrivals(EXT_ID)
    arrivals.record(10, 1_000_000)
    arrivals.record(12, 1_002_000)
    assert reported(arrivals.feedback(1))[11] is None
    arrivals.record(11, 1_030_000)
    again = reported(arrivals.feedback(1))
    assert again[11] is not None and abs(again[11] - 1_030_000) < TICK_US


def test_long_runs_and_many_packets_encode_and_split_within_the_mtu() -> None:
    arrivals = Arrivals(EXT_ID)
    at, expected = 2_000_000, {}
    for seq in range(60000, 60000 + 1000):
        if seq % 50 < 30:  # runs of 30 received and 20 lost
            at += 700 if seq % 3 else 90_000  # some large deltas
            arrivals.record(seq & 0xFFFF, at)
            expected[seq & 0xFFFF] = at
    packets = arrivals.feedback(1)
    assert all(len(p) <= 1200 for p in packets)
    got = reported(packets)
    last = max(expected, key=lambda s: (s - 60000) & 0xFFFF)
    assert set(got) == {(60000 + i) & 0xFFFF for i in range(((last - 60000) & 0xFFFF) + 1)}
    for seq, value in got.items():
        if seq in expected:
            assert value is not None and abs(value - expected[seq]) < TICK_US
        else:
            assert value is None


def test_the_leg_records_the_transport_sequence_of_each_packet_it_receives() -> None:
    leg = Leg(on_rtp=lambda data: None, on_rtcp=None, dropped={}, faults=Faults("test"))
    leg.arrivals = Arrivals(EXT_ID)
    for seq in (500, 502):
        extension = struct.pack("!HHBHB", 0xBEDE, 1, (EXT_ID << 4) | 1, seq, 0)
        header = struct.pack("!BBHII", 0x90, 96, seq, 3000 * seq, 5)
        leg.receive_rtp(header + extension + b"payload")
    leg.receive_rtp(struct.pack("!BBHII", 0x80, 96, 9, 0, 5) + b"no extension")
    (packet,) = leg.arrivals.feedback(1)
    fb = parse(packet)
    assert fb["media"] == 5
    assert [seq for seq, at in fb["arrivals"].items() if at is not None] == [500, 502]
    assert fb["arrivals"][501] is None


TCC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"


def _sections(sdp: str) -> list[list[str]]:
    out: list[list[str]] = []
    for line in sdp.splitlines():
        if line.startswith("m="):
            out.append([])
        if out:
            out[-1].append(line)
    return out


def _chrome_offer_with_transport_cc() -> str:
    from .test_sdp_fuzz import CHROME_OFFER

    lines = []
    for line in CHROME_OFFER:
        lines.append(line)
        if line == "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid":  # audio and video
            lines.append(f"a=extmap:5 {TCC_URI}")
        if line == "a=rtcp-fb:96 nack pli":
            lines.append("a=rtcp-fb:96 transport-cc")
    return "\r\n".join(lines) + "\r\n"


async def test_the_answer_negotiates_transport_cc_where_the_client_publishes() -> None:
    from .test_sdp_fuzz import _answer_or_refuse

    answer, participant = await _answer_or_refuse(_chrome_offer_with_transport_cc())
    try:
        assert answer is not None
        audio, video = [s for s in _sections(answer) if s[0].startswith(("m=audio", "m=video"))]
        for section in (audio, video):
            assert f"a=extmap:5 {TCC_URI}" in section
            media = [
                line.split()[0].split(":")[1]
                for line in section
                if line.startswith("a=rtpmap:") and "rtx/" not in line
            ]
            assert media and all(f"a=rtcp-fb:{pt} transport-cc" in section for pt in media)
            rtx = [line.split()[0].split(":")[1] for line in section if "rtx/" in line]
            assert not any(f"a=rtcp-fb:{pt} transport-cc" in section for pt in rtx)
        assert participant.transport_feedback is not None
        assert participant._leg.arrivals.ext_id == 5
        # The publisher estimates its uplink from that feedback: no REMB estimate of ours.
        assert participant.publications
        assert all(p.uplink_feedback and p._ast_id is None for p in participant.publications)
        clock = FeedbackClock.of(asyncio.get_running_loop())
        assert participant.transport_feedback in clock.members
    finally:
        await participant.close()
    assert participant.transport_feedback not in clock.members


async def test_no_transport_cc_when_switched_off_or_not_offered() -> None:
    from .peers import media_settings
    from .test_sdp_fuzz import CHROME_OFFER, _answer_or_refuse

    answer, participant = await _answer_or_refuse("\r\n".join(CHROME_OFFER) + "\r\n")
    try:
        assert answer is not None and "transport-cc" not in answer
        assert participant.transport_feedback is None
        assert not any(p.uplink_feedback for p in participant.publications)
    finally:
        await participant.close()
    participant = Participant(
        "off",
        settings=media_settings(transport_cc=False),
        on_offer=lambda sdp: asyncio.sleep(0),
        on_publication=lambda publication: None,
        on_chat=lambda participant, text: None,
        on_state=lambda participant, state: None,
    )
    try:
        answer = await participant.handle_offer(_chrome_offer_with_transport_cc())
        assert TCC_URI not in answer and "transport-cc" not in answer
        assert participant.transport_feedback is None
    finally:
        await participant.close()


def test_a_reoffer_keeps_transport_cc_on_publishing_sections_only() -> None:
    offer = "\r\n".join([
        "v=0", "o=- 1 2 IN IP4 0.0.0.0", "s=-", "t=0 0",
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97", "a=mid:0", "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=recvonly", "a=rtpmap:96 VP8/90000", "a=rtcp-fb:96 nack", "a=rtpmap:97 rtx/90000",
        "a=fmtp:97 apt=96",
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97", "a=mid:1", "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=sendonly", "a=rtpmap:96 VP8/90000", "a=rtpmap:97 rtx/90000", "a=fmtp:97 apt=96",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "a=mid:2",
    ]) + "\r\n"  # fmt: skip
    out = sdpextras.transport_cc(offer, 5)
    publishing, subscribing, data = _sections(out)
    assert f"a=extmap:5 {TCC_URI}" in publishing and "a=rtcp-fb:96 transport-cc" in publishing
    assert "a=rtcp-fb:97 transport-cc" not in publishing
    assert subscribing == _sections(offer)[1] and data == _sections(offer)[2]
    assert sdpextras.transport_cc(out, 5) == out  # once, however often it runs
    assert sdpextras.transport_cc(offer, None) == offer


def test_a_publishers_transport_sequence_never_reaches_a_subscriber() -> None:
    # The subscriber's leg negotiates no transport-cc (aiortc's own extensions, sdpextras adds
    # it on publishing sections only): the element is blanked, not passed on as if it were a
    # sequence of our leg to it.
    publisher = {rtpheader.URI_MID: 4, rtpheader.URI_TRANSPORT_CC: EXT_ID}
    subscriber = {rtpheader.URI_MID: 1}
    block = bytes([(4 << 4) | 0]) + b"1" + bytes([(EXT_ID << 4) | 1]) + b"\x12\x34"
    block += bytes(-len(block) % 4)
    packet = struct.pack("!BBHII", 0x90, 96, 7, 0, 5) + struct.pack("!HH", 0xBEDE, len(block) // 4)
    packet += block + b"payload"
    plan = rtpheader.ExtensionRewrite(publisher, subscriber, "0").plan(packet)
    out = apply_plan(plan, packet)
    ids = {ident for _, ident, _ in rtpheader.elements(out, rtpheader.parse(out))}
    assert ids == {1} and b"\x12\x34" not in out


def _tcc_block(seq: int, length: int, two_byte: bool) -> bytes:
    """An RFC 8285 extension block whose one element of id EXT_ID is ``length`` bytes."""
    value = (seq.to_bytes(2, "big") * 8)[:length]
    if two_byte:
        profile, body = 0x1000, bytes([EXT_ID, length]) + value
    else:
        profile, body = 0xBEDE, bytes([EXT_ID << 4 | (length - 1)]) + value
    body += bytes(-len(body) % 4)
    return struct.pack("!HH", profile, len(body) // 4) + body


async def test_an_element_of_the_wrong_length_is_counted_logged_once_and_read_as_lost(
    monkeypatch, caplog
) -> None:
    # Issue 12: a transport-cc element of 0, 1, 3 or 16 bytes (either form) holds no transport
    # sequence; it was ignored without a trace (the publisher's estimator saw loss, we saw
    # nothing). Its packet is still forwarded; the sequence reads as lost.
    forwarded: list[bytes] = []
    leg = Leg(on_rtp=forwarded.append, on_rtcp=None, dropped={}, faults=Faults("test"))
    feedback = TransportFeedback(leg, EXT_ID)
    shapes = [(2, False), (1, False), (3, False), (16, False), (0, True), (1, True), (3, True),
              (16, True), (2, True)]  # fmt: skip
    for i, (length, two_byte) in enumerate(shapes):
        header = struct.pack("!BBHII", 0x90, 96, i, 0, 5)
        leg.receive_rtp(header + _tcc_block(100 + i, length, two_byte) + b"payload")
    assert (feedback.arrivals.recorded, feedback.arrivals.malformed) == (2, 7)
    assert len(forwarded) == len(shapes)
    monkeypatch.setattr(feedback_module, "INTERVAL_SECONDS", 0.001)
    sent: list[bytes] = []
    feedback.start(lambda: 1, sent.append, Faults("test"))
    await asyncio.sleep(0.05)
    feedback.stop()
    arrivals = reported(sent)
    assert [seq for seq, at in arrivals.items() if at is not None] == [100, 108]
    assert all(arrivals[seq] is None for seq in range(101, 108))
    assert len([r for r in caplog.records if "not 2 bytes" in r.message]) == 1


def test_one_packet_numbered_far_ahead_does_not_silence_the_feedback() -> None:
    # Issue 12: after one transport sequence 30,000 ahead of the rest, every packet after it
    # was older than the ring and dropped as late: no feedback for ~30,000 packets. Eight
    # consecutive late ones start the record again from there.
    arrivals = Arrivals(EXT_ID)
    t0 = 1_000_000_000
    for seq in range(100):
        arrivals.record(seq, t0 + 1000 * seq)
    arrivals.record(30_100, t0 + 100_000)
    arrivals.feedback(1)
    for seq in range(100, 200):
        arrivals.record(seq, t0 + 1000 * seq + 1000)
    got = reported(arrivals.feedback(1))
    assert [seq for seq, at in got.items() if at is not None] == list(range(107, 200))
    assert (arrivals.late, arrivals.restarts) == (7, 1)


async def test_one_loop_timer_sends_every_publishers_feedback_and_none_is_left_armed(
    monkeypatch,
) -> None:
    # Issue 17: a task per publisher woke the loop ten times a second each. One clock per event
    # loop now ticks for all of them; a failing one is counted and the others still get theirs;
    # when the last stops no timer stays armed.
    monkeypatch.setattr(feedback_module, "INTERVAL_SECONDS", 0.005)
    loop = asyncio.get_running_loop()
    armed: list[float] = []  # the clock's ticks armed (asyncio.sleep arms timers too)
    call_later = loop.call_later

    def counting_call_later(delay, callback, *args):
        if getattr(callback, "__self__", None) is FeedbackClock.of(loop):
            armed.append(delay)
        return call_later(delay, callback, *args)

    monkeypatch.setattr(loop, "call_later", counting_call_later)
    faults = Faults("test")
    feedbacks, sent = [], []
    for i in range(4):
        leg = Leg(on_rtp=lambda data: None, on_rtcp=None, dropped={}, faults=faults)
        feedback = TransportFeedback(leg, EXT_ID)
        feedback.arrivals.record(100 + i, 1_000_000)
        outbox: list[bytes] = []
        sent.append(outbox)
        feedbacks.append(feedback)

    def broken(packet: bytes) -> None:
        raise RuntimeError("send failed")

    for i, feedback in enumerate(feedbacks):
        feedback.start(lambda: 7, broken if i == 1 else sent[i].append, faults)
    clock = FeedbackClock.of(loop)
    assert list(clock.members) == feedbacks
    for _ in range(200):
        if all(sent[i] for i in (0, 2, 3)):
            break
        await asyncio.sleep(0.005)
    ticks = len(armed)
    assert [reported(sent[i]) for i in (0, 2, 3)] == [
        {100: 1_000_000 - 1_000_000 % TICK_US},
        {102: 1_000_000 - 1_000_000 % TICK_US},
        {103: 1_000_000 - 1_000_000 % TICK_US},
    ]
    assert faults.by_place == {"transport-cc": 1}
    # one timer for the four: as many armed as ticks ran (plus the one pending), not four each
    assert 1 <= ticks <= 3
    for feedback in feedbacks:
        feedback.stop()
    assert clock.timer is None and not clock.members
    await asyncio.sleep(0.03)
    assert len(armed) == ticks  # stopped: nothing armed again


def test_a_loop_that_ran_feedback_is_not_kept_alive_by_its_clock() -> None:
    import gc
    import weakref

    async def run_one() -> None:
        leg = Leg(on_rtp=lambda data: None, on_rtcp=None, dropped={}, faults=Faults("test"))
        feedback = TransportFeedback(leg, EXT_ID)
        feedback.start(lambda: 1, lambda packet: None, Faults("test"))
        await asyncio.sleep(0)
        feedback.stop()

    loop = asyncio.new_event_loop()
    loop.run_until_complete(run_one())
    assert FeedbackClock._clocks.get(loop) is not None
    loop.close()
    gone = weakref.ref(loop)
    del loop
    gc.collect()
    assert gone() is None
