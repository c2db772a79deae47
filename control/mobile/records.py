"""What clinic software pushes for the staff app: clients, patients, medical history entries,
consultations with their notes, stock items. ``PUT /mobile/<kind>/{id}`` creates or replaces
one by the clinic's own id; the same body again changes nothing (no write, no change in the
feed), so pushing a whole day again is cheap for every device.

Record ``mobile_<kind>/<org id>:<clinic id>`` holds the API view (``id``, the fields,
``updated_at``), written ``sequenced`` into the organization's change feed (control/mobile/
feed.py). A patient names its client and history entries and consultations name their
patient, which must have been pushed before (otherwise 422 naming the field). Indexes: history
per patient by ``at`` (``mobile:history:<org>:<patient>``), consultations per patient by
``started_at``, stock per organization; the claim ``mobile-gtin:<org>:<GTIN-14>`` keeps one
stock item per barcode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from control.clinic.errors import Conflict
from control.clinic.records import Write, upsert
from control.mobile import gtin
from control.mobile.errors import UnknownReference
from control.mobile.feed import feed_index
from control.store import Record, Store, UniqueConflict
from control.times import epoch, iso_at


@dataclass(frozen=True)
class Kind:
    name: str  # as said in messages: "patient"
    store_kind: str
    parent_field: str | None = None  # the field naming the record this one belongs to
    parent: Kind | None = None
    # (org id, data) -> index memberships / unique claims besides the feed
    indexes: Callable[[str, dict[str, Any]], dict[str, float]] = lambda org, data: {}
    claims: Callable[[str, dict[str, Any]], tuple[str, ...]] = lambda org, data: ()


def history_index(org_id: str, patient_id: str) -> str:
    return f"mobile:history:{org_id}:{patient_id}"


def consultations_index(org_id: str, patient_id: str) -> str:
    return f"mobile:consultations:{org_id}:{patient_id}"


def stock_index(org_id: str) -> str:
    return f"mobile:stock:{org_id}"


def gtin_claim(org_id: str, code: str) -> str:
    return f"mobile-gtin:{org_id}:{gtin.normalize(code)}"


CLIENT = Kind("client", "mobile_client")
PATIENT = Kind("patient", "mobile_patient", "client_id", CLIENT)
HISTORY = Kind(
    "history entry", "mobile_history", "patient_id", PATIENT,
    indexes=lambda org, d: {history_index(org, d["patient_id"]): epoch(d["at"])},
)  # fmt: skip
CONSULTATION = Kind(
    "consultation", "mobile_consultation", "patient_id", PATIENT,
    indexes=lambda org, d: {consultations_index(org, d["patient_id"]): epoch(d["started_at"])},
)  # fmt: skip
STOCK = Kind(
    "stock item", "mobile_stock",
    indexes=lambda org, d: {stock_index(org): 0.0},
    claims=lambda org, d: (gtin_claim(org, d["gtin"]),),
)  # fmt: skip


def record_id(org_id: str, id: str) -> str:
    return f"{org_id}:{id}"


async def get(store: Store, kind: Kind, org_id: str, id: str) -> dict[str, Any] | None:
    rec = await store.get(kind.store_kind, record_id(org_id, id))
    return None if rec is None else rec.data


async def require(store: Store, kind: Kind, org_id: str, id: str, *, field: str) -> dict[str, Any]:
    """The org's record, or UnknownReference (422) naming ``field``."""
    data = await get(store, kind, org_id, id)
    if data is None:
        raise UnknownReference(f"{field}: no {kind.name} {id!r} in this organization", field=field)
    return data


async def put(
    store: Store, kind: Kind, org_id: str, id: str, fields: dict[str, Any], *, now: float
) -> tuple[dict[str, Any], bool]:
    """Create or replace the record with ``fields`` (the body as JSON): (its view, created).

    UnknownReference when the parent it names was never pushed; Conflict naming ``gtin`` when
    another stock item has that barcode.
    """
    if kind.parent is not None and kind.parent_field is not None:
        await require(
            store, kind.parent, org_id, fields[kind.parent_field], field=kind.parent_field
        )

    def make(rec: Record | None) -> Write | None:
        if rec is not None and all(rec.data.get(k) == v for k, v in fields.items()):
            return None  # pushed again unchanged
        data = {"id": id, **fields, "updated_at": iso_at(now)}
        return data, kind.claims(org_id, data), kind.indexes(org_id, data)

    try:
        rec, wrote = await upsert(
            store, kind.store_kind, record_id(org_id, id), make, what=kind.name,
            sequenced=feed_index(org_id),
        )  # fmt: skip
    except UniqueConflict as exc:
        raise Conflict(
            f"gtin: another stock item has this barcode ({exc.holder_id.split(':', 1)[1]})",
            field="gtin",
        ) from exc
    assert rec is not None
    return rec.data, wrote and rec.version == 1


async def latest_of(store: Store, index: str, latest: int) -> list[dict[str, Any]]:
    """The last ``latest`` records of ``index`` by score, oldest first."""
    total = await store.count(index)
    recs = await store.range(index, limit=latest, offset=max(total - latest, 0))
    return [r.data for r in recs]


async def every(store: Store, index: str) -> list[dict[str, Any]]:
    return [r.data for r in await store.every(index)]


async def stock_by_gtin(store: Store, org_id: str, code: str) -> dict[str, Any] | None:
    rec = await store.get_by_claim(gtin_claim(org_id, code))
    return None if rec is None or rec.kind != STOCK.store_kind else rec.data
