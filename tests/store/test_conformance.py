"""One behaviour for every Store backend: the contract in control/store/base.py."""

from __future__ import annotations

import asyncio
import math

import pytest

from control.store import AlreadyExists, NotFound, UniqueConflict, VersionConflict

INF = math.inf


async def state(store, claims=(), indexes=()):
    """What a reader can see about the given claims and indexes (to prove nothing changed)."""
    holders = {}
    for c in claims:
        rec = await store.get_by_claim(c)
        holders[c] = rec and (rec.kind, rec.id, rec.version)
    members = {}
    for name in indexes:
        members[name] = [(r.kind, r.id, r.version) for r in await store.range(name, limit=1000)]
        members[name + "#count"] = await store.count(name)
    return holders, members


async def ids(store, index, lo=-INF, hi=INF, **page):
    return [r.id for r in await store.range(index, lo, hi, **page)]


# -- basic lifecycle --------------------------------------------------------------------------


async def test_create_get_update_delete(store):
    rec = await store.create("appt", "a1", {"n": 1}, claims=["pin:1"], indexes={"ix": 5})
    assert (rec.kind, rec.id, rec.data, rec.version) == ("appt", "a1", {"n": 1}, 1)
    assert rec.claims == ("pin:1",) and dict(rec.indexes) == {"ix": 5.0}
    assert await store.get("appt", "a1") == rec

    rec2 = await store.update("appt", "a1", {"n": 2}, expect_version=1, claims=["pin:1"])
    assert rec2.version == 2 and rec2.data == {"n": 2} and dict(rec2.indexes) == {}
    assert await store.get("appt", "a1") == rec2
    assert await store.count("ix") == 0

    await store.delete("appt", "a1", expect_version=2)
    assert await store.get("appt", "a1") is None
    assert await store.get_by_claim("pin:1") is None
    with pytest.raises(NotFound):
        await store.delete("appt", "a1")
    with pytest.raises(NotFound):
        await store.update("appt", "a1", {}, expect_version=2)


async def test_missing_record_reads_none(store):
    assert await store.get("appt", "nope") is None
    assert await store.get_by_claim("pin:nope") is None
    assert await store.range("nothing") == []
    assert await store.count("nothing") == 0


async def test_kinds_are_separate_namespaces(store):
    await store.create("a", "x", {"k": "a"})
    await store.create("b", "x", {"k": "b"})
    assert (await store.get("a", "x")).data == {"k": "a"}
    assert (await store.get("b", "x")).data == {"k": "b"}


async def test_create_existing_raises_and_keeps_record(store):
    await store.create("appt", "a1", {"n": 1}, claims=["pin:1"], indexes={"ix": 1})
    before = await state(store, ["pin:1", "pin:2"], ["ix", "other"])
    with pytest.raises(AlreadyExists) as e:
        await store.create("appt", "a1", {"n": 9}, claims=["pin:2"], indexes={"other": 1})
    assert (e.value.kind, e.value.id) == ("appt", "a1")
    assert (await store.get("appt", "a1")).data == {"n": 1}
    assert await state(store, ["pin:1", "pin:2"], ["ix", "other"]) == before


async def test_version_conflicts(store):
    await store.create("appt", "a1", {"n": 1}, claims=["pin:1"], indexes={"ix": 1})
    await store.update(
        "appt", "a1", {"n": 2}, expect_version=1, claims=["pin:1"], indexes={"ix": 1}
    )
    before = await state(store, ["pin:1", "pin:2"], ["ix", "iy"])
    with pytest.raises(VersionConflict) as e:
        await store.update(
            "appt", "a1", {"n": 3}, expect_version=1, claims=["pin:2"], indexes={"iy": 1}
        )
    assert (e.value.expected, e.value.actual) == (1, 2)
    with pytest.raises(VersionConflict):
        await store.delete("appt", "a1", expect_version=5)
    rec = await store.get("appt", "a1")
    assert (rec.version, rec.data) == (2, {"n": 2})
    assert await state(store, ["pin:1", "pin:2"], ["ix", "iy"]) == before


# -- claims -----------------------------------------------------------------------------------


