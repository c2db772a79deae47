"""After the reconnect grace a dropped member has left; the room waits again or ends."""

from __future__ import annotations

from typing import Any

import pytest

from .harness import Sfu, both_decode, pair


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
    # The room_state that follows participant_left may still be on its way.
    state = await guest.wait_for(
        lambda: (s := guest.last("room_state")) and s["state"] == "waiting" and s, 30, "waiting"
    )
    assert [p["role"] for p in state["participants"]] == ["guest"]
    assert state["session"] == first["session"]
    assert state["waiting_since"] > first["waiting_since"]
    assert guest.last("ended") is None

    await guest.close()
    room = sfu.worker.rooms["room-g"]
    # The last member's grace ends the session; the worker forgets the room.
    await guest.wait_for(lambda: "room-g" not in sfu.worker.rooms, 30, "room removed")
    assert room.ended_reason == "left"


def _direction(sdp: str, mid: str) -> str | None:
    section = next((s for s in sdp.split("\nm=")[1:] if f"a=mid:{mid}\r" in s), "")
    for line in section.splitlines():
        if line in ("a=sendonly", "a=recvonly", "a=sendrecv", "a=inactive"):
            return line[2:]
    return None


async def test_a_member_who_left_has_its_m_lines_set_inactive(sfu: Sfu) -> None:
    guest, host = await pair(sfu, room="room-i")
    await both_decode(guest, host)
    room = sfu.worker.rooms["room-i"]
    server = next(m.participant for m in room.members.values() if m.role == "guest")
    old = list(server.subscriptions)
    assert len(old) == 2 and all(s.active for s in old)

    await host.close()
    await guest.wait_for(lambda: guest.last("participant_left"), 30, "participant_left")
    # The server re-offers with the host's two m-lines inactive and the guest answers so.
    await guest.wait_for(
        lambda: all(
            _direction(guest.pc.remoteDescription.sdp, s.mid) == "inactive"
            and _direction(guest.pc.localDescription.sdp, s.mid) == "inactive"
            for s in old
        ),
        30,
        "inactive m-lines",
    )
    assert all(s.closed for s in old)
    by_mid = {t.mid: t for t in server.pc.getTransceivers()}
    # The guest has sent its answer; the server applies it when its session reads it.
    await guest.wait_for(
        lambda: all(by_mid[s.mid].currentDirection == "inactive" for s in old),
        30,
        "the server applied the answer",
    )
    for subscription in old:
        sender = by_mid[subscription.mid].sender
        assert sender._RTCRtpSender__rtp_exited.is_set()  # its idle tasks ended

    # A host who comes back later gets new m-lines, and the guest sees video again.
    again = await sfu.client(sfu.token("room-i", "host", "Dr Host"))
    await again.join()
    await again.publish()
    await both_decode(guest, again)
    assert len(server.subscriptions) == 4
    assert server.faults.count == 0
    await again.close()
    await guest.close()
