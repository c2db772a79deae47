"""After the reconnect grace a dropped member has left; the room waits again or ends."""

from __future__ import annotations

from typing import Any

import pytest

from .harness import Sfu, pair


@pytest.fixture
def media_overrides() -> dict[str, Any]:
    return {"reconnect_grace_seconds": 1.0}


async def test_grace_expiry_means_left_and_waiting_again(sfu: Sfu) -> None:
    guest, host = await pair(sfu, room="room-g")
    first = guest.last("joined")["room"]
    await guest.wait_for(
        lambda: (s := guest.last("room_state")) and s["state"] == "active", 20, "active"
    )
    await host.close()
    await guest.wait_for(lambda: guest.last("participant_reconnecting"), 30, "reconnecting")
    await guest.wait_for(lambda: guest.last("participant_left"), 30, "participant_left")
    state = guest.last("room_state")
    assert state["state"] == "waiting"
    assert [p["role"] for p in state["participants"]] == ["guest"]
    assert state["session"] == first["session"]
    assert state["waiting_since"] > first["waiting_since"]
    assert guest.last("ended") is None

    await guest.close()
    room = sfu.worker.rooms["room-g"]
    # The last member's grace ends the session; the worker forgets the room.
    await guest.wait_for(lambda: "room-g" not in sfu.worker.rooms, 30, "room removed")
    assert room.ended_reason == "left"
