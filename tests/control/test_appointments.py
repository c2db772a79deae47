"""Appointments through the REST API on both stores: shape, idempotency, updates, cancel, lists."""

from __future__ import annotations

import re
from datetime import timedelta

from control.models import Appointment, AppointmentList

from .helpers import BASE, appointment_body, department_body, iso, problem, token_of

STORED_KEYS = {
    "id", "org_id", "department_id", "external_id", "start", "end", "provider", "client",
    "patient", "status", "created_at", "updated_at", "telemedicine",
}  # fmt: skip


async def create(client, auth, body, status=201):
    resp = await client.post("/api/v1/appointments", json=body, headers=auth)
    assert resp.status == status, await resp.text()
    return await resp.json()


async def test_create_returns_the_documented_shape(client, auth, department, store, settings):
    body = appointment_body(department["id"])
    appt = await create(client, auth, body)
    Appointment.model_validate(appt)
    assert set(appt) == STORED_KEYS
    assert appt["status"] == "scheduled"
    assert appt["start"] == "2026-12-01T10:00:00Z" and appt["end"] == "2026-12-01T10:30:00Z"
    assert appt["client"] == body["client"] and appt["patient"] == body["patient"]
    tele = appt["telemedicine"]
    assert len(tele["pin"]) == settings.pins.digits and tele["pin"].isdigit()
    # join_url is the short link (what clinic software sends); token_url its long form.
    assert re.fullmatch(r"https://tv\.example/v/[0-9a-hjkmnp-tv-z]{12}", tele["join_url"])
    assert tele["short_url"] == tele["join_url"]
    assert tele["token_url"].startswith("https://tv.example/j/")
    assert tele["host_url"].startswith("https://tv.example/h/")
    assert tele["links_sent_at"] is None and tele["delivery"] == {}
    assert tele["valid_from"] == "2026-12-01T09:00:00Z"  # 60 min early
    assert tele["valid_until"] == "2026-12-01T11:30:00Z"  # 60 min grace
    # The stored record has exactly the documented shape (notify and web read it).
    record = await store.get("appointment", appt["id"])
    assert set(record.data) == STORED_KEYS
    assert set(record.data["telemedicine"]) == {
        "room_id",
        "pin",
        "join_url",
        "short_url",
        "host_url",
        "links_sent_at",
    }
    assert f"pin:{tele['pin']}" in record.claims and f"room:{tele['room_id']}" in record.claims
    assert "short:" + tele["short_url"].rsplit("/", 1)[1] in record.claims


async def test_times_in_other_zones_are_stored_in_utc(client, auth, department):
    body = appointment_body(
        department["id"], start="2026-12-01T12:00:00+02:00", end="2026-12-01T12:45:00+02:00"
    )
    appt = await create(client, auth, body)
    assert (appt["start"], appt["end"]) == ("2026-12-01T10:00:00Z", "2026-12-01T10:45:00Z")


async def test_create_is_idempotent_on_external_id(client, auth, department):
    body = appointment_body(department["id"])
    first = await create(client, auth, body)
    again = await create(client, auth, body, status=200)
    assert again == first
    changed = appointment_body(department["id"], patient={"name": "Rekku", "species": "dog"})
    resp = await client.post("/api/v1/appointments", json=changed, headers=auth)
    assert (await problem(resp, 409))["field"] == "external_id"


async def test_department_without_telemedicine_gives_no_room(client, auth):
    resp = await client.post(
        "/api/v1/departments", json=department_body(telemedicine_enabled=False), headers=auth
    )
    dept = await resp.json()
    appt = await create(client, auth, appointment_body(dept["id"]))
    assert appt["telemedicine"] is None


async def test_unknown_department_is_named(client, auth):
    resp = await client.post(
        "/api/v1/appointments", json=appointment_body("dep_nope"), headers=auth
    )
    assert (await problem(resp, 422))["field"] == "department_id"


