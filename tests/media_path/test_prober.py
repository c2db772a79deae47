"""Probing a subscriber's leg before switching its video up (issue 13: back to the top layer
within 10 s of a lifted cap; a blind upgrade into a full link costs a freeze): the estimator
asks for a probe, the leg is padded with RTX resends of the newest packets, and the window
after it decides by the loss before repair, once the padded video's reports cover it."""

from __future__ import annotations

import time

import pytest
from aiortc.rtp import RtcpReceiverInfo, RtpPacket

from media_server import estimator
from media_server import prober as prober_module
from media_server.allocator import UP_MARGIN, Allocator
from media_server.estimator import DownlinkEstimator
from media_server.prober import Prober

from .test_allocator import Track, simulcast_track
from .test_resend import Clock
from .test_rtx import RTX_PT, RTX_SSRC, rtx_streaming
from .test_subscription import Wire, push, rtp


class Link:
    """A subscriber leg through a policer of ``cap`` bits/s: media sent at ``rate``, padding
    when asked; what goes over the cap is lost (before repair), and NACKs repair all of it but
    ``residual`` (after repair). Reports every ``step`` seconds."""

    def __init__(self, rate: int, cap: int, residual: float = 0.0) -> None:
        self.clock = Clock()
        self.rate, self.cap, self.residual = rate, cap, residual
        self.padding_rate = 0
        self.sent = self.padded = 0
        self.expected = self.lost = self.lost_raw = 0
        self.covered = True
        self.est = DownlinkEstimator(lambda: self.sent, clock=self.clock,
                                     padding_bytes=lambda: self.padded)  # fmt: skip
        self.est.can_probe = True
        self.est.demand = 2_000_000

    def run(self, seconds: float, step: float = 0.1, packets_per_second: int = 100) -> None:
        for _ in range(round(seconds / step)):
            self.clock.now += step
            probe = self.est.probe
            padding = self.padding_rate if probe is not None and self.clock.now <= probe.end else 0
            self.sent += int((self.rate + padding) * step / 8)
            self.padded += int(padding * step / 8)
            n = int(packets_per_second * step)
            over = max(0.0, 1 - self.cap / (self.rate + padding))
            self.expected += n
            self.lost_raw += round(n * over)
            self.lost += round(n * over * self.residual)
            if probe is not None:
                probe.covered = lambda: self.covered
            self.est.on_report(self.expected, self.lost, self.lost_raw)

    def probe(self) -> int | None:
        goal = self.est.probe_goal(constrained=True)
        if goal is not None:
            self.padding_rate = goal - self.rate
        return goal


def held_at(link: Link, value: int) -> None:
    """The estimate lowered to ``value`` by loss (a congestion point), and the probe wait over."""
    link.est.value = value
    link.est._decrease(value * 0.99, link.clock.now)
    link.run(estimator.PROBE_AFTER_DECREASE_SECONDS + 0.1)


def test_a_probe_that_the_leg_carries_is_the_estimate_at_once_and_the_next_one_doubles() -> None:
    link = Link(rate=200_000, cap=10_000_000)
    held_at(link, 400_000)
    assert link.est._ceiling is not None  # the congestion point holds growth back ...
    goal = link.probe()
    assert goal == pytest.approx(estimator.PROBE_GAIN * link.est.value, rel=0.01)
    link.run(estimator.PROBE_SECONDS + 0.6)
    assert link.est.probe is None and link.est.probes_failed == 0
    assert link.est.estimate == pytest.approx(goal, rel=0.01)  # ... a probe that passed, not
    assert link.est._ceiling is None
    assert link.probe() == pytest.approx(estimator.PROBE_GAIN * goal, rel=0.01)


def test_a_probe_into_a_policer_fails_without_lowering_the_estimate_and_backs_off() -> None:
    # NACKs repair what the padding pushed out (after repair: nothing lost), so only the loss
    # before repair shows the policer (a probe at twice 500 kbit/s passed when judged after).
    link = Link(rate=200_000, cap=500_000, residual=0.0)
    held_at(link, 400_000)
    before = link.est.estimate
    assert link.probe() is not None
    link.run(estimator.PROBE_SECONDS)
    assert (link.est.probes_failed, link.est.estimate) == (1, before)
    assert link.probe() is None  # backed off, and held at the point that failed meanwhile
    until = link.est._ceiling[1]  # type: ignore[index]
    assert link.est._ceiling[0] == before  # type: ignore[index]
    link.run(until - link.clock.now - 0.15)
    assert link.est.estimate == before
    link.run(0.2)
    # ... and asks for less over it: each failed probe overloads the leg for PROBE_SECONDS
    carried = min(link.est.value, link.est.verified)  # type: ignore[type-var]
    assert link.probe() == pytest.approx((1 + (estimator.PROBE_GAIN - 1) / 2) * carried, rel=0.01)


