"""The Store on one SQLite file (one node).

One connection lives on one dedicated thread, so every call is serialized there and the event
loop never blocks on disk. WAL with synchronous=FULL: a write is on disk when its call returns.
Each write is one ``BEGIN IMMEDIATE`` transaction (taking the write lock before reading, so
other processes on the same file wait instead of failing mid-transaction).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from control.store import codec
from control.store.base import (
    AlreadyExists,
    NotFound,
    Record,
    Store,
    StoreError,
    UniqueConflict,
    VersionConflict,
)

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
    data TEXT NOT NULL, claims TEXT NOT NULL, indexes TEXT NOT NULL,
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS claims (
    claim TEXT PRIMARY KEY, kind TEXT NOT NULL, id TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS claims_by_holder ON claims (kind, id);
CREATE TABLE IF NOT EXISTS entries (
    name TEXT NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL, score REAL NOT NULL,
    PRIMARY KEY (name, kind, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_by_score ON entries (name, score, kind, id);
CREATE INDEX IF NOT EXISTS entries_by_holder ON entries (kind, id);
CREATE TABLE IF NOT EXISTS sequences (
    name TEXT PRIMARY KEY, value INTEGER NOT NULL
) WITHOUT ROWID;
"""

RECORD_COLUMNS = "r.kind, r.id, r.data, r.version, r.claims, r.indexes"

# Other processes may hold the write lock (tests, a second worker); wait rather than fail.
BUSY_TIMEOUT_SECONDS = 30.0


