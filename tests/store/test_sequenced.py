"""Sequenced writes (the change feed of control/store/base.py), the same on every backend."""

from __future__ import annotations

import asyncio

import pytest

from control.store import AlreadyExists, UniqueConflict, VersionConflict


async def feed(store, name="feed", after=0):
    return [(r.id, r.indexes[name]) for r in await store.range(name, after + 1, limit=1000)]


async def test_each_sequenced_write_takes_the_next_number(store):
    assert await store.sequence("feed") == 0
    a = await store.create("x", "a", {"n": 1}, indexes={"ix": 7}, sequenced="feed")
    b = await store.create("x", "b", {"n": 1}, sequenced="feed")
    assert dict(a.indexes) == {"ix": 7.0, "feed": 1.0} and dict(b.indexes) == {"feed": 2.0}
    assert await store.get("x", "a") == a
    a2 = await store.update("x", "a", {"n": 2}, expect_version=1, sequenced="feed")
    assert dict(a2.indexes) == {"feed": 3.0}  # the write replaced its other memberships
    assert await store.get("x", "a") == a2
    assert await store.sequence("feed") == 3
    # Each record sits at its latest write: a reader who had seen 1 finds b, then a.
    assert await feed(store, after=1) == [("b", 2.0), ("a", 3.0)]
    assert await feed(store, after=3) == []


async def test_sequences_are_separate_and_other_kinds_share_one(store):
    await store.create("x", "a", {}, sequenced="f1")
    await store.create("y", "a", {}, sequenced="f1")
    await store.create("x", "b", {}, sequenced="f2")
    assert (await store.sequence("f1"), await store.sequence("f2")) == (2, 1)
    assert [(r.kind, r.id) for r in await store.range("f1")] == [("x", "a"), ("y", "a")]


async def test_a_refused_write_takes_no_number(store):
    await store.create("x", "a", {}, claims=["c:1"], sequenced="feed")
    await store.create("x", "b", {}, sequenced="feed")
    with pytest.raises(AlreadyExists):
        await store.create("x", "a", {}, sequenced="feed")
    with pytest.raises(VersionConflict):
        await store.update("x", "a", {}, expect_version=5, sequenced="feed")
    with pytest.raises(UniqueConflict):
        await store.update("x", "b", {}, expect_version=1, claims=["c:1"], sequenced="feed")
    assert await store.sequence("feed") == 2
    assert await feed(store) == [("a", 1.0), ("b", 2.0)]


async def test_unsequenced_update_leaves_or_keeps_its_place(store):
    rec = await store.create("x", "a", {}, sequenced="feed")
    await store.create("x", "b", {}, sequenced="feed")
    # Writing the record's own indexes back keeps its number (a change no reader cares about).
    kept = await store.update("x", "a", {"v": 2}, expect_version=1, indexes=rec.indexes)
    assert dict(kept.indexes) == {"feed": 1.0}
    assert await feed(store) == [("a", 1.0), ("b", 2.0)]
    # Writing without it leaves the feed, like any index; the sequence does not go back.
    await store.update("x", "a", {}, expect_version=2)
    await store.delete("x", "b")
    assert await feed(store) == [] and await store.sequence("feed") == 2
    again = await store.create("x", "b", {}, sequenced="feed")
    assert dict(again.indexes) == {"feed": 3.0}


async def test_bad_sequence_names_rejected(store):
    with pytest.raises(ValueError, match="sequence"):
        await store.create("x", "a", {}, sequenced="")
    with pytest.raises(ValueError, match="sequence"):
        await store.create("x", "a", {}, sequenced="f\x00")
    with pytest.raises(ValueError, match="scored by its sequence"):
        await store.create("x", "a", {}, indexes={"feed": 1}, sequenced="feed")
    with pytest.raises(ValueError, match="sequence"):
        await store.sequence("")
    assert await store.get("x", "a") is None and await store.sequence("feed") == 0


async def test_concurrent_writers_get_distinct_numbers_and_a_follower_misses_none(make_store):
    """Four clients write at once while a reader follows the feed by its last number: the
    numbers are 1..N without gaps or repeats, and the reader ends up with every write."""
    writers = [await make_store() for _ in range(4)]
    reader = await make_store()
    seen: dict[str, float] = {}
    done = asyncio.Event()

    async def follow():
        cursor = 0.0
        while True:
            finished = done.is_set()  # read after the last write committed: nothing can follow
            for rec in await reader.range("feed", cursor + 1, limit=1000):
                seen[rec.id] = rec.indexes["feed"]
                cursor = max(cursor, rec.indexes["feed"])
            if finished:
                return
            await asyncio.sleep(0)

    async def write(store, who):
        for i in range(15):
            rec = await store.create("x", f"{who}-{i}", {}, sequenced="feed")
            await store.update("x", rec.id, {"i": i}, expect_version=1, sequenced="feed")

    follower = asyncio.create_task(follow())
    await asyncio.gather(*(write(s, w) for w, s in enumerate(writers)))
    done.set()
    await follower
    final = {r.id: r.indexes["feed"] for r in await reader.range("feed", limit=1000)}
    assert len(final) == 60 and await reader.sequence("feed") == 120
    assert seen == final  # every record seen at its last write
    numbers = [r.indexes["feed"] for r in await reader.range("feed", limit=1000)]
    assert len(set(numbers)) == 60 and max(numbers) == 120.0
