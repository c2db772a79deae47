"""The uplink estimator's compact rate window gives aiortc's RateCounter's rates, and the
estimator built on it aiortc's REMBs, call for call."""

from __future__ import annotations

import random

from aiortc.rate import OveruseEstimator, RateCounter, RemoteBitrateEstimator

from media_server import rtpheader
from media_server.uplink import FrameOveruseEstimator, RateWindow, UplinkEstimator

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


def test_the_shortest_frame_period_is_aiortcs() -> None:
    # Past the 60 deltas of history, so the oldest ones leave; a short delta stays the minimum
    # until it leaves, then a longer one is.
    rng = random.Random(17)
    ours, theirs = FrameOveruseEstimator(), OveruseEstimator()
    for i in range(400):
        delta = {30: 5.0, 200: 0.0}.get(i, rng.choice((16.7, 33.3, 33.4, 66.7, 100.0, 250.0)))
        assert ours.update_min_frame_period(delta) == theirs.update_min_frame_period(delta), i
    assert list(ours.ts_delta_hist) == theirs.ts_delta_hist
