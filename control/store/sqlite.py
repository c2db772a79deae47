"""The Store on one SQLite file (one node).

Writes: one connection on one dedicated writer thread, so the event loop never waits for the
disk. WAL with synchronous=FULL: a write is on disk when its call returns. Writes that queue
up while a commit is being made go into the next transaction together (group commit): one
``BEGIN IMMEDIATE`` (taking the write lock before reading, so other processes on the same file
wait instead of failing mid-transaction), each write in its own SAVEPOINT (a write that fails
is rolled back alone and raises to its own caller; the others see exactly what they would
have seen one after the other, in queue order), one COMMIT and so one fsync for the lot, and
only then is every caller answered. A failed COMMIT fails every write of the batch (nothing of
it was kept). Under concurrent load this turns N fsyncs into one; alone, a write costs what
it did.

Reads: point lookups (``get``, ``get_by_claim``) run at once on the loop thread, on a read
connection of their own: in WAL mode a reader never waits for the writer, and the pages are
memory-mapped, so a lookup by primary key costs microseconds - less than handing it to a
thread and back (the hop alone cost more than the query). Scans (``range``, ``count``) can
read many rows and stay on a reader thread. A read sees every write whose call has returned.
"""

from __future__ import annotations

import asyncio
import json
import queue
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
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
CREATE TABLE IF NOT EXISTS entries (
    name TEXT NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL, score REAL NOT NULL,
    PRIMARY KEY (name, kind, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_by_score ON entries (name, score, kind, id);
CREATE TABLE IF NOT EXISTS sequences (
    name TEXT PRIMARY KEY, value INTEGER NOT NULL
) WITHOUT ROWID;
-- A record's claims and index entries are dropped by their keys, which the record lists
-- (records.claims, records.indexes): indexes by holder only cost two more B-trees per write.
DROP INDEX IF EXISTS claims_by_holder;
DROP INDEX IF EXISTS entries_by_holder;
"""

RECORD_COLUMNS = "r.kind, r.id, r.data, r.version, r.claims, r.indexes"

# Other processes may hold the write lock (tests, a second worker); wait rather than fail.
BUSY_TIMEOUT_SECONDS = 30.0
# A lookup on the loop thread only waits in WAL's rare exclusive moments (recovery after a
# crash of another process); it must never stall the loop for long.
LOOKUP_BUSY_SECONDS = 1.0
MMAP_BYTES = 256 << 20
MAX_BATCH = 256  # writes per group commit

Write = tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future[Any]]


def _connect(path: str, timeout: float) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, timeout=timeout, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
        # Each write's SAVEPOINT keeps the pages it changes in a statement journal; on disk
        # that is a temporary file created, written and deleted per transaction (it was
        # half of what a group commit wrote). Memory is enough: it only serves rollbacks.
        db.execute("PRAGMA temp_store=MEMORY")
    except BaseException:
        db.close()
        raise
    return db


class SqliteStore(Store):
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._writes: queue.SimpleQueue[Write | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._scans: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None  # the writer thread's
        self._lookup: sqlite3.Connection | None = None  # the loop thread's
        self._scan_db: sqlite3.Connection | None = None  # the scan thread's
        self.commits = 0  # transactions committed (writes / commits = the batching achieved)
        self.writes = 0

    # -- plumbing -------------------------------------------------------------------------

    def _open(self) -> None:
        self._db = _connect(self.path, BUSY_TIMEOUT_SECONDS)
        self._db.executescript(SCHEMA)
        self._scan_db = _connect(self.path, BUSY_TIMEOUT_SECONDS)

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._scans = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-scan")
        try:
            await loop.run_in_executor(self._scans, self._open)
            self._lookup = _connect(self.path, LOOKUP_BUSY_SECONDS)
        except BaseException:
            await loop.run_in_executor(self._scans, self._close_threads)
            self._scans.shutdown(wait=False)
            self._scans = None
            raise
        self._writer = threading.Thread(target=self._write_loop, name="sqlite-writer", daemon=True)
        self._writer.start()

    def _close_threads(self) -> None:
        for db in (self._db, self._scan_db):
            if db is not None:
                db.close()
        self._db = self._scan_db = None

    async def close(self) -> None:
        if self._scans is None:
            return
        if self._writer is not None:
            self._writes.put(None)  # after every write already queued
            await asyncio.get_running_loop().run_in_executor(self._scans, self._writer.join)
            self._writer = None
        await asyncio.get_running_loop().run_in_executor(self._scans, self._close_threads)
        if self._lookup is not None:
            self._lookup.close()
            self._lookup = None
        self._scans.shutdown(wait=False)
        self._scans = None

    def _reader(self) -> sqlite3.Connection:
        if self._lookup is None:
            raise StoreError("SqliteStore is not open")
        return self._lookup

    async def _scan(self, fn: Callable[..., T], *args: Any) -> T:
        if self._scans is None:
            raise StoreError("SqliteStore is not open")
        return await asyncio.get_running_loop().run_in_executor(self._scans, fn, *args)

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(db, *args)`` in the next group commit; its result once that is on disk."""
        if self._writer is None:
            raise StoreError("SqliteStore is not open")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._writes.put((fn, args, future))
        return await future

    def _write_loop(self) -> None:
        assert self._db is not None
        db = self._db
        while True:
            first = self._writes.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    job = self._writes.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                batch.append(job)
            outcomes = self._commit(db, batch)
            # Each caller is answered on its own event loop (a store may serve several).
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, ...]]] = {}
            for outcome in outcomes:
                by_loop.setdefault(outcome[0].get_loop(), []).append(outcome)
            for loop, theirs in by_loop.items():
                try:
                    loop.call_soon_threadsafe(_settle, theirs)
                except RuntimeError:
                    pass  # that loop is closed: nobody is waiting there any more
            if stop:
                return

    def _commit(self, db: sqlite3.Connection, batch: list[Write]) -> list[tuple[Any, ...]]:
        """One transaction for the batch, one SAVEPOINT per write: (future, result, error)."""
        outcomes: list[tuple[Any, ...]] = []
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            return [(future, None, exc) for _, _, future in batch]
        try:
            for fn, args, future in batch:
                db.execute("SAVEPOINT w")
                try:
                    result = fn(db, *args)
                except Exception as exc:
                    db.execute("ROLLBACK TO w")
                    db.execute("RELEASE w")
                    outcomes.append((future, None, exc))
                else:
                    db.execute("RELEASE w")
                    outcomes.append((future, result, None))
            db.execute("COMMIT")
        except Exception as exc:
            if db.in_transaction:  # a failed COMMIT may leave it open
                db.execute("ROLLBACK")
            return [(future, None, exc) for _, _, future in batch]
        self.commits += 1
        self.writes += len(batch)
        return outcomes

    # -- reads ----------------------------------------------------------------------------

    @staticmethod
    def _get(db: sqlite3.Connection, kind: str, id: str) -> Record | None:
        row = db.execute(
            f"SELECT {RECORD_COLUMNS} FROM records r WHERE kind = ? AND id = ?", (kind, id)
        ).fetchone()
        return codec.decode(*row) if row else None

    async def get(self, kind: str, id: str) -> Record | None:
        codec.check_key(kind, id)
        return self._get(self._reader(), kind, id)

    async def get_by_claim(self, claim: str) -> Record | None:
        row = (
            self._reader()
            .execute(
                f"SELECT {RECORD_COLUMNS} FROM claims c JOIN records r USING (kind, id) "
                "WHERE c.claim = ?",
                (claim,),
            )
            .fetchone()
        )
        return codec.decode(*row) if row else None

    def _range(self, index: str, lo: float, hi: float, limit: int, offset: int) -> list[Record]:
        assert self._scan_db is not None
        rows = self._scan_db.execute(
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
        return await self._scan(self._range, index, lo, hi, limit, offset)

    def _count(self, index: str, lo: float, hi: float) -> int:
        assert self._scan_db is not None
        (n,) = self._scan_db.execute(
            "SELECT COUNT(*) FROM entries WHERE name = ? AND score >= ? AND score <= ?",
            (index, lo, hi),
        ).fetchone()
        return int(n)

    async def count(self, index: str, lo: float = float("-inf"), hi: float = float("inf")) -> int:
        lo, hi = codec.check_bounds(lo, hi)
        return await self._scan(self._count, index, lo, hi)

    async def sequence(self, name: str) -> int:
        codec.check_sequence(name)
        row = (
            self._reader().execute("SELECT value FROM sequences WHERE name = ?", (name,)).fetchone()
        )
        return int(row[0]) if row else 0

    # -- writes ---------------------------------------------------------------------------

    def _current(self, db: sqlite3.Connection, kind: str, id: str) -> tuple[int, str, str] | None:
        """(version, claims JSON, indexes JSON) of the stored record, None if there is none."""
        return db.execute(
            "SELECT version, claims, indexes FROM records WHERE kind = ? AND id = ?", (kind, id)
        ).fetchone()

    def _take(
        self, db: sqlite3.Connection, w: codec.Write, held_now: tuple[str, str] | None = None
    ) -> None:
        """Check the claims, then replace the record's claims and index entries with w's
        (``held_now``: the stored record's claims and indexes JSON; None: it is new)."""
        if w.claims:
            marks = ",".join("?" * len(w.claims))
            held = {
                claim: (kind, id)
                for claim, kind, id in db.execute(
                    f"SELECT claim, kind, id FROM claims WHERE claim IN ({marks})", w.claims
                )
                if (kind, id) != (w.kind, w.id)
            }
            for claim in w.claims:  # the first conflict in the write's order, as Redis says
                if claim in held:
                    raise UniqueConflict(claim, *held[claim])
        if held_now is not None:
            self._drop(db, w.kind, w.id, *held_now)
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

    def _drop(
        self, db: sqlite3.Connection, kind: str, id: str, claims_json: str, indexes_json: str
    ) -> None:
        """Delete the claims and index entries a record holds (as its row lists them)."""
        db.executemany(
            "DELETE FROM claims WHERE claim = ? AND kind = ? AND id = ?",
            [(claim, kind, id) for claim in json.loads(claims_json)],
        )
        db.executemany(
            "DELETE FROM entries WHERE name = ? AND kind = ? AND id = ?",
            [(name, kind, id) for name in json.loads(indexes_json)],
        )

    def _create(self, db: sqlite3.Connection, w: codec.Write) -> Record:
        if self._current(db, w.kind, w.id) is not None:
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
        return await self._write(self._create, w)

    def _update(self, db: sqlite3.Connection, w: codec.Write, expect_version: int) -> Record:
        current = self._current(db, w.kind, w.id)
        if current is None:
            raise NotFound(w.kind, w.id)
        version, *held_now = current
        if version != expect_version:
            raise VersionConflict(w.kind, w.id, expect_version, version)
        w = self._numbered(db, w)
        self._take(db, w, tuple(held_now))
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
        return await self._write(self._update, w, codec.check_version(expect_version))

    def _delete(
        self, db: sqlite3.Connection, kind: str, id: str, expect_version: int | None
    ) -> None:
        current = self._current(db, kind, id)
        if current is None:
            raise NotFound(kind, id)
        version, claims_json, indexes_json = current
        if expect_version is not None and version != expect_version:
            raise VersionConflict(kind, id, expect_version, version)
        self._drop(db, kind, id, claims_json, indexes_json)
        db.execute("DELETE FROM records WHERE kind = ? AND id = ?", (kind, id))

    async def delete(self, kind: str, id: str, *, expect_version: int | None = None) -> None:
        codec.check_key(kind, id)
        if expect_version is not None:
            codec.check_version(expect_version)
        await self._write(self._delete, kind, id, expect_version)


def _settle(outcomes: list[tuple[Any, ...]]) -> None:
    """Answer the callers of one group commit (on the loop thread)."""
    for future, result, error in outcomes:
        if future.done():  # the caller was cancelled; its write stands (or failed) anyway
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
