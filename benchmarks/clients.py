"""How a synthetic participant joins each system under test (runs in the load-client process).

- televisit: an appointment via the REST API, the guest joins by PIN and the host by the token
  of its host link (POST /api/v1/join), then the signaling socket (docs/signaling.md): one peer
  connection, the server offers each subscription.
- baseline: the relay server's own tiny HTTP signaling, a publishing and a receiving peer
  connection per participant (baselines/relay_server.py).
- janus: the videoroom plugin over Janus's HTTP API: a session with a publisher handle and a
  subscriber handle per participant.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from .media import EncodedLoop
from .peer import LoadPeer

STEP_SECONDS = 20.0  # bound on each request / signaling wait


@dataclass
class Context:
    """What a load process knows about the system under test."""

    system: str
    base_url: str
    loops: list[EncodedLoop]
    http: aiohttp.ClientSession
    max_seconds: float
    api_key: str = ""
    department_id: str = ""
    data_dir: str = ""  # televisit: its data dir, to sign viewer tokens for fan-out


@dataclass
class Member:
    role: str
    started: float
    peers: list[LoadPeer] = field(default_factory=list)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def first_keyframe_at(self) -> float:
        times = [p.meter.first_keyframe_at for p in self.peers if p.meter.first_keyframe_at]
        return min(times) if times else 0.0

    @property
    def decoded_frames(self) -> int:
        return sum(p.decoded_frames for p in self.peers)

    async def close(self) -> None:
        for close in reversed(self.closers):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(close(), 10)
        for peer in self.peers:
            await peer.close()


class JoinFailed(Exception):
    pass


async def _json(resp: aiohttp.ClientResponse, what: str) -> Any:
    if resp.status >= 300:
        raise JoinFailed(f"{what}: HTTP {resp.status} {(await resp.text())[:200]}")
    return await resp.json()


# ---- Televisit ------------------------------------------------------------------------------


async def _appointment(ctx: Context, index: int) -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    body = {
        "department_id": ctx.department_id,
        "external_id": f"bench-{os.getpid()}-{index}-{time.time_ns()}",
        "start": (now - timedelta(minutes=5)).isoformat(),
        "end": (now + timedelta(minutes=90)).isoformat(),
        "provider": {"id": f"vet-{index}", "name": f"Dr Bench {index}"},
        "client": {"name": f"Client {index}", "phone": "+358401234567", "email": "c@example.com"},
        "patient": {"name": "Musti", "species": "dog"},
    }
    headers = {"Authorization": f"Bearer {ctx.api_key}"}
    url = f"{ctx.base_url}/api/v1/appointments"
    async with ctx.http.post(url, json=body, headers=headers) as resp:
        return await _json(resp, "create appointment")


async def televisit_room(ctx: Context, index: int, decode: bool) -> list[Member]:
    tele = (await _appointment(ctx, index))["telemedicine"]
    guest = await televisit_member(ctx, {"pin": tele["pin"]}, "guest", False)
    try:
        host_token = tele["host_url"].rsplit("/", 1)[1]
        host = await televisit_member(ctx, {"token": host_token}, "host", decode)
    except BaseException:
        await guest.close()
        raise
    return [guest, host]


async def televisit_member(
    ctx: Context, credentials: dict[str, str], role: str, decode: bool, publish: bool = True
) -> Member:
    member = Member(role, time.monotonic())
    async with ctx.http.post(f"{ctx.base_url}/api/v1/join", json=credentials) as resp:
        joined = await _json(resp, "join")
    # compress: offer permessage-deflate as browsers do (the server declines it).
    ws = await ctx.http.ws_connect(
        joined["signaling_url"], heartbeat=None, max_msg_size=0, compress=15
    )
    member.closers.append(ws.close)
    peer = LoadPeer(decode)
    member.peers.append(peer)
    try:
        await ws.send_str(json.dumps({"type": "join", "token": joined["token"], "client": "bench"}))
        first = await asyncio.wait_for(ws.receive(), STEP_SECONDS)
        if first.type is not aiohttp.WSMsgType.TEXT or json.loads(first.data)["type"] != "joined":
            raise JoinFailed(f"signaling join refused: {first.data!r} {first.extra!r}")
        if publish:
            peer.publish(ctx.loops)
        else:
            peer.receive()
        peer.pc.createDataChannel("chat")
        await ws.send_str(json.dumps({"type": "offer", "sdp": await peer.offer()}))
        reader = asyncio.create_task(_televisit_signaling(ws, peer))

        async def stop_reader() -> None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

        member.closers.append(stop_reader)
        await peer.start_sending(ctx.max_seconds)
    except BaseException:
        await member.close()
        raise
    return member


async def _televisit_signaling(ws: aiohttp.ClientWebSocketResponse, peer: LoadPeer) -> None:
    """Apply the server's answer and answer its offers, in order, until the socket closes."""
    async for msg in ws:
        if msg.type is not aiohttp.WSMsgType.TEXT:
            break
        data = json.loads(msg.data)
        if data["type"] == "answer":
            await peer.accept(data["sdp"])
        elif data["type"] == "offer":
            await ws.send_str(json.dumps({"type": "answer", "sdp": await peer.answer(data["sdp"])}))


