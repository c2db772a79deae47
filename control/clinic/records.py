"""Read-modify-write on a store record with optimistic concurrency, bounded retries."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from control.clinic.errors import Conflict, Missing
from control.store import AlreadyExists, Record, Store, VersionConflict

MAX_ATTEMPTS = 8

Write = tuple[dict[str, Any], tuple[str, ...], Mapping[str, float]]
# A change receives the current record and returns (data, claims, indexes) to write.
Change = Callable[[Record], Write]
# Like a change, but also called with None when there is no record yet; None leaves it be.
Make = Callable[[Record | None], Write | None]


async def upsert(
    store: Store, kind: str, id: str, make: Make, *, what: str, sequenced: str | None = None
) -> tuple[Record | None, bool]:
    """Create the record from ``make(None)`` or replace it with ``make(current)``, reading
    again when another writer came first. Returns (the record as stored, whether this call
    wrote it). ClinicError raised by ``make`` and UniqueConflict propagate; Conflict after
    MAX_ATTEMPTS lost races."""
    for _ in range(MAX_ATTEMPTS):
        rec = await store.get(kind, id)
        wanted = make(rec)
        if wanted is None:
            return rec, False
        data, claims, indexes = wanted
        try:
            if rec is None:
                written = await store.create(
                    kind, id, data, claims=claims, indexes=indexes, sequenced=sequenced
                )
            else:
                written = await store.update(
                    kind, id, data, expect_version=rec.version, claims=claims, indexes=indexes,
                    sequenced=sequenced,
                )  # fmt: skip
        except (AlreadyExists, VersionConflict):
            continue
        return written, True
    raise Conflict(f"{what} {id} is changing too often; try again")


async def mutate(store: Store, kind: str, id: str, change: Change, *, what: str) -> Record:
    """Apply ``change`` to the newest version; ClinicError raised by ``change`` propagates."""

    def make(rec: Record | None) -> Write:
        if rec is None:
            raise Missing(f"{what} {id} not found")
        return change(rec)

    rec, _ = await upsert(store, kind, id, make, what=what)
    assert rec is not None
    return rec
