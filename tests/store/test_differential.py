"""Random operation sequences give the same results on SQLite and Redis (errors included)."""

from __future__ import annotations

import random

import pytest

from control.store import StoreError
from control.store.redis import RedisStore
from control.store.sqlite import SqliteStore

KINDS = ["a", "ab", "b"]  # "a" is a prefix of "ab": ordering must still be (kind, id)
IDS = ["x", "x:y", "y", "é", "x\x01"]
CLAIMS = ["c1", "c2", "c3", "c4"]
INDEXES = ["i1", "i2"]
SEQUENCED = "feed"
SCORES = [-1.0, 0.0, 1.0, 1.5, 2.0]
BOUNDS = [float("-inf"), -1.0, 0.5, 1.5, 2.0, float("inf")]


def outcome(result):
    if isinstance(result, BaseException):
        return type(result).__name__, str(result)
    if isinstance(result, list):
        return [outcome(r) for r in result]
    if result is None or isinstance(result, int):
        return result
    return (
        result.kind,
        result.id,
        result.data,
        result.version,
        result.claims,
        dict(result.indexes),
    )


def random_operation(rng: random.Random):
    kind, id = rng.choice(KINDS), rng.choice(IDS)
    claims = rng.sample(CLAIMS, rng.randint(0, 2))
    indexes = {name: rng.choice(SCORES) for name in rng.sample(INDEXES, rng.randint(0, 2))}
    data = {"n": rng.randint(0, 9), "s": rng.choice(["", "ä", "🐕"])}
    version = rng.randint(0, 4)
    lo, hi = sorted(rng.sample(BOUNDS, 2))
    sequenced = rng.choice([None, None, SEQUENCED])
    ops = [
        (
            "create",
            (kind, id, data),
            {"claims": claims, "indexes": indexes, "sequenced": sequenced},
        ),
        (
            "update",
            (kind, id, data),
            {
                "expect_version": version,
                "claims": claims,
                "indexes": indexes,
                "sequenced": sequenced,
            },
        ),
        ("delete", (kind, id), {"expect_version": rng.choice([None, version])}),
        ("get", (kind, id), {}),
        ("get_by_claim", (rng.choice(CLAIMS),), {}),
        (
            "range",
            (rng.choice(INDEXES), lo, hi),
            {"limit": rng.randint(0, 6), "offset": rng.randint(0, 3)},
        ),
        ("count", (rng.choice(INDEXES), lo, hi), {}),
        ("range", (SEQUENCED, rng.choice(SCORES + [3.0, 7.0])), {}),
        ("sequence", (SEQUENCED,), {}),
    ]
    weights = [4, 4, 1, 1, 1, 2, 1, 1, 1]
    return rng.choices(ops, weights)[0]


async def call(store, name, args, kwargs):
    try:
        return await getattr(store, name)(*args, **kwargs)
    except StoreError as exc:
        return exc


@pytest.mark.parametrize("seed", range(4))
async def test_backends_agree(seed, tmp_path, redis_url):
    sqlite, redis = SqliteStore(tmp_path / "d.db"), RedisStore(redis_url)
    await sqlite.open()
    await redis.open()
    rng = random.Random(seed)
    try:
        for step in range(400):
            name, args, kwargs = random_operation(rng)
            if name in ("update", "delete") and rng.random() < 0.7:
                current = await sqlite.get(*args[:2])  # mostly write from the current version
                kwargs["expect_version"] = current.version if current else 1
            a = outcome(await call(sqlite, name, args, kwargs))
            b = outcome(await call(redis, name, args, kwargs))
            assert a == b, f"step {step}: {name}{args} {kwargs}"
        # The whole visible state agrees too.
        for index in [*INDEXES, SEQUENCED]:
            assert outcome(await sqlite.range(index, limit=1000)) == outcome(
                await redis.range(index, limit=1000)
            )
    finally:
        await sqlite.close()
        await redis.close()
