"""The receive-side estimate of a publisher's uplink: aiortc's RemoteBitrateEstimator (the
REMB estimator of libwebrtc's remote_bitrate_estimator_abs_send_time, which it ports) with a
compact incoming-rate window.

aiortc's RateCounter keeps its 1 s window as 1,000 bucket objects (~97 kB and 2,000 Python
objects per estimator, new ones at every reset); ``RateWindow`` keeps the same 1 ms buckets
in two lists of ints (~16 kB, an int object only for a millisecond that received something)
and gives the same rates.
"""

from __future__ import annotations

from aiortc.rate import RemoteBitrateEstimator


class RateWindow:
    """What was received over the last ``window_ms`` in 1 ms buckets, as aiortc's RateCounter
    (same methods, same results): ``add(value, now_ms)``; ``rate(now_ms)``: ``value`` per
    second times ``scale`` / 1000 (bytes in, bits/s out with 8000) over the part of the
    window since the first ``add``, None before two milliseconds of it; ``reset()``."""

    def __init__(self, window_ms: int, scale: int = 8000) -> None:
        self._window = window_ms
        self._scale = scale
        self.reset()

    def add(self, value: int, now_ms: int) -> None:
        if self._origin_ms is None:
            self._origin_ms = now_ms
        else:
            self._erase_old(now_ms)
        index = (self._origin_index + now_ms - self._origin_ms) % self._window
        self._counts[index] += 1
        self._values[index] += value
        self._count += 1
        self._value += value

    def rate(self, now_ms: int) -> int | None:
        if self._origin_ms is None:
            return None
        self._erase_old(now_ms)
        active_ms = now_ms - self._origin_ms + 1
        if self._count > 0 and active_ms > 1:
            return round(self._scale * self._value / active_ms)
        return None

    def reset(self) -> None:
        self._clear()
        self._origin_index = 0
        self._origin_ms: int | None = None

    def _clear(self) -> None:
        self._counts = [0] * self._window
        self._values = [0] * self._window
        self._count = self._value = 0

    def _erase_old(self, now_ms: int) -> None:
        assert self._origin_ms is not None
        steps = now_ms - self._window + 1 - self._origin_ms
        if steps <= 0:
            return
        if steps >= self._window:  # the whole window is older: all of it goes
            self._clear()
        else:
            counts, values, index = self._counts, self._values, self._origin_index
            for _ in range(steps):
                self._count -= counts[index]
                self._value -= values[index]
                counts[index] = values[index] = 0
                index = (index + 1) % self._window
        self._origin_index = (self._origin_index + steps) % self._window
        self._origin_ms += steps


class UplinkEstimator(RemoteBitrateEstimator):
    """aiortc's RemoteBitrateEstimator (``add(arrival_time_ms, abs_send_time, payload_size,
    ssrc)`` -> (bits/s, [SSRC]) when a REMB is due, else None) over a ``RateWindow``."""

    def __init__(self) -> None:
        super().__init__()
        self.incoming_bitrate = RateWindow(1000, 8000)  # type: ignore[assignment]
