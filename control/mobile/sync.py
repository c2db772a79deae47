"""What a device holds: the appointments of each department's three days (window.py), their
clients and patients, each patient's medical history (the latest HISTORY_PER_PATIENT entries),
recent consultations (the latest RECENT_CONSULTATIONS), the staff's preliminary notes, and the
organization's stock items for the scan screen.

Delta sync over the organization's change feed (feed.py): the answer carries a cursor
``<window signature>.<feed number>``. Given it back, the server answers 304 with no body when
the feed has not moved, and otherwise only what changed since: a changed appointment in the
window with its patient's whole bundle, one that left it under ``removed``, and changed
patients, clients, history, consultations and notes that appointments in the window refer to.
A cursor from other windows (a department's day turned), from the future or more than
DELTA_MAX changes behind gets a full sync, which replaces what the device holds.

The feed number is read before anything else, so a write racing a full sync is either in it or
after its cursor (then sent again in the next delta: devices upsert by id).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from control import appointments, departments
from control.bodies import is_whole_number
from control.mobile import notes, records
from control.mobile.feed import feed_index
from control.mobile.window import Window, signature, window_of
from control.store import Record, Store
from control.times import epoch, iso_at

# Bump when the answer's shape changes: every device's next sync is then a full one.
SYNC_VERSION = "1"
HISTORY_PER_PATIENT = 100
RECENT_CONSULTATIONS = 5
NOTES_PER_PATIENT = 50
DELTA_MAX = 2000
PAGE = 500


@dataclass
class Payload:
    """The lists of one answer, each keyed by id so a record sent twice is listed once."""

    appointments: dict[str, dict[str, Any]] = field(default_factory=dict)
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)
    patients: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: dict[str, dict[str, Any]] = field(default_factory=dict)
    consultations: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: dict[str, dict[str, Any]] = field(default_factory=dict)
    stock: dict[str, dict[str, Any]] = field(default_factory=dict)
    removed: dict[str, list[str]] = field(
        default_factory=lambda: {"appointments": [], "history": [], "consultations": []}
    )

    @staticmethod
    def add(into: dict[str, dict[str, Any]], items: Iterable[dict[str, Any]]) -> None:
        for item in items:
            into[item["id"]] = item

    def answer(self, cursor: str, full: bool, windows: list[Window], now: float) -> dict[str, Any]:
        return {
            "cursor": cursor,
            "full": full,
            "server_time": iso_at(now),
            "departments": [w.public() for w in windows],
            "appointments": sorted(self.appointments.values(), key=lambda a: a["start"]),
            "clients": list(self.clients.values()),
            "patients": list(self.patients.values()),
            "history": list(self.history.values()),
            "consultations": list(self.consultations.values()),
            "notes": [notes.public(n) for n in self.notes.values()],
            "stock": list(self.stock.values()),
            "removed": self.removed,
        }


def appointment_view(data: dict[str, Any]) -> dict[str, Any]:
    """What the app shows of a stored appointment (no PIN, no client link)."""
    client, patient, tele = data["client"], data["patient"], data["telemedicine"]
    live = tele and data["status"] == "scheduled"
    return {
        "id": data["id"],
        "department_id": data["department_id"],
        "start": data["start"],
        "end": data["end"],
        "status": data["status"],
        "provider": {"id": data["provider"]["id"], "name": data["provider"]["name"]},
        "client": {
            "id": client.get("id"),
            "name": client["name"],
            "phone": client["phone"],
            "email": client["email"],
        },
        "patient": {
            "id": patient.get("id"),
            "name": patient["name"],
            "species": patient["species"],
        },
        "host_url": tele["host_url"] if live else None,
    }


def _cursor(sig: str, number: int) -> str:
    return f"{sig}.{number}"


def _parse(cursor: str | None) -> tuple[str, int] | None:
    sig, _, number = (cursor or "").partition(".")
    return (sig, int(number)) if is_whole_number(number) else None


def _in_window(data: dict[str, Any], windows: dict[str, Window]) -> bool:
    w = windows.get(data["department_id"])
    return w is not None and w.holds(epoch(data["start"]))


async def _window_appointments(
    store: Store, org_id: str, windows: dict[str, Window]
) -> list[dict[str, Any]]:
    if not windows:
        return []
    lo = min(w.start for w in windows.values())
    hi = max(w.end for w in windows.values())
    out: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = await store.range(appointments.org_index(org_id), lo, hi, limit=PAGE, offset=offset)
        out.extend(r.data for r in page if _in_window(r.data, windows))
        offset += len(page)
        if len(page) < PAGE:
            return out


async def _records(
    store: Store, kind: records.Kind, org_id: str, ids: Iterable[str]
) -> list[dict[str, Any]]:
    found = await asyncio.gather(*(records.get(store, kind, org_id, i) for i in dict.fromkeys(ids)))
    return [r for r in found if r is not None]


async def _bundle(store: Store, org_id: str, patient_ids: Iterable[str], out: Payload) -> None:
    """Patients with their client, history, recent consultations and notes."""
    ids = list(dict.fromkeys(patient_ids))
    patients = await _records(store, records.PATIENT, org_id, ids)
    Payload.add(out.patients, patients)
    Payload.add(
        out.clients,
        await _records(store, records.CLIENT, org_id, (p["client_id"] for p in patients)),
    )
    per_patient = await asyncio.gather(
        *(
            part
            for pid in ids
            for part in (
                records.latest_of(store, records.history_index(org_id, pid), HISTORY_PER_PATIENT),
                records.latest_of(
                    store, records.consultations_index(org_id, pid), RECENT_CONSULTATIONS
                ),
                records.latest_of(store, notes.notes_index(org_id, pid), NOTES_PER_PATIENT),
            )
        )
    )
    for k in range(0, len(per_patient), 3):
        Payload.add(out.history, per_patient[k])
        Payload.add(out.consultations, per_patient[k + 1])
        Payload.add(out.notes, per_patient[k + 2])


def _parties(appts: Iterable[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The patient and client ids appointments name (the clinic's own ids)."""
    appts = list(appts)
    patients = [a["patient"]["id"] for a in appts if a["patient"].get("id")]
    clients = [a["client"]["id"] for a in appts if a["client"].get("id")]
    return patients, clients