# ---- Relay baseline -------------------------------------------------------------------------


async def baseline_room(ctx: Context, index: int, decode: bool) -> list[Member]:
    room = f"{os.getpid()}-{index}"
    members = [Member("guest", time.monotonic()), Member("host", time.monotonic())]
    try:
        for member in members:
            member.started = time.monotonic()  # each member's clock: its own first request
            pub = LoadPeer()
            member.peers.append(pub)
            pub.publish(ctx.loops)
            await pub.accept(
                await _baseline_post(ctx, room, member.role, "publish", await pub.offer())
            )
            await pub.start_sending(ctx.max_seconds)

        async def subscribe(member: Member, decode: bool) -> None:
            sub = LoadPeer(decode)
            member.peers.append(sub)
            sub.receive()
            await sub.accept(
                await _baseline_post(ctx, room, member.role, "subscribe", await sub.offer())
            )

        await asyncio.gather(subscribe(members[0], False), subscribe(members[1], decode))
    except BaseException:
        for member in members:
            await member.close()
        raise
    return members


async def _baseline_post(ctx: Context, room: str, role: str, action: str, sdp: str) -> str:
    url = f"{ctx.base_url}/rooms/{room}/{role}/{action}"
    async with ctx.http.post(url, json={"sdp": sdp}) as resp:
        return (await _json(resp, action))["sdp"]


# ---- Janus videoroom ------------------------------------------------------------------------

_janus_rooms = itertools.count(1)