async def test_claim_conflict_writes_nothing(store):
    await store.create("appt", "a1", {"n": 1}, claims=["pin:1"], indexes={"ix": 1})
    await store.create("appt", "a2", {"n": 2}, claims=["pin:2"], indexes={"ix": 2})
    watched = (["pin:1", "pin:2", "pin:3"], ["ix", "iy"])
    before = await state(store, *watched)

    with pytest.raises(UniqueConflict) as e:
        await store.create("appt", "a3", {"n": 3}, claims=["pin:3", "pin:1"], indexes={"iy": 1})
    assert (e.value.claim, e.value.holder_kind, e.value.holder_id) == ("pin:1", "appt", "a1")
    assert await store.get("appt", "a3") is None

    with pytest.raises(UniqueConflict) as e:
        await store.update(
            "appt", "a2", {"n": 22}, expect_version=1, claims=["pin:3", "pin:1"], indexes={"iy": 1}
        )
    assert e.value.claim == "pin:1"
    rec = await store.get("appt", "a2")
    assert (rec.version, rec.data, rec.claims, dict(rec.indexes)) == (
        1,
        {"n": 2},
        ("pin:2",),
        {"ix": 2},
    )
    assert await state(store, *watched) == before


async def test_claims_released_on_update_and_delete(store):
    await store.create("appt", "a1", {}, claims=["pin:1", "ext:A"])
    rec = await store.update("appt", "a1", {}, expect_version=1, claims=["ext:A", "ext:B"])
    assert set(rec.claims) == {"ext:A", "ext:B"}
    assert await store.get_by_claim("pin:1") is None
    assert (await store.get_by_claim("ext:B")).id == "a1"
    await store.create("appt", "a2", {}, claims=["pin:1"])  # released, so free to take
    await store.delete("appt", "a1")
    for claim in ("ext:A", "ext:B"):
        assert await store.get_by_claim(claim) is None
    await store.create("appt", "a3", {}, claims=["ext:A", "ext:B"])


async def test_claim_moves_between_records(store):
    await store.create("room", "r1", {}, claims=["pin:9"])
    await store.create("room", "r2", {})
    with pytest.raises(UniqueConflict):
        await store.update("room", "r2", {}, expect_version=1, claims=["pin:9"])
    await store.update("room", "r1", {}, expect_version=1, claims=[])
    moved = await store.update("room", "r2", {}, expect_version=1, claims=["pin:9"])
    assert moved.claims == ("pin:9",)
    got = await store.get_by_claim("pin:9")
    assert (got.id, got.version) == ("r2", 2)


async def test_duplicate_claims_in_one_write_count_once(store):
    rec = await store.create("room", "r1", {}, claims=["pin:1", "pin:1"])
    assert rec.claims == ("pin:1",)
    assert await store.get("room", "r1") == rec


async def test_get_by_claim_returns_the_current_record(store):
    await store.create("room", "r1", {"v": 1}, claims=["pin:1"])
    await store.update("room", "r1", {"v": 2}, expect_version=1, claims=["pin:1"])
    got = await store.get_by_claim("pin:1")
    assert (got.data, got.version) == ({"v": 2}, 2)


# -- indexes ----------------------------------------------------------------------------------


async def test_index_memberships_replaced_on_update(store):
    await store.create("appt", "a1", {}, indexes={"org:1": 10, "due": 5})
    rec = await store.update("appt", "a1", {}, expect_version=1, indexes={"org:1": 20, "prov:1": 1})
    assert dict(rec.indexes) == {"org:1": 20.0, "prov:1": 1.0}
    assert await store.count("due") == 0
    assert await ids(store, "org:1", 15, 25) == ["a1"]
    assert await ids(store, "org:1", 0, 15) == []
    assert await ids(store, "prov:1") == ["a1"]
    await store.delete("appt", "a1")
    assert await store.count("org:1") == 0 and await store.count("prov:1") == 0


async def test_range_order_bounds_and_ties(store):
    scores = {"e": 3.0, "a": 1.5, "d": 2.0, "b": 2.0, "c": 2.0, "neg": -7.25, "big": 1e15}
    for id, score in scores.items():
        await store.create("appt", id, {"id": id}, indexes={"ix": score})
    await store.create("zz", "a", {}, indexes={"ix": 2.0})  # same score, later kind
    await store.create("aa", "z", {}, indexes={"ix": 2.0})  # same score, earlier kind
    everything = await store.range("ix")
    assert [(r.kind, r.id) for r in everything] == [
        ("appt", "neg"),
        ("appt", "a"),
        ("aa", "z"),
        ("appt", "b"),
        ("appt", "c"),
        ("appt", "d"),
        ("zz", "a"),
        ("appt", "e"),
        ("appt", "big"),
    ]
    assert await ids(store, "ix", 1.5, 2.0) == ["a", "z", "b", "c", "d", "a"]  # inclusive
    assert await ids(store, "ix", 2.0, 2.0) == ["z", "b", "c", "d", "a"]
    assert await ids(store, "ix", 2.0000001, 3) == ["e"]
    assert await ids(store, "ix", hi=0) == ["neg"]
    assert await ids(store, "ix", lo=3) == ["e", "big"]
    assert await ids(store, "ix", 5, 4) == []
    assert await store.count("ix") == 9
    assert await store.count("ix", 2, 2) == 5
    assert await store.count("ix", -INF, 1.5) == 2
    assert await store.count("ix", 1e15, INF) == 1


