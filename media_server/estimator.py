"""What one subscriber's leg carries (the downlink estimate), and the resend budget spent from it.

The estimate (bits/s) follows Google Congestion Control's loss-based controller
(draft-ietf-rmcat-gcc-02, section 6) from the sender's side, with the receiver's REMB
(draft-alvestrand-rmcat-remb) as its delay-based signal:

- Loss is measured over windows of at least ``WINDOW_SECONDS`` and ``WINDOW_PACKETS`` of our
  leg (``on_report`` takes cumulative counts: what we forwarded against what the subscriber's
  receiver reports received, so the publisher's uplink loss is not counted,
  ``Subscription.leg_expected`` / ``leg_lost``). Chrome adds a
  receiver report to every NACK, so single reports often cover a few packets: one loss in
  seven read as 14% and dropped a layer on a link with 3% random loss.
- Over ``LOSS_CONGESTED`` (30%: a policer, not random loss) the estimate becomes what got
  through, ``media * (1 - loss)`` plus 5%, at once: the media we sent, not our resends, since
  a receiver counts a repaired packet as received (RFC 3550 6.4.1), so the loss is a share of
  the media (with the resends counted, a 500 kbit/s policer read as 775 kbit/s); over ``LOSS_HIGH`` (10%) GCC's
  ``sent * (1 - loss / 2)``; under ``LOSS_LOW`` (2%) it grows by ``GROWTH_PER_SECOND``;
  in between it holds.
- The REMB is a receiver's delay-based estimate, bounded by 1.5x what it receives (libwebrtc's
  AIMD): a low layer keeps it low, so it is no measure of the link while it is above what we
  send. Under ``REMB_OVERUSE`` x what we send (its queue grows: a shaped link) for
  ``REMB_HOLD_SECONDS`` it lowers the estimate, at most to half of what we send per
  ``REMB_HOLD_SECONDS`` (a receiver starved of CPU reads its own stalls as queueing): half of
  what we send, not of the estimate, which grew above it exploring (halving a 2.7 Mbit/s
  estimate while 0.9 Mbit/s flowed into a shaped 500 kbit/s link changed no layer, and the
  400 ms queue overflowed into a 1.3 s freeze and a 222 ms audio gap; GCC's decrease, too, is
  a share of what arrives). Only a REMB that fell counts
  (under ``REMB_FALL`` x the highest of the last ``REMB_FALL_SECONDS``: the receiver saw its
  queue grow), never one that is low but rising: libwebrtc's estimate ramps up from its start
  value by about 8% a second, for 20 s and more (a clean leg was held on the lowest layer that
  long), and not in the first ``START_SECONDS`` of feedback either.
- A window without loss lifts the estimate to what the leg carried in it (padding aside),
  unless the REMB says the receiver's queue grows: no hold keeps it under a rate that flows.
- Every decrease is a congestion point: for ``backoff`` seconds the estimate may not grow past
  it (4 s, doubled for each decrease soon after the previous one expired, up to 32 s), so a
  higher layer that did not fit is not retried at once.
- Growth explores: the estimate may rise up to ``DEMAND_MARGIN`` x ``demand`` (what the
  subscriber's streams could use at their top, set by the allocator), so a subscriber forwarded
  a low layer learns, by being switched up, whether a higher one fits. It never exceeds that:
  a link that dropped to a tenth is found at the next window, not after halving from 20 Mbit/s.

Packet results (``on_packet_results``: a leg with transport-wide feedback, whose receiver then
sends no REMB) replace the REMB rules while they come (``RESULTS_STALE_SECONDS``), by GCC's
delay-based controller from the sender's side (draft-ietf-rmcat-gcc-02 section 5;
delaybased.py): over-use lowers the estimate to ``DELAY_BACKOFF`` x the rate the receiver
acknowledged (at most every ``DELAY_CUT_SECONDS``; a congestion point as a loss decrease is, so
the allocator's hysteresis holds), over- or under-use holds its growth, and no loss window
lifts it to what was sent while the queue grows. A probe is judged by its packets' results
(delaybased.ProbeMeter): it fails on over-use while it runs (the estimate not lowered under
where it was for ``PROBE_ECHO_SECONDS`` after: the queue was the probe's), or once all of them
are reported, when they arrived under ``PROBE_ARRIVAL_SHARE`` of the rate they were sent at or
over ``PROBE_PADDING_LOSS`` of them were lost; else it passes and the estimate is the rate they
arrived at (not its goal: padding may fall short). The loss window still fails one by loss.

Until feedback arrives the estimate is ``initial``.

Probing (``media.probing``, off by default: against the harness's policers it froze video
more than blind growth; where the participant can pad: a simulcast video with RTX,
``can_probe``): a
subscriber held under a higher layer by its estimate is not switched up blind. Growth then
stays within ``VERIFIED_MARGIN`` of what the leg has shown it carries (``verified``: the
highest rate of a window without loss, or the goal of a probe that passed, since loss last
lowered the estimate), and ``probe_goal`` asks the participant for ``PROBE_GAIN`` x what the
leg carries or is estimated to, for ``PROBE_SECONDS``; it pads the difference on the RTX
stream (prober.py; libwebrtc's pacer pads with RTX resends the same way, LiveKit's
StreamAllocator probes before an upgrade). The first window after it whose reports cover the
padded video judges it, by the loss before repair (``raw_lost``: NACKs repair what a policer
dropped) and the loss of the padding itself (a policer drops big packets first, padding
before audio): no more loss than before it and little padding lost, and the goal is the estimate at once, any hold
released, and the next probe may follow (a lifted cap is climbed by doublings, about one a
second, where blind growth at ``GROWTH_PER_SECOND`` took 8-9 s: issue 13's step measured 13 s
back to the top layer). Loss (or a REMB that fell, within ``PROBE_ECHO_SECONDS``), and the
estimate is what it was before, not lower (the loss was the probe's), held there for
``PROBE_BACKOFF_SECONDS`` (doubling: a policed leg is probed every 6 s at most), and the
next probe asks for less over it (each failed probe costs the media some loss for
``PROBE_SECONDS``, which NACKs repair; audio has no repair). A probe that passed lied when
loss lowers the estimate within ``PROBE_TRUST_SECONDS``: a policer's token bucket let its
padding through (an nftables policer holds a second of its rate) and the switch up it
allowed froze once the bucket ran dry. Probing then backs off as after a failure, and each
probe runs twice as long (up to ``PROBE_LONGEST_SECONDS``) until one's verdict holds: failed
padding costs no keyframe and no freeze.

``ResendBudget`` is a token bucket of bytes refilled at ``share`` of the estimate, at most
``depth_seconds`` of it banked: retransmissions (NACK answers) spend from it, so they never
grow past a fixed part of what the leg carries (the storm of issue 13: 100-130 packets resent
per NACK into a 500 kbit/s link).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from media_server.delaybased import NORMAL, OVERUSING, AckedRate, DelayGradient, ProbeMeter

INITIAL = 2_500_000  # bits/s before feedback: the top layer of a 720p camera, and audio
REMB_OVERUSE = 0.85  # a REMB under this share of what we send means the queue grows
REMB_HOLD_SECONDS = 0.5  # ... for this long (one low REMB may be a receiver's CPU stall)
REMB_FALL = 0.95  # ... and under this share of the highest REMB of the last ...
REMB_FALL_SECONDS = 2.0  # ... seconds (a rising REMB is a receiver ramping up, not a queue)
START_SECONDS = 4.0  # REMBs of the first seconds of feedback are a receiver ramping up
LOSS_HIGH = 0.10  # fraction lost above which the estimate falls
LOSS_CONGESTED = 0.30  # ... above which what got through is the estimate
LOSS_LOW = 0.02  # ... under which it grows
GROWTH_PER_SECOND = 1.2  # from 500 kbit/s to the top layer's 2 Mbit/s in about 8 s
WINDOW_SECONDS = 0.5  # loss is measured over at least this long ...
WINDOW_PACKETS = 20  # ... and this many packets (or WINDOW_MAX_SECONDS)
WINDOW_MAX_SECONDS = 2.0
BACKOFF_SECONDS = (4.0, 32.0)  # how long a congestion point holds, first and longest
DEMAND_MARGIN = 1.5  # growth stops at this much above what the streams could use
FLOOR = 50_000  # bits/s: never estimate less (audio and RTCP must get through)
CEILING = 20_000_000
PROBE_GAIN = 2.0  # a probe asks for this much over what the leg carries, its excess halved
PROBE_LEAST_GAIN = 1.25  # ... after each failure down to this
PROBE_MIN_GAIN = 1.2  # ... and is not worth sending for less
PROBE_SECONDS = 0.5  # padding runs this long, doubled for each probe that lied, up to
PROBE_LONGEST_SECONDS = 2.0  # ... this (a policer's bucket let a short one through)
PROBE_TRUST_SECONDS = 5.0  # loss this soon after a probe passed: it lied
PROBE_LOSS_GROWTH = 0.05  # a probe fails when the loss before repair grows this much,
PROBE_PADDING_LOSS = 0.1  # ... or this share of its padding (of the RTX streams) is lost
PROBE_JUDGE_SECONDS = 0.1  # the window judging it closes at least this long after its end
PROBE_LOST_SECONDS = 3.0  # a probe no report judged by then is forgotten (a silent leg)
PROBE_AFTER_DECREASE_SECONDS = 2.0  # no probe this soon after loss lowered the estimate
PROBE_BACKOFF_SECONDS = (2.0, 6.0)  # after a failed probe, first and longest wait
PROBE_ECHO_SECONDS = 2.0  # a REMB this soon after a probe's end may answer it
VERIFIED_MARGIN = 1.1  # with probing, blind growth stays this close to what got through
DELAY_BACKOFF = 0.85  # over-use: the estimate becomes this share of what arrives (GCC's beta)
DELAY_CUT_SECONDS = 0.2  # ... at most this often (a cut takes a while to empty the queue)
KEYFRAME_SECONDS = 0.1  # a group this long to send at the estimate is a burst (a keyframe):
KEYFRAME_ECHO_SECONDS = 0.3  # over-use until that long and this after it is its own queue
RESULTS_STALE_SECONDS = 1.0  # packet results older than this say nothing of the leg now
PROBE_ARRIVAL_SHARE = 0.9  # a probe whose packets arrived slower than this share of their
# send rate met a bottleneck (libwebrtc's ProbeBitrateEstimator reads it so too)


@dataclass
class Probe:
    """One probe: padding from ``start`` to ``end`` (time.monotonic s) for a leg carrying
    ``goal`` bits/s; ``before``: the estimate when it began (bits/s), ``raw_before``: the
    loss before repair of the window before it (a fraction); ``covered()``: do the
    subscriber's reports cover what was sent until it ended (set by the Prober: a window its
    audio reports closed says nothing of the padded video), ``padding_lost()``: the share of
    the padded RTX streams lost since it began (a fraction)."""

    start: float
    end: float
    goal: float
    before: float
    raw_before: float
    covered: Callable[[], bool] = lambda: True
    padding_lost: Callable[[], float] = lambda: 0.0
    meter: ProbeMeter | None = None  # with packet results: its packets' send and arrival


class DownlinkEstimator:
    """One subscriber leg's estimate in bits/s (``estimate``).

    ``sent_bytes``: total bytes sent on the leg so far (media, resends and probe padding),
    read at each loss window to know the rate the loss applies to; ``resent_bytes`` and
    ``padding_bytes``: the resends and the probe padding among them (none when not given).
    ``demand`` (bits/s or None): set by the allocator, bounds the growth; ``can_probe``: set
    by the participant (see the module docstring).
    """

    def __init__(self, sent_bytes: Callable[[], int], initial: int = INITIAL,
                 clock: Callable[[], float] = time.monotonic,
                 resent_bytes: Callable[[], int] | None = None,
                 padding_bytes: Callable[[], int] | None = None) -> None:  # fmt: skip
        self._sent_bytes = sent_bytes
        self._resent_bytes = resent_bytes or (lambda: 0)
        self._padding_bytes = padding_bytes or (lambda: 0)
        self._clock = clock
        self.value = float(initial)
        # The estimate as it grows back after a decrease at once, without the congestion
        # point's hold (``unheld_estimate``).
        self._unheld = float(initial)
        self.demand: int | None = None
        self.remb: int | None = None
        self.fraction_lost = 0.0  # of the last window
        self.window_began = -1e9  # when the last window began (the clock's seconds)
        self.raw_lost = 0.0  # ... before repair
        self.window_packets = 0  # ... and its packets
        self.sent_bps: float | None = None  # of the last window
        self.media_bps: float | None = None  # ... less the resends and padding
        self.padding_bps = 0.0  # ... of it probe padding
        self.updates = 0
        self.decreases = 0
        self._first_feedback: float | None = None
        # (at, sent, resent, expected, lost) where the current window began
        self._window: tuple[float, int, int, int, int] | None = None
        self._grown_at: float | None = None
        self._remb_low_since: float | None = None
        self._rembs: deque[tuple[float, int]] = deque()  # (when, bits/s) of recent REMBs
        self._remb_cut_at = -1e9
        self._ceiling: tuple[float, float] | None = None  # (bits/s, until)
        self._backoff = BACKOFF_SECONDS[0]
        self._last_decrease = -1e9
        self.lost_at = -1e9  # when loss (not a REMB) last lowered the estimate
        self.can_probe = False
        self.probe: Probe | None = None  # running, or waiting for the window that judges it
        self.verified: float | None = None  # bits/s the leg carried without loss lately
        self.probes = self.probes_failed = 0
        self._probe_at = -1e9  # no probe before
        self._probe_backoff = PROBE_BACKOFF_SECONDS[0]
        self._probe_gain = PROBE_GAIN
        self._probe_lies = 0  # probes in a row that passed and loss followed
        self._passed_at: float | None = None  # the last probe that passed, while on trial
        # REMBs until then may answer a probe's burst: (until, the estimate before it)
        self._probe_echo = (-1e9, 0.0)
        # From the first packet results on (transport-wide feedback): the delay gradient, its
        # state after the last feedback, and the rate acknowledged (delaybased.py).
        self.delay: DelayGradient | None = None
        self.delay_state = NORMAL
        self._results_at = -1e9
        self.acked = AckedRate()
        self._delay_cut_at = -1e9
        self._keyframe_until = -1e9  # over-use until then may be a burst's own queue

    @property
    def estimate(self) -> int:
        return max(FLOOR, min(CEILING, int(self.value)))

    @property
    def unheld_estimate(self) -> int:
        """bits/s: ``estimate`` as it would be without the hold at a congestion point (after a
        decrease it grows back at once, as fast and as far as ``estimate`` may grow). The hold
        keeps switches up, each a keyframe that freezes the video when it does not fit, from
        flapping; a frame rate (VP8 temporal layers) is taken back at once and without a
        keyframe, so the allocator lets it follow this: after a burst of loss a 500 kbit/s
        leg's estimate was held at 216 kbit/s for 4 s while nothing was lost, and two videos
        played at 5 fps on it."""
        return max(FLOOR, min(CEILING, int(max(self.value, self._unheld))))

    def _started(self, now: float) -> bool:
        if self._first_feedback is None:
            self._first_feedback = now
        return now - self._first_feedback >= START_SECONDS

    def on_remb(self, bitrate: int) -> bool:
        """A REMB for the leg (bits/s); True when it lowered the estimate."""
        now = self._clock()
        self.remb = max(0, bitrate)
        self.updates += 1
        if self._delay_state(now) is not None:
            return False  # packet results say more, and sooner (on_packet_results)
        started = self._started(now)
        while self._rembs and now - self._rembs[0][0] > REMB_FALL_SECONDS:
            self._rembs.popleft()
        fell = self.remb < REMB_FALL * max((r for _, r in self._rembs), default=0)
        self._rembs.append((now, self.remb))
        # Padding left out: a REMB lags a probe's burst, which is judged by its own loss.
        sending = (self.sent_bps or 0.0) - self.padding_bps
        if not started or not fell or sending <= 0 or self.remb >= REMB_OVERUSE * sending:
            self._remb_low_since = None
            return False
        since = self._remb_low_since = self._remb_low_since or now
        if now - since < REMB_HOLD_SECONDS or now - self._remb_cut_at < REMB_HOLD_SECONDS:
            return False
        target = max(self.remb, min(self.value, sending) / 2)
        if now < self._probe_echo[0]:
            # The receiver reacting to a probe's burst (a shaped link's queue, a policer's
            # drops): the probe fails, the estimate goes back to before it, not lower.
            if self.probe is not None:
                self._fail_probe(self.probe, now)
            target = max(target, self._probe_echo[1])
        if target >= self.value:
            return False
        self._remb_cut_at = now
        self._decrease(target, now)
        return True

    def on_report(self, expected: int, lost: int, lost_raw: int | None = None) -> bool:
        """Cumulative packets our leg should have delivered and lost (every subscription's,
        from receiver reports), and lost before repair (RTX repairs not added back; None: as
        ``lost``); True when a loss window closed and the estimate moved."""
        now, sent = self._clock(), self._sent_bytes()
        resent, padding = self._resent_bytes(), self._padding_bytes()
        raw = lost if lost_raw is None else lost_raw
        self._started(now)
        if self._window is None:
            self._window = (now, sent, resent, padding, expected, lost, raw)
            return False
        at, sent0, resent0, padding0, expected0, lost0, raw0 = self._window
        span, packets = now - at, expected - expected0
        if span < WINDOW_SECONDS or (packets < WINDOW_PACKETS and span < WINDOW_MAX_SECONDS):
            return False
        self._window = (now, sent, resent, padding, expected, lost, raw)
        self.window_began = at
        self.window_packets = packets
        self.sent_bps = 8 * (sent - sent0) / span
        self.padding_bps = 8 * (padding - padding0) / span
        self.media_bps = max(0.0, self.sent_bps - self.padding_bps - 8 * (resent - resent0) / span)
        loss = self.fraction_lost = (
            max(0.0, min(1.0, (lost - lost0) / packets)) if packets > 0 else 0.0
        )
        self.raw_lost = max(0.0, min(1.0, (raw - raw0) / packets)) if packets > 0 else 0.0
        self.updates += 1
        if self.probe is not None and self._judge_probe(self.probe, now):
            return True
        if loss < LOSS_LOW:
            self.verified = max(self.verified or 0.0, self.sent_bps)
            # Never under what the leg just carried without loss: a hold (a congestion point,
            # a failed probe) kept a 300 kbit/s leg's estimate at 152 kbit/s while 180 flowed
            # cleanly, under what the lowest layer needs, and the video was paused. Unless
            # the receiver's REMB says its queue grows (a shaped link: no loss yet).
            carried = self.sent_bps - self.padding_bps
            if not self._queue_grows(carried, now):
                self.value = max(self.value, carried)
            if self._passed_at is not None and now - self._passed_at >= PROBE_TRUST_SECONDS:
                self._passed_at = None  # what the probes found held: they told the truth
                self._probe_lies = 0
                self._probe_backoff = PROBE_BACKOFF_SECONDS[0]
                self._probe_gain = PROBE_GAIN
        if loss > LOSS_HIGH:
            self.lost_at = now
        if loss > LOSS_CONGESTED:
            self._decrease(1.05 * self.media_bps * (1 - loss), now)
        elif loss > LOSS_HIGH:
            self._decrease(self.sent_bps * (1 - loss / 2), now)
        elif loss < LOSS_LOW and self._delay_state(now) in (None, NORMAL):
            self._grow(now)
        else:
            self._grown_at = now  # some loss, or a queue that grows or drains: hold
        return True

    def _delay_state(self, now: float) -> str | None:
        """The delay-gradient state while packet results come (None: none in the last
        ``RESULTS_STALE_SECONDS``, when the REMB rules apply again: a renegotiation that drops
        transport-cc must not leave the leg held by the last state it had)."""
        if now - self._results_at > RESULTS_STALE_SECONDS:
            return None
        return self.delay_state

    def _queue_grows(self, carried: float, now: float) -> bool:
        """Does the leg's queue grow while it carries ``carried`` bits/s: over-use in the packet
        results, or without them a REMB under ``REMB_OVERUSE`` of it."""
        state = self._delay_state(now)
        if state is not None:
            return state == OVERUSING
        return self.remb is not None and self.remb < REMB_OVERUSE * carried

    def on_packet_results(self, results: list[tuple[int, int, int, int, int]],
                          now: float) -> bool:  # fmt: skip
        """One transport-wide feedback's packet results for the leg, in sequence order, each
        ``(seq, sent_us, size, arrived_us, kind)`` (delaybased.py), received at ``now``
        (time.monotonic s); True when the estimate moved. While they come, the REMB rules
        stop (a receiver sending this feedback sends no REMB): over-use lowers the estimate
        to ``DELAY_BACKOFF`` x the rate acknowledged (draft-ietf-rmcat-gcc-02 5.5's decrease,
        a congestion point as a loss decrease is), over- or under-use holds its growth, and a
        probe is judged by the rate its packets arrived at (``_judge_probe_delay``)."""
        if not results:
            return False
        if self.delay is None:
            self.delay = DelayGradient()
            self._started(now)
        state = self.delay_state = self.delay.update(results)
        self._results_at = now
        self.acked.update(results)
        self.updates += 1
        before = self.value
        probe = self.probe
        if probe is not None and probe.meter is not None:
            probe.meter.update(results)
            if state == OVERUSING:
                self._fail_probe(probe, now)
            elif probe.meter.done:
                self._judge_probe_delay(probe, probe.meter, now)
        # The SFU forwards a keyframe as it came, unpaced: at a layer switch up its burst
        # queues behind itself at the bottleneck even where the layer fits (a 60 KB keyframe
        # into 2.5 Mbit/s read as over-use and took the layer back down). So over-use within
        # the time the burst takes at the estimate (and an echo) cuts nothing; where the new
        # layer does not fit, it lasts past that and cuts then.
        drain = 8 * self.delay.largest / max(self.value, FLOOR)
        if drain > KEYFRAME_SECONDS:
            self._keyframe_until = max(self._keyframe_until, now + drain + KEYFRAME_ECHO_SECONDS)
        acked = self.acked.bps
        if (
            state == OVERUSING
            and acked is not None
            and now - self._delay_cut_at >= DELAY_CUT_SECONDS
            and now >= self._keyframe_until
        ):
            target = DELAY_BACKOFF * acked
            if now < self._probe_echo[0]:
                # The queue may be a probe's (which failed by it): not under the estimate
                # before the probe, as a REMB answering its burst (on_remb).
                target = max(target, self._probe_echo[1])
            if target < self.value:
                self._delay_cut_at = now
                self._decrease(target, now)
        return self.value != before

    def _judge_probe_delay(self, probe: Probe, meter: ProbeMeter, now: float) -> None:
        """Every packet sent during ``probe`` is reported: it passed when they arrived at
        ``PROBE_ARRIVAL_SHARE`` of the rate they were sent at or more and at most
        ``PROBE_PADDING_LOSS`` of them were lost (over-use while it ran failed it already);
        the estimate is then the rate they arrived at."""
        sent, arrived = meter.sent_bps, meter.arrived_bps
        if (sent is None or arrived is None or arrived < PROBE_ARRIVAL_SHARE * sent
                or meter.loss > PROBE_PADDING_LOSS):  # fmt: skip
            self._fail_probe(probe, now)
        else:
            self._pass_probe(probe, min(sent, arrived), now)

    def probe_goal(self, constrained: bool) -> int | None:
        """Start a probe if one is due: the rate (bits/s) the leg should carry for
        ``PROBE_SECONDS`` (the participant pads the difference), else None. ``constrained``:
        the allocator holds some video under what its publisher sends (Allocator.constrained).
        """
        now = self._clock()
        probe = self.probe
        if probe is not None and now - probe.end > PROBE_LOST_SECONDS:
            self.probe = probe = None  # no window judged it: the leg went quiet
        if (probe is not None or not (constrained and self.can_probe) or self.demand is None
                or self.sent_bps is None or self.fraction_lost >= LOSS_LOW
                or now < self._probe_at
                or now - self._last_decrease < PROBE_AFTER_DECREASE_SECONDS):  # fmt: skip
            return None
        # From what the leg carries, or is estimated to where that was shown (an estimate that
        # grew blind while every video was paused asked a 500 kbit/s leg for 1.9 Mbit/s).
        verified = self.value if self.verified is None else min(self.value, self.verified)
        carried = max(self.sent_bps, verified, FLOOR)
        goal = min(DEMAND_MARGIN * self.demand, CEILING, self._probe_gain * carried)
        if goal < PROBE_MIN_GAIN * carried:
            return None
        seconds = min(PROBE_LONGEST_SECONDS, PROBE_SECONDS * 2**self._probe_lies)
        self.probe = Probe(now, now + seconds, goal, self.value, self.raw_lost)
        if self._delay_state(now) is not None:
            self.probe.meter = ProbeMeter(int(now * 1e6), int(self.probe.end * 1e6))
        self._probe_echo = (self.probe.end + PROBE_ECHO_SECONDS, self.value)
        self.probes += 1
        return int(goal)

    def fail_probe(self) -> None:
        """The running probe failed by a sign faster than a loss window (Prober.on_nacks)."""
        if self.probe is not None:
            self._fail_probe(self.probe, self._clock())

    def withdraw_probe(self) -> None:
        """The probe could not be padded: it is not judged (the next may follow)."""
        if self.probe is not None:
            self.probe = None
            self.probes -= 1

    def _judge_probe(self, probe: Probe, now: float) -> bool:
        """A loss window closed while ``probe`` runs or waits; True when it decided it. By the
        loss before repair (``raw_lost``): after repair, NACKs hide a policer's drops that the
        padding caused (a probe at twice a 500 kbit/s policer passed). The probe fails when
        that loss grew by ``PROBE_LOSS_GROWTH`` over the window before it (a leg with random
        loss is not a leg that cannot carry more), or, once its reports are in, when over
        ``PROBE_PADDING_LOSS`` of its padding was lost."""
        if self.raw_lost > probe.raw_before + PROBE_LOSS_GROWTH or self.fraction_lost >= LOSS_HIGH:
            self._fail_probe(probe, now)
            return True
        if probe.meter is not None and self._delay_state(now) is not None:
            return False  # the packet results pass it (_judge_probe_delay)
        if now < probe.end + PROBE_JUDGE_SECONDS or not probe.covered():
            return False  # the window closed before the padding ended: the next one judges
        if probe.padding_lost() > PROBE_PADDING_LOSS:
            self._fail_probe(probe, now)
            return True
        self._pass_probe(probe, probe.goal, now)
        return True

    def _pass_probe(self, probe: Probe, carried: float, now: float) -> None:
        """The leg carried ``probe`` at ``carried`` bits/s: that is the estimate, any hold
        released, and the next probe may follow."""
        self.probe = None
        self._probe_at = now
        self._passed_at = now  # on trial: a switch up it allows may yet fail (_decrease)
        self._probe_gain = PROBE_GAIN
        self._ceiling = None
        self.verified = max(self.verified or 0.0, carried)
        self.value = max(self.value, carried)
        self._grown_at = now

    def _fail_probe(self, probe: Probe, now: float) -> None:
        """The leg did not carry ``probe``: back to the estimate before it, held there."""
        self.probe = None
        self.probes_failed += 1
        self.value = min(self.value, probe.before)
        self._unheld = min(self._unheld, self.value)
        self._ceiling = (probe.before, now + self._probe_backoff)
        self._back_off_probing(now)
        self._grown_at = now

    def _back_off_probing(self, now: float) -> None:
        """A probe failed, or lied: wait longer before the next, and ask for less over what
        the leg carries (each failed probe overloads the leg for its duration)."""
        self._probe_at = now + self._probe_backoff
        self._probe_backoff = min(PROBE_BACKOFF_SECONDS[1], 2 * self._probe_backoff)
        self._probe_gain = max(PROBE_LEAST_GAIN, 1 + (self._probe_gain - 1) / 2)

    def _grow(self, now: float) -> None:
        last, self._grown_at = self._grown_at, now
        if self.demand is not None:  # not above what could be used, even from the start
            self.value = min(self.value, max(FLOOR, DEMAND_MARGIN * self.demand))
            self._unheld = min(self._unheld, max(FLOOR, DEMAND_MARGIN * self.demand))
        if last is None:
            return
        limit = CEILING if self.demand is None else DEMAND_MARGIN * self.demand
        if self.can_probe and self.verified is not None:
            limit = min(limit, VERIFIED_MARGIN * self.verified)
        factor = GROWTH_PER_SECOND ** min(now - last, WINDOW_MAX_SECONDS)
        unheld = max(self.value, self._unheld)
        self._unheld = max(unheld, min(unheld * factor, limit))
        if self._ceiling is not None:
            ceiling, until = self._ceiling
            if now < until:
                limit = min(limit, ceiling)
            else:
                self._ceiling = None
        self.value = max(self.value, min(self.value * factor, limit))

    def _decrease(self, target: float, now: float) -> None:
        target = max(FLOOR, target)
        if target >= self.value:
            # The loss came at what only the unheld estimate allowed (a frame rate taken back)
            self._unheld = min(self._unheld, target)
            return
        if self._passed_at is not None and now - self._passed_at < PROBE_TRUST_SECONDS:
            # The probes passed, and what they allowed did not hold: a policer's bucket let
            # their padding through (an nftables one holds a second of its rate). The next
            # probes wait longer and run longer, so they empty such a bucket before a switch
            # up does (a failed switch up costs a keyframe and a freeze, failed padding none).
            self._passed_at = None
            self._probe_lies += 1
            self._back_off_probing(now)
        # A decrease soon after the last congestion point stopped holding: that point was too
        # high, so hold the new one longer (GCC's probe backoff, roughly).
        if self._ceiling is None and now - self._last_decrease < self._backoff + 10.0:
            self._backoff = min(BACKOFF_SECONDS[1], 2 * self._backoff)
        elif now - self._last_decrease > 30.0:
            self._backoff = BACKOFF_SECONDS[0]
        self._last_decrease = now
        self.value = self._unheld = target
        self.verified = min(self.verified or target, target)
        self._ceiling = (target, now + self._backoff)
        self._grown_at = now
        self.decreases += 1


class ResendBudget:
    """Bytes a leg may spend on retransmissions: ``share`` of ``estimate()`` per second, at most
    ``depth_seconds`` of it at once (a second: enough to repair a keyframe burst the leg lost,
    which an undecodable keyframe would otherwise turn into a PLI loop). ``take(nbytes)`` spends
    or refuses (False)."""

    def __init__(self, estimate: Callable[[], int], share: float = 0.25,
                 depth_seconds: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self._estimate = estimate
        self.share = share
        self.depth_seconds = depth_seconds
        self._clock = clock
        self._tokens = 0.0
        self._at: float | None = None
        self.refused = 0
        self.spent_bytes = 0

    def take(self, nbytes: int) -> bool:
        now = self._clock()
        rate = self.share * self._estimate() / 8  # bytes/s
        depth = rate * self.depth_seconds
        if self._at is None:
            self._tokens = depth
        else:
            self._tokens = min(depth, self._tokens + rate * (now - self._at))
        self._at = now
        if self._tokens < nbytes:
            self.refused += 1
            return False
        self._tokens -= nbytes
        self.spent_bytes += nbytes
        return True