class JanusSession:
    """A Janus HTTP session with a long-poll loop delivering events by transaction."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.url = ""
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._poller: asyncio.Task[None] | None = None
        self._tx = itertools.count()

    async def _post(self, path: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        tx = f"t{next(self._tx)}"
        async with self.ctx.http.post(
            f"{self.ctx.base_url}/janus{path}", json={**body, "transaction": tx}
        ) as resp:
            data = await _json(resp, body["janus"])
        if data.get("janus") == "error":
            raise JoinFailed(f"janus {body['janus']}: {data.get('error')}")
        return tx, data

    async def open(self) -> None:
        _, data = await self._post("", {"janus": "create"})
        self.url = f"/{data['data']['id']}"
        self._poller = asyncio.create_task(self._poll())

    async def attach(self) -> str:
        _, data = await self._post(
            self.url, {"janus": "attach", "plugin": "janus.plugin.videoroom"}
        )
        return f"{self.url}/{data['data']['id']}"

    async def request(self, handle: str, body: dict[str, Any], jsep: dict[str, Any] | None = None
                      ) -> dict[str, Any]:  # fmt: skip
        """A plugin message; the plugin's answer (sync, or the event with the same transaction)."""
        message: dict[str, Any] = {"janus": "message", "body": body}
        if jsep is not None:
            message["jsep"] = jsep
        tx = f"t{next(self._tx)}"
        future = self._waiting[tx] = asyncio.get_running_loop().create_future()
        async with self.ctx.http.post(
            f"{self.ctx.base_url}/janus{handle}", json={**message, "transaction": tx}
        ) as resp:
            data = await _json(resp, body["request"])
        if data.get("janus") == "success":
            self._waiting.pop(tx, None)
            return data
        if data.get("janus") == "error":
            raise JoinFailed(f"janus {body['request']}: {data.get('error')}")
        event = await asyncio.wait_for(future, STEP_SECONDS)
        result = event.get("plugindata", {}).get("data", {})
        if "error" in result:
            raise JoinFailed(f"videoroom {body['request']}: {result['error']}")
        return event

    async def _poll(self) -> None:
        for _ in range(100_000):  # bounded; each poll returns within ~30 s or on events
            async with self.ctx.http.get(
                f"{self.ctx.base_url}/janus{self.url}?maxev=10",
                timeout=aiohttp.ClientTimeout(total=40),
            ) as resp:
                events = await resp.json()
            for event in events if isinstance(events, list) else [events]:
                future = self._waiting.pop(event.get("transaction", ""), None)
                if future is not None and not future.done():
                    future.set_result(event)

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        if self.url:
            with contextlib.suppress(Exception):
                await self._post(self.url, {"janus": "destroy"})


_admin: dict[str, Any] = {}  # this process's Janus session and handle that create rooms


async def _janus_create_room(ctx: Context, body: dict[str, Any]) -> int:
    """Create a videoroom from this process's admin session, before any member's clock starts:
    the counterpart of Televisit's appointment creation, which is not part of a join either."""
    if "handle" not in _admin:
        session = JanusSession(ctx)
        await session.open()
        _admin["session"], _admin["handle"] = session, await session.attach()
    room = os.getpid() * 1000 + next(_janus_rooms)
    await _admin["session"].request(_admin["handle"], {"request": "create", "room": room, **body})
    return room


async def janus_publisher(ctx: Context, member: Member, room: int) -> int:
    """``member`` joins ``room`` and publishes; its feed id. The member's join-to-first-frame
    clock starts here, at its first request (as Televisit's starts at POST /api/v1/join)."""
    member.started = time.monotonic()
    session = JanusSession(ctx)
    member.closers.append(session.close)
    await session.open()
    handle = await session.attach()
    joined = await session.request(
        handle, {"request": "join", "ptype": "publisher", "room": room, "display": member.role}
    )
    pub = LoadPeer()
    member.peers.append(pub)
    pub.publish(ctx.loops)
    answer = await session.request(
        handle, {"request": "publish", "audio": True, "video": True},
        {"type": "offer", "sdp": await pub.offer()},
    )  # fmt: skip
    await pub.accept(answer["jsep"]["sdp"])
    await pub.start_sending(ctx.max_seconds)
    member.session = session  # type: ignore[attr-defined]
    return joined["plugindata"]["data"]["id"]


async def janus_room(ctx: Context, index: int, decode: bool) -> list[Member]:
    room = await _janus_create_room(ctx, {
        "publishers": 2, "bitrate": 0, "audiocodec": "opus", "videocodec": "vp8",
        "is_private": True,
    })  # fmt: skip
    members = [Member("guest", time.monotonic()), Member("host", time.monotonic())]
    try:
        feeds = [await janus_publisher(ctx, member, room) for member in members]

        async def subscribe(member: Member, feed: int, decode: bool) -> None:
            session: JanusSession = member.session  # type: ignore[attr-defined]
            await _janus_subscribe(session, member, room, feed, decode)

        await asyncio.gather(
            subscribe(members[0], feeds[1], False), subscribe(members[1], feeds[0], decode)
        )
    except BaseException:
        for member in members:
            await member.close()
        raise
    return members


# ---- Fan-out: one publisher, many subscribers -------------------------------------------------