def test_a_probe_whose_padding_a_policer_dropped_fails_though_the_media_got_through() -> None:
    # A policer drops big packets first: at 300 kbit/s it let through all but 2% of the media
    # packets (audio's many small ones among them) and 40% of the padding was lost.
    link = Link(rate=200_000, cap=10_000_000)
    held_at(link, 400_000)
    before = link.est.estimate
    link.probe()
    link.est.probe.padding_lost = lambda: 0.4  # type: ignore[union-attr]
    link.run(estimator.PROBE_SECONDS + 0.6)
    assert (link.est.probes_failed, link.est.estimate) == (1, before)


def test_a_probe_that_passed_and_was_followed_by_loss_lied_and_the_next_runs_longer() -> None:
    # An nftables policer holds a second of its rate: a half-second probe at twice a 500
    # kbit/s cap got through, and the switch up it allowed froze when the bucket ran dry.
    link = Link(rate=200_000, cap=10_000_000)
    held_at(link, 400_000)
    goal = link.probe()
    link.run(estimator.PROBE_SECONDS + 0.6)
    assert link.est.estimate == pytest.approx(goal, rel=0.01)
    link.cap, link.residual = 500_000, 0.5  # the bucket is dry: the rate it allowed loses
    link.rate = goal
    link.run(1.0)
    assert link.est.estimate < goal and link.probe() is None  # backed off
    link.rate = 200_000
    link.run(estimator.PROBE_BACKOFF_SECONDS[0] + estimator.PROBE_AFTER_DECREASE_SECONDS)
    link.cap = 10_000_000
    assert link.probe() is not None
    assert link.est.probe.end - link.est.probe.start == 2 * estimator.PROBE_SECONDS  # type: ignore[union-attr]
    link.run(2 * estimator.PROBE_SECONDS + 0.6)
    link.run(estimator.PROBE_TRUST_SECONDS)  # what it allowed held: it told the truth
    link.est.probe = None
    link.est._probe_at = -1e9
    assert link.probe() is not None
    assert link.est.probe.end - link.est.probe.start == estimator.PROBE_SECONDS  # type: ignore[union-attr]


def test_a_probe_waits_for_the_padded_videos_reports() -> None:
    # A window closed by the audio's reports alone said nothing of the padded video: a probe
    # at four times a policer passed that way, and the switch up it allowed froze the video.
    link = Link(rate=200_000, cap=10_000_000)
    held_at(link, 400_000)
    link.covered = False
    goal = link.probe()
    link.run(estimator.PROBE_SECONDS + 2.0)
    assert link.est.probe is not None and link.est.estimate < goal
    link.covered = True
    link.run(0.6)
    assert link.est.probe is None and link.est.estimate == pytest.approx(goal, rel=0.01)


def test_with_probing_growth_stays_near_what_got_through() -> None:
    # Blind growth switched a policed subscriber up to a layer its link could not carry, and
    # the failure just before the policer lifted held it under for 13 s.
    for can_probe in (True, False):
        link = Link(rate=200_000, cap=10_000_000)
        link.est.can_probe = can_probe
        held_at(link, 250_000)
        link.run(20.0)
        if can_probe:
            assert link.est.estimate <= estimator.VERIFIED_MARGIN * 250_000
        else:
            assert link.est.estimate == estimator.DEMAND_MARGIN * link.est.demand


def test_a_remb_answering_a_probe_fails_it_and_never_cuts_below_where_it_began() -> None:
    link = Link(rate=1_000_000, cap=10_000_000)
    link.run(estimator.START_SECONDS + 0.6)
    held_at(link, 1_200_000)
    link.est.on_remb(1_500_000)  # the receiver's estimate before the probe
    before = link.est.estimate
    link.probe()
    link.run(0.3)
    for _ in range(4):  # a shaped link's queue grew with the padding: the REMB falls
        link.est.on_remb(300_000)
        link.run(estimator.REMB_HOLD_SECONDS)
    assert link.est.probes_failed == 1 and link.est.estimate == before


