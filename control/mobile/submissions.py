"""What staff wrote in the app (a preliminary note saved, a stock scan), each landing exactly once
and reaching the clinic software twice over: as a signed webhook through the notify outbox
(settings ``mobile.webhook_url``) and in a pull listing it acknowledges.

Exactly once: the device makes an idempotency key per write and repeats the write with the same
key until it has an answer (the app keeps it in its IndexedDB outbox across closes and
restarts). The submission's id is derived from (organization, account, key), so a repeat finds
the first one and is answered with it; the same key with another body is refused. A submission
is recorded after the write it reports and before the answer, and queueing its webhook is
idempotent too (the message id derives from the submission id): a node that died between the
steps finishes them when the device repeats the request.

Record ``mobile_submission/<sub id>``: the event as the webhook and the pull API show it, plus
``request_hash`` and ``acked_at``; while unacknowledged it sits in ``mobile:pending:<org>``,
written sequenced so the pull API lists submissions in the order they landed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from config.settings import Settings
from control.clinic.accounts import Staff
from control.clinic.records import Write, upsert
from control.mobile.devices import Device
from control.mobile.errors import KeyReused
from control.notify import queue_webhook
from control.store import AlreadyExists, Record, Store
from control.times import iso_at

KIND = "mobile_submission"
PRIVATE = ("request_hash", "acked_at")


@dataclass(frozen=True, slots=True)
class Writer:
    """Who is writing: the signed-in device and its account."""

    staff: Staff
    device: Device

    @property
    def org_id(self) -> str:
        return self.staff.org_id

    def author(self) -> dict[str, str]:
        return {
            "staff_id": self.staff.id,
            "staff_name": self.staff.display_name,
            "device_id": self.device.id,
            "device_name": self.device.name,
        }


def submission_id(org_id: str, staff_id: str, key: str) -> str:
    return "sub_" + hashlib.sha256(f"{org_id}\0{staff_id}\0{key}".encode()).hexdigest()[:32]


def pending_index(org_id: str) -> str:
    return f"mobile:pending:{org_id}"


def request_hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def public(sub: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sub.items() if k not in PRIVATE}


# (type, the event's payload such as {"note": {...}}): what a first write produces
Produce = Callable[[], Awaitable[tuple[str, dict[str, Any]]]]


async def submit(
    store: Store,
    settings: Settings,
    writer: Writer,
    key: str,
    body_hash: str,
    produce: Produce,
    *,
    now: float,
) -> tuple[dict[str, Any], bool]:
    """(the submission, True if this call made it). A repeat of ``key`` with the same
    ``body_hash`` gets the first submission without calling ``produce``; with another body,
    KeyReused (409). ``produce`` validates and writes, raising ClinicError to refuse."""
    sub_id = submission_id(writer.org_id, writer.staff.id, key)
    rec = await store.get(KIND, sub_id)
    if rec is None:
        type_, payload = await produce()
        sub = {
            "id": sub_id,
            "type": type_,
            "org_id": writer.org_id,
            "created_at": iso_at(now),
            "staff": {"id": writer.staff.id, "display_name": writer.staff.display_name},
            "device": {"id": writer.device.id, "name": writer.device.name},
            **payload,
            "request_hash": body_hash,
            "acked_at": None,
        }
        try:
            rec = await store.create(KIND, sub_id, sub, sequenced=pending_index(writer.org_id))
            created = True
        except AlreadyExists:  # the same key raced in from a retry: the first one stands
            rec = await store.get(KIND, sub_id)
            assert rec is not None
            created = False
    else:
        created = False
    if rec.data["request_hash"] != body_hash:
        raise KeyReused(
            "idempotency_key: this key was used for a different write; make a new key per write",
            field="idempotency_key",
        )
    if settings.mobile.webhook_url:
        await queue_webhook(store, settings.mobile.webhook_url, writer.org_id, public(rec.data))
    return public(rec.data), created


async def pending(store: Store, org_id: str, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """The oldest ``limit`` unacknowledged submissions, and whether more wait."""
    recs = await store.range(pending_index(org_id), limit=limit + 1)
    return [public(r.data) for r in recs[:limit]], len(recs) > limit


async def acknowledge(
    store: Store, org_id: str, ids: list[str], *, now: float
) -> tuple[list[str], list[str]]:
    """Take submissions off the pending list (again is fine): (acknowledged, unknown ids)."""
    done, unknown = [], []
    for sub_id in dict.fromkeys(ids):
        rec = await store.get(KIND, sub_id)
        if rec is None or rec.data["org_id"] != org_id:
            unknown.append(sub_id)
            continue

        def make(rec: Record | None) -> Write | None:
            if rec is None or rec.data["acked_at"] is not None:
                return None
            return {**rec.data, "acked_at": now}, (), {}

        await upsert(store, KIND, sub_id, make, what="submission")
        done.append(sub_id)
    return done, unknown
