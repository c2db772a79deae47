"""Visit status follows the SFU's room events on the bus (both buses), and a hang-up ends it."""

from __future__ import annotations

import asyncio

from control.clinic import requests, visits
from control.clinic.accounts import create_staff

from .helpers import provider_and_desk


async def _wait_for(cond, seconds: float = 30.0):
    for _ in range(int(seconds / 0.05)):
        got = await cond()
        if got:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


def _joined(room_id, role, name, state):
    return {"type": "participant_joined", "room_id": room_id, "session": "s1", "state": state,
            "participant": {"id": f"p-{role}", "name": name, "role": role}, "resumed": False}  # fmt: skip


async def test_status_from_room_events(node, bus):
    clinic = node.clinic
    prov, desk = await provider_and_desk(clinic)
    rq = await requests.create_request(clinic, desk, prov.id)
    _, visit = await requests.accept(clinic, prov, rq.id)
    room = visit.room_id

    async def status():
        v = await visits.get_visit(clinic, prov, visit.id)
        return v.requester_status, v.provider_status, v.state

    node.room_watcher.start()
    try:
        await asyncio.wait_for(node.room_watcher.ready.wait(), 30)
        # Rooms of appointments and malformed events are none of the clinic's business.
        await bus.publish("room:ap-x", _joined("ap-x", "guest", "Someone", "waiting"))
        await bus.publish(f"room:{room}", {"type": "participant_joined", "room_id": room})
        await bus.publish(f"room:{room}", _joined(room, "guest", "Desk", "waiting"))
        await _wait_for(async_eq(status, ("waiting", "not_arrived", "open")))
        await bus.publish(f"room:{room}", _joined(room, "host", "Dr Who", "active"))
        await _wait_for(async_eq(status, ("in_meeting", "in_meeting", "open")))
        # The requester's page closes: away for the grace (the provider waits), then left.
        away = {**_joined(room, "guest", "Desk", "active"), "type": "participant_reconnecting"}
        await bus.publish(f"room:{room}", away)
        await _wait_for(async_eq(status, ("away", "waiting", "open")))
        await bus.publish(f"room:{room}", {**away, "type": "participant_left"})
        await _wait_for(async_eq(status, ("left", "waiting", "open")))
        # Both back, then both close their pages: the room ends with "left", and so do both.
        await bus.publish(f"room:{room}", _joined(room, "guest", "Desk", "active"))
        await _wait_for(async_eq(status, ("in_meeting", "in_meeting", "open")))
        await bus.publish(f"room:{room}", {"type": "ended", "room_id": room, "reason": "left"})
        await _wait_for(async_eq(status, ("left", "left", "open")))
        await bus.publish(f"room:{room}", {"type": "ended", "room_id": room, "reason": "closed"})
        await bus.publish(f"room:{room}", {"type": "ended", "room_id": room, "reason": "hangup"})
        await _wait_for(async_eq(status, ("left", "left", "ended")))
        assert node.room_watcher.errors == 0
    finally:
        await node.room_watcher.stop()


def async_eq(fn, expected):
    async def check():
        return await fn() == expected

    return check


async def test_closing_a_visit_asks_the_sfu_to_end_its_room(client, node, bus):
    store = node.clinic.store
    for name, groups in (("drwho", ["provide"]), ("desk", ["request"])):
        await create_staff(store, "org1", username=name, display_name=name,
                           password="correct horse", groups=groups)  # fmt: skip
    tokens = {}
    for name in ("drwho", "desk"):
        resp = await client.post("/api/v1/clinic/login",
                                 json={"username": name, "password": "correct horse"})  # fmt: skip
        tokens[name] = {"Authorization": f"Bearer {(await resp.json())['token']}"}
    client.session.cookie_jar.clear()
    await client.put(
        "/api/v1/clinic/me/availability", headers=tokens["drwho"], json={"available": True}
    )
    me = await (await client.get("/api/v1/clinic/me", headers=tokens["drwho"])).json()
    resp = await client.post("/api/v1/clinic/requests", headers=tokens["desk"],
                             json={"provider_id": me["staff"]["id"]})  # fmt: skip
    rq = (await resp.json())["request"]
    resp = await client.post(
        f"/api/v1/clinic/requests/{rq['id']}/accept", headers=tokens["drwho"], json={}
    )
    visit = (await resp.json())["visit"]
    async with bus.subscribe(f"room:{visit['room_id']}") as feed:
        resp = await client.post(
            f"/api/v1/clinic/visits/{visit['id']}/end", headers=tokens["desk"], json={}
        )
        assert resp.status == 200
        event = await asyncio.wait_for(feed.get(), 30)
    assert event == {"type": "visit.ended", "room_id": visit["room_id"]}