class SqliteStore(Store):
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None

    # -- plumbing -------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise StoreError("SqliteStore is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @property
    def db(self) -> sqlite3.Connection:
        assert self._db is not None
        return self._db

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:  # a failed COMMIT may leave it open
                self.db.execute("ROLLBACK")
            raise

    def _connect(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_SECONDS)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(SCHEMA)
        except BaseException:
            db.close()
            raise
        self._db = db

    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        try:
            await self._run(self._connect)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    async def close(self) -> None:
        if self._executor is None:
            return
        if self._db is not None:
            await self._run(self.db.close)
            self._db = None
        self._executor.shutdown(wait=False)
        self._executor = None

    # -- reads ----------------------------------------------------------------------------

    def _get(self, kind: str, id: str) -> Record | None:
        row = self.db.execute(
            f"SELECT {RECORD_COLUMNS} FROM records r WHERE kind = ? AND id = ?", (kind, id)
        ).fetchone()
        return codec.decode(*row) if row else None

    async def get(self, kind: str, id: str) -> Record | None:
        codec.check_key(kind, id)
        return await self._run(self._get, kind, id)

    def _get_by_claim(self, claim: str) -> Record | None:
        row = self.db.execute(
            f"SELECT {RECORD_COLUMNS} FROM claims c JOIN records r USING (kind, id) "
            "WHERE c.claim = ?",
            (claim,),
        ).fetchone()
        return codec.decode(*row) if row else None

    async def get_by_claim(self, claim: str) -> Record | None:
        return await self._run(self._get_by_claim, claim)

    def _range(self, index: str, lo: float, hi: float, limit: int, offset: int) -> list[Record]:
        rows = self.db.execute(
            f"SELECT {RECORD_COLUMNS} FROM entries e JOIN records r USING (kind, id) "
            "WHERE e.name = ? AND e.score >= ? AND e.score <= ? "
            "ORDER BY e.score, e.kind, e.id LIMIT ? OFFSET ?",
            (index, lo, hi, limit, offset),
        ).fetchall()
        return [codec.decode(*row) for row in rows]

    async def range(
        self,
        index: str,
        lo: float = float("-inf"),
        hi: float = float("inf"),
        *,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Record]:
        lo, hi = codec.check_bounds(lo, hi)
        codec.check_page(limit, offset)
        return await self._run(self._range, index, lo, hi, limit, offset)

    def _count(self, index: str, lo: float, hi: float) -> int:
        (n,) = self.db.execute(
            "SELECT COUNT(*) FROM entries WHERE name = ? AND score >= ? AND score <= ?",
            (index, lo, hi),
        ).fetchone()
        return int(n)

    async def count(self, index: str, lo: float = float("-inf"), hi: float = float("inf")) -> int:
        lo, hi = codec.check_bounds(lo, hi)
        return await self._run(self._count, index, lo, hi)

    def _sequence(self, name: str) -> int:
        row = self.db.execute("SELECT value FROM sequences WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    async def sequence(self, name: str) -> int:
        return await self._run(self._sequence, codec.check_sequence(name))

    # -- writes ---------------------------------------------------------------------------

    def _version(self, db: sqlite3.Connection, kind: str, id: str) -> int | None:
        row = db.execute(
            "SELECT version FROM records WHERE kind = ? AND id = ?", (kind, id)
        ).fetchone()
        return row[0] if row else None

    def _take(self, db: sqlite3.Connection, w: codec.Write) -> None:
        """Check the claims, then replace the record's claims and index entries with w's."""
        for claim in w.claims:
            row = db.execute("SELECT kind, id FROM claims WHERE claim = ?", (claim,)).fetchone()
            if row and tuple(row) != (w.kind, w.id):
                raise UniqueConflict(claim, row[0], row[1])
        self._drop(db, w.kind, w.id)
        db.executemany(
            "INSERT INTO claims (claim, kind, id) VALUES (?, ?, ?)",
            [(c, w.kind, w.id) for c in w.claims],
        )
        db.executemany(
            "INSERT INTO entries (name, kind, id, score) VALUES (?, ?, ?, ?)",
            [(name, w.kind, w.id, score) for name, score in w.indexes.items()],
        )

    def _numbered(self, db: sqlite3.Connection, w: codec.Write) -> codec.Write:
        """w with its sequenced index scored by the sequence's next number (inside the
        write's transaction: a failed write gives the number back with its rollback)."""
        if w.sequenced is None:
            return w
        (number,) = db.execute(
            "INSERT INTO sequences (name, value) VALUES (?, 1) "
            "ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
            (w.sequenced,),
        ).fetchone()
        return w.numbered(number)

    def _drop(self, db: sqlite3.Connection, kind: str, id: str) -> None:
        db.execute("DELETE FROM claims WHERE kind = ? AND id = ?", (kind, id))
        db.execute("DELETE FROM entries WHERE kind = ? AND id = ?", (kind, id))

    def _create(self, w: codec.Write) -> Record:
        with self._transaction() as db:
            if self._version(db, w.kind, w.id) is not None:
                raise AlreadyExists(w.kind, w.id)
            w = self._numbered(db, w)
            self._take(db, w)
            db.execute(
                "INSERT INTO records (kind, id, version, data, claims, indexes) "
                "VALUES (?, ?, 1, ?, ?, ?)",
                (w.kind, w.id, w.data, w.claims_json, w.indexes_json),
            )
        return codec.decode(w.kind, w.id, w.data, 1, w.claims_json, w.indexes_json)

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
        w = codec.prepare(kind, id, data, claims, indexes, sequenced)
        return await self._run(self._create, w)

    def _update(self, w: codec.Write, expect_version: int) -> Record:
        with self._transaction() as db:
            version = self._version(db, w.kind, w.id)
            if version is None:
                raise NotFound(w.kind, w.id)
            if version != expect_version:
                raise VersionConflict(w.kind, w.id, expect_version, version)
            w = self._numbered(db, w)
            self._take(db, w)
            db.execute(
                "UPDATE records SET version = ?, data = ?, claims = ?, indexes = ? "
                "WHERE kind = ? AND id = ?",
                (version + 1, w.data, w.claims_json, w.indexes_json, w.kind, w.id),
            )
        return codec.decode(w.kind, w.id, w.data, version + 1, w.claims_json, w.indexes_json)

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
        w = codec.prepare(kind, id, data, claims, indexes, sequenced)
        return await self._run(self._update, w, codec.check_version(expect_version))

    def _delete(self, kind: str, id: str, expect_version: int | None) -> None:
        with self._transaction() as db:
            version = self._version(db, kind, id)
            if version is None:
                raise NotFound(kind, id)
            if expect_version is not None and version != expect_version:
                raise VersionConflict(kind, id, expect_version, version)
            self._drop(db, kind, id)
            db.execute("DELETE FROM records WHERE kind = ? AND id = ?", (kind, id))

    async def delete(self, kind: str, id: str, *, expect_version: int | None = None) -> None:
        codec.check_key(kind, id)
        if expect_version is not None:
            codec.check_version(expect_version)
        await self._run(self._delete, kind, id, expect_version)
