"""A worker's load as its heartbeats report it: nothing before it starts serving (its start-up
is not load), then the share of a core it used between two samples."""

from __future__ import annotations

import time

from media_server.load import MIN_SECONDS, LoadMeter
from media_server.worker import Worker
from tests.media_path.peers import media_settings


def burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_start_up_is_not_load_and_then_cpu_is_measured() -> None:
    worker = Worker(media_settings())
    burn(0.2)  # what a fresh process does before its first heartbeat
    first = LoadMeter(worker)
    burn(0.2)
    assert first.sample().cpu == 0.0  # CI placed both first rooms away from a worker at 0.5
    # A heartbeat right after (a state change reported at once) is too short to measure: a
    # few ms of start-up read as 50-65% of a core in CI and still sent both rooms to one worker.
    assert first.sample().cpu == 0.0
    started = time.monotonic()
    burn(0.2)
    time.sleep(max(0.0, MIN_SECONDS - (time.monotonic() - started)))
    second = first.sample()
    assert second.cpu >= 0.2 / (time.monotonic() - started) * 0.8
    assert second.rooms == 0 and second.pps == 0.0
