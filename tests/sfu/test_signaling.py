"""Bad signaling: malformed messages get `error` and leave the room working; bad tokens close."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import os
import socket
import struct
from typing import Any

import aiohttp
import pytest

from media_server.signaling import Connection, Session

from .harness import Sfu, both_decode, pair

MAX = 65536


@pytest.fixture
def media_overrides() -> dict[str, Any]:
    return {"join_timeout_seconds": 2.0}


async def test_malformed_messages_are_answered_and_the_room_keeps_working(sfu: Sfu) -> None:
    guest, host = await pair(sfu, room="room-m")
    await both_decode(guest, host)
    bad: list[tuple[str | bytes, str]] = [
        ("not json {", "bad_json"),
        ("[1, 2]", "not_object"),
        ("{}", "missing_type"),
        ('{"type": 5}', "missing_type"),
        ('{"type": "teleport"}', "unknown_type"),
        ('{"type": "offer"}', "missing_field"),
        ('{"type": "answer", "sdp": 12}', "bad_field"),
        ('{"type": "candidate", "candidate": "x", "sdpMLineIndex": true}', "bad_field"),
        ('{"type": "answer", "sdp": "v=0 garbage"}', "bad_answer"),
        ('{"type": "candidate", "candidate": "candidate:garbage", "sdpMid": "0"}', "bad_candidate"),
        ('{"type": "join", "token": "again"}', "already_joined"),
        ('{"type": "chat", "text": ""}', "chat_empty"),
        (json.dumps({"type": "chat", "text": "x" * (MAX + 10)}), "too_large"),
        (b"\x00\x01binary", "not_text"),
    ]
    for frame, _ in bad:
        await host.send_raw(frame)
    await host.wait_for(lambda: len(host.of_type("error")) >= len(bad), 30, "all errors")
    assert [e["code"] for e in host.of_type("error")] == [code for _, code in bad]
    counted = sfu.worker.signaling_errors
    for _, code in bad:
        assert counted[code] >= 1
    assert host.closed is None

    # The room still works: media keeps flowing, chat and ping are answered.
    await both_decode(guest, host, frames=10)
    await host.send({"type": "chat", "text": "still here"})
    await guest.wait_for(
        lambda: any(c["text"] == "still here" for c in guest.chats), 20, "chat after garbage"
    )
    await host.send({"type": "ping", "id": "p1"})
    await host.wait_for(lambda: host.last("pong"), 20, "pong")
    assert host.last("pong")["id"] == "p1"


async def test_invalid_token_closes_with_a_reason(sfu: Sfu) -> None:
    client = await sfu.client("not-a-token")
    with pytest.raises(ConnectionError):
        await client.join()
    assert client.closed.code == 4001
    assert "invalid token" in client.closed.reason
    assert sfu.worker.load().rooms == 0


async def test_a_token_for_room_a_cannot_join_room_b(sfu: Sfu) -> None:
    guest_b = await sfu.client(sfu.token("room-b", "guest", "Bea"))
    await guest_b.join()
    intruder = await sfu.client(sfu.token("room-a", "host", "Dr A"))
    with pytest.raises(ConnectionError):
        await intruder.join(room="room-b")
    assert intruder.closed.code == 4003
    # A token only ever reaches its own room: room B still has just its guest.
    host_a = await sfu.client(sfu.token("room-a", "host", "Dr A"))
    joined = await host_a.join()
    assert joined["room"]["state"] == "waiting"
    assert [p["name"] for p in joined["room"]["participants"]] == ["Dr A"]
    assert [m.name for m in sfu.worker.rooms["room-b"].members.values()] == ["Bea"]
    assert guest_b.last("participant_joined") is None


async def test_no_join_in_time_closes_and_only_ping_is_answered_before_join(sfu: Sfu) -> None:
    client = await sfu.client("whatever")
    await client.send({"type": "ping", "id": 1})
    await client.send({"type": "offer", "sdp": "v=0"})
    await client.wait_for(lambda: client.closed, 30, "close after the join timeout")
    assert client.last("pong")["id"] == 1
    assert client.last("error")["code"] == "join_first"
    assert client.closed.code == 4008


async def test_too_many_bad_messages_close_the_socket(sfu: Sfu) -> None:
    client = await sfu.client(sfu.token("room-e", "guest", "Pat"))
    await client.join()
    for _ in range(60):
        await client.send_raw("nonsense")
    await client.wait_for(lambda: client.closed, 30, "close after the error budget")
    assert client.closed.code == 4002


async def test_a_flood_is_rate_limited_then_closed(sfu: Sfu) -> None:
    client = await sfu.client(sfu.token("room-f", "guest", "Pat"))
    await client.join()
    for n in range(300):
        await client.send({"type": "ping", "id": n})
    await client.wait_for(lambda: client.closed, 30, "close after the flood")
    assert any(e["code"] == "rate_limited" for e in client.of_type("error"))
    assert len(client.of_type("pong")) >= 150
    assert client.closed.code == 4002


async def test_a_frame_far_over_the_limit_is_refused_unread(sfu: Sfu) -> None:
    client = await sfu.client(sfu.token("room-o", "guest", "Pat"))
    await client.join()
    await client.send_raw("x" * (4 * MAX + 1))
    await client.wait_for(lambda: client.closed, 30, "close on a huge frame")
    assert client.closed.code == 1009
    assert sfu.worker.signaling_errors["transport"] == 1


async def test_a_role_a_consult_does_not_admit_is_refused_and_leaves_no_room(sfu: Sfu) -> None:
    client = await sfu.client(sfu.token("room-z", "observer", "Eve"))
    with pytest.raises(ConnectionError):
        await client.join()
    assert client.closed.code == 4003
    assert "observer" in client.closed.reason
    assert sfu.worker.rooms == {}


async def test_the_socket_declines_compression_a_browser_offers(sfu: Sfu) -> None:
    # Browsers offer permessage-deflate on every WebSocket; accepted, it kept ~180 kB of zlib
    # state per member for the connection's life (signaling.py COMPRESSION).
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(sfu.ws_url, heartbeat=None, compress=15)
        assert ws.compress == 0
        await ws.send_json({"type": "ping", "id": 1})
        assert (await ws.receive_json(timeout=20))["type"] == "pong"
        await ws.close()


def _frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A client's masked WebSocket frame (RFC 6455 5.2), short payloads only."""
    key = b"\x01\x02\x03\x04"
    masked = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
    return bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)]) + key + masked


