"""What one subscriber's leg carries (the downlink estimate), and the resend budget spent from it.

The estimate (bits/s) is the lower of two signals, as in Google Congestion Control
(draft-ietf-rmcat-gcc-02, section 6) seen from the sender's side:
- delay-based: the subscriber's REMB (draft-alvestrand-rmcat-remb), sent by Chrome, Safari
  and aiortc receivers when ``goog-remb`` is negotiated, taken when it falls under what we
  send (``REMB_OVERUSE``: the receiver's queue grows, as on a shaped link). Otherwise it is
  no measure of the link: a receiver bounds it by 1.5x what it receives (libwebrtc's AIMD), so
  a paused video or a low simulcast layer would keep it from ever allowing more, and a
  policer adds no delay, so REMB stays high while a capped link drops most packets.
- loss-based: the receiver reports' fraction lost (RFC 3550 6.4.1) against what we actually
  sent in the interval: over 10% loss, the estimate falls to ``sent * (1 - loss / 2)`` (GCC);
  over 30% (a policer, not random loss) towards what got through, ``sent * (1 - loss)``
  plus 5%, at most halving per report, so a cap is found in one or two reports instead of
  four; under 2% it grows 12% per report
  (not bounded by what was sent: a paused video must be able to come back; the REMB bounds
  it); in between it holds. The loss is our leg's alone (``Subscription.downlink_loss``: what
  the publisher's uplink lost shows as gaps at the subscriber too).
Until either signal arrives the estimate is ``initial``.

``ResendBudget`` is a token bucket of bytes refilled at ``share`` of the estimate, at most
``depth_seconds`` of it banked: retransmissions (NACK answers) spend from it, so they never
grow past a fixed part of what the leg carries (the storm of issue 13: 100-130 packets resent
per NACK into a 500 kbit/s link).
"""

from __future__ import annotations

import time
from collections.abc import Callable

REMB_OVERUSE = 0.85  # a REMB under this share of what we send means the queue grows
LOSS_HIGH = 0.10  # fraction lost above which the loss-based estimate falls
LOSS_CONGESTED = 0.30  # ... above which what got through is the estimate
LOSS_LOW = 0.02  # ... under which it grows
GROWTH = 1.12  # per report under LOSS_LOW (Chrome: ~1 report a second)
FLOOR = 50_000  # bits/s: never estimate less (audio and RTCP must get through)
CEILING = 20_000_000


class DownlinkEstimator:
    """One subscriber leg's estimate in bits/s (``estimate``).

    ``sent_bytes``: total bytes sent on the leg so far (media and resends), read at each
    receiver report to know the rate the loss applies to.
    """

    def __init__(self, sent_bytes: Callable[[], int], initial: int = 1_500_000,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self._sent_bytes = sent_bytes
        self._clock = clock
        self.remb: int | None = None
        self.loss_based = initial
        self.fraction_lost = 0.0
        self.sent_bps: float | None = None
        self._last_report: tuple[float, int] | None = None
        self.updates = 0

    @property
    def estimate(self) -> int:
        value = self.loss_based
        if self.remb is not None and self.sent_bps and self.remb < REMB_OVERUSE * self.sent_bps:
            value = min(value, self.remb)  # the receiver sees its queue grow: believe it
        return max(FLOOR, min(CEILING, int(value)))

    def on_remb(self, bitrate: int) -> None:
        self.remb = max(0, bitrate)
        self.updates += 1

    def on_loss(self, fraction_lost: int) -> None:
        """A receiver report's fraction lost (0-255, RFC 3550) for the leg's video."""
        now, sent = self._clock(), self._sent_bytes()
        previous, self._last_report = self._last_report, (now, sent)
        if previous is None or now - previous[0] < 0.05:
            return
        self.sent_bps = 8 * (sent - previous[1]) / (now - previous[0])
        loss = self.fraction_lost = fraction_lost / 256
        if loss > LOSS_CONGESTED:
            # At most halved per report: loss at a low rate is often a burst (a keyframe)
            # overflowing a policer's bucket, not the link's rate.
            through = 1.05 * self.sent_bps * (1 - loss)
            self.loss_based = min(self.loss_based, max(through, self.loss_based / 2))
        elif loss > LOSS_HIGH:
            self.loss_based = min(self.loss_based, self.sent_bps * (1 - loss / 2))
        elif loss < LOSS_LOW:
            # Not limited by what was sent: a paused video sends nothing, and the estimate
            # must still be able to climb back (the REMB bounds it from above).
            self.loss_based *= GROWTH
        self.loss_based = max(FLOOR, min(CEILING, self.loss_based))
        self.updates += 1


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
