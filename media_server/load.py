"""What one SFU worker process costs, measured between two samples: the share of a core its
process used (user + system CPU time, every thread) and the RTP packets per second it received
and forwarded. Placement (control/cluster/placement.py) compares workers by these."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from media_server.metrics import worker_totals
from media_server.worker import Worker

PACKET_COUNTERS = ("packets_in", "packets_out")
MIN_SECONDS = 0.5  # the shortest interval a CPU share is measured over (heartbeats: 1 s)


@dataclass(frozen=True)
class Measured:
    rooms: int
    participants: int
    cpu: float  # share of one core since the previous sample (0..1, more with threads)
    pps: float  # RTP packets per second, received plus forwarded


def packets(worker: Worker) -> int:
    """RTP packets the worker received and forwarded so far (monotonic)."""
    return sum(v for (name, _), v in worker_totals(worker).items() if name in PACKET_COUNTERS)


class LoadMeter:
    """Samples ``worker``'s process: each ``sample()`` covers the time since the last one.

    The first sample only starts the measurement (CPU 0, packets/s 0): the time before it is
    the process's own start-up (imports, sockets, the first store writes: 25-50% of a core
    over the first half second), which would have made a fresh worker look busier than one
    carrying calls and sent the first rooms all to the other one. A sample less than
    MIN_SECONDS after the last (a heartbeat sent at once to report a state change) repeats the
    last figures and leaves the measurement running: over a few ms one busy callback reads as
    a whole core."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.last = Measured(0, 0, 0.0, 0.0)
        self._wall: float | None = None
        self._cpu = 0.0
        self._packets = 0

    def sample(self) -> Measured:
        wall, cpu, count = time.monotonic(), time.process_time(), packets(self.worker)
        load = self.worker.load()
        if self._wall is None:
            self.last = Measured(load.rooms, load.participants, 0.0, 0.0)
        elif wall - self._wall < MIN_SECONDS:
            self.last = replace(self.last, rooms=load.rooms, participants=load.participants)
            return self.last
        else:
            elapsed = wall - self._wall
            self.last = Measured(
                rooms=load.rooms,
                participants=load.participants,
                cpu=(cpu - self._cpu) / elapsed,
                pps=(count - self._packets) / elapsed,
            )
        self._wall, self._cpu, self._packets = wall, cpu, count
        return self.last
