"""NACK answers within bounds (issue 13): the send history never promises a packet libsrtp will
refuse to protect again, one failed resend never skips the others, a packet is resent at most
once per round trip and a bounded number of times, and resends spend from the subscriber leg's
budget, a share of its downlink estimate (the retransmission storm: 100-130 packets resent per
NACK into a policed 500 kbit/s link)."""

from __future__ import annotations

import socket
import time

import pylibsrtp
import pytest
from aiortc.rtp import RtcpReceiverInfo

from media_server import subscription as subscription_module
from media_server.estimator import ResendBudget
from media_server.faults import Faults
from media_server.publication import Publication
from media_server.rtpforward import Leg
from media_server.transport import set_keys

from .test_subscription import KEY, Wire, bound, publication, push, rtp, streaming


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(subscription_module.time, "monotonic", c)
    return c


def srtp_sessions() -> tuple[pylibsrtp.Session, pylibsrtp.Session]:
    """A leg's sessions keyed as aiortc keys them (window 1024, repeats allowed)."""
    sessions = []
    for ssrc_type in (pylibsrtp.Policy.SSRC_ANY_INBOUND, pylibsrtp.Policy.SSRC_ANY_OUTBOUND):
        policy = pylibsrtp.Policy(key=bytes(range(30)), ssrc_type=ssrc_type,
                                  srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80)  # fmt: skip
        policy.allow_repeat_tx = True
        policy.window_size = 1024
        sessions.append(pylibsrtp.Session(policy))
    return sessions[0], sessions[1]


