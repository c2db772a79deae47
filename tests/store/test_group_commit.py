"""SqliteStore's group commit: writes queued while a commit is on its way share the next one,
each write still succeeds or fails on its own, and every acknowledged write is on disk."""

from __future__ import annotations

import asyncio

from control.store import Record, UniqueConflict, VersionConflict
from control.store.sqlite import SqliteStore


async def test_concurrent_writes_share_commits_and_fail_alone(tmp_path):
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    try:
        await store.create("k", "holder", {}, claims=["pin:1"])
        results = await asyncio.gather(
            *(
                store.create("k", f"r{i}", {"i": i}, claims=[f"c{i}"] + ["pin:1"] * (i == 7))
                for i in range(60)
            ),
            store.update("k", "holder", {"v": 2}, expect_version=1),
            store.update("k", "holder", {"v": 3}, expect_version=1),  # the same version again
            return_exceptions=True,
        )
        assert isinstance(results[7], UniqueConflict)
        assert all(isinstance(r, Record) for i, r in enumerate(results[:60]) if i != 7)
        # in queue order: the first update wins, the second finds version 2
        assert isinstance(results[60], Record) and isinstance(results[61], VersionConflict)
        assert store.writes == 63 and store.commits < store.writes  # batched
        # the refused write left nothing: neither its record nor its other claim
        assert await store.get("k", "r7") is None and await store.get_by_claim("c7") is None
    finally:
        await store.close()
    reopened = SqliteStore(tmp_path / "s.db")
    await reopened.open()
    try:
        for i in range(60):
            record = await reopened.get("k", f"r{i}")
            assert (record is None) == (i == 7), i
        assert (await reopened.get("k", "holder")).data == {"v": 2}
    finally:
        await reopened.close()


async def test_a_write_acknowledged_is_read_back_at_once(tmp_path):
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    try:
        for i in range(20):
            created = await store.create("k", f"r{i}", {"i": i}, claims=[f"pin:{i}"])
            assert await store.get_by_claim(f"pin:{i}") == created
    finally:
        await store.close()


def test_writes_are_answered_on_the_caller_s_own_event_loop(tmp_path):
    async def opened() -> SqliteStore:
        store = SqliteStore(tmp_path / "s.db")
        await store.open()
        return store

    store = asyncio.run(opened())  # that loop is gone once open() returned

    async def write(i: int) -> Record:
        return await asyncio.wait_for(store.create("k", f"r{i}", {"i": i}), 10)

    assert asyncio.run(write(1)).id == "r1"  # another loop, answered there
    assert asyncio.run(write(2)).id == "r2"
    asyncio.run(store.close())
