"""Delta sync of yesterday, today and tomorrow in the department's time zone (both stores)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from .helpers import API, NOON, Clinic, iso

# Helsinki is UTC+2 in December: its "yesterday" starts 2026-11-29T22:00Z.
YESTERDAY_JUST_AFTER_MIDNIGHT = datetime(2026, 11, 29, 22, 30, tzinfo=UTC)  # in (Nov 30 00:30)
DAY_BEFORE_LATE = datetime(2026, 11, 29, 21, 30, tzinfo=UTC)  # out (Nov 29 23:30)
TOMORROW_LATE = datetime(2026, 12, 2, 21, 30, tzinfo=UTC)  # in (Dec 2 23:30)
DAY_AFTER_EARLY = datetime(2026, 12, 2, 22, 30, tzinfo=UTC)  # out (Dec 3 00:30)


async def agenda(clinic: Clinic) -> dict[int, dict]:
    await clinic.enable()
    for n in range(1, 7):
        await clinic.family(n, history=2)
    for k in range(7):
        await clinic.put(
            "consultations", f"k{k}",
            {"patient_id": "p1", "started_at": iso(NOON - timedelta(days=10 * (7 - k))),
             "provider_name": "Dr. Lehto", "reason": "check-up",
             "notes": [{"at": iso(NOON - timedelta(days=10 * (7 - k))), "author": "Dr. Lehto",
                        "text": f"consultation {k}"}]},
        )  # fmt: skip
    await clinic.put("stock", "s-1", {"gtin": "4006381333931", "name": "Gauze", "unit": "box"})
    starts = {
        1: NOON - timedelta(hours=1),
        2: YESTERDAY_JUST_AFTER_MIDNIGHT,
        3: DAY_BEFORE_LATE,
        4: TOMORROW_LATE,
        5: DAY_AFTER_EARLY,
    }
    return {n: await clinic.appointment(n, start) for n, start in starts.items()}


def ids(items) -> set[str]:
    return {i["id"] for i in items}


async def test_full_sync_is_the_three_local_days_with_what_they_refer_to(clinic: Clinic):
    appts = await agenda(clinic)
    device = await clinic.device()
    resp = await clinic.sync(device)
    assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
    body = await resp.json()
    assert body["full"] is True
    [dept] = body["departments"]
    assert dept["time_zone"] == "Europe/Helsinki"
    assert dept["days"] == ["2026-11-30", "2026-12-01", "2026-12-02"]
    assert (dept["start"], dept["end"]) == ("2026-11-29T22:00:00Z", "2026-12-02T22:00:00Z")
    assert [a["id"] for a in body["appointments"]] == [appts[n]["id"] for n in (2, 1, 4)]
    first = body["appointments"][1]
    assert first["patient"] == {"id": "p1", "name": "Pet 1", "species": "cat"}
    assert first["host_url"] == appts[1]["telemedicine"]["host_url"]
    assert "pin" not in str(first) and "join_url" not in first
    assert ids(body["patients"]) == {"p1", "p2", "p4"}
    assert ids(body["clients"]) == {"c1", "c2", "c4"}
    assert ids(body["history"]) == {f"h{n}-{k}" for n in (1, 2, 4) for k in (0, 1)}
    # The five most recent consultations, with their notes.
    assert ids(body["consultations"]) == {f"k{k}" for k in range(2, 7)}
    assert body["consultations"][-1]["notes"][0]["text"] == "consultation 6"
    assert [s["gtin"] for s in body["stock"]] == ["4006381333931"]
    assert body["removed"] == {"appointments": [], "history": [], "consultations": []}


async def test_after_no_change_almost_nothing_moves_and_a_delta_has_only_the_change(
    clinic: Clinic,
):
    appts = await agenda(clinic)
    device = await clinic.device()
    full = await clinic.sync(device)
    cursor = (await full.json())["cursor"]
    assert full.headers["ETag"] == f'"{cursor}"'
    same = await clinic.sync(device, cursor)
    assert same.status == 304 and await same.read() == b""
    by_etag = await clinic.client.get(
        f"{API}/mobile/app/sync", headers={**device, "If-None-Match": f'"{cursor}"'}
    )
    assert by_etag.status == 304
    # Pushing an unchanged record again is no change either.
    await clinic.put("clients", "c1", {"name": "Client 1", "phone": "+358401112223"}, 200)
    assert (await clinic.sync(device, cursor)).status == 304

    entry = {"patient_id": "p1", "at": iso(NOON - timedelta(days=30)), "type": "diagnosis",
             "title": "Visit 0", "text": "Otitis externa, better"}  # fmt: skip
    await clinic.put("history", "h1-0", entry, 200)
    delta = await clinic.sync(device, cursor)
    body = await delta.json()
    assert body["full"] is False and body["cursor"] != cursor
    assert [h["text"] for h in body["history"]] == ["Otitis externa, better"]
    for kind in ("appointments", "clients", "patients", "consultations", "notes", "stock"):
        assert body[kind] == [], kind
    assert (await clinic.sync(device, body["cursor"])).status == 304

    # History of a patient nobody in the window sees is said to be gone, not sent.
    cursor = body["cursor"]
    await clinic.put("history", "h3-0", {**entry, "patient_id": "p3"}, 200)
    body = await (await clinic.sync(device, cursor)).json()
    assert body["history"] == [] and body["removed"]["history"] == ["h3-0"]

    # An appointment moved out of the window leaves; a cancelled one stays, marked.
    cursor = body["cursor"]
    resp = await clinic.client.patch(
        f"{API}/appointments/{appts[1]['id']}",
        json={
            "start": iso(NOON + timedelta(days=5)),
            "end": iso(NOON + timedelta(days=5, hours=1)),
        },
        headers=clinic.api,
    )
    assert resp.status == 200, await resp.text()
    resp = await clinic.client.post(
        f"{API}/appointments/{appts[2]['id']}/cancel", headers=clinic.api
    )
    assert resp.status == 200
    body = await (await clinic.sync(device, cursor)).json()
    assert body["removed"]["appointments"] == [appts[1]["id"]]
    [cancelled] = body["appointments"]
    assert cancelled["status"] == "cancelled" and cancelled["host_url"] is None
    assert ids(body["patients"]) == {"p2"} and ids(body["history"]) == {"h2-0", "h2-1"}


async def test_a_new_appointment_brings_its_patient_and_a_changed_owner_follows(clinic: Clinic):
    await agenda(clinic)
    device = await clinic.device()
    cursor = (await (await clinic.sync(device)).json())["cursor"]
    # Patient 6 is booked with a client the clinic gave no id: the owner comes via the patient.
    await clinic.appointment(6, NOON + timedelta(hours=2), client={"name": "Client 6"})
    body = await (await clinic.sync(device, cursor)).json()
    assert ids(body["patients"]) == {"p6"} and ids(body["clients"]) == {"c6"}
    assert ids(body["history"]) == {"h6-0", "h6-1"}
    cursor = body["cursor"]
    await clinic.put("clients", "c6", {"name": "Client 6", "phone": "+358409999999"}, 200)
    await clinic.put("clients", "c5", {"name": "Client 5 (not today)"}, 200)
    await clinic.put("patients", "p4", {"client_id": "c4", "name": "Pet 4", "alerts": "bites"})
    body = await (await clinic.sync(device, cursor)).json()
    assert ids(body["clients"]) == {"c6", "c4"} and ids(body["patients"]) == {"p4"}
    assert body["patients"][0]["alerts"] == "bites"


async def test_a_new_day_or_a_moved_department_means_a_full_sync(clinic: Clinic):
    await agenda(clinic)
    device = await clinic.device()
    cursor = (await (await clinic.sync(device)).json())["cursor"]
    clinic.clock.now += 12 * 3600  # 00:00 in Helsinki: tomorrow is today
    body = await (await clinic.sync(device, cursor)).json()
    assert body["full"] is True
    assert body["departments"][0]["days"] == ["2026-12-01", "2026-12-02", "2026-12-03"]
    assert ids(body["patients"]) == {"p1", "p4", "p5"}
    cursor = body["cursor"]
    resp = await clinic.client.patch(
        f"{API}/departments/{clinic.department['id']}",
        json={"time_zone": "America/New_York"},
        headers=clinic.api,
    )
    assert resp.status == 200
    body = await (await clinic.sync(device, cursor)).json()
    assert body["full"] is True and body["departments"][0]["days"][1] == "2026-12-01"
    # A cursor this server never gave is just a full sync.
    for bogus in ("nonsense", "abc.99999999", "x" * 64, "abc.\u00b2", f"{cursor[:-1]}\u00b2"):
        assert (await (await clinic.sync(device, bogus)).json())["full"] is True
    resp = await clinic.sync(device, "x" * 65)
    assert resp.status == 422
