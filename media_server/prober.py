"""Padding a subscriber's leg while its downlink estimator probes it.

A subscriber forwarded a low simulcast layer sends little, so nothing it reports says whether
its link would carry the next layer: switching up blind costs a keyframe of the higher layer
lost into a full link, and a freeze (issue 13's step: one such failed upgrade just before a
policer lifted held the estimate under its congestion point for 4 s, then grew it for 9 s).
So the estimator asks for a probe (DownlinkEstimator.probe_goal: a rate, for PROBE_SECONDS) and
the Prober pads the difference between that and what the leg carries, every ``TICK_SECONDS``,
with RTX resends of the video's newest packets (Subscription.pad): libwebrtc's pacer pads the
same way, and LiveKit's StreamAllocator probes before it upgrades a downtrack. The estimator
judges the probe at the next loss window (no loss: the goal is the estimate); the Prober stops
when the probe is judged, ends, or nothing can be padded (the probe is then withdrawn: a probe
that sent nothing must not pass).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from media_server.estimator import DownlinkEstimator

TICK_SECONDS = 0.02  # padding goes out in bursts this far apart (a packet or a few each)


class Pad(Protocol):
    """What the Prober pads with (a Subscription)."""

    out: Any  # its rtpforward.Outbound (``last_seq``)

    def pad(self, nbytes: int) -> int: ...

    def reported_past(self, seq: int) -> bool: ...


class Prober:
    """One subscriber's prober. ``start(goal, carried, pads)``: pad ``goal - carried`` bits/s
    through ``pads`` (tried in order each tick) while ``estimator.probe`` runs.
    ``padded_bytes``: every byte padded so far (before SRTP)."""

    def __init__(self, estimator: DownlinkEstimator,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self._estimator = estimator
        self._clock = clock
        self._timer: asyncio.TimerHandle | None = None
        self._pads: Sequence[Pad] = ()
        self._rate = 0.0  # bytes/s
        self._at = 0.0
        self._owed = 0.0
        self.padded_bytes = 0

    @property
    def running(self) -> bool:
        return self._timer is not None

    def start(self, goal: int, carried: float, pads: Sequence[Pad]) -> None:
        self.stop()
        self._pads = pads
        self._rate = max(0.0, goal - carried) / 8
        self._at = self._clock()
        self._owed = 0.0
        if self._estimator.probe is not None:
            self._estimator.probe.covered = lambda: False  # until it ends (_tick)
        self._tick()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self._timer = None
        probe = self._estimator.probe
        now = self._clock()
        if probe is None:
            return
        if now >= probe.end:
            # Judged once every padded video's receiver reports reach what it sent until now.
            ends = [(pad, pad.out.last_seq) for pad in self._pads]
            probe.covered = lambda: all(pad.reported_past(seq) for pad, seq in ends)
            return
        self._owed += self._rate * (now - self._at)
        self._at = now
        if self._owed >= 1:
            sent = 0
            for pad in self._pads:
                sent += pad.pad(int(self._owed) - sent)
                if sent >= self._owed:
                    break
            if sent == 0:
                self._estimator.withdraw_probe()
                return
            self._owed -= sent
            self.padded_bytes += sent
        self._timer = asyncio.get_running_loop().call_later(TICK_SECONDS, self._tick)
