"""The send history (rtpforward.c Outbound): bounded by time and bytes, allocated when used.

A subscription keeps what it sent for about ``history_seconds`` in a ring of bytes sized to
hold that much of its stream (up to ``history_max_bytes``), an eighth to spare, smaller again
when the stream slows; an idle one holds nothing.
Sleeps here are lower bounds only (a loaded machine makes them longer, never shorter), so the
outcomes do not depend on timing.
"""

from __future__ import annotations

import random
import struct
import time

import pytest
from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpCodecParameters
from aiortc.rtp import RtcpReceiverInfo, RtpPacket

from config import load_settings
from media_server import rtpheader
from media_server.faults import Faults
from media_server.publication import Publication
from media_server.rtpforward import Outbound
from media_server.subscription import HISTORY_SECONDS, Subscription

from .test_subscription import (
    DELTA,
    KEY,
    Wire,
    bound,
    forwarding_on_a_hand_clock,
    publication,
    push,
    rtp,
)

SLOT = 12  # bytes of one sequence number's slot (rtpforward.c Slot)


def _outbound(sent: list[bytes], **history: float) -> Outbound:
    out = Outbound(1024, lambda data: True, {}, None, 1024, **history)  # type: ignore[arg-type]
    out.set_route(sent.append, None)
    out.ssrc, out.payload_type, out.ready = 3, 96, True  # the test packets' own: no rewrite
    return out


def _packet(seq: int, size: int = 1200) -> bytes:
    header = struct.pack("!BBHII", 0x80, 96, seq & 0xFFFF, 3000 * seq, 3)
    return header + bytes([seq & 0xFF]) * (size - len(header))


def test_an_idle_subscription_holds_no_history() -> None:
    out = _outbound([])
    assert out.history_bytes == 0 and out.sent(0) is None
    out.forward(_packet(1))
    assert 0 < out.history_bytes <= 4096 + 64 * SLOT


def test_a_fast_stream_grows_the_ring_to_hold_its_last_second_and_answers_exactly() -> None:
    sent: list[bytes] = []
    out = _outbound(sent, history_seconds=60.0)
    for seq in range(600):  # 720 kB at once: the ring grows from 4 kB instead of overwriting
        out.forward(_packet(seq))
    # what the stream needs and an eighth, not the next power of two (1 MiB)
    assert 720_000 <= out.history_bytes <= 720_000 * 9 // 8 + 2 * 1200 + 1024 * SLOT
    assert [out.sent(seq) for seq in range(600)] == sent


def test_the_byte_bound_holds_and_overwritten_packets_are_not_answered() -> None:
    sent: list[bytes] = []
    out = _outbound(sent, history_seconds=60.0, history_max_bytes=65536)
    for seq in range(600):
        out.forward(_packet(seq))
    assert out.history_bytes <= 65536 + 1024 * SLOT
    answered = [seq for seq in range(600) if out.sent(seq) is not None]
    assert 40 <= len(answered) <= 55  # 65,536 bytes hold 54 packets of 1,200
    assert answered == list(range(600 - len(answered), 600))
    assert all(out.sent(seq) == sent[seq] for seq in answered)


def test_packets_older_than_history_seconds_are_not_answered() -> None:
    out = _outbound([], history_seconds=10.0)
    for seq in range(10):
        out.forward(_packet(seq))
    time.sleep(0.3)
    out.forward(_packet(10))
    out.history_seconds = 0.2  # as a subscription sets it (max of the setting and 3 RTT)
    assert [out.sent(seq) for seq in range(10)] == [None] * 10
    out.history_seconds = 10.0
    assert all(out.sent(seq) is not None for seq in range(11))


def test_a_slow_stream_keeps_a_small_ring() -> None:
    out = _outbound([], history_seconds=0.05)
    for seq in range(120):  # 1,200 B every 3 ms or more: a 32 kB lap takes over 80 ms
        out.forward(_packet(seq))
        time.sleep(0.003)
    assert out.history_bytes <= 32768 + 64 * SLOT


def test_a_stream_that_slows_gives_its_memory_back_and_keeps_its_newest() -> None:
    sent: list[bytes] = []
    out = _outbound(sent, history_seconds=0.1)
    for seq in range(100):  # 120 kB at once
        out.forward(_packet(seq))
    assert out.history_bytes >= 120_000
    time.sleep(0.15)
    for seq in range(100, 140):  # then 100 B every 10 ms or more: ~1 kB a window
        out.forward(_packet(seq, 100))
        time.sleep(0.01)
    assert out.history_bytes <= 8192 + 64 * SLOT
    out.history_seconds = 60.0  # what is held is answered, however slow the machine was
    assert out.sent(139) == sent[139]


