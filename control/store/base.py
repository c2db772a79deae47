"""The store interface: versioned JSON records with unique claims and sorted indexes.

Both backends (SQLite for one node, Redis for several) implement exactly this, and one
conformance suite (tests/store/) runs against both. Domain code never talks SQL or Redis.

Model:
- A record is ``(kind, id) -> data`` (a JSON object) with a ``version`` that starts at 1
  and grows by one on every successful write (optimistic concurrency).
- A record may hold *unique claims*: strings such as ``"pin:123456789"`` or
  ``"ext:org1:A-77"`` that no other live record holds. Writing a record replaces its claims
  atomically with the record: claims it no longer lists are released, new ones are taken or
  the whole write fails with UniqueConflict. ``get_by_claim`` finds the holder.
- A record may sit in *indexes*: ``{"appt:org1": 1732370000.0, ...}`` maps an index name to
  the record's score in it. Writing a record replaces its index memberships atomically.
  ``range`` lists an index's records by score (then id), ``lo <= score <= hi``.
- A write may be *sequenced*: ``sequenced="feed:org1"`` also puts the record in the index
  ``feed:org1`` scored by the next number of the sequence of that name (1, 2, 3, ...), taken
  inside the same atomic write. Numbers are given out in commit order, so a reader that has
  seen number n finds every later write with ``range("feed:org1", n + 1)``: a change feed in
  which each record sits at its latest sequenced write. ``sequence(name)`` is the last number
  given out; deleting records never lowers it.
- Every write is atomic and durable when the call returns: SQLite commits with WAL and
  synchronous=FULL, Redis runs one Lua script per write on an AOF (appendfsync always) server.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class StoreError(Exception):
    """Base class of store failures that callers handle."""


class NotFound(StoreError):
    def __init__(self, kind: str, id: str) -> None:
        super().__init__(f"{kind} {id} not found")
        self.kind, self.id = kind, id


class AlreadyExists(StoreError):
    def __init__(self, kind: str, id: str) -> None:
        super().__init__(f"{kind} {id} already exists")
        self.kind, self.id = kind, id


class VersionConflict(StoreError):
    """The record changed since it was read: read again and retry."""

    def __init__(self, kind: str, id: str, expected: int, actual: int | None) -> None:
        super().__init__(f"{kind} {id}: expected version {expected}, found {actual}")
        self.kind, self.id, self.expected, self.actual = kind, id, expected, actual


class UniqueConflict(StoreError):
    """Another record holds a claim this write asked for."""

    def __init__(self, claim: str, holder_kind: str, holder_id: str) -> None:
        super().__init__(f"claim {claim!r} is held by {holder_kind} {holder_id}")
        self.claim, self.holder_kind, self.holder_id = claim, holder_kind, holder_id


@dataclass(frozen=True, slots=True)
class Record:
    kind: str
    id: str
    data: dict[str, Any]
    version: int
    claims: tuple[str, ...] = ()
    indexes: Mapping[str, float] = field(default_factory=dict)


class Store(abc.ABC):
    """Async record store. Implementations: SqliteStore, RedisStore."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect / create schema. Called once before use."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def get(self, kind: str, id: str) -> Record | None: ...

    @abc.abstractmethod
    async def get_by_claim(self, claim: str) -> Record | None:
        """The record currently holding ``claim``, or None."""

    @abc.abstractmethod
    async def create(
        self,
        kind: str,
        id: str,
        data: dict[str, Any],
        *,
        claims: Sequence[str] = (),
        indexes: Mapping[str, float] | None = None,
        sequenced: str | None = None,
    ) -> Record:
        """Insert a new record (version 1). AlreadyExists / UniqueConflict leave nothing written
        (and take no number from the ``sequenced`` sequence)."""

    @abc.abstractmethod
    async def update(
        self,
        kind: str,
        id: str,
        data: dict[str, Any],
        *,
        expect_version: int,
        claims: Sequence[str] = (),
        indexes: Mapping[str, float] | None = None,
        sequenced: str | None = None,
    ) -> Record:
        """Replace data, claims and indexes if the stored version is ``expect_version``.

        NotFound, VersionConflict or UniqueConflict leave the record as it was.
        """

    @abc.abstractmethod
    async def delete(self, kind: str, id: str, *, expect_version: int | None = None) -> None:
        """Remove the record with its claims and index entries (NotFound if absent)."""

    @abc.abstractmethod
    async def range(
        self,
        index: str,
        lo: float = float("-inf"),
        hi: float = float("inf"),
        *,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Record]:
        """Records in ``index`` with lo <= score <= hi, ordered by (score, kind, id)."""

    async def every(self, index: str, *, page: int = 500) -> list[Record]:
        """Every record of ``index`` in range's order, read ``page`` at a time (one range call
        cuts a list at its limit: lists of staff, stations and departments had been cut)."""
        out: list[Record] = []
        while True:
            got = await self.range(index, limit=page, offset=len(out))
            out.extend(got)
            if len(got) < page:
                return out

    @abc.abstractmethod
    async def sequence(self, name: str) -> int:
        """The last number the sequence ``name`` gave to a sequenced write (0 before any)."""

    @abc.abstractmethod
    async def count(
        self, index: str, lo: float = float("-inf"), hi: float = float("inf")
    ) -> int: ...
