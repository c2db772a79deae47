"""The uplink estimator's compact rate window gives aiortc's RateCounter's rates, and the
estimator built on it aiortc's REMBs, call for call."""

from __future__ import annotations

import random

from aiortc.rate import RateCounter, RemoteBitrateEstimator

from media_server import rtpheader
from media_server.uplink import RateWindow, UplinkEstimator

from .test_publication import AST_ID, SSRC, trace


def test_the_window_rates_like_aiortcs_counter() -> None:
    rng = random.Random(17)
    ours, theirs = RateWindow(1000, 8000), RateCounter(1000, 8000)
    now = 5_000
    for _ in range(20_000):
        # Mostly frame gaps, sometimes a pause longer than the window, sometimes none.
        now += rng.choice((0, 1, 3, 33, 33, 34, 250, 999, 1000, 1001, 4000))
        action = rng.random()
        if action < 0.7:
            size = rng.randrange(1, 1500)
            ours.add(size, now)
            theirs.add(size, now)
        elif action < 0.98:
            assert ours.rate(now) == theirs.rate(now), now
        else:
            ours.reset()
            theirs.reset()


def test_the_estimator_sends_aiortcs_rembs() -> None:
    ours, theirs = UplinkEstimator(), RemoteBitrateEstimator()
    assert isinstance(ours.incoming_bitrate, RateWindow)
    sent = 0
    for data, arrival in trace((4, 0), (4, 3), (1, 0)):
        header = rtpheader.parse(data)
        ast = rtpheader.abs_send_time(data, header, AST_ID)
        size = len(data) - header.payload_offset
        remb = ours.add(arrival, ast, size, SSRC)
        assert remb == theirs.add(arrival, ast, size, SSRC), arrival
        sent += remb is not None
    assert sent > 3
