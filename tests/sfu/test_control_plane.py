"""End to end through the control plane: REST creates the appointment, its links carry the
tokens, both parties join the SFU over the app's /ws, see and chat with each other; room
events reach the bus; cancelling the appointment ends the session; /metrics counts it all."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from config import load_settings
from control.app import BUS, create_app
from control.orgs import create_org
from control.server import attach_sfu
from control.store.sqlite import SqliteStore
from media_server.node import WORKER

from .harness import LOOPBACK_MEDIA, both_decode
from .sfu_client import SfuClient


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@pytest.fixture
async def control(tmp_path) -> AsyncIterator[tuple[TestClient, dict[str, str]]]:
    settings = load_settings(
        environ={},
        overrides={
            "server": {"data_dir": str(tmp_path / "data")},
            "join": {"per_ip_per_minute": 10_000, "failed_per_ip_per_hour": 10_000},
            "media": LOOPBACK_MEDIA,
        },
    )
    store = SqliteStore(tmp_path / "store.db")
    await store.open()
    app = create_app(settings, store, background=False)
    attach_sfu(app, settings, store)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    _, _, key = await create_org(store, "Kallio Vet", time.time())
    try:
        yield client, {"Authorization": f"Bearer {key}"}
    finally:
        await client.close()
        await store.close()


async def make_appointment(client: TestClient, auth: dict[str, str]) -> dict[str, Any]:
    resp = await client.post(
        "/api/v1/departments",
        headers=auth,
        json={
            "name": "Small animals",
            "telemedicine_enabled": True,
            "default_language": "en",
            "contact": {"name": "Kallio Vet", "phone": "+358912345678"},
        },
    )
    assert resp.status == 201, await resp.text()
    department = await resp.json()
    start = datetime.now(UTC) - timedelta(minutes=5)
    resp = await client.post(
        "/api/v1/appointments",
        headers=auth,
        json={
            "department_id": department["id"],
            "external_id": f"sfu-{time.time_ns()}",
            "start": iso(start),
            "end": iso(start + timedelta(minutes=30)),
            "provider": {"id": "vet-1", "name": "Dr. Aino Lehto"},
            "client": {"name": "Maija Virtanen", "phone": "+358401234567", "language": "en"},
            "patient": {"name": "Musti", "species": "dog"},
        },
    )
    assert resp.status == 201, await resp.text()
    return await resp.json()


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value from a Prometheus text exposition (0 if absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    head = f"{name}{{{want}}}" if want else name
    for line in text.splitlines():
        if line.startswith(head + " "):
            return float(line.split()[-1])
    return 0.0


async def test_a_consultation_through_the_control_plane(control) -> None:
    client, auth = control
    appt = await make_appointment(client, auth)
    tele = appt["telemedicine"]
    room_id = tele["room_id"]
    ws_url = str(client.make_url("/ws"))

    # The guest joins by PIN (a native app); the clinic opens its host link.
    resp = await client.post("/api/v1/join", json={"pin": tele["pin"]})
    assert resp.status == 200, await resp.text()
    by_pin = await resp.json()
    assert by_pin["signaling_url"].endswith("/ws")
    host_token = tele["host_url"].rsplit("/", 1)[1]
    guest_token = tele["token_url"].rsplit("/", 1)[1]

    bus = client.app[BUS]
    events: list[dict[str, Any]] = []

    async def listen(ready: asyncio.Event) -> None:
        async with bus.subscribe(f"room:{room_id}") as feed:
            ready.set()
            async for event in feed:
                events.append(event)

    ready = asyncio.Event()
    listener = asyncio.create_task(listen(ready))
    await asyncio.wait_for(ready.wait(), 10)

    clients: list[SfuClient] = []
    try:
        guest = SfuClient(ws_url, by_pin["token"])
        host = SfuClient(ws_url, host_token)
        clients += [guest, host]
        await guest.connect()
        joined = await guest.join(room=room_id)
        assert joined["participant"]["name"] == ""  # a PIN's holder is not told whose seat
        assert joined["room"]["state"] == "waiting"
        await guest.publish()
        await host.connect()
        joined = await host.join(room=room_id)
        assert joined["participant"]["role"] == "host"
        assert joined["room"]["state"] == "active"
        assert {p["name"] for p in joined["room"]["participants"]} >= {"Maija Virtanen"}
        await host.publish()
        await both_decode(guest, host)
        for c in (guest, host):
            await c.wait_for(lambda c=c: c.channel.readyState == "open", 30, "chat channel")
        host.chat("Hello Maija")
        await guest.wait_for(lambda: guest.chats, 20, "chat at the guest")
        assert guest.chats[0]["from"] == {"name": "Dr. Aino Lehto", "role": "host"}

        # The join link's token and the PIN's token are the same member (guest, client name).
        second = SfuClient(ws_url, guest_token)
        clients.append(second)
        await second.connect()
        assert (await second.join())["resumed"] is True
        await guest.wait_for(lambda: guest.closed, 20, "replaced guest socket")
        assert guest.closed.code == 4009

        scrape = await client.get("/metrics")
        assert scrape.status == 200
        text = await scrape.text()
        assert metric(text, "televisit_sfu_rooms") == 1
        assert metric(text, "televisit_sfu_packets_in_total", kind="video") > 0
        assert metric(text, "televisit_sfu_packets_out_total", kind="video") > 0
        assert 'televisit_sfu_room_loss_ratio{leg="publisher",room="' + room_id in text

        # The clinic software cancels the appointment: the live session ends for everyone.
        resp = await client.post(f"/api/v1/appointments/{appt['id']}/cancel", headers=auth)
        assert resp.status == 200, await resp.text()
        for c in (host, second):
            await c.wait_for(lambda c=c: c.closed, 20, "socket closed on cancel")
            assert c.last("ended")["reason"] == "cancelled"
            assert c.closed.code == 4000
        late = SfuClient(ws_url, host_token)
        clients.append(late)
        await late.connect()
        with pytest.raises(ConnectionError):
            await late.join()
        assert late.closed.code == 4003
        assert late.closed.reason.startswith("cancelled")

        await late.wait_for(
            lambda: {"participant_joined", "ended"} <= {e["type"] for e in events}, 20, "bus"
        )
        assert all(e["room_id"] == room_id for e in events)
        worker = client.app[WORKER]
        await late.wait_for(lambda: not worker.live_participants, 30, "connections closed")
        text = await (await client.get("/metrics")).text()
        assert metric(text, "televisit_sfu_rooms") == 0
        # Counters of closed connections are kept: totals never go down.
        assert metric(text, "televisit_sfu_packets_in_total", kind="video") > 0
        assert metric(text, "televisit_sfu_sessions_ended_total", reason="cancelled") == 1
        assert metric(text, "televisit_sfu_signaling_errors_total", code="token_cancelled") == 1
    finally:
        listener.cancel()
        for c in clients:
            await c.close()


@pytest.mark.parametrize("how", ["signature", "lone surrogate"])
async def test_a_forged_token_is_refused_by_the_control_plane(control, how) -> None:
    client, auth = control
    appt = await make_appointment(client, auth)
    token = appt["telemedicine"]["token_url"].rsplit("/", 1)[1]
    if how == "signature":
        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    else:
        # JSON may escape one ("\ud800"): PyJWT raised UnicodeEncodeError, and the socket
        # closed 1011 "the server could not check the token" with a traceback logged.
        forged = token[:20] + "\ud800" + token[20:]
    sfu = SfuClient(str(client.make_url("/ws")), forged)
    try:
        await sfu.connect()
        with pytest.raises(ConnectionError):
            await sfu.join()
        assert sfu.closed.code == 4001
        assert sfu.closed.reason.startswith("invalid token")
    finally:
        await sfu.close()


async def test_a_reissue_removes_the_members_it_revoked_from_the_room(control) -> None:
    """Issue 12 item 12, live: when the clinic changes the client, the old client's link stops
    opening the room and the old client, still in the call, leaves it at once; the host (whose
    link was not replaced) stays, and the new client joins with the new link."""
    client, auth = control
    appt = await make_appointment(client, auth)
    tele = appt["telemedicine"]
    ws_url = str(client.make_url("/ws"))
    clients: list[SfuClient] = []
    try:
        old_guest = SfuClient(ws_url, tele["token_url"].rsplit("/", 1)[1])
        host = SfuClient(ws_url, tele["host_url"].rsplit("/", 1)[1])
        clients += [old_guest, host]
        for c in (old_guest, host):
            await c.connect()
            await c.join()
        resp = await client.patch(
            f"/api/v1/appointments/{appt['id']}",
            headers=auth,
            json={"client": {"name": "Someone Else", "phone": "+358409999999"}},
        )
        assert resp.status == 200, await resp.text()
        await old_guest.wait_for(lambda: old_guest.closed, 20, "the old client removed")
        assert old_guest.closed.code == 4001 and old_guest.closed.reason.startswith("revoked")
        left = await host.wait_for(lambda: host.last("participant_left"), 20, "left")
        assert left["participant"]["name"] == "Maija Virtanen" and host.closed is None
        new_guest = SfuClient(
            ws_url, (await resp.json())["telemedicine"]["token_url"].rsplit("/", 1)[1]
        )
        clients.append(new_guest)
        await new_guest.connect()
        assert (await new_guest.join())["participant"]["name"] == "Someone Else"
        assert client.app[WORKER].counters["revoked"] == 1
    finally:
        for c in clients:
            await c.close()
