"""Read-modify-write on a store record with optimistic concurrency, bounded retries."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from control.clinic.errors import Conflict, Missing
from control.store import Record, Store, VersionConflict

MAX_ATTEMPTS = 8

# A change receives the current record and returns (data, claims, indexes) to write.
Change = Callable[[Record], tuple[dict[str, Any], tuple[str, ...], Mapping[str, float]]]


async def mutate(store: Store, kind: str, id: str, change: Change, *, what: str) -> Record:
    """Apply ``change`` to the newest version; ClinicError raised by ``change`` propagates."""
    for _ in range(MAX_ATTEMPTS):
        rec = await store.get(kind, id)
        if rec is None:
            raise Missing(f"{what} {id} not found")
        data, claims, indexes = change(rec)
        try:
            return await store.update(
                kind, id, data, expect_version=rec.version, claims=claims, indexes=indexes
            )
        except VersionConflict:
            continue
    raise Conflict(f"{what} {id} is changing too often; try again")
