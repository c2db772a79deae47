"""Padding a subscriber's leg while its downlink estimator probes it.

A subscriber forwarded a low simulcast layer sends little, so nothing it reports says whether
its link would carry the next layer: switching up blind costs a keyframe of the higher layer
lost into a full link, and a freeze (issue 13's step: one such failed upgrade just before a
policer lifted held the estimate under its congestion point for 4 s, then grew it for 9 s).
So the estimator asks for a probe (DownlinkEstimator.probe_goal: a rate, for PROBE_SECONDS) and
the Prober pads the difference between that and what the leg carries, every ``TICK_SECONDS``,
with RTX resends of the video's newest packets (Subscription.pad): libwebrtc's pacer pads the
same way, and LiveKit's StreamAllocator probes before it upgrades a downtrack. The estimator
judges the probe at the next loss window (no loss: the goal is the estimate; ``media.probing``,
off by default, see benchmarks/RESULTS.md "Probing"); the Prober stops
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
NACK_SHARE = 0.1  # a probe fails at once when NACKs name this share of the media sent since
NACK_MIN = 3  # ... and at least this many packets


class Pad(Protocol):
    """What the Prober pads with (a Subscription)."""

    out: Any  # its rtpforward.Outbound (``last_seq``, ``rtx_seq``)
    rtx_tally: tuple[int, int]  # (expected, lost) on its RTX SSRC, as reported so far

    def pad(self, nbytes: int) -> int: ...

    def reported_past(self, seq: int) -> bool: ...

    def rtx_reported_past(self, rtx_seq: int) -> bool: ...


class Prober:
    """One subscriber's prober. ``start(goal, carried, pads)``: pad ``goal - carried`` bits/s
    through ``pads`` (tried in order each tick) while ``estimator.probe`` runs (what was
    padded is counted on each pad: Subscription.probe_bytes)."""

    def __init__(self, estimator: DownlinkEstimator, packets_out: Callable[[], int] = lambda: 0,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self._estimator = estimator
        self._packets_out = packets_out
        self._out0 = 0
        self._nacked = 0
        self._clock = clock
        self._timer: asyncio.TimerHandle | None = None
        self._pads: Sequence[Pad] = ()
        self._rate = 0.0  # bytes/s
        self._at = 0.0
        self._owed = 0.0
        self._tallies: list[tuple[int, int]] = []

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
        self._tallies = [pad.rtx_tally for pad in pads]
        self._out0, self._nacked = self._packets_out(), 0
        self._tick()

    def on_nacks(self, packets: int) -> None:
        """The subscriber NACKed ``packets`` media packets. While a probe runs or awaits its
        verdict, a share of the media sent since it began over ``NACK_SHARE`` fails it at
        once: a NACK comes a round trip after the loss, a receiver report up to a second (a
        probe over a 300 kbit/s policer cost its media 35% for a whole report interval, and
        the video froze 3 s). Random loss of a few percent does not reach it."""
        probe = self._estimator.probe
        if probe is None:
            return
        self._nacked += packets
        sent = self._packets_out() - self._out0
        if self._nacked >= NACK_MIN and self._nacked > NACK_SHARE * sent:
            self._estimator.fail_probe()
            self.stop()

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
            # Judged once every padded video's receiver reports reach what it sent until now,
            # on its media and on its RTX SSRC, by the share of the RTX stream lost since the
            # probe began: a policer drops the big padding packets first (a 300 kbit/s one let
            # through 2% of the media's packets, audio's many small ones among them, and 40%
            # of the padding), so the media's loss alone passed probes the leg could not carry.
            ends = [(pad, pad.out.last_seq, (pad.out.rtx_seq - 1) & 0xFFFF) for pad in self._pads]
            tallies = list(zip(self._pads, self._tallies, strict=True))
            probe.covered = lambda: all(pad.reported_past(seq) and pad.rtx_reported_past(rtx)
                                        for pad, seq, rtx in ends)  # fmt: skip
            probe.padding_lost = lambda: _lost_since(tallies)
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
        self._timer = asyncio.get_running_loop().call_later(TICK_SECONDS, self._tick)


def _lost_since(tallies: list[tuple[Pad, tuple[int, int]]]) -> float:
    """The share of the pads' RTX packets reported lost since each tally (0 when none)."""
    expected = sum(pad.rtx_tally[0] - before[0] for pad, before in tallies)
    lost = sum(pad.rtx_tally[1] - before[1] for pad, before in tallies)
    return lost / expected if expected > 0 else 0.0