def test_the_allocator_is_constrained_only_while_a_layer_its_publisher_sends_does_not_fit() -> None:
    video, layers = simulcast_track()
    for estimate, constrained in ((700_000, True), (3_000_000, False)):
        alloc = Allocator(lambda e=estimate: e)
        alloc.allocate([Track("audio"), video])
        assert alloc.constrained is constrained
    # f's cost fits the share, but not with the margin an upgrade needs: it would wait for
    # ever, and with probing only a probe grows the estimate.
    share = int(layers[2].cost() * (1 + (UP_MARGIN - 1) / 2))
    alloc = Allocator(lambda: int(share / 0.85) + 64_000 + 1)
    alloc.allocate([Track("audio"), video])
    assert alloc.constrained
    video.paused = True  # a paused video is constrained whatever the estimate
    alloc = Allocator(lambda: 3_000_000)
    alloc.allocate([Track("audio"), video])
    assert alloc.constrained


def test_padding_is_rtx_resends_of_the_newest_packets_and_not_counted_as_repairs() -> None:
    wire = Wire()
    sub, first = rtx_streaming(wire.send, packets=10)
    sub.rtx_repairs = frozenset({97})
    media = [RtpPacket.parse(p) for p in wire.rtp]
    sent = sub.pad(3 * len(wire.rtp[-1]))
    pads = [RtpPacket.parse(p) for p in wire.rtp[len(media) :]]
    assert sent == sum(len(p) for p in wire.rtp[len(media) :]) and len(pads) >= 3
    assert {p.ssrc for p in pads} == {RTX_SSRC} and {p.payload_type for p in pads} == {RTX_PT}
    newest = media[-1].sequence_number
    osns = [int.from_bytes(p.payload[:2], "big") for p in pads]
    assert osns[0] == newest and all(0 <= (newest - o) & 0xFFFF < 16 for o in osns)
    assert (sub.probe_packets, sub.retransmissions, sub.retransmissions_rtx) == (len(pads), 0, 0)
    # The subscriber reports every padding packet received on the RTX SSRC, and 2 of 10 media
    # packets lost: padding repaired nothing, so the leg lost 2.
    sub.on_receiver_report(RtcpReceiverInfo(ssrc=9999, fraction_lost=0, packets_lost=0,
                                            highest_sequence=first, jitter=0, lsr=0, dlsr=0),
                           time.monotonic())  # fmt: skip
    for seq in range(20, 30):
        push(sub.source, rtp(seq, 3000 * seq))
    sub.on_rtx_report(RtcpReceiverInfo(ssrc=RTX_SSRC, fraction_lost=0, packets_lost=0,
                                       highest_sequence=pads[-1].sequence_number, jitter=0,
                                       lsr=0, dlsr=0))  # fmt: skip
    last = sub.out.last_seq
    sub.on_receiver_report(RtcpReceiverInfo(ssrc=9999, fraction_lost=0, packets_lost=2,
                                            highest_sequence=last, jitter=0, lsr=0, dlsr=0),
                           time.monotonic())  # fmt: skip
    assert (sub.rtx_received, sub.leg_lost, sub.leg_lost_raw) == (0, 2, 2)
    assert sub.reported_past(last) and not sub.reported_past((last + 1) & 0xFFFF)
    rtx_last = pads[-1].sequence_number
    assert sub.rtx_reported_past(rtx_last) and not sub.rtx_reported_past((rtx_last + 1) & 0xFFFF)
    assert sub.rtx_tally == (len(pads), 0)


def test_no_padding_where_the_subscriber_took_no_rtx_for_the_payload_type() -> None:
    wire = Wire()
    sub, _ = rtx_streaming(wire.send)
    before = len(wire.rtp)
    sub.rtx_repairs = frozenset({96})  # RTX for another codec only
    assert sub.pad(5000) == 0 and len(wire.rtp) == before  # no duplicate on the media SSRC


