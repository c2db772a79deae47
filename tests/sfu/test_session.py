"""Room sessions: waiting, hang-up, a new session after it, reconnect within the grace."""

from __future__ import annotations

import asyncio
from datetime import datetime

import aiohttp
import uvloop

from .harness import Sfu, both_decode, pair

CLOSE_ENDED = 4000


async def test_waiting_then_active_and_both_know_since_when(sfu: Sfu) -> None:
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
    guest = await sfu.client(sfu.token("room-w", "guest", "Pat"))
    joined = await guest.join()
    assert joined["resumed"] is False
    assert joined["participant"]["role"] == "guest"
    room = joined["room"]
    assert room["state"] == "waiting"
    since = datetime.fromisoformat(room["waiting_since"])
    assert [p["status"] for p in room["participants"]] == ["connected"]

    host = await sfu.client(sfu.token("room-w", "host", "Doc"))
    host_joined = await host.join()
    assert host_joined["room"]["state"] == "active"
    assert datetime.fromisoformat(host_joined["room"]["waiting_since"]) == since
    assert {p["role"] for p in host_joined["room"]["participants"]} == {"guest", "host"}
    await guest.wait_for(lambda: guest.last("participant_joined"), 20, "participant_joined")
    assert guest.last("participant_joined")["participant"]["name"] == "Doc"
    await guest.wait_for(
        lambda: (s := guest.last("room_state")) and s["state"] == "active", 20, "active state"
    )
    assert guest.last("room_state")["session"] == room["session"]
    assert sfu.worker.load().rooms == 1
    assert sfu.worker.load().participants == 2


async def test_hangup_ends_the_session_for_everyone(sfu: Sfu) -> None:
    guest, host = await pair(sfu, room="room-h")
    await both_decode(guest, host)
    room = sfu.worker.rooms["room-h"]
    participants = room.participants()
    assert len(participants) == 2

    await guest.send({"type": "hangup"})
    for c in (guest, host):
        await c.wait_for(lambda c=c: c.closed, 20, "socket closed after ended")
        ended = c.last("ended")
        assert ended is not None
        assert ended["reason"] == "hangup"
        assert ended["by"]["name"] == "Pat Guest"
        assert c.closed.code == CLOSE_ENDED
    assert "room-h" not in sfu.worker.rooms
    assert room.state == "ended"
    await room.drain()
    assert all(p.pc.connectionState == "closed" for p in participants)
    # The server closed its peer connections: the clients' media and chat stop.
    await host.wait_for(
        lambda: all(r.ended for r in host.received), 40, "host's received tracks end"
    )
    await host.wait_for(lambda: host.channel.readyState == "closed", 40, "chat channel closed")


async def test_a_join_after_hangup_starts_a_new_session(sfu: Sfu) -> None:
    guest, host = await pair(sfu, room="room-n")
    first = guest.last("joined")["room"]["session"]
    await both_decode(guest, host)
    await host.send({"type": "hangup"})
    await guest.wait_for(lambda: guest.closed, 20, "guest socket closed")

    guest2 = await sfu.client(guest.token)
    joined = await guest2.join()
    assert joined["resumed"] is False
    assert joined["simulcast"] is True  # media.simulcast: the page offers its layers
    assert joined["room"]["session"] != first
    assert joined["room"]["state"] == "waiting"
    await guest2.publish()
    host2 = await sfu.client(host.token)
    await host2.join()
    await host2.publish()
    await both_decode(guest2, host2)


async def test_rejoin_within_grace_continues_the_session(sfu: Sfu) -> None:
    guest, host = await pair(sfu, room="room-r")
    session = guest.last("joined")["room"]["session"]
    await both_decode(guest, host)
    tracks_before = len(guest.received)

    # The host's page reloads: socket and peer connection gone without a hang-up.
    await host.close()
    await guest.wait_for(
        lambda: guest.last("participant_reconnecting"), 30, "participant_reconnecting"
    )
    state = guest.last("room_state")
    assert state["state"] == "active"
    assert {p["role"]: p["status"] for p in state["participants"]}["host"] == "reconnecting"
    assert guest.last("ended") is None

    host2 = await sfu.client(host.token)
    joined = await host2.join()
    assert joined["resumed"] is True
    assert joined["room"]["session"] == session
    assert joined["participant"]["id"] == host.last("joined")["participant"]["id"]
    await host2.publish()
    await guest.wait_for(
        lambda: (j := guest.last("participant_joined")) and j["resumed"], 30, "resumed"
    )
    await both_decode(guest, host2)
    # The guest's existing receive tracks carried on: no new subscription was needed.
    assert len(guest.received) == tracks_before
    assert guest.closed is None


async def test_a_newer_connection_replaces_the_older(sfu: Sfu) -> None:
    token = sfu.token("room-x", "guest", "Pat")
    first = await sfu.client(token)
    await first.join()
    second = await sfu.client(token)
    joined = await second.join()
    assert joined["resumed"] is True
    await first.wait_for(lambda: first.closed, 20, "older socket closed")
    assert first.closed.code == 4009
    await second.send({"type": "ping", "id": 7})
    await second.wait_for(lambda: second.last("pong"), 20, "pong on the newer socket")
    assert len(sfu.worker.rooms["room-x"].members) == 1


async def test_a_replaced_socket_waits_for_the_clients_close_frame(sfu: Sfu) -> None:
    """The server's close is a handshake (RFC 6455 section 7.1.1): after its close frame it
    keeps TCP open (CLOSE_HANDSHAKE_SECONDS) for the client's, so what the client had in flight
    (an answer to an offer) meets an open socket, not a reset that can cost it the 4009."""
    token = sfu.token("room-hs", "guest", "Pat")
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(sfu.ws_url, heartbeat=None, autoclose=False)
        await ws.send_json({"type": "join", "token": token, "client": "test"})
        while (await ws.receive_json(timeout=20))["type"] != "joined":
            pass
        await (await sfu.client(token)).join()
        while (msg := await ws.receive(timeout=20)).type is aiohttp.WSMsgType.TEXT:
            pass
        assert (msg.type, msg.data, msg.extra) == (
            aiohttp.WSMsgType.CLOSE, 4009, "replaced by a newer connection"
        )  # fmt: skip
        # Long enough for a server that does not wait to have closed TCP behind its close
        # frame, far short of the CLOSE_HANDSHAKE_SECONDS this one waits.
        await asyncio.sleep(0.5)
        await ws.send_json({"type": "ping", "id": 1})  # was in flight as the server closed
        await ws.close()
        assert ws.exception() is None and ws.close_code == 4009