async def test_range_limit_and_offset(store):
    for i in range(12):
        await store.create("appt", f"a{i:02}", {}, indexes={"ix": i // 3})
    assert await ids(store, "ix", limit=4) == ["a00", "a01", "a02", "a03"]
    assert await ids(store, "ix", limit=4, offset=4) == ["a04", "a05", "a06", "a07"]
    assert await ids(store, "ix", limit=100, offset=10) == ["a10", "a11"]
    assert await ids(store, "ix", offset=12) == []
    assert await ids(store, "ix", limit=0) == []
    assert await ids(store, "ix", 1, 2, limit=2, offset=3) == ["a06", "a07"]
    paged = []
    while page := await ids(store, "ix", limit=5, offset=len(paged)):
        paged += page
    assert paged == [f"a{i:02}" for i in range(12)]


@pytest.mark.parametrize("page", [1, 5, 12, 13, 500])
async def test_every_reads_the_whole_index_page_by_page(store, page):
    for i in range(12):
        await store.create("appt", f"a{i:02}", {}, indexes={"ix": i // 3})
    got = await store.every("ix", page=page)
    assert [r.id for r in got] == [f"a{i:02}" for i in range(12)]
    assert await store.every("nothing", page=page) == []


async def test_range_returns_full_records(store):
    await store.create("appt", "a1", {"x": [1, 2]}, claims=["c:1"], indexes={"ix": 1, "iy": 2})
    (rec,) = await store.range("iy")
    assert rec == await store.get("appt", "a1")


# -- data -------------------------------------------------------------------------------------


async def test_unicode_and_nested_data_round_trip(store):
    data = {
        "name": "Åsa Öberg 🐕 狗",
        "nested": {"list": [1, 2.5, None, True, "ä"]},
        'quote"key': "line\nbreak\x01",
        "empty": {},
        "big": 2**60,
    }
    await store.create("appt", "ünï/cöde id", data, claims=["ext:örg:Ä-1"], indexes={"ïx:ö": 1})
    rec = await store.get("appt", "ünï/cöde id")
    assert rec.data == data
    assert (await store.get_by_claim("ext:örg:Ä-1")).id == "ünï/cöde id"
    assert [r.id for r in await store.range("ïx:ö")] == ["ünï/cöde id"]


async def test_returned_data_is_not_shared_with_the_caller(store):
    data = {"list": [1]}
    rec = await store.create("appt", "a1", data)
    data["list"].append(2)
    rec.data["list"].append(3)
    assert (await store.get("appt", "a1")).data == {"list": [1]}


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, error",
    [
        ({"when": object()}, TypeError),
        ({"s": {1, 2}}, TypeError),
        ({"x": float("nan")}, ValueError),
        ({"x": float("inf")}, ValueError),
        (["not", "an", "object"], TypeError),
    ],
)
async def test_bad_data_rejected_before_anything_is_written(store, data, error):
    await store.create("appt", "a1", {"ok": 1}, claims=["pin:1"])
    with pytest.raises(error, match="JSON|dict"):
        await store.create("appt", "a2", data, claims=["pin:2"], indexes={"ix": 1})
    with pytest.raises(error, match="JSON|dict"):
        await store.update("appt", "a1", data, expect_version=1, claims=[], indexes={"ix": 1})
    assert await store.get("appt", "a2") is None
    assert await store.get_by_claim("pin:2") is None
    rec = await store.get("appt", "a1")
    assert (rec.version, rec.data, rec.claims) == (1, {"ok": 1}, ("pin:1",))
    assert await store.count("ix") == 0


@pytest.mark.parametrize("kind, id", [("", "a"), ("appt", ""), ("a\x00b", "c"), (None, "a")])
async def test_bad_keys_rejected(store, kind, id):
    with pytest.raises(ValueError, match="kind|id"):
        await store.create(kind, id, {})
    with pytest.raises(ValueError, match="kind|id"):
        await store.get(kind, id)


@pytest.mark.parametrize(
    "claims, indexes",
    [
        ([""], None),
        ("pin:1", None),
        ([], {"": 1}),
        ([], {"ix": float("nan")}),
        ([], {"ix": float("inf")}),
        ([], {"ix": "1"}),
    ],
)
async def test_bad_claims_and_indexes_rejected(store, claims, indexes):
    with pytest.raises((TypeError, ValueError)):
        await store.create("appt", "a1", {}, claims=claims, indexes=indexes)
    assert await store.get("appt", "a1") is None


async def test_bad_range_arguments_rejected(store):
    with pytest.raises(ValueError, match="limit"):
        await store.range("ix", limit=-1)
    with pytest.raises(ValueError, match="offset"):
        await store.range("ix", offset=-1)
    with pytest.raises(ValueError, match="lo"):
        await store.range("ix", float("nan"))


# -- concurrency ------------------------------------------------------------------------------


async def test_racing_updates_exactly_one_wins_each_round(make_store):
    writers = [await make_store() for _ in range(4)]
    await writers[0].create("counter", "c", {"n": 0, "by": []})

    async def bump(store, who):
        rec = await store.get("counter", "c")
        try:
            await store.update(
                "counter",
                "c",
                {"n": rec.data["n"] + 1, "by": rec.data["by"] + [who]},
                expect_version=rec.version,
            )
            return True
        except VersionConflict:
            return False

    for _ in range(10):
        results = await asyncio.gather(*(bump(s, i) for i, s in enumerate(writers)))
        assert sum(results) >= 1

    # With retries, every increment lands exactly once.
    async def bump_until_done(store, who):
        for _ in range(200):
            if await bump(store, who):
                return
        raise AssertionError("no progress")

    before = (await writers[0].get("counter", "c")).data["n"]
    await asyncio.gather(*(bump_until_done(s, i) for i, s in enumerate(writers) for _ in range(5)))
    rec = await writers[0].get("counter", "c")
    assert rec.data["n"] == before + 20 == rec.version - 1


async def test_racing_updates_from_the_same_version_one_winner(make_store):
    writers = [await make_store() for _ in range(5)]
    rec = await writers[0].create("doc", "d", {"v": -1})
    for round in range(8):

        async def write(store, who, version=rec.version):
            try:
                return await store.update("doc", "d", {"v": who}, expect_version=version)
            except VersionConflict:
                return None

        results = await asyncio.gather(*(write(s, i) for i, s in enumerate(writers)))
        winners = [r for r in results if r is not None]
        assert len(winners) == 1, round
        rec = await writers[0].get("doc", "d")
        assert rec == winners[0]


async def test_racing_for_one_claim_one_winner(make_store):
    writers = [await make_store() for _ in range(5)]
    for round in range(8):

        async def take(store, who, round=round):
            try:
                return await store.create("room", f"r{round}-{who}", {}, claims=[f"pin:{round}"])
            except UniqueConflict:
                return None

        results = await asyncio.gather(*(take(s, i) for i, s in enumerate(writers)))
        winners = [r for r in results if r is not None]
        assert len(winners) == 1, round
        holder = await writers[0].get_by_claim(f"pin:{round}")
        assert holder == winners[0]
        for i in range(5):
            expected = winners[0] if f"r{round}-{i}" == winners[0].id else None
            assert await writers[0].get("room", f"r{round}-{i}") == expected


async def test_a_burst_of_concurrent_calls_on_one_store(store):
    """More calls at once than any connection pool holds: they queue, none fails."""

    async def one(i):
        rec = await store.create(
            "burst", f"b{i:03}", {"i": i}, claims=[f"c:{i}"], indexes={"ix": i}
        )
        rec = await store.update("burst", rec.id, {"i": -i}, expect_version=1, indexes={"ix": -i})
        return await store.get("burst", rec.id)

    got = await asyncio.gather(*(one(i) for i in range(300)))
    assert [(r.version, r.data["i"]) for r in got] == [(2, -i) for i in range(300)]
    assert await store.count("ix") == 300
    assert [r.id for r in await store.range("ix", limit=3)] == ["b299", "b298", "b297"]