async def _full(store: Store, org_id: str, windows: dict[str, Window]) -> Payload:
    out = Payload()
    appts = await _window_appointments(store, org_id, windows)
    Payload.add(out.appointments, map(appointment_view, appts))
    patient_ids, client_ids = _parties(appts)
    await _bundle(store, org_id, patient_ids, out)
    Payload.add(out.clients, await _records(store, records.CLIENT, org_id, client_ids))
    Payload.add(out.stock, await records.every(store, records.stock_index(org_id)))
    return out


async def _changes(store: Store, org_id: str, after: int) -> list[Record] | None:
    """Records written since feed number ``after``, or None when over DELTA_MAX."""
    feed = feed_index(org_id)
    out: list[Record] = []
    lo = after + 1
    while True:
        page = await store.range(feed, lo, limit=PAGE)
        out.extend(page)
        if len(out) > DELTA_MAX:
            return None
        if len(page) < PAGE:
            return out
        lo = int(page[-1].indexes[feed]) + 1


async def _delta(
    store: Store, org_id: str, windows: dict[str, Window], changes: list[Record]
) -> Payload:
    out = Payload()
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for rec in changes:
        by_kind.setdefault(rec.kind, []).append(rec.data)
    changed_appts = by_kind.pop(appointments.KIND, [])
    current = [a for a in changed_appts if _in_window(a, windows)]
    out.removed["appointments"] = [a["id"] for a in changed_appts if not _in_window(a, windows)]
    Payload.add(out.appointments, map(appointment_view, current))
    patient_ids, client_ids = _parties(current)
    await _bundle(store, org_id, patient_ids, out)
    Payload.add(out.clients, await _records(store, records.CLIENT, org_id, client_ids))
    Payload.add(out.stock, by_kind.pop(records.STOCK.store_kind, []))
    if not by_kind:
        return out
    # Other changes count if an appointment in the window refers to them.
    patients, clients = _parties(await _window_appointments(store, org_id, windows))
    patient_set = set(patients)
    client_set = set(clients)
    changed_clients = by_kind.get(records.CLIENT.store_kind, [])
    if any(c["id"] not in client_set for c in changed_clients):
        # A client may be known only as a patient's owner.
        owners = await _records(store, records.PATIENT, org_id, patient_set)
        client_set.update(p["client_id"] for p in owners)
    for p in by_kind.get(records.PATIENT.store_kind, []):
        if p["id"] in patient_set:
            out.patients[p["id"]] = p
            client_set.add(p["client_id"])
            Payload.add(
                out.clients, await _records(store, records.CLIENT, org_id, [p["client_id"]])
            )
    Payload.add(out.clients, (c for c in changed_clients if c["id"] in client_set))
    for kind, into, gone in (
        (records.HISTORY.store_kind, out.history, out.removed["history"]),
        (records.CONSULTATION.store_kind, out.consultations, out.removed["consultations"]),
        (notes.KIND, out.notes, None),
    ):
        for item in by_kind.get(kind, []):
            if item["patient_id"] in patient_set:
                into[item["id"]] = item
            elif gone is not None:
                gone.append(item["id"])
    return out


async def sync(
    store: Store, org_id: str, cursor: str | None, *, now: float
) -> dict[str, Any] | None:
    """The answer for a device holding ``cursor`` (None: it holds nothing), or None when
    nothing changed since (the API answers 304)."""
    depts = await departments.list_departments(store, org_id)
    windows = {w.department_id: w for w in (window_of(d, now) for d in depts)}
    sig = signature(list(windows.values()), SYNC_VERSION)
    head = await store.sequence(feed_index(org_id))
    held = _parse(cursor)
    if held is not None and held[0] == sig and held[1] <= head:
        if held[1] == head:
            return None
        changes = await _changes(store, org_id, held[1])
        if changes is not None:
            number = max([head, *(int(r.indexes[feed_index(org_id)]) for r in changes)])
            payload = await _delta(store, org_id, windows, changes)
            return payload.answer(_cursor(sig, number), False, list(windows.values()), now)
    payload = await _full(store, org_id, windows)
    return payload.answer(_cursor(sig, head), True, list(windows.values()), now)
