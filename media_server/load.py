"""What one SFU worker process costs, measured between two samples: the share of a core its
process used (user + system CPU time, every thread) and the RTP packets per second it received
and forwarded. Placement (control/cluster/placement.py) compares workers by these."""

from __future__ import annotations

import time
from dataclasses import dataclass

from media_server.metrics import worker_totals
from media_server.worker import Worker

PACKET_COUNTERS = ("packets_in", "packets_out")


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
    """Samples ``worker``'s process: each ``sample()`` covers the time since the last one."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.last = Measured(0, 0, 0.0, 0.0)
        self._wall = time.monotonic()
        self._cpu = time.process_time()
        self._packets = packets(worker)

    def sample(self) -> Measured:
        wall, cpu, count = time.monotonic(), time.process_time(), packets(self.worker)
        elapsed = wall - self._wall
        if elapsed > 0:
            load = self.worker.load()
            self.last = Measured(
                rooms=load.rooms,
                participants=load.participants,
                cpu=(cpu - self._cpu) / elapsed,
                pps=(count - self._packets) / elapsed,
            )
        self._wall, self._cpu, self._packets = wall, cpu, count
        return self.last