async def televisit_fanout(ctx: Context, index: int) -> tuple[Member, dict[str, Any]]:
    appointment = await _appointment(ctx, index)
    tele = appointment["telemedicine"]
    host = await televisit_member(ctx, {"token": tele["host_url"].rsplit("/", 1)[1]}, "host", False)
    return host, {"room_id": tele["room_id"], "appointment_id": appointment["id"]}


async def televisit_viewer(ctx: Context, room: dict[str, Any], i: int, decode: bool) -> Member:
    """A guest that only receives; its token is signed with the server's own key (same data
    dir), as the control plane would for a named guest."""
    from config import load_settings
    from control.tokens import keyring_for

    settings = load_settings(environ={}, overrides={"server": {"data_dir": ctx.data_dir}})
    token = keyring_for(settings).issue_token(
        room_id=room["room_id"], name=f"Viewer {i}", role="guest",
        expires_at=time.time() + 3600, appointment_id=room["appointment_id"],
    )  # fmt: skip
    return await televisit_member(ctx, {"token": token}, "guest", decode, publish=False)


async def baseline_fanout(ctx: Context, index: int) -> tuple[Member, dict[str, Any]]:
    room = f"fan-{os.getpid()}-{index}"
    host = Member("host", time.monotonic())
    pub = LoadPeer()
    host.peers.append(pub)
    pub.publish(ctx.loops)
    await pub.accept(await _baseline_post(ctx, room, "host", "publish", await pub.offer()))
    await pub.start_sending(ctx.max_seconds)
    return host, {"room": room}


async def baseline_viewer(ctx: Context, room: dict[str, Any], i: int, decode: bool) -> Member:
    member = Member("guest", time.monotonic())
    sub = LoadPeer(decode)
    member.peers.append(sub)
    sub.receive()
    await sub.accept(
        await _baseline_post(ctx, room["room"], "guest", "subscribe", await sub.offer())
    )
    return member


async def janus_fanout(ctx: Context, index: int) -> tuple[Member, dict[str, Any]]:
    room = await _janus_create_room(
        ctx, {"publishers": 1, "audiocodec": "opus", "videocodec": "vp8"}
    )
    host = Member("host", time.monotonic())
    try:
        feed = await janus_publisher(ctx, host, room)
    except BaseException:
        await host.close()
        raise
    return host, {"room": room, "feed": feed}


async def janus_viewer(ctx: Context, room: dict[str, Any], i: int, decode: bool) -> Member:
    member = Member("guest", time.monotonic())
    session = JanusSession(ctx)
    member.closers.append(session.close)
    try:
        await session.open()
        await _janus_subscribe(session, member, room["room"], room["feed"], decode)
    except BaseException:
        await member.close()
        raise
    return member


async def _janus_subscribe(session: JanusSession, member: Member, room: int, feed: int,
                           decode: bool) -> None:  # fmt: skip
    handle = await session.attach()
    for attempt in range(20):  # the feed is listed once its peer connection is up
        try:
            offer = await session.request(handle, {
                "request": "join", "ptype": "subscriber", "room": room, "streams": [{"feed": feed}],
            })  # fmt: skip
            break
        except JoinFailed:
            if attempt == 19:
                raise
            await asyncio.sleep(0.25)
    sub = LoadPeer(decode)
    member.peers.append(sub)
    answer = await sub.answer(offer["jsep"]["sdp"])
    await session.request(handle, {"request": "start"}, {"type": "answer", "sdp": answer})


FANOUT: dict[str, tuple[Callable[..., Awaitable[tuple[Member, dict[str, Any]]]],
                        Callable[..., Awaitable[Member]]]] = {
    "televisit": (televisit_fanout, televisit_viewer),
    "baseline": (baseline_fanout, baseline_viewer),
    "janus": (janus_fanout, janus_viewer),
}  # fmt: skip

ROOMS: dict[str, Callable[[Context, int, bool], Awaitable[list[Member]]]] = {
    "televisit": televisit_room,
    "baseline": baseline_room,
    "janus": janus_room,
}