async def test_get_and_patch(client, auth, department):
    appt = await create(client, auth, appointment_body(department["id"]))
    url = f"/api/v1/appointments/{appt['id']}"
    resp = await client.get(url, headers=auth)
    assert resp.status == 200 and (await resp.json()) == appt

    # A new client: new links and PIN (the old ones stop working: test_join), same room.
    new_client = {"name": "Maija", "phone": None, "email": "maija@example.com", "language": "sv"}
    resp = await client.patch(url, json={"client": new_client}, headers=auth)
    patched = await resp.json()
    assert resp.status == 200, patched
    assert patched["client"] == new_client
    assert patched["telemedicine"]["room_id"] == appt["telemedicine"]["room_id"]
    assert patched["telemedicine"]["pin"] != appt["telemedicine"]["pin"]
    assert patched["telemedicine"]["join_url"] != appt["telemedicine"]["join_url"]
    assert patched["telemedicine"]["host_url"] == appt["telemedicine"]["host_url"]

    # Moving the appointment moves its window.
    later = BASE + timedelta(days=1)
    resp = await client.patch(
        url, json={"start": iso(later), "end": iso(later + timedelta(hours=1))}, headers=auth
    )
    moved = await resp.json()
    assert moved["telemedicine"]["valid_until"] == "2026-12-02T12:00:00Z"

    # end before start once merged with the stored start: 422 naming end.
    resp = await client.patch(url, json={"end": iso(later - timedelta(minutes=1))}, headers=auth)
    assert (await problem(resp, 422))["field"] == "end"
    # After year 9999 in UTC (a 500, writing it back) and the appointment unchanged.
    far = {"start": "9999-12-31T23:10:00-01:00", "end": "9999-12-31T23:30:00-01:00"}
    assert (await problem(await client.patch(url, json=far, headers=auth), 422))["field"] == "start"
    assert await (await client.get(url, headers=auth)).json() == moved


async def test_patch_with_nested_object_keeps_the_record_shape(client, auth, department, store):
    appt = await create(client, auth, appointment_body(department["id"]))
    resp = await client.patch(
        f"/api/v1/appointments/{appt['id']}", json={"client": {"name": "Only Name"}}, headers=auth
    )
    assert resp.status == 200
    record = await store.get("appointment", appt["id"])
    assert record.data["client"] == {
        "name": "Only Name",
        "phone": None,
        "email": None,
        "language": None,
    }


async def test_cancel_invalidates_pin_and_links_at_once(client, auth, department, clock):
    appt = await create(client, auth, appointment_body(department["id"]))
    tele = appt["telemedicine"]
    clock.set(BASE)  # the room is open
    assert (await client.post("/api/v1/join", json={"pin": tele["pin"]})).status == 200

    resp = await client.post(f"/api/v1/appointments/{appt['id']}/cancel", headers=auth)
    cancelled = await resp.json()
    assert resp.status == 200 and cancelled["status"] == "cancelled"
    await problem(await client.post("/api/v1/join", json={"pin": tele["pin"]}), 404)
    for url in (tele["token_url"], tele["host_url"]):
        body = await problem(await client.post("/api/v1/join", json={"token": token_of(url)}), 410)
        assert body["type"].endswith("appointment-cancelled") and body["language"] == "fi"
    code = tele["join_url"].rsplit("/", 1)[1]  # the short link stops with them
    body = await problem(await client.post("/api/v1/join", json={"code": code}), 410)
    assert body["type"].endswith("appointment-cancelled")
    # Cancelling twice is harmless; changing a cancelled appointment is refused.
    again = await client.post(f"/api/v1/appointments/{appt['id']}/cancel", headers=auth)
    assert again.status == 200
    resp = await client.patch(
        f"/api/v1/appointments/{appt['id']}", json={"patient": {"name": "X"}}, headers=auth
    )
    await problem(resp, 409)