async def test_the_prober_pads_the_difference_and_withdraws_a_probe_it_cannot_pad() -> None:
    class Pads:
        rtx_tally = (0, 0)

        def __init__(self, can: bool) -> None:
            self.can, self.sent = can, 0
            self.out = type("Out", (), {"last_seq": 5, "rtx_seq": 9})()

        def pad(self, nbytes: int) -> int:
            n = nbytes if self.can else 0
            self.sent += n
            return n

        def reported_past(self, seq: int) -> bool:
            return True

        def rtx_reported_past(self, rtx_seq: int) -> bool:
            return True

    # One clock for both, advanced by hand a tick at a time: no real time in the figures.
    clock = Clock()
    est = DownlinkEstimator(lambda: 0, clock=clock)
    est.can_probe, est.demand, est.sent_bps = True, 2_000_000, 300_000.0
    est._first_feedback = -100.0
    goal = est.probe_goal(constrained=True)
    pads = Pads(can=True)
    prober = Prober(est, clock=clock)
    prober.start(goal, 300_000, [pads])
    start = clock.now
    while est.probe.covered() is False:  # type: ignore[union-attr]
        clock.now += prober_module.TICK_SECONDS
        prober._tick()  # what the loop's timer calls
        assert clock.now - start < 2 * estimator.PROBE_SECONDS, "the padding never ended"
    prober.stop()
    padded = 8 * pads.sent / estimator.PROBE_SECONDS  # bits/s over the probe
    assert padded == pytest.approx(goal - 300_000, rel=0.06)
    assert est.probe is not None and est.probe.covered()  # judged by the next window
    est.probe = None
    est._probe_at = -1e9
    goal = est.probe_goal(constrained=True)
    assert goal is not None and est.probes == 2
    prober.start(goal, 300_000, [Pads(can=False)])
    clock.now += prober_module.TICK_SECONDS
    prober._tick()
    prober.stop()
    assert est.probe is None and est.probes == 1  # withdrawn: not judged, not counted


def test_a_layer_the_publisher_was_told_to_stop_is_no_flap() -> None:
    # We told the publisher to stop f (nobody needed it while the cap held): when it runs
    # again it is taken at once, not after STEADY_SECONDS (that held the top layer 6 s more).
    for requested, steady in ((False, True), (True, False)):
        clock = Clock()
        alloc = Allocator(lambda: 3_000_000, clock=clock)
        _, layers = simulcast_track()
        top = layers[2]
        top.requested = lambda r=requested: r  # type: ignore[attr-defined]
        for rate in (1_400_000, 0, 1_400_000):
            clock.now += 1.0
            alloc._steady(top, rate, clock.now)
        assert alloc._steady(top, 1_400_000, clock.now) is steady


def test_a_probe_starts_from_what_was_shown_not_from_an_estimate_grown_blind() -> None:
    # Every video paused: nothing to pad, the estimate grows blind; on resume the first probe
    # asked a 500 kbit/s leg for twice that (1.9 Mbit/s).
    link = Link(rate=100_000, cap=10_000_000)
    held_at(link, 250_000)
    link.est.can_probe = False
    link.run(10.0)
    assert link.est.estimate > 1_000_000
    link.est.can_probe = True
    assert link.probe() == pytest.approx(estimator.PROBE_GAIN * 250_000, rel=0.02)


def test_the_estimate_is_never_under_what_the_leg_just_carried_without_loss() -> None:
    # A 300 kbit/s leg: a failed probe's hold kept the estimate at 152 kbit/s while the lowest
    # layer and audio flowed cleanly at 180, and the video was paused for want of a share.
    for remb, lifted in ((None, True), (100_000, False)):  # a falling REMB: a queue grows
        link = Link(rate=180_000, cap=10_000_000)
        link.est.remb = remb
        held_at(link, 152_000)
        link.run(1.0)
        assert (link.est.estimate >= 180_000 * 0.98) is lifted


async def test_nacks_for_a_tenth_of_the_media_sent_fail_a_probe_at_once() -> None:
    # A NACK comes a round trip after the loss, a receiver report up to a second later: a
    # probe over a 300 kbit/s policer cost its media 35% for a whole report interval.
    class Pads:
        rtx_tally = (0, 0)
        out = type("Out", (), {"last_seq": 5, "rtx_seq": 9})()

        def pad(self, nbytes: int) -> int:
            return nbytes

        def reported_past(self, seq: int) -> bool:
            return True

        def rtx_reported_past(self, rtx_seq: int) -> bool:
            return True

    for nacked, fails in ((3, False), (12, True)):  # of 100 media packets since it began
        sent = [1000]
        est = DownlinkEstimator(lambda: 0)
        est.can_probe, est.demand, est.sent_bps = True, 2_000_000, 300_000.0
        est._first_feedback = -100.0
        prober = Prober(est, packets_out=lambda sent=sent: sent[0])
        prober.start(est.probe_goal(constrained=True), 300_000, [Pads()])  # type: ignore[arg-type]
        sent[0] += 100
        prober.on_nacks(nacked)
        assert (est.probes_failed == 1 and est.probe is None and not prober.running) is fails
        prober.stop()
