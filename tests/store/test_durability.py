"""Acknowledged writes survive SIGKILL: of the writing process (SQLite) or of redis-server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from control.store.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parents[2]
WRITER = Path(__file__).with_name("writer_process.py")
ACKS_BEFORE_KILL = 40
START_SECONDS = 120.0


def start_writer(backend: str, target: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(WRITER), backend, target],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )


def read_acks(proc: subprocess.Popen[str], count: int) -> dict[str, int]:
    """Read "<id> <version>" lines until ``count`` were acknowledged; fail if the writer dies."""
    acked: dict[str, int] = {}
    deadline = time.monotonic() + START_SECONDS
    while len(acked) < count or max(acked.values(), default=0) < 2:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"writer exited early: {proc.stderr.read()[-2000:]}")
        id, version = line.split()
        acked[id] = int(version)
        assert time.monotonic() < deadline, "writer too slow"
    return acked


def finish(proc: subprocess.Popen[str], acked: dict[str, int]) -> dict[str, int]:
    """Stop the writer and add the acknowledgements it printed before it stopped."""
    if proc.poll() is None:
        proc.kill()
    out, _ = proc.communicate(timeout=30)
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2:  # a line cut by the kill is not an acknowledgement
            acked[parts[0]] = int(parts[1])
    return acked


async def check_acknowledged(store, acked: dict[str, int]) -> None:
    for id, version in acked.items():
        rec = await store.get("durable", id)
        assert rec is not None, f"acknowledged {id} lost"
        assert rec.version >= version, f"{id}: acknowledged v{version}, found v{rec.version}"
        n = int(id[1:])
        assert (await store.get_by_claim(f"pin:{n}")) == rec
        assert dict(rec.indexes)["all"] == n
    # Index entries and records agree, whatever the kill interrupted.
    listed = await store.range("all", limit=10**6)
    assert len(listed) == await store.count("all") >= len(acked)
    assert {r.id for r in listed} >= set(acked)
    for rec in listed:
        assert (rec.version == 2) == ("done" in rec.indexes)


async def test_sqlite_survives_sigkill_of_the_writer(tmp_path):
    path = str(tmp_path / "durable.db")
    proc = start_writer("sqlite", path)
    acked: dict[str, int] = {}
    try:
        acked.update(read_acks(proc, ACKS_BEFORE_KILL))
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        finish(proc, acked)
    assert proc.returncode == -signal.SIGKILL
    store = SqliteStore(path)
    await store.open()
    try:
        await check_acknowledged(store, acked)
        # And the reopened file takes writes again.
        await store.create("durable", "after", {}, claims=["pin:after"])
    finally:
        await store.close()


async def test_redis_survives_sigkill_of_the_server(make_redis_server):
    from control.store.redis import RedisStore

    server = make_redis_server()
    proc = start_writer("redis", server.url)
    acked: dict[str, int] = {}
    try:
        acked.update(read_acks(proc, ACKS_BEFORE_KILL))
        server.kill()  # while the writer is still writing
    finally:
        finish(proc, acked)
    server.start()  # same directory, so the same AOF
    store = RedisStore(server.url)
    await store.open()
    try:
        await check_acknowledged(store, acked)
        await store.create("durable", "after", {}, claims=["pin:after"])
    finally:
        await store.close()


async def test_redis_store_warns_when_the_server_is_not_durable(make_redis_server, caplog):
    import redis.asyncio as aioredis

    from control.store.redis import RedisStore

    server = make_redis_server()
    store = RedisStore(server.url)
    await store.open()
    await store.close()
    assert "can be lost" not in caplog.text
    async with aioredis.from_url(server.url) as admin:
        await admin.config_set("appendfsync", "everysec")
    await store.open()
    await store.close()
    assert "appendfsync=everysec" in caplog.text
