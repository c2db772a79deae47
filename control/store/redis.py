"""The Store on Redis (several nodes), with redis-py's asyncio client.

Key layout (``P`` is the prefix, default ``tv:``; ``M`` is the member ``kind + "\\0" + id``):

- ``P rec:M``  hash: ``v`` version, ``d`` data (JSON text), ``c`` claims (JSON array),
  ``i`` indexes (JSON object name -> score)
- ``P claims`` hash: claim -> M of its holder
- ``P ix:NAME`` zset: M -> score
- ``P seq:NAME`` string: the last number of the sequence NAME (INCR in the write script)

Every write is one Lua script, so the version check, the claim check and swap, the index zset
updates and the data land together or not at all. The scripts check everything before their
first write, because Redis does not roll back a script that fails half way. Durability comes
from the server: AOF with ``appendfsync always`` replies only after the fsync.

Zset ties are ordered by member bytes; with NUL (forbidden in kinds and ids) between kind and
id, that is (kind, id) order, the same as SQLite's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

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

log = logging.getLogger(__name__)

# KEYS: record hash, claims hash. ARGV: prefix, mode (create|update|delete), member,
# expected version ('' = any), data, claims JSON, indexes JSON (when sequenced: all but its
# closing brace, ending with the sequenced index's name and a colon), sequenced index ('' =
# none), claim count, claims..., index count, (name, score)...
WRITE = """
local rec, claims = KEYS[1], KEYS[2]
local prefix, mode, member = ARGV[1], ARGV[2], ARGV[3]
local expect = tonumber(ARGV[4])
local indexes, sequenced = ARGV[7], ARGV[8]
local version = tonumber(redis.call('HGET', rec, 'v'))
if mode == 'create' then
  if version then return {'exists'} end
else
  if not version then return {'notfound'} end
  if expect and version ~= expect then return {'version', version} end
end
local nclaims = tonumber(ARGV[9])
for k = 10, 9 + nclaims do
  local holder = redis.call('HGET', claims, ARGV[k])
  if holder and holder ~= member then return {'claim', ARGV[k], holder} end
end
if version then
  for _, claim in ipairs(cjson.decode(redis.call('HGET', rec, 'c'))) do
    redis.call('HDEL', claims, claim)
  end
  for name, _ in pairs(cjson.decode(redis.call('HGET', rec, 'i'))) do
    redis.call('ZREM', prefix .. 'ix:' .. name, member)
  end
end
if mode == 'delete' then
  redis.call('DEL', rec)
  return {'ok', 0, 0}
end
for k = 10, 9 + nclaims do
  redis.call('HSET', claims, ARGV[k], member)
end
local at = 10 + nclaims
for k = at + 1, at + 2 * tonumber(ARGV[at]), 2 do
  redis.call('ZADD', prefix .. 'ix:' .. ARGV[k], ARGV[k + 1], member)
end
local number = 0
if sequenced ~= '' then
  number = redis.call('INCR', prefix .. 'seq:' .. sequenced)
  redis.call('ZADD', prefix .. 'ix:' .. sequenced, number, member)
  indexes = indexes .. number .. '}'
end
version = (version or 0) + 1
redis.call('HSET', rec, 'v', version, 'd', ARGV[5], 'c', ARGV[6], 'i', indexes)
return {'ok', version, number}
"""

FIELDS = "'v', 'd', 'c', 'i'"

# KEYS: index zset. ARGV: prefix, lo, hi, offset, limit. Returns member, v, d, c, i per record.
RANGE = f"""
local out = {{}}
local members = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[2], ARGV[3], 'LIMIT', ARGV[4], ARGV[5])
for _, member in ipairs(members) do
  local f = redis.call('HMGET', ARGV[1] .. 'rec:' .. member, {FIELDS})
  table.insert(out, member)
  for j = 1, 4 do table.insert(out, f[j]) end
end
return out
"""

# KEYS: claims hash. ARGV: prefix, claim. Returns member, v, d, c, i or nothing.
BY_CLAIM = f"""
local member = redis.call('HGET', KEYS[1], ARGV[2])
if not member then return {{}} end
local f = redis.call('HMGET', ARGV[1] .. 'rec:' .. member, {FIELDS})
return {{member, f[1], f[2], f[3], f[4]}}
"""


def _indexes_arg(w: codec.Write) -> str:
    """The indexes JSON the script stores; a sequenced write's is left open for its number."""
    if w.sequenced is None:
        return w.indexes_json
    head = w.indexes_json[:-1] + (", " if w.indexes else "")
    return f"{head}{json.dumps(w.sequenced, ensure_ascii=False)}: "


def _member(kind: str, id: str) -> str:
    return f"{kind}\x00{id}"


def _split(member: str) -> tuple[str, str]:
    kind, id = member.split("\x00", 1)
    return kind, id


def _records(flat: list[str]) -> list[Record]:
    out = []
    for k in range(0, len(flat), 5):
        member, version, data, claims, indexes = flat[k : k + 5]
        out.append(codec.decode(*_split(member), data, int(version), claims, indexes))
    return out


