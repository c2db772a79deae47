"""What a subscriber's transport-wide feedback says of its leg: the delay gradient, the rate
acknowledged, and the rate a probe arrived at (the send side of GCC's delay-based controller).

Input: packet results in transport-wide sequence order (draft-holmer-rmcat-transport-wide-cc-
extensions-01), each ``(seq, sent_us, size, arrived_us, kind)``: ``sent_us`` our
CLOCK_MONOTONIC microseconds at send, ``size`` the datagram's bytes, ``arrived_us`` the
receiver's clock in microseconds (only differences mean anything) or ``LOST``, ``kind``
``MEDIA``, ``RESEND`` or ``PADDING``.

``DelayGradient`` follows draft-ietf-rmcat-gcc-02 section 5 with libwebrtc's send-side design
in place of the draft's Kalman filter:

- Pre-filtering (5.2): packets sent within ``GROUP_US`` of a group's first are one group (a
  video frame's burst); a packet that arrives within ``BURST_US`` of its group's last and
  closer to it than it was sent (a queue releasing a burst) joins the group too.
- Between consecutive groups, the inter-group delay variation (5.1) is the arrival delta less
  the send delta (ms). Its running sum, exponentially smoothed (``SMOOTHING``), over the last
  ``WINDOW_GROUPS`` groups, is fitted by least squares against arrival time: the slope (ms of
  queueing per ms) is the trend, the delay gradient (libwebrtc's TrendlineEstimator).
- Over-use detection (5.4): the trend times ``min(groups, TREND_GROUPS)`` and ``TREND_GAIN``
  is compared with an adaptive threshold (5.4's ``del_var_th``, initially ``THRESHOLD_MS``,
  following it by ``K_UP`` / ``K_DOWN`` per ms, within ``THRESHOLD_RANGE_MS``, not for
  outliers ``ADAPT_OUTLIER_MS`` over it): over it for ``OVERUSE_MS`` and two groups, with the
  trend not falling, is ``OVERUSING``; under its negative ``UNDERUSING``; else ``NORMAL``.

``AckedRate`` is what arrived (bits/s) over the last ``ACKED_WINDOW_US`` of the receiver's
clock. ``ProbeMeter`` measures the packets we sent during a probe (its padding and the media
beside it): the rate they were sent at and the rate they arrived at (libwebrtc's
ProbeBitrateEstimator: the first packet's size left out of the send rate, the last one's out
of the arrival rate), and the share of them lost.

Work is per feedback and per group: each packet costs one pass of a Python loop with a few
comparisons (tests/media_path/test_delaybased.py; ``benchmarks/delaybased_micro.py`` measures
it).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

LOST = -1  # arrived_us of a packet the receiver reports lost
MEDIA, RESEND, PADDING = 0, 1, 2  # a result's kind

GROUP_US = 5_000  # packets sent within this of a group's first are one group (5 ms)
BURST_US = 5_000  # ... and one arriving this close after its last, sooner than it was sent
RESET_MS = 3_000.0  # an inter-group delay variation beyond this is a clock jump: start again
WINDOW_GROUPS = 20  # the trend is fitted over this many groups
SMOOTHING = 0.9  # the accumulated delay's exponential smoothing
TREND_GROUPS = 60  # the trend is scaled by the groups seen, up to this many
TREND_GAIN = 4.0  # ... and by this
THRESHOLD_MS = 12.5  # the adaptive threshold's start
THRESHOLD_RANGE_MS = (6.0, 600.0)
K_UP, K_DOWN = 0.0087, 0.039  # per ms, while the trend is over / under the threshold
ADAPT_OUTLIER_MS = 15.0  # a trend this far over the threshold does not move it
ADAPT_MAX_MS = 100.0  # the threshold follows at most this much time at once
OVERUSE_MS = 10.0  # over the threshold this long (and two groups) is over-use

NORMAL, OVERUSING, UNDERUSING = "normal", "overusing", "underusing"

ACKED_WINDOW_US = 500_000  # the acknowledged rate is over this much of the receiver's clock
ACKED_MIN_US = 100_000  # ... and none over less than this


class DelayGradient:
    """The delay-gradient state of one leg (``state``: NORMAL, OVERUSING, UNDERUSING) from its
    packet results (``update``). ``trend``: the last fitted slope (ms/ms), ``threshold``: the
    adaptive threshold (ms), ``groups``: inter-group deltas seen, ``largest``: the bytes of
    the largest group the last ``update`` completed (a keyframe's burst queues behind itself:
    DownlinkEstimator.on_packet_results)."""

    def __init__(self) -> None:
        self.state = NORMAL
        self.trend = 0.0
        self.threshold = THRESHOLD_MS
        self.groups = 0
        self.largest = 0
        # The group being gathered: first and last send, last arrival (us), bytes; the last
        # complete group's last send and arrival (us).
        self._first_sent = self._last_sent = self._last_arrived = -1
        self._bytes = 0
        self._prev: tuple[int, int] | None = None
        self._reset_fit()

    def _reset_fit(self) -> None:
        self._first_arrived: int | None = None
        self._accumulated = self._smoothed = 0.0
        self._points: deque[tuple[float, float]] = deque(maxlen=WINDOW_GROUPS)
        self._overusing_ms = -1.0
        self._overuse_count = 0
        self._threshold_at: float | None = None

    def update(self, results: list[tuple[int, int, int, int, int]]) -> str:
        """Feed one feedback's results (sequence order); the worst state seen in them:
        OVERUSING if any group was, else the state after the last group."""
        worst, largest, group_bytes = NORMAL, 0, self._bytes
        first, last_sent, last_arrived = self._first_sent, self._last_sent, self._last_arrived
        for _, sent, size, arrived, _ in results:
            if arrived < 0 or sent < first:
                continue  # lost, or sent before the group being gathered (reordered)
            if (
                first >= 0
                and sent - first > GROUP_US
                and not (
                    arrived - last_arrived < BURST_US
                    and (arrived - last_arrived) - (sent - last_sent) < 0
                )
            ):
                if self._prev is not None:
                    self._delta(last_sent, last_arrived)
                    if self.state == OVERUSING:
                        worst = OVERUSING
                self._prev = (last_sent, last_arrived)
                largest = max(largest, group_bytes)
                first, last_arrived, group_bytes = sent, arrived, 0
            elif first < 0:
                first, last_arrived = sent, arrived
            last_sent = sent
            last_arrived = max(last_arrived, arrived)
            group_bytes += size
        self._first_sent, self._last_sent, self._last_arrived = first, last_sent, last_arrived
        self._bytes, self.largest = group_bytes, largest
        return worst if worst == OVERUSING else self.state

    def _delta(self, sent: int, arrived: int) -> None:
        """A group completed (its last send and arrival, us): one trend and detection step."""
        assert self._prev is not None
        send_ms = (sent - self._prev[0]) / 1000
        variation = (arrived - self._prev[1]) / 1000 - send_ms
        if abs(variation) > RESET_MS:
            self._reset_fit()
            self.groups = 0
            self.state = NORMAL
            return
        self.groups += 1
        if self._first_arrived is None:
            self._first_arrived = arrived
        self._accumulated += variation
        self._smoothed = SMOOTHING * self._smoothed + (1 - SMOOTHING) * self._accumulated
        now_ms = (arrived - self._first_arrived) / 1000
        self._points.append((now_ms, self._smoothed))
        previous = self.trend
        if len(self._points) == WINDOW_GROUPS:
            self.trend = _slope(self._points)
        self._detect(self.trend, previous, send_ms, now_ms)

    def _detect(self, trend: float, previous: float, send_ms: float, now_ms: float) -> None:
        """Over-use detection (draft-ietf-rmcat-gcc-02 5.4) and the threshold's adaptation."""
        if self.groups < 2:
            self.state = NORMAL
            return
        modified = min(self.groups, TREND_GROUPS) * trend * TREND_GAIN
        if modified > self.threshold:
            self._overusing_ms = (
                send_ms / 2 if self._overusing_ms < 0 else self._overusing_ms + send_ms
            )
            self._overuse_count += 1
            if self._overusing_ms > OVERUSE_MS and self._overuse_count > 1 and trend >= previous:
                self._overusing_ms, self._overuse_count = 0.0, 0
                self.state = OVERUSING
        else:
            self._overusing_ms, self._overuse_count = -1.0, 0
            self.state = UNDERUSING if modified < -self.threshold else NORMAL
        at = now_ms if self._threshold_at is None else self._threshold_at
        self._threshold_at = now_ms
        if abs(modified) > self.threshold + ADAPT_OUTLIER_MS:
            return
        k = K_DOWN if abs(modified) < self.threshold else K_UP
        self.threshold += k * (abs(modified) - self.threshold) * min(now_ms - at, ADAPT_MAX_MS)
        self.threshold = min(max(self.threshold, THRESHOLD_RANGE_MS[0]), THRESHOLD_RANGE_MS[1])