async def _upgraded(sfu: Sfu) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw TCP client past the WebSocket upgrade: it sends and answers only what a test says."""
    reader, writer = await asyncio.open_connection("127.0.0.1", sfu.server.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0): a client that vanishes mid-message."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def test_abusive_clients_leave_no_task_and_no_connection_behind(sfu: Sfu) -> None:
    """Clients that vanish mid-frame, send garbage, close and hold TCP open, never answer the
    server's close, or go while joined: each socket's reader and writer tasks end and its
    Connection and Session are freed (the server closes TCP at most CLOSE_HANDSHAKE_SECONDS
    after its close frame), and the room stays usable."""
    await asyncio.sleep(0.1)
    baseline = {id(t) for t in asyncio.all_tasks()}
    join = json.dumps({"type": "join", "token": sfu.token("room-a", "guest", "Pat")}).encode()
    held = []
    for abuse in range(6):
        reader, writer = await _upgraded(sfu)
        if abuse == 0:  # half a frame, then gone
            writer.write(_frame(1, join)[:5])
            await writer.drain()
            _reset(writer)
        elif abuse == 1:  # not WebSocket at all
            writer.write(b"\xff" * 64)
            await writer.drain()
            held.append(writer)
        elif abuse == 2:  # a close frame, and TCP held open
            writer.write(_frame(8, struct.pack("!H", 1000)))
            await writer.drain()
            held.append(writer)
        elif abuse == 3:  # a bad token: the server closes; the client never answers or reads
            writer.write(_frame(1, json.dumps({"type": "join", "token": "nope"}).encode()))
            await writer.drain()
            held.append(writer)
        elif abuse == 4:  # a message in fragments that never end, then gone
            writer.write(_frame(1, b'{"type":', fin=False) + _frame(0, b" ", fin=False) * 20)
            await writer.drain()
            _reset(writer)
        else:  # joined, then gone in the middle of its next message
            writer.write(_frame(1, join))
            await writer.drain()
            await asyncio.sleep(0.3)
            writer.write(_frame(1, b'{"type": "ping"' + b" " * 40)[:20])
            await writer.drain()
            _reset(writer)

    def leftovers() -> list[str]:
        return [t.get_name() for t in asyncio.all_tasks() if id(t) not in baseline]

    for _ in range(100):  # 10 s: twice the close handshake's bound (5 s)
        if not leftovers():
            break
        await asyncio.sleep(0.1)
    assert leftovers() == []
    gc.collect()
    live = [o for o in gc.get_objects() if isinstance(o, (Connection, Session))]
    assert live == []
    for writer in held:
        writer.close()
    client = await sfu.client(sfu.token("room-a", "host", "Doc"))
    assert (await client.join())["room"]["state"] in ("waiting", "active")
