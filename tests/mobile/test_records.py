"""What clinic software pushes: idempotent upserts on its own ids, references checked, GTINs
validated, all in the OpenAPI document (both stores)."""

from __future__ import annotations

import pytest

from control.mobile.feed import feed_index

from .helpers import API, Clinic, problem

CLIENT = {"name": "Maija Virtanen", "phone": "+358401234567", "email": "maija@example.com"}


async def test_put_creates_then_replaces_and_the_same_body_changes_nothing(clinic: Clinic):
    store, feed = clinic.store, feed_index(clinic.org["id"])
    resp = await clinic.put("clients", "c-1", CLIENT, 201)
    body = await resp.json()
    assert body["id"] == "c-1" and body["name"] == "Maija Virtanen" and body["address"] == ""
    number = await store.sequence(feed)
    again = await clinic.put("clients", "c-1", CLIENT, 200)
    assert await again.json() == body
    assert await store.sequence(feed) == number  # no write: devices have nothing new to fetch
    changed = await clinic.put("clients", "c-1", {**CLIENT, "address": "Kallio 1"}, 200)
    assert (await changed.json())["address"] == "Kallio 1"
    assert await store.sequence(feed) == number + 1


async def test_references_must_exist(clinic: Clinic):
    resp = await clinic.put("patients", "p-1", {"client_id": "nobody", "name": "Musti"}, 422)
    await problem(resp, 422, "unknown-reference", "client_id")
    await clinic.family(1, history=0)
    entry = {"patient_id": "ghost", "at": "2026-11-01T09:00:00+02:00", "text": "x"}
    await problem(await clinic.put("history", "h-1", entry, 422), 422, field="patient_id")
    consult = {"patient_id": "ghost", "started_at": "2026-11-01T09:00:00Z"}
    await problem(await clinic.put("consultations", "k-1", consult, 422), 422, field="patient_id")
    resp = await clinic.put("history", "h-1", {**entry, "patient_id": "p1"}, 201)
    assert (await resp.json())["at"] == "2026-11-01T07:00:00Z"  # stored in UTC


@pytest.mark.parametrize(
    "gtin, ok",
    [
        ("6414893012349", True),  # EAN-13
        ("96385074", True),  # EAN-8
        ("036000291452", True),  # UPC-A
        ("10614141000415", True),  # GTIN-14
        ("6414893012343", False),  # wrong check digit
        ("641489301234", False),  # 12 digits: a UPC-A with a wrong check digit
        ("64148930123a", False),
        ("1234567", False),
    ],
)
async def test_stock_items_need_a_valid_gtin(clinic: Clinic, gtin, ok):
    body = {"gtin": gtin, "name": "Meloxicam 1.5 mg/ml"}
    resp = await clinic.put("stock", "s-1", body, 201 if ok else 422)
    if ok:
        assert (await resp.json())["unit"] == "pcs"
    else:
        await problem(resp, 422, "invalid-input", "gtin")


async def test_one_stock_item_per_barcode(clinic: Clinic):
    await clinic.put("stock", "s-1", {"gtin": "6414893012349", "name": "Meloxicam"}, 201)
    # The same product printed as GTIN-14 is the same barcode.
    resp = await clinic.put("stock", "s-2", {"gtin": "06414893012349", "name": "Copy"}, 409)
    await problem(resp, 409, "conflict", "gtin")


async def test_bad_bodies_name_the_field(clinic: Clinic):
    resp = await clinic.put("clients", "c-1", {"name": "", "phone": "0401234567"}, 422)
    body = await problem(resp, 422, "invalid-input")
    assert {e["field"] for e in body["errors"]} == {"name", "phone"}
    resp = await clinic.put("clients", "c-1", {**CLIENT, "extra": 1}, 422)
    await problem(resp, 422, field="extra")
    resp = await clinic.client.put(f"{API}/mobile/clients/c-1", json=CLIENT)
    await problem(resp, 401)


@pytest.mark.parametrize("at", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"])
async def test_times_whose_utc_is_out_of_range_are_refused(clinic: Clinic, at):
    # Valid RFC 3339, but in UTC before year 1 or after 9999: writing it back was a 500.
    await clinic.family(1, history=0)
    entry = {"patient_id": "p1", "at": at}
    await problem(await clinic.put("history", "h-1", entry, 422), 422, field="at")
    consult = {"patient_id": "p1", "started_at": "2026-11-01T09:00:00Z",
               "notes": [{"at": at, "text": "x"}]}  # fmt: skip
    await problem(await clinic.put("consultations", "k-1", consult, 422), 422, field="notes.0.at")
    await clinic.put("history", "h-1", {**entry, "at": "0002-01-01T00:00:00Z"}, 201)


async def test_the_mobile_api_is_in_the_openapi_document(clinic: Clinic):
    doc = await (await clinic.client.get(f"{API}/openapi.json")).json()
    put = doc["paths"]["/api/v1/mobile/stock/{id}"]["put"]
    assert put["security"] == [{"apiKey": []}] and "409" in put["responses"]
    assert doc["components"]["schemas"]["StockItemIn"]["properties"]["gtin"]["maxLength"] == 14
    sync = doc["paths"]["/api/v1/mobile/app/sync"]["get"]
    assert sync["security"] == [{"mobileDevice": []}] and "304" in sync["responses"]
    note = doc["components"]["schemas"]["NoteBody"]["properties"]
    assert note["text"]["maxLength"] == 4000
    assert (
        doc["components"]["schemas"]["ScanBody"]["properties"]["quantity"]["exclusiveMinimum"] == 0
    )
