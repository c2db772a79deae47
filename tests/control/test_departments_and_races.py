"""Departments, concurrent idempotent creates, cancel events on the bus, health."""

from __future__ import annotations

import asyncio

from control.bus import InProcessBus
from control.models import Department, DepartmentList

from .helpers import appointment_body, problem


async def test_department_defaults_get_list_patch(client, auth, org, clock):
    resp = await client.post("/api/v1/departments", json={"name": "Surgery"}, headers=auth)
    dept = await resp.json()
    assert resp.status == 201
    Department.model_validate(dept)
    assert dept["org_id"] == org["id"]
    assert dept["telemedicine_enabled"] is False and dept["default_language"] == "en"
    assert dept["time_zone"] == "UTC"
    assert dept["contact"] == {"name": "", "address": "", "phone": None, "email": None}
    url = f"/api/v1/departments/{dept['id']}"
    assert await (await client.get(url, headers=auth)).json() == dept

    contact = {
        "name": "Kallio Vet",
        "address": "Fleminginkatu 1",
        "phone": "+358912345678",
        "email": "a@b.fi",
    }
    resp = await client.patch(
        url,
        json={
            "telemedicine_enabled": True,
            "default_language": "sv",
            "time_zone": "Europe/Helsinki",
            "contact": contact,
        },
        headers=auth,
    )
    patched = await resp.json()
    assert resp.status == 200, patched
    assert patched == {
        **dept,
        "telemedicine_enabled": True,
        "default_language": "sv",
        "time_zone": "Europe/Helsinki",
        "contact": contact,
    }
    # A partial PATCH changes only what it names.
    resp = await client.patch(url, json={"name": "Surgery 2"}, headers=auth)
    assert await resp.json() == {**patched, "name": "Surgery 2"}
    assert (
        await problem(await client.patch(url, json={"default_language": "de"}, headers=auth), 422)
    )["field"] == "default_language"

    for zone in ("Europe/Helsinki ", "Mars/Olympus_Mons", "../etc/passwd", "", 2):
        resp = await client.patch(url, json={"time_zone": zone}, headers=auth)
        assert (await problem(resp, 422))["field"] == "time_zone", zone

    clock.now += 1  # listed in creation order
    await client.post("/api/v1/departments", json={"name": "Dentistry"}, headers=auth)
    listed = await (await client.get("/api/v1/departments", headers=auth)).json()
    DepartmentList.model_validate(listed)
    assert [d["name"] for d in listed["departments"]] == ["Surgery 2", "Dentistry"]


async def test_a_department_stored_before_time_zones_reads_as_utc(client, store, auth, org):
    # The record as the store held it before the field existed (on both backends).
    old = {
        "id": "dep_old",
        "org_id": org["id"],
        "name": "Old",
        "telemedicine_enabled": True,
        "default_language": "fi",
        "contact": {"name": "", "address": "", "phone": None, "email": None},
    }
    await store.create("department", "dep_old", old, indexes={f"depts:{org['id']}": 0})
    url = "/api/v1/departments/dep_old"
    got = await (await client.get(url, headers=auth)).json()
    assert got == {**old, "time_zone": "UTC"}
    Department.model_validate(got)
    listed = await (await client.get("/api/v1/departments", headers=auth)).json()
    assert listed["departments"] == [got]
    resp = await client.patch(url, json={"name": "Older"}, headers=auth)
    assert await resp.json() == {**got, "name": "Older"}
    resp = await client.post("/api/v1/appointments", json=appointment_body("dep_old"), headers=auth)
    assert resp.status == 201, await resp.text()


async def test_concurrent_creates_with_one_external_id_make_one_appointment(
    make_client, store, auth, department
):
    # Two apps on one store: like two control nodes behind a load balancer.
    clients = [await make_client(store), await make_client(store)]
    body = appointment_body(department["id"], external_id="RACE-1")
    responses = await asyncio.gather(
        *(clients[i % 2].post("/api/v1/appointments", json=body, headers=auth) for i in range(8))
    )
    statuses = sorted(r.status for r in responses)
    assert statuses == [200] * 7 + [201], statuses
    ids = {(await r.json())["id"] for r in responses}
    assert len(ids) == 1
    listed = await (await clients[0].get("/api/v1/appointments", headers=auth)).json()
    assert len(listed["appointments"]) == 1


async def test_cancel_announces_the_room_on_the_bus(make_client, store, auth, department):
    bus = InProcessBus()
    client = await make_client(store, bus=bus)
    resp = await client.post(
        "/api/v1/appointments", json=appointment_body(department["id"]), headers=auth
    )
    appt = await resp.json()
    room = appt["telemedicine"]["room_id"]
    async with bus.subscribe(f"room:{room}") as feed:
        await client.post(f"/api/v1/appointments/{appt['id']}/cancel", headers=auth)
        event = await asyncio.wait_for(feed.get(), 30)
    assert event == {"type": "appointment.cancelled", "room_id": room, "appointment_id": appt["id"]}


async def test_health(client, store):
    resp = await client.get("/healthz")
    assert resp.status == 200 and (await resp.json())["status"] == "ok"
    await store.close()
    body = await problem(await client.get("/healthz"), 503)
    assert body["type"].endswith("store-unavailable")