async def test_list_by_date_range_and_provider(client, auth, department):
    made = []
    for day in range(4):
        start = BASE + timedelta(days=day)
        provider = {"id": "vet-7" if day % 2 == 0 else "vet-9", "name": "Dr"}
        body = appointment_body(
            department["id"], external_id=f"A-{day}", start_at=start, provider=provider
        )
        made.append(await create(client, auth, body))

    async def listed(query):
        resp = await client.get("/api/v1/appointments", params=query, headers=auth)
        data = await resp.json()
        assert resp.status == 200, data
        AppointmentList.model_validate(data)
        return data

    everything = await listed({})
    assert [a["id"] for a in everything["appointments"]] == [a["id"] for a in made]
    assert everything["next_offset"] is None
    window = await listed({"from": "2026-12-02T00:00:00Z", "to": "2026-12-03T23:59:59Z"})
    assert [a["external_id"] for a in window["appointments"]] == ["A-1", "A-2"]
    # "+02:00" sent unencoded arrives as " 02:00": still understood.
    raw = await client.get(
        "/api/v1/appointments?from=2026-12-02T02:00:00+02:00&to=2026-12-02T23:00:00Z", headers=auth
    )
    assert [a["external_id"] for a in (await raw.json())["appointments"]] == ["A-1"]
    vet9 = await listed({"provider_id": "vet-9"})
    assert [a["external_id"] for a in vet9["appointments"]] == ["A-1", "A-3"]
    page = await listed({"limit": "3"})
    assert len(page["appointments"]) == 3 and page["next_offset"] == 3
    rest = await listed({"limit": "3", "offset": "3"})
    assert [a["external_id"] for a in rest["appointments"]] == ["A-3"]

    for query, field in [
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-12-01T10:00:00"}, "to"),
        ({"from": "2026-12-03T00:00:00Z", "to": "2026-12-01T00:00:00Z"}, "to"),
        ({"limit": "0"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"offset": "-1"}, "offset"),
        # str.isdigit() takes these: int() raised on the first two (a 500), read "١" as 1.
        ({"limit": "\u00b2"}, "limit"),
        ({"offset": "1" * 5000}, "offset"),
        ({"limit": "\u0661"}, "limit"),
    ]:
        resp = await client.get("/api/v1/appointments", params=query, headers=auth)
        assert (await problem(resp, 422))["field"] == field


async def test_provider_change_moves_the_appointment_between_lists(client, auth, department):
    appt = await create(client, auth, appointment_body(department["id"]))
    await client.patch(
        f"/api/v1/appointments/{appt['id']}",
        json={"provider": {"id": "vet-9", "name": "Dr B"}},
        headers=auth,
    )
    old = await (
        await client.get("/api/v1/appointments", params={"provider_id": "vet-7"}, headers=auth)
    ).json()
    new = await (
        await client.get("/api/v1/appointments", params={"provider_id": "vet-9"}, headers=auth)
    ).json()
    assert old["appointments"] == [] and [a["id"] for a in new["appointments"]] == [appt["id"]]


async def test_another_org_sees_nothing(client, auth, department, store, clock):
    from control.orgs import create_org

    appt = await create(client, auth, appointment_body(department["id"]))
    _, _, other_key = await create_org(store, "Other clinic", clock())
    other = {"Authorization": f"Bearer {other_key}"}
    for method, url in [
        ("GET", f"/api/v1/appointments/{appt['id']}"),
        ("PATCH", f"/api/v1/appointments/{appt['id']}"),
        ("POST", f"/api/v1/appointments/{appt['id']}/cancel"),
        ("POST", f"/api/v1/appointments/{appt['id']}/telemedicine/send"),
        ("GET", f"/api/v1/departments/{department['id']}"),
        ("PATCH", f"/api/v1/departments/{department['id']}"),
    ]:
        body = {"channels": ["sms"]} if url.endswith("send") else {}
        resp = await client.request(method, url, json=body, headers=other)
        await problem(resp, 404)
    listed = await (await client.get("/api/v1/appointments", headers=other)).json()
    assert listed["appointments"] == []
    depts = await (await client.get("/api/v1/departments", headers=other)).json()
    assert depts["departments"] == []
    # The same external_id in another org is another appointment.
    resp = await client.post(
        "/api/v1/appointments", json=appointment_body(department["id"]), headers=other
    )
    assert (await problem(resp, 422))["field"] == "department_id"
    # And the first org's appointment is untouched.
    resp = await client.get(f"/api/v1/appointments/{appt['id']}", headers=auth)
    assert (await resp.json())["status"] == "scheduled"


async def test_an_appointment_is_at_most_max_appointment_hours_long(client, auth, department):
    """Issue 12 item 9: an appointment from year 0105 to 2026 kept its PIN live for the whole
    span; the window is bounded by pins.max_appointment_hours (12 by default)."""
    centuries = appointment_body(department["id"], start="0105-01-01T00:00:00Z")
    resp = await client.post("/api/v1/appointments", json=centuries, headers=auth)
    assert "12 hours" in (await problem(resp, 422))["detail"]
    longest = appointment_body(
        department["id"], end=iso(BASE + timedelta(hours=12)), external_id="A-12h"
    )
    appt = await create(client, auth, longest)
    resp = await client.patch(
        f"/api/v1/appointments/{appt['id']}",
        json={"end": iso(BASE + timedelta(hours=12, seconds=1))},
        headers=auth,
    )
    assert (await problem(resp, 422))["field"] == "end"
