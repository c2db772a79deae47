"""The send-side delay-based estimate of a subscriber's leg (issue 13; delaybased.py and
DownlinkEstimator.on_packet_results): packets through a simulated bottleneck (a FIFO queue of
``capacity`` bits/s holding at most ``max_queue`` seconds, jitter, random loss), reported as
transport-wide feedback reports them. A shaped link is found by its growing queue, a clean link with jitter or random loss is not taken for one, and a probe passes at the
rate its packets arrived at or fails where the link cannot carry it."""

from __future__ import annotations

import random

import pytest

from media_server.delaybased import (
    LOST,
    MEDIA,
    NORMAL,
    OVERUSING,
    PADDING,
    UNDERUSING,
    DelayGradient,
)
from media_server.estimator import DownlinkEstimator

from .test_resend import Clock

LAYERS = (150_000, 500_000, 1_500_000)  # bits/s of the publisher's simulcast layers
AUDIO_BPS = 50 * 120 * 8  # 50 packets/s of 120 bytes
TOP = LAYERS[-1] + AUDIO_BPS
MTU = 1_200
KEYFRAME = 10  # a keyframe is this many times a layer's average frame
FEEDBACK_SECONDS = 0.05  # Chrome sends transport-wide feedback about every 50-100 ms
REPORT_SECONDS = 1.0  # ... and a receiver report about every second


class Bottleneck:
    """A FIFO of ``capacity`` bits/s that drops what would wait over ``max_queue`` s, after it
    ``delay`` s and up to ``jitter`` s more (never reordering), and ``loss`` of packets lost
    at random; the first ``stall`` s of each second (a radio's), what arrives comes at once
    at its end."""

    def __init__(self, capacity: float, max_queue: float = 0.4, jitter: float = 0.004,
                 loss: float = 0.0, delay: float = 0.02, seed: int = 1,
                 stall: float = 0.0) -> None:  # fmt: skip
        self.capacity, self.max_queue, self.jitter = capacity, max_queue, jitter
        self.loss, self.delay, self.stall = loss, delay, stall
        self.rng = random.Random(seed)
        self._free_at = 0.0
        self._last = 0.0

    def carry(self, sent: float, size: int) -> float | None:
        """When a packet of ``size`` bytes sent at ``sent`` (s) arrives, or None (lost)."""
        if self.rng.random() < self.loss:
            return None
        start = max(sent, self._free_at)
        if start - sent > self.max_queue:
            return None
        self._free_at = start + 8 * size / self.capacity
        self._last = max(self._last, self._free_at + self.delay + self.rng.uniform(0, self.jitter))
        return max(self._last, int(self._last) + self.stall)