def _slope(points: deque[tuple[float, float]]) -> float:
    """The least-squares slope of y over x (0 when every x is the same)."""
    sum_x = sum_y = 0.0
    for x, y in points:
        sum_x += x
        sum_y += y
    mean_x, mean_y = sum_x / len(points), sum_y / len(points)
    num = den = 0.0
    for x, y in points:
        dx = x - mean_x
        num += dx * (y - mean_y)
        den += dx * dx
    return num / den if den > 0 else 0.0


class AckedRate:
    """bits/s that arrived over the last ``ACKED_WINDOW_US`` of the receiver's clock
    (``bps``, None until ``ACKED_MIN_US`` of arrivals), kept per feedback: its bytes arrived
    and its latest arrival."""

    def __init__(self) -> None:
        self._entries: deque[tuple[int, int]] = deque()  # (latest arrival us, bytes)
        self._bytes = 0  # of every entry but the oldest
        self.bps: float | None = None

    def update(self, results: list[tuple[int, int, int, int, int]]) -> None:
        arrived = [(a, size) for _, _, size, a, _ in results if a >= 0]
        if not arrived:
            return
        entries = self._entries
        latest = max(a for a, _ in arrived)
        if entries and latest < entries[-1][0]:
            return  # the receiver's clock went back: a late duplicate feedback
        entries.append((latest, sum(size for _, size in arrived)))
        if len(entries) > 1:
            self._bytes += entries[-1][1]
        while len(entries) > 2 and latest - entries[1][0] >= ACKED_WINDOW_US:
            entries.popleft()
            self._bytes -= entries[0][1]
        span = latest - entries[0][0]
        self.bps = 8e6 * self._bytes / span if span >= ACKED_MIN_US else None


