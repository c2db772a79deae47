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
  ``REMB_HOLD_SECONDS`` it lowers the estimate, at most by half per ``REMB_HOLD_SECONDS``
  (a receiver starved of CPU reads its own stalls as queueing). Only a REMB that fell counts
  (under ``REMB_FALL`` x the highest of the last ``REMB_FALL_SECONDS``: the receiver saw its
  queue grow), never one that is low but rising: libwebrtc's estimate ramps up from its start
  value by about 8% a second, for 20 s and more (a clean leg was held on the lowest layer that
  long), and not in the first ``START_SECONDS`` of feedback either.
- Every decrease is a congestion point: for ``backoff`` seconds the estimate may not grow past
  it (4 s, doubled for each decrease soon after the previous one expired, up to 32 s), so a
  higher layer that did not fit is not retried at once.
- Growth explores: the estimate may rise up to ``DEMAND_MARGIN`` x ``demand`` (what the
  subscriber's streams could use at their top, set by the allocator), so a subscriber forwarded
  a low layer learns, by being switched up, whether a higher one fits. It never exceeds that:
  a link that dropped to a tenth is found at the next window, not after halving from 20 Mbit/s.

Until feedback arrives the estimate is ``initial``.

``ResendBudget`` is a token bucket of bytes refilled at ``share`` of the estimate, at most
``depth_seconds`` of it banked: retransmissions (NACK answers) spend from it, so they never
grow past a fixed part of what the leg carries (the storm of issue 13: 100-130 packets resent
per NACK into a 500 kbit/s link).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

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


class DownlinkEstimator:
    """One subscriber leg's estimate in bits/s (``estimate``).

    ``sent_bytes``: total bytes sent on the leg so far (media and resends), read at each loss
    window to know the rate the loss applies to; ``resent_bytes``: the resends among them (none
    when not given). ``demand`` (bits/s or None): set by the
    allocator, bounds the growth (see the module docstring).
    """

    def __init__(self, sent_bytes: Callable[[], int], initial: int = INITIAL,
                 clock: Callable[[], float] = time.monotonic,
                 resent_bytes: Callable[[], int] | None = None) -> None:  # fmt: skip
        self._sent_bytes = sent_bytes
        self._resent_bytes = resent_bytes or (lambda: 0)
        self._clock = clock
        self.value = float(initial)
        self.demand: int | None = None
        self.remb: int | None = None
        self.fraction_lost = 0.0  # of the last window
        self.window_packets = 0  # ... and its packets
        self.sent_bps: float | None = None  # of the last window
        self.media_bps: float | None = None  # ... less the resends
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

    @property
    def estimate(self) -> int:
        return max(FLOOR, min(CEILING, int(self.value)))

    def _started(self, now: float) -> bool:
        if self._first_feedback is None:
            self._first_feedback = now
        return now - self._first_feedback >= START_SECONDS

    def on_remb(self, bitrate: int) -> bool:
        """A REMB for the leg (bits/s); True when it lowered the estimate."""
        now = self._clock()
        self.remb = max(0, bitrate)
        self.updates += 1
        started = self._started(now)
        while self._rembs and now - self._rembs[0][0] > REMB_FALL_SECONDS:
            self._rembs.popleft()
        fell = self.remb < REMB_FALL * max((r for _, r in self._rembs), default=0)
        self._rembs.append((now, self.remb))
        if (not started or not fell or not self.sent_bps
                or self.remb >= REMB_OVERUSE * self.sent_bps):  # fmt: skip
            self._remb_low_since = None
            return False
        since = self._remb_low_since = self._remb_low_since or now
        if now - since < REMB_HOLD_SECONDS or now - self._remb_cut_at < REMB_HOLD_SECONDS:
            return False
        target = max(self.remb, self.value / 2)
        if target >= self.value:
            return False
        self._remb_cut_at = now
        self._decrease(target, now)
        return True

    def on_report(self, expected: int, lost: int) -> bool:
        """Cumulative packets our leg should have delivered and lost (every subscription's,
        from receiver reports); True when a loss window closed and the estimate moved."""
        now, sent, resent = self._clock(), self._sent_bytes(), self._resent_bytes()
        self._started(now)
        if self._window is None:
            self._window = (now, sent, resent, expected, lost)
            return False
        at, sent0, resent0, expected0, lost0 = self._window
        span, packets = now - at, expected - expected0
        if span < WINDOW_SECONDS or (packets < WINDOW_PACKETS and span < WINDOW_MAX_SECONDS):
            return False
        self._window = (now, sent, resent, expected, lost)
        self.window_packets = packets
        self.sent_bps = 8 * (sent - sent0) / span
        self.media_bps = max(0.0, self.sent_bps - 8 * (resent - resent0) / span)
        loss = self.fraction_lost = (
            max(0.0, min(1.0, (lost - lost0) / packets)) if packets > 0 else 0.0
        )
        self.updates += 1
        if loss > LOSS_HIGH:
            self.lost_at = now
        if loss > LOSS_CONGESTED:
            self._decrease(1.05 * self.media_bps * (1 - loss), now)
        elif loss > LOSS_HIGH:
            self._decrease(self.sent_bps * (1 - loss / 2), now)
        elif loss < LOSS_LOW:
            self._grow(now)
        else:
            self._grown_at = now
        return True

    def _grow(self, now: float) -> None:
        last, self._grown_at = self._grown_at, now
        if self.demand is not None:  # not above what could be used, even from the start
            self.value = min(self.value, max(FLOOR, DEMAND_MARGIN * self.demand))
        if last is None:
            return
        limit = CEILING if self.demand is None else DEMAND_MARGIN * self.demand
        if self._ceiling is not None:
            ceiling, until = self._ceiling
            if now < until:
                limit = min(limit, ceiling)
            else:
                self._ceiling = None
        grown = self.value * GROWTH_PER_SECOND ** min(now - last, WINDOW_MAX_SECONDS)
        self.value = max(self.value, min(grown, limit))

    def _decrease(self, target: float, now: float) -> None:
        target = max(FLOOR, target)
        if target >= self.value:
            return
        # A decrease soon after the last congestion point stopped holding: that point was too
        # high, so hold the new one longer (GCC's probe backoff, roughly).
        if self._ceiling is None and now - self._last_decrease < self._backoff + 10.0:
            self._backoff = min(BACKOFF_SECONDS[1], 2 * self._backoff)
        elif now - self._last_decrease > 30.0:
            self._backoff = BACKOFF_SECONDS[0]
        self._last_decrease = now
        self.value = target
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