class Leg:
    """A subscriber's leg: the SFU forwards one layer (the highest whose cost the estimate
    carries, as the allocator would) at 30 frames/s in bursts plus 50 packets/s of audio,
    pads while a probe runs (``probing``), and feeds the estimator each feedback's results
    and a receiver report every second."""

    def __init__(self, link: Bottleneck, probing: bool = False, follow: bool = True,
                 pad_share: float = 1.0) -> None:  # fmt: skip
        self.link = link
        self.clock = Clock()
        self.probing, self.follow, self.pad_share = probing, follow, pad_share
        self.sent = self.padded = 0
        self.expected = self.lost = 0
        self.est = DownlinkEstimator(lambda: self.sent, clock=self.clock,
                                     padding_bytes=lambda: self.padded)  # fmt: skip
        self.est.demand = TOP
        self.est.can_probe = probing  # as the participant sets it: only with media.probing
        self.layer = LAYERS[-1]
        self.keyframe = False
        self.states: list[str] = []
        self.goals: list[int] = []
        self.passes: list[tuple[float, float]] = []  # (goal, estimate) of each probe passed
        self._seq = 0
        self._pending: list[tuple[int, int, int, float | None, int]] = []
        self._padding_rate = 0.0

    def _send(self, at: float, size: int, kind: int) -> None:
        arrived = self.link.carry(at, size)
        self._pending.append((self._seq, int(at * 1e6), size, arrived, kind))
        self._seq += 1
        self.sent += size
        if kind == PADDING:
            self.padded += size
        else:
            self.expected += 1
            self.lost += arrived is None

    def _feedback(self, now: float) -> None:
        """Report every packet up to the last one that arrived by ``now``, those in between
        that did not as lost (transport-cc reports a gap so)."""
        last = max((i for i, p in enumerate(self._pending) if p[3] is not None and p[3] <= now),
                   default=-1)  # fmt: skip
        if last < 0:
            return
        done, self._pending = self._pending[: last + 1], self._pending[last + 1 :]
        results = [(seq, sent, size, LOST if a is None else int(a * 1e6), kind)
                   for seq, sent, size, a, kind in done]  # fmt: skip
        probe, failed = self.est.probe, self.est.probes_failed
        self.est.on_packet_results(results, now)
        self.states.append(self.est.delay_state)
        if probe is not None and self.est.probe is None and self.est.probes_failed == failed:
            self.passes.append((probe.goal, self.est.value))

    def _choose(self) -> None:
        if self.follow:
            fits = [r for r in LAYERS if 1.1 * r + AUDIO_BPS <= self.est.estimate]
            layer = fits[-1] if fits else LAYERS[0]
            self.keyframe |= layer != self.layer  # a switch starts at the new layer's keyframe
            self.layer = layer
        if self.probing:
            goal = self.est.probe_goal(self.layer < LAYERS[-1])
            if goal is not None:
                self.goals.append(goal)
                self._padding_rate = self.pad_share * max(0.0, goal - self.layer - AUDIO_BPS)

    def run(self, seconds: float) -> list[tuple[float, int]]:
        """Advance ``seconds`` in 1 ms steps; (time, estimate) at each feedback."""
        out = []
        start = self.clock.now
        for ms in range(1, round(seconds * 1000) + 1):
            now = self.clock.now = start + ms / 1000
            tick = round(now * 1000)
            if tick % 20 == 0:
                self._send(now, 120, MEDIA)
            if tick % 33 == 0:  # a frame: its packets in one burst, 0.1 ms apart
                size = int(self.layer / 8 / 30) * (KEYFRAME if self.keyframe else 1)
                self.keyframe = False
                for i in range(-(-size // MTU)):
                    self._send(now + i / 10_000, min(MTU, size - i * MTU), MEDIA)
            probe = self.est.probe
            if probe is not None and now < probe.end and tick % 20 == 0:
                self._send(now, int(self._padding_rate / 8 * 0.02), PADDING)
            if tick % round(FEEDBACK_SECONDS * 1000) == 0:
                self._feedback(now)
                out.append((now, self.est.estimate))
                self._choose()
            if tick % round(REPORT_SECONDS * 1000) == 0:
                self.est.on_report(self.expected, self.lost)
                self._choose()
        return out


def test_a_shaped_link_is_found_by_its_queue_and_the_estimate_follows_what_arrives() -> None:
    # 2 Mbit/s, then shaped to 500 kbit/s with a 400 ms queue while the top layer flows.
    leg = Leg(Bottleneck(2_000_000))
    leg.run(5.0)
    assert leg.est.decreases == 0 and OVERUSING not in leg.states
    leg.link.capacity, drop = 500_000, leg.clock.now
    estimates = leg.run(3.0)
    assert OVERUSING in leg.states
    after_1s = [e for t, e in estimates if t <= drop + 1.0][-1]
    assert 400_000 <= after_1s <= 550_000, estimates
    # ... and it stays there (the layer went down and the queue drained: no cut under it)
    assert 400_000 <= leg.est.estimate <= 550_000


@pytest.mark.parametrize(("capacity", "fits"), [(2_500_000, True), (1_200_000, False)])
def test_a_switch_ups_keyframe_cuts_only_where_the_layer_does_not_fit(capacity: int,
                                                                      fits: bool) -> None:  # fmt: skip
    # From the 500 kbit/s layer, growth switches up to 1.5 Mbit/s; its first frame is a
    # keyframe ten frames long, sent at once: a queue of its own for 200-400 ms.
    leg = Leg(Bottleneck(capacity))
    leg.est.value = 1_000_000.0
    leg.run(12.0)
    if fits:
        assert leg.est.decreases == 0 and leg.layer == LAYERS[-1]
    else:  # ... where the link cannot carry the layer, over-use outlasts the burst and cuts
        assert leg.est.decreases >= 1 and leg.layer < LAYERS[-1]


@pytest.mark.parametrize("link", [Bottleneck(5_000_000, jitter=0.008),
                                  Bottleneck(2_500_000, stall=0.1)], ids=["jitter", "stalls"])  # fmt: skip
def test_a_clean_link_with_jitter_or_stalls_is_no_overuse(link: Bottleneck) -> None:
    leg = Leg(link, follow=False)
    leg.run(20.0)
    assert OVERUSING not in leg.states and leg.est.decreases == 0
    assert leg.est.estimate >= TOP


def test_random_loss_is_no_overuse() -> None:
    leg = Leg(Bottleneck(5_000_000, loss=0.03, seed=3), follow=False)
    leg.run(20.0)
    assert OVERUSING not in leg.states and leg.est.decreases == 0
    assert leg.lost > 0


def test_a_lifted_cap_is_climbed_by_probes_that_pass_at_the_rate_that_arrived() -> None:
    leg = Leg(Bottleneck(500_000), probing=True)
    leg.run(10.0)
    assert leg.est.estimate <= 600_000
    leg.link.capacity, lifted = 5_000_000, leg.clock.now
    passed = leg.est.probes - leg.est.probes_failed
    estimates = leg.run(8.0)
    back = next(t for t, e in estimates if e >= TOP) - lifted
    assert back <= 5.0, estimates
    assert leg.est.probes - leg.est.probes_failed > passed


def test_a_probe_that_padded_less_than_its_goal_passes_at_what_arrived() -> None:
    # The video's history had too little to pad with (Subscription.pad gives what it can):
    # the estimate is what the probe's packets arrived at, not the goal it asked for.
    leg = Leg(Bottleneck(500_000), probing=True, pad_share=0.3)
    leg.run(8.0)
    leg.link.capacity = 5_000_000
    leg.run(8.0)
    assert leg.passes
    for goal, estimate in leg.passes:
        assert estimate < 0.9 * goal


@pytest.mark.parametrize("max_queue", [0.4, 0.02])
def test_a_probe_into_a_link_that_cannot_carry_it_fails(max_queue: float) -> None:
    # 800 kbit/s: the 500 kbit/s layer fits, a probe for twice what flows does not; with a
    # 400 ms queue it is seen as over-use, with 20 ms (about a policer's bucket) as loss and
    # a rate that arrived slower than it was sent.
    leg = Leg(Bottleneck(800_000, max_queue=max_queue), probing=True)
    leg.run(12.0)
    assert leg.goals and leg.est.probes_failed >= 1
    assert all(estimate <= 1.05 * 800_000 for _, estimate in leg.passes)
    assert leg.est.estimate < 1.1 * LAYERS[-1] + AUDIO_BPS
    assert leg.layer < LAYERS[-1]


def test_a_rising_queue_is_overuse_and_a_steady_one_is_not() -> None:
    # Groups sent every 10 ms; the first 60 arrive 10 ms apart, then each 2 ms later.
    gradient = DelayGradient()
    results = [(i, i * 10_000, 1_000, 20_000 + i * 10_000, MEDIA) for i in range(60)]
    assert gradient.update(results) != OVERUSING
    rising = [(i, i * 10_000, 1_000, 20_000 + 600_000 + (i - 60) * 12_000, MEDIA)
              for i in range(60, 100)]  # fmt: skip
    assert gradient.update(rising) == OVERUSING


def test_a_draining_queue_holds_the_growth() -> None:
    # A queue of 600 ms drains: groups sent 10 ms apart arrive 8 ms apart. No loss, yet no
    # growth while it drains (GCC's hold on under-use); growth once it is steady again.
    clock = Clock()
    est = DownlinkEstimator(lambda: 0, clock=clock)
    est.on_packet_results(draining(0, 60), clock.now)
    assert est.delay_state == UNDERUSING
    before = est.value = 500_000.0
    for i, packets in enumerate((0, 100, 200)):  # windows without loss: growth, but ...
        est.on_report(packets, 0)
        clock.now += 0.6
        est.on_packet_results(draining(60 + 20 * i, 20), clock.now)  # ... the queue drains
    assert est.value == before
    steady = [(i, i * 10_000, 1_000, 360_000 + i * 10_000, MEDIA) for i in range(120, 260)]
    est.on_packet_results(steady, clock.now)
    assert est.delay_state == NORMAL
    est.on_report(300, 0)
    assert est.value > before


def draining(first: int, count: int) -> list[tuple[int, int, int, int, int]]:
    """Results of groups sent 10 ms apart from a queue of 600 ms draining: 8 ms apart."""
    return [(i, i * 10_000, 1_000, 600_000 + i * 8_000, MEDIA) for i in range(first, first + count)]


def test_results_that_stopped_hold_nothing_and_the_remb_rules_return() -> None:
    # A renegotiation dropped transport-cc while the queue was draining: the last state
    # (under-use) holds no growth for ever, and a REMB that fell counts again.
    clock = Clock()
    est = DownlinkEstimator(lambda: int(clock.now * 125_000), clock=clock)  # 1 Mbit/s sent
    est.on_packet_results(draining(0, 60), clock.now)
    assert est.delay_state == UNDERUSING
    clock.now += 5.0
    before = est.value = 500_000.0
    for packets in (0, 100, 200):
        est.on_report(packets, 0)
        clock.now += 0.6
    assert est.value > before
    est.on_remb(1_000_000)
    clock.now += 0.3
    est.on_remb(300_000)
    clock.now += 0.6
    assert est.on_remb(300_000)


def test_with_packet_results_a_falling_remb_cuts_nothing() -> None:
    leg = Leg(Bottleneck(5_000_000), follow=False)
    leg.run(5.0)
    assert leg.est.on_remb(2_000_000) is False
    for _ in range(3):
        leg.run(0.3)
        leg.est.on_remb(100_000)  # without packet results this would halve the estimate
    assert leg.est.decreases == 0 and leg.est.estimate >= TOP
