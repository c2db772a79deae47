"""Liveness: a member that never connects or stops sending media is dropped (reconnecting for
the others, not ended) and may rejoin."""

from __future__ import annotations

from typing import Any

import pytest

from .harness import Sfu, both_decode, pair


@pytest.fixture
def media_overrides() -> dict[str, Any]:
    return {"connect_timeout_seconds": 5.0, "media_timeout_seconds": 2.0}


async def test_a_member_that_never_offers_is_dropped_by_the_connect_timeout(sfu: Sfu) -> None:
    host = await sfu.client(sfu.token("room-t", "host", "Doc"))
    await host.join()
    await host.publish()
    guest = await sfu.client(sfu.token("room-t", "guest", "Pat"))
    await guest.join()  # ... and never offers
    await guest.wait_for(lambda: guest.closed, 30, "connect timeout")
    assert guest.closed.code == 4010
    assert "within 5 s" in guest.closed.reason
    await host.wait_for(lambda: host.last("participant_reconnecting"), 20, "reconnecting")
    assert host.last("participant_reconnecting")["participant"]["name"] == "Pat"
    assert host.closed is None
    assert sfu.worker.counters["drop_4010"] == 1


async def test_a_publisher_whose_media_stops_is_dropped_and_comes_back(sfu: Sfu) -> None:
    guest, host = await pair(sfu, room="room-s")
    await both_decode(guest, host)
    assert guest.pc is not None
    for sender in guest.pc.getSenders():
        if sender.track is not None:
            sender.track.stop()
    await guest.wait_for(lambda: guest.closed, 30, "media timeout")
    assert guest.closed.code == 4011
    assert "media_timeout" in guest.closed.reason
    await host.wait_for(lambda: host.last("participant_reconnecting"), 20, "reconnecting")
    assert host.last("ended") is None

    back = await sfu.client(guest.token)
    assert (await back.join())["resumed"] is True
    await back.publish()
    await both_decode(back, host)