# A burst of requests waits for a free connection instead of failing ("Too many connections").
POOL_CONNECTIONS = 32
POOL_WAIT_SECONDS = 30.0


def connect(url: str) -> aioredis.Redis:
    """A client whose pool makes callers queue when all its connections are busy."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=POOL_CONNECTIONS, timeout=POOL_WAIT_SECONDS, decode_responses=True
    )
    return aioredis.Redis.from_pool(pool)


async def _warn_unless_durable(client: aioredis.Redis) -> None:
    """Acknowledged writes survive a crash only with AOF fsynced on every write; say so."""
    try:
        config = await client.config_get("append*")
    except redis.exceptions.ResponseError as exc:  # managed servers may refuse CONFIG
        log.info("store: cannot read the Redis persistence settings (%s)", exc)
        return
    if config.get("appendonly") != "yes" or config.get("appendfsync") != "always":
        log.warning(
            "store: Redis runs with appendonly=%s appendfsync=%s; acknowledged writes can be "
            "lost in a crash (use appendonly yes, appendfsync always)",
            config.get("appendonly"),
            config.get("appendfsync"),
        )


class RedisStore(Store):
    def __init__(self, url: str, *, prefix: str = "tv:") -> None:
        self.url = url
        self.prefix = prefix
        self._redis: aioredis.Redis | None = None

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise StoreError("RedisStore is not open")
        return self._redis

    async def open(self) -> None:
        client = connect(self.url)
        try:
            await client.ping()
        except BaseException:
            await client.aclose()
            raise
        await _warn_unless_durable(client)
        self._redis = client
        self._write = client.register_script(WRITE)
        self._range = client.register_script(RANGE)
        self._by_claim = client.register_script(BY_CLAIM)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    def _key(self, kind: str, id: str) -> str:
        return f"{self.prefix}rec:{_member(kind, id)}"

    # -- reads ----------------------------------------------------------------------------

    async def get(self, kind: str, id: str) -> Record | None:
        codec.check_key(kind, id)
        version, data, claims, indexes = await self.redis.hmget(
            self._key(kind, id), ["v", "d", "c", "i"]
        )
        if version is None:
            return None
        return codec.decode(kind, id, data, int(version), claims, indexes)

    async def get_by_claim(self, claim: str) -> Record | None:
        flat = await self._by_claim(keys=[f"{self.prefix}claims"], args=[self.prefix, claim])
        return _records(flat)[0] if flat else None

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
        flat = await self._range(
            keys=[f"{self.prefix}ix:{index}"], args=[self.prefix, repr(lo), repr(hi), offset, limit]
        )
        return _records(flat)

    async def count(self, index: str, lo: float = float("-inf"), hi: float = float("inf")) -> int:
        lo, hi = codec.check_bounds(lo, hi)
        return int(await self.redis.zcount(f"{self.prefix}ix:{index}", repr(lo), repr(hi)))

    async def sequence(self, name: str) -> int:
        value = await self.redis.get(f"{self.prefix}seq:{codec.check_sequence(name)}")
        return int(value or 0)

    # -- writes ---------------------------------------------------------------------------

    async def _run_write(
        self, mode: str, w: codec.Write, expect_version: int | None
    ) -> tuple[int, codec.Write]:
        """(the new version, ``w`` as stored: numbered if it was sequenced)."""
        args: list[Any] = [
            self.prefix,
            mode,
            _member(w.kind, w.id),
            "" if expect_version is None else expect_version,
            w.data,
            w.claims_json,
            _indexes_arg(w),
            w.sequenced or "",
            len(w.claims),
            *w.claims,
            len(w.indexes),
        ]
        for name, score in w.indexes.items():
            args += [name, repr(score)]
        reply = await self._write(keys=[self._key(w.kind, w.id), f"{self.prefix}claims"], args=args)
        match reply:
            case ["ok", version, number]:
                return int(version), (w if w.sequenced is None else w.numbered(int(number)))
            case ["exists"]:
                raise AlreadyExists(w.kind, w.id)
            case ["notfound"]:
                raise NotFound(w.kind, w.id)
            case ["version", actual]:
                raise VersionConflict(w.kind, w.id, expect_version or 0, int(actual))
            case ["claim", claim, holder]:
                raise UniqueConflict(claim, *_split(holder))
        raise StoreError(f"unexpected reply from the write script: {reply!r}")

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
        version, w = await self._run_write("create", w, None)
        return codec.decode(w.kind, w.id, w.data, version, w.claims_json, w.indexes_json)

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
        version, w = await self._run_write("update", w, codec.check_version(expect_version))
        return codec.decode(w.kind, w.id, w.data, version, w.claims_json, w.indexes_json)

    async def delete(self, kind: str, id: str, *, expect_version: int | None = None) -> None:
        codec.check_key(kind, id)
        if expect_version is not None:
            codec.check_version(expect_version)
        await self._run_write("delete", codec.prepare(kind, id, {}, (), None), expect_version)
