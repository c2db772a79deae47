"""Notes and stock scans written in the app: each lands once, conflicts are refused with the
current note, bad input is a 422 naming the field, and the clinic software pulls and
acknowledges them (both stores)."""

from __future__ import annotations

import pytest

from control.mobile import submissions
from control.mobile.schemas import NOTE_MAX_CHARS
from control.store import Store

from .helpers import API, NOON, Clinic, key, problem

GAUZE = "4006381333931"


@pytest.fixture
async def ready(clinic: Clinic) -> Clinic:
    await clinic.enable()
    await clinic.family(1, history=0)
    await clinic.put("stock", "s-1", {"gtin": GAUZE, "name": "Gauze", "unit": "box"})
    return clinic


async def test_a_note_lands_once_per_key(ready: Clinic):
    device = await ready.device()
    k = key()
    first = await ready.note(device, "n-1", "Limping, left hind leg", k=k)
    assert first.status == 201, await first.text()
    body = await first.json()
    assert body["note"]["version"] == 1 and body["note"]["updated_by"]["device_name"] == "Phone"
    again = await ready.note(device, "n-1", "Limping, left hind leg", k=k)
    assert again.status == 200 and await again.json() == body
    reused = await ready.note(device, "n-1", "Something else", k=k)
    await problem(reused, 409, "idempotency-key-reused", "idempotency_key")
    pending = await (await ready.client.get(f"{API}/mobile/submissions", headers=ready.api)).json()
    assert [s["id"] for s in pending["submissions"]] == [body["submission_id"]]
    assert pending["submissions"][0]["note"]["text"] == "Limping, left hind leg"


async def test_a_note_changed_on_two_devices_is_a_conflict_never_an_overwrite(ready: Clinic):
    phone, tablet = await ready.device(name="Phone"), await ready.device(name="Tablet")
    assert (await ready.note(phone, "n-1", "v1")).status == 201
    edit = await ready.note(tablet, "n-1", "v2 from the tablet", base=1)
    assert edit.status == 200 and (await edit.json())["note"]["version"] == 2
    # The phone still had version 1.
    late = await ready.note(phone, "n-1", "v2 from the phone", base=1)
    body = await problem(late, 409, "note-conflict", "base_version")
    assert body["current"]["text"] == "v2 from the tablet" and body["current"]["version"] == 2
    assert body["current"]["updated_by"]["device_name"] == "Tablet"
    # Resolved by writing on top of what is there now.
    keep = await ready.note(phone, "n-1", "v3: both", base=2)
    assert keep.status == 200 and (await keep.json())["note"]["version"] == 3
    # A new note must start from 0; a note stays with its patient.
    await problem(await ready.note(phone, "n-2", "x", base=3), 422, field="base_version")
    await ready.family(2, history=0)
    await problem(
        await ready.note(phone, "n-1", "x", base=3, patient="p2"), 422, field="patient_id"
    )


@pytest.mark.parametrize(
    "over, field",
    [
        ({"patient": "nobody"}, "patient_id"),
        ({"appointment_id": "apt_missing"}, "appointment_id"),
        ({"text": "x" * (NOTE_MAX_CHARS + 1)}, "text"),
        ({"text": ""}, "text"),
        ({"k": "short"}, "idempotency_key"),
        ({"base": -1}, "base_version"),
    ],
)
async def test_bad_notes_name_the_field(ready: Clinic, over, field):
    device = await ready.device()
    over = dict(over)
    text = over.pop("text", "ok")
    resp = await ready.note(device, "n-1", text, **over)
    await problem(resp, 422, field=field)


async def test_a_note_goes_only_with_its_own_patients_appointment(ready: Clinic):
    # p2's note filed under p1's visit reached the clinic software as that visit's note.
    device = await ready.device()
    await ready.family(2, history=0)
    visit = await ready.appointment(1, NOON)
    resp = await ready.note(device, "n-1", "x", patient="p2", appointment_id=visit["id"])
    await problem(resp, 422, field="appointment_id")
    resp = await ready.note(device, "n-1", "x", patient="p1", appointment_id=visit["id"])
    assert resp.status == 201, await resp.text()