@dataclass
class ProbeMeter:
    """The packets sent from ``start_us`` to ``end_us`` (our clock, us): a probe's padding
    and the media beside it. ``update`` takes each feedback's results; ``done`` once a packet
    sent after ``end_us`` was reported (the results come in sequence order)."""

    start_us: int
    end_us: int
    packets: int = 0
    lost: int = 0
    sent_bytes: int = 0
    first_sent_size: int = 0
    first_sent_us: int = -1
    last_sent_us: int = -1
    arrived_bytes: int = 0
    last_arrived_size: int = 0
    first_arrived_us: int = -1
    last_arrived_us: int = -1
    done: bool = False

    def update(self, results: list[tuple[int, int, int, int, int]]) -> None:
        for _, sent, size, arrived, _ in results:
            if sent < self.start_us:
                continue
            if sent > self.end_us:
                self.done = True
                return
            self.packets += 1
            self.sent_bytes += size
            if self.first_sent_us < 0:
                self.first_sent_us, self.first_sent_size = sent, size
            self.last_sent_us = sent
            if arrived < 0:
                self.lost += 1
                continue
            self.arrived_bytes += size
            if self.first_arrived_us < 0 or arrived < self.first_arrived_us:
                self.first_arrived_us = arrived
            if arrived >= self.last_arrived_us:
                self.last_arrived_us, self.last_arrived_size = arrived, size

    @property
    def sent_bps(self) -> float | None:
        """bits/s the probe's packets were sent at (None: under two packets, or no span)."""
        span = self.last_sent_us - self.first_sent_us
        return 8e6 * (self.sent_bytes - self.first_sent_size) / span if span > 0 else None

    @property
    def arrived_bps(self) -> float | None:
        """bits/s they arrived at (None: under two arrived, or all at once)."""
        span = self.last_arrived_us - self.first_arrived_us
        if span <= 0:
            return None
        return 8e6 * (self.arrived_bytes - self.last_arrived_size) / span

    @property
    def loss(self) -> float:
        """The share of its packets reported lost."""
        return self.lost / self.packets if self.packets else 0.0