def test_every_packet_younger_than_history_seconds_is_answered_as_sent() -> None:
    # Bursts (keyframes) and lulls, big and small packets: the ring and the slots resize as
    # the rate moves and never lose a packet a NACK may still ask for.
    rng = random.Random(17)
    sent: list[bytes] = []
    out = _outbound(sent, history_seconds=0.05)
    times: list[float] = []
    for seq in range(1500):
        phase = seq // 250 % 3  # fast, slow, bursty
        size = rng.choice([1200, 1100]) if phase != 1 else rng.randrange(60, 200)
        if phase == 1 or (phase == 2 and seq % 40 == 0):
            time.sleep(rng.uniform(0.001, 0.004))
        times.append(time.monotonic())
        out.forward(_packet(seq, size))
        if seq % 10:
            continue
        answered = [out.sent(k & 0xFFFF) for k in range(max(0, seq - 1023), seq + 1)]
        now = time.monotonic()  # after the answers: an age measured here is an upper bound
        young = [k for k in range(max(0, seq - 1023), seq + 1) if now - times[k] < 0.047]
        assert [answered[k - max(0, seq - 1023)] for k in young] == [sent[k] for k in young]
    assert out.history_bytes < 1 << 20


def _measure_rtt(now: list[float], pub: Publication, sub: Subscription, rtt: float) -> None:
    """The subscriber's report on our sender report, ``rtt`` later on the hand clock."""
    pub.on_sender_report(0xAABBCCDD00112233, 4000, time.monotonic())
    now[0] += rtt
    sub.on_receiver_report(
        RtcpReceiverInfo(9999, 0, 0, 0, 0, lsr=0xCCDD0011, dlsr=0), time.monotonic()
    )
    assert sub.rtt == pytest.approx(rtt)


@pytest.mark.parametrize(("rtt", "kept"), [(0.05, 0.3), (0.6, 1.8)])
def test_a_subscription_keeps_its_packets_for_three_round_trips_when_longer(
    monkeypatch: pytest.MonkeyPatch, rtt: float, kept: float
) -> None:
    # As libwebrtc's RtpPacketHistory: a NACK takes a round trip to arrive and the resend
    # another, so a long path keeps more than the setting's 0.3 s.
    now, pub, sub = forwarding_on_a_hand_clock(monkeypatch)
    assert sub.out.history_seconds == 0.3
    _measure_rtt(now, pub, sub, rtt)
    assert sub.out.history_seconds == pytest.approx(kept)


def test_the_server_keeps_the_history_the_subscription_defaults_to() -> None:
    # The rule below is the one served: media.send_history_ms is what Participant passes.
    assert load_settings(environ={}).media.send_history_ms == 300 == HISTORY_SECONDS * 1000


@pytest.mark.parametrize(("rtt", "resent"), [(0.01, False), (1.0, True)])
def test_a_nack_later_than_the_history_keeps_is_counted_missed_and_resends_nothing(
    monkeypatch: pytest.MonkeyPatch, rtt: float, resent: bool
) -> None:
    # 0.3 s on a short path: a NACK for a packet sent 0.35 s ago (at least: the sleep is a
    # lower bound) finds nothing, is counted and sends nothing; on a 1 s path 3 round trips
    # (3 s) still answer it. The RTT is on the hand clock, the packet's age on the real one.
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    wire = Wire()
    pub = publication([])
    sub = bound(pub, wire)
    push(pub, rtp(10, 1000, payload=KEY))
    push(pub, rtp(11, 4000))
    _measure_rtt(now, pub, sub, rtt)
    sent = list(wire.rtp)
    lost = RtpPacket.parse(sent[0]).sequence_number
    time.sleep(0.35)  # real: only time.monotonic is the hand clock
    now[0] += 10.0
    sub.on_nack([lost])
    assert (sub.retransmissions, sub.retransmissions_missed) == ((1, 0) if resent else (0, 1))
    assert wire.rtp == sent + [sent[0]] * resent


def test_history_seconds_zero_keeps_nothing_and_gives_the_history_back() -> None:
    sent: list[bytes] = []
    out = _outbound(sent)
    out.forward(_packet(1))
    assert out.history_bytes > 0
    out.history_seconds = 0.0
    out.forward(_packet(2))
    assert out.history_bytes == 0 and out.sent(2) is None and out.sent(1) is None
    assert sent == [_packet(1), _packet(2)]  # still sent


@pytest.mark.parametrize(("feedback", "kept"), [([], False), (["nack"], True)])
def test_a_subscriber_that_negotiated_no_nack_gets_no_history(
    feedback: list[str], kept: bool
) -> None:
    # Opus as browsers and aiortc negotiate it has no a=rtcp-fb nack: nothing will ask for a
    # resend, so nothing is kept (an audio subscription held ~13 kB of history for nothing).
    codec = RTCRtpCodecParameters(
        mimeType="video/VP8", clockRate=90000, payloadType=97,
        rtcpFeedback=[RTCRtcpFeedback(type=f) for f in feedback],
    )  # fmt: skip
    wire = Wire()
    pub = publication([])
    sub = Subscription(pub, history_packets=1024, faults=Faults("test"))
    sub.bind(
        ssrc=9999, payload_type=97, mid="4", extensions={rtpheader.URI_MID: 1},
        send_rtp=wire.send, send_rtcp=wire.rtcp.append, codecs=[codec],
    )  # fmt: skip
    push(pub, rtp(10, 1000, payload=KEY))
    push(pub, rtp(11, 1000, payload=DELTA))
    assert wire.rtp and (sub.out.history_bytes > 0) == kept
    assert (sub.out.history_seconds > 0) == kept