async def test_stock_scans_land_once_and_bad_ones_name_the_field(ready: Clinic):
    device = await ready.device()
    k = key()
    resp = await ready.scan(device, GAUZE, 3, k=k)
    assert resp.status == 201, await resp.text()
    scan = (await resp.json())["scan"]
    assert scan["quantity"] == 3 and scan["item"]["name"] == "Gauze"
    assert scan["gtin"] == "0" + GAUZE
    assert (await ready.scan(device, GAUZE, 3, k=k)).status == 200
    await problem(await ready.scan(device, GAUZE, 4, k=k), 409, "idempotency-key-reused")
    await problem(await ready.scan(device, GAUZE, -2), 422, "invalid-input", "quantity")
    await problem(await ready.scan(device, GAUZE, 0), 422, "invalid-input", "quantity")
    await problem(await ready.scan(device, "4006381333932"), 422, "invalid-input", "barcode")
    await problem(await ready.scan(device, "40063813339a1"), 422, "invalid-input", "barcode")
    await problem(await ready.scan(device, "96385074"), 422, "unknown-reference", "barcode")


async def test_clinic_software_pulls_and_acknowledges(ready: Clinic):
    device = await ready.device()
    made = []
    for resp in (
        await ready.note(device, "n-1", "first"),
        await ready.scan(device, GAUZE, 2),
        await ready.note(device, "n-2", "second"),
    ):
        assert resp.status == 201
        made.append((await resp.json())["submission_id"])
    c = ready.client
    page = await (await c.get(f"{API}/mobile/submissions?limit=2", headers=ready.api)).json()
    assert [s["id"] for s in page["submissions"]] == made[:2] and page["more"] is True
    assert [s["type"] for s in page["submissions"]] == ["note.saved", "stock.scanned"]
    assert page["submissions"][0]["staff"]["display_name"] == "Vet"
    ack = await c.post(
        f"{API}/mobile/submissions/ack", json={"ids": [*made[:2], "sub_nope"]}, headers=ready.api
    )
    assert await ack.json() == {"acknowledged": made[:2], "unknown": ["sub_nope"]}
    page = await (await c.get(f"{API}/mobile/submissions", headers=ready.api)).json()
    assert [s["id"] for s in page["submissions"]] == made[2:] and page["more"] is False
    again = await c.post(f"{API}/mobile/submissions/ack", json={"ids": made}, headers=ready.api)
    assert (await again.json())["acknowledged"] == made
    for limit in ("0", "\u00b2", "\u0661"):  # "²" was a 500 (int() after str.isdigit())
        resp = await c.get(f"{API}/mobile/submissions", params={"limit": limit}, headers=ready.api)
        await problem(resp, 422, field="limit")
    await problem(
        await c.post(f"{API}/mobile/submissions/ack", json={"ids": []}, headers=ready.api), 422
    )


class FailOnce:
    """A store whose first create of ``kind`` fails, as if the node died right there."""

    def __init__(self, store: Store, kind: str) -> None:
        self.store, self.kind, self.failed = store, kind, False

    def __getattr__(self, name):
        return getattr(self.store, name)

    async def create(self, kind, *args, **kwargs):
        if kind == self.kind and not self.failed:
            self.failed = True
            raise ConnectionError("node died")
        return await self.store.create(kind, *args, **kwargs)


async def test_a_write_cut_before_its_submission_completes_on_the_repeat(
    clinic: Clinic, make_client, store
):
    """The note was saved but the node died before recording the submission: the device
    repeats the request (it never got an answer) and the note is not applied twice."""
    await clinic.enable()
    await clinic.family(1, history=0)
    device = await clinic.device()
    broken = await make_client(FailOnce(store, submissions.KIND))
    body = {"idempotency_key": key(), "base_version": 0, "patient_id": "p1", "text": "once"}
    resp = await broken.put(f"{API}/mobile/app/notes/n-1", json=body, headers=device)
    assert resp.status == 500
    resp = await broken.put(f"{API}/mobile/app/notes/n-1", json=body, headers=device)
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["note"]["version"] == 1
    pending = await (
        await clinic.client.get(f"{API}/mobile/submissions", headers=clinic.api)
    ).json()
    assert len(pending["submissions"]) == 1


async def test_notes_reach_every_device_in_the_sync(ready: Clinic):
    phone, tablet = await ready.device(), await ready.device(name="Tablet")
    await ready.appointment(1, NOON)
    cursor = (await (await ready.sync(tablet)).json())["cursor"]
    await ready.note(phone, "n-1", "seen on the tablet")
    body = await (await ready.sync(tablet, cursor)).json()
    [note] = body["notes"]
    assert note["text"] == "seen on the tablet" and "keys" not in note