def test_history_longer_than_the_srtp_window_never_fails_a_resend(clock: Clock) -> None:
    # The failing input: send_history_packets = 2048, a NACK for a packet 1,500 back and one
    # 10 back. It failed in srtp_protect (replay_old) and the second was never resent.
    faults = Faults("test")
    leg = Leg(on_rtp=None, on_rtcp=None, dropped={}, faults=faults)
    set_keys(leg, *srtp_sessions())
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 23)
    receiver.bind(("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.connect(receiver.getsockname())
    sender.setblocking(False)
    leg.fd, leg.connected = sender.fileno(), True
    pub = publication([])
    sub = subscription_module.Subscription(pub, history_packets=2048, faults=faults)
    sub.bind(ssrc=9999, payload_type=97, mid="4", extensions={}, send_rtp=leg,
             send_rtcp=lambda data: None)  # fmt: skip
    push(pub, rtp(0, 0, payload=KEY))
    for seq in range(1, 1600):
        push(pub, rtp(seq, 3000 * seq))
    last = sub.out.last_seq
    assert sub.out.sent((last - 1500) & 0xFFFF) is None  # not promised: libsrtp would refuse
    sub.on_nack([(last - 1500) & 0xFFFF, (last - 10) & 0xFFFF, (last - 1023) & 0xFFFF])
    assert (sub.retransmissions, sub.retransmissions_missed) == (2, 1)
    assert faults.count == 0 and sub.retransmissions_failed == 0
    receiver.close()
    sender.close()


def test_one_failed_resend_never_skips_the_others(clock: Clock) -> None:
    pub, wire, sub, first = streaming()
    broken = sub.out.sent((first + 2) & 0xFFFF)

    def send(data: bytes) -> None:
        if data == broken:
            raise ValueError("srtp_protect failed (status 10)")
        wire.rtp.append(data)

    sub.out.set_route(send, None)
    wire.rtp.clear()
    sub.on_nack([(first + 2) & 0xFFFF, (first + 3) & 0xFFFF, (first + 4) & 0xFFFF])
    assert [p.sequence_number for p in wire.parsed()] == [
        (first + 3) & 0xFFFF,
        (first + 4) & 0xFFFF,
    ]
    assert (sub.retransmissions, sub.retransmissions_failed) == (2, 1)


def test_a_packet_is_resent_once_per_round_trip_and_a_bounded_number_of_times(
    clock: Clock,
) -> None:
    pub = publication([])
    wire = Wire()
    sub = bound(pub, wire)
    push(pub, rtp(10, 0, payload=KEY))
    push(pub, rtp(11, 3000))
    seq = wire.parsed()[1].sequence_number
    sub.rtt = 0.1
    wire.rtp.clear()
    for _ in range(3):  # the same NACK three times within one round trip: resent once
        sub.on_nack([seq])
        clock.now += 0.01
    assert len(wire.rtp) == 1 and sub.retransmissions_throttled == 2
    for _ in range(10):  # once per round trip, then no more
        clock.now += 0.11
        sub.on_nack([seq])
    assert len(wire.rtp) == subscription_module.RESEND_MAX_TIMES
    clock.now += subscription_module.RESEND_FORGET_SECONDS + 0.1  # long after: a new packet
    sub.on_nack([seq])
    assert len(wire.rtp) == subscription_module.RESEND_MAX_TIMES + 1


def test_resends_never_exceed_the_budget_share_of_the_leg_estimate(clock: Clock) -> None:
    # A storm of NACKs for every packet of the history (a policed link drops most of them):
    # what is resent stays within share x estimate per second plus the bucket's depth.
    estimate = 500_000
    budget = ResendBudget(lambda: estimate, clock=clock)
    pub = publication([])
    wire = Wire()
    sub = subscription_module.Subscription(pub, history_packets=1024, faults=Faults("t"),
                                           budget=budget)  # fmt: skip
    sub.bind(ssrc=9999, payload_type=97, mid="4", extensions={}, send_rtp=wire.send,
             send_rtcp=lambda data: None)  # fmt: skip
    push(pub, rtp(0, 0, payload=KEY + bytes(1100)))
    for seq in range(1, 400):
        push(pub, rtp(seq, 3000 * seq, payload=bytes([0x10]) + bytes(1100)))
    first = wire.parsed()[0].sequence_number
    wire.rtp.clear()
    seconds = 3.0
    steps = 300
    for i in range(steps):
        clock.now += seconds / steps
        sub.on_nack([(first + k) & 0xFFFF for k in range(i % 300, i % 300 + 100)])
    allowed = budget.share * estimate / 8 * (seconds + budget.depth_seconds)
    assert 0 < sub.retransmitted_bytes <= allowed
    assert sub.retransmitted_bytes >= 0.7 * budget.share * estimate / 8 * seconds  # it is used
    assert sub.retransmissions_over_budget > 0


def reported_keyframe() -> tuple[Publication, subscription_module.Subscription,
                                  RtcpReceiverInfo, int]:  # fmt: skip
    """A subscription that forwarded a keyframe (the publisher's sequence number 10, ours
    ``first``) and got the subscriber's receiver report for it (``report``, to reuse)."""
    pub = publication([])
    wire = Wire()
    sub = bound(pub, wire)
    push(pub, rtp(10, 0, payload=KEY))
    first = wire.parsed()[0].sequence_number
    report = RtcpReceiverInfo(ssrc=9999, fraction_lost=0, packets_lost=0,
                              highest_sequence=first, jitter=0, lsr=0, dlsr=0)  # fmt: skip
    sub.on_receiver_report(report, time.monotonic())
    return pub, sub, report, first


def test_only_our_legs_loss_counts_not_the_publishers_uplink() -> None:
    # The publisher's uplink lost 2 of 6 packets (the subscriber sees gaps and reports them
    # lost); our leg lost one more of the 4 we sent: 1 in 4 is ours, not 3 in 6.
    pub, sub, report, first = reported_keyframe()
    for seq in (11, 12, 15, 16):  # 13 and 14 never reached us
        push(pub, rtp(seq, 3000 * seq))
    report.highest_sequence, report.packets_lost = first + 6, 3
    sub.on_receiver_report(report, time.monotonic())
    assert (sub.leg_expected, sub.leg_lost) == (4, 1)


def test_uplink_loss_is_not_ours_when_the_report_lags_what_arrived() -> None:
    # The cap300 fault: Chrome sends a receiver report with every NACK, so a report often ends
    # before the newest packets we forwarded. The uplink lost 13 and 14 (and 20-23); reports
    # whose highest lags what had arrived at the SFU by a few packets. Our leg lost nothing:
    # before, the uplink's losses were read as ours (the source's loss counter, read at the
    # report, had already moved past them) and a clean leg was paused.
    pub, sub, report, first = reported_keyframe()
    arrived = [11, 12, 15, 16, 17, 18, 19, 24, 25, 26]
    for seq in arrived:
        push(pub, rtp(seq, 3000 * seq))
    # (highest the subscriber has, what it lost by then): always behind what we sent
    for highest, lost in ((12, 0), (16, 2), (19, 2), (25, 6), (26, 6)):
        report.highest_sequence, report.packets_lost = first + highest - 10, lost
        sub.on_receiver_report(report, time.monotonic())
    assert sub.leg_lost == 0
    assert sub.leg_expected == len(arrived)


def test_packets_before_the_keyframe_a_stream_restarted_at_are_not_resent() -> None:
    # The step scenario: the drop to 500 kbit/s switched the client from f down to q; its
    # page NACKed the f packets the policer had dropped for 2.5 s, and resending them spent
    # the leg's budget that q's keyframe needed (frozen 3 s, until the page asked for a new
    # keyframe). A resume restarts the stream at a keyframe just as a layer switch does.
    pub, sub, _, first = reported_keyframe()
    wire = Wire()  # our leg from here on
    sub.bind(ssrc=9999, payload_type=97, mid="4", extensions={}, send_rtp=wire.send,
             send_rtcp=lambda data: None)  # fmt: skip
    push(pub, rtp(11, 3000))
    sub.set_paused(True)
    sub.set_paused(False)
    push(pub, rtp(12, 6000, payload=KEY))  # the restart: our first + 2
    push(pub, rtp(13, 9000))
    wire.rtp.clear()
    sub.on_nack([(first + k) & 0xFFFF for k in range(4)])
    assert [p.sequence_number for p in wire.parsed()] == [first + 2, first + 3]
    assert sub.retransmissions_superseded == 2
