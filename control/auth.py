"""Organization API keys: ``Authorization: Bearer tv_...`` from clinic software.

Only the SHA-256 of a key is stored, as the claim ``apikey:<hex>`` of its record (kind
``apikey``), so a key is found in one lookup and a leaked store does not leak keys. Revoking
drops the claim: the key stops working at once on every node.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import Any

from aiohttp import web

from control.problems import Problem
from control.services import services
from control.store import Store
from control.times import iso_at

KIND = "apikey"
KEY_PREFIX = "tv_"
CLAIM = "apikey:"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def org_keys_index(org_id: str) -> str:
    return f"apikeys:{org_id}"


async def create_key(store: Store, org_id: str, now: float) -> tuple[dict[str, Any], str]:
    """A new key for the organization: (its record, the key itself - shown once)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = "key_" + uuid.uuid4().hex[:16]
    data = {"id": key_id, "org_id": org_id, "created_at": iso_at(now), "revoked_at": None}
    await store.create(
        KIND, key_id, data, claims=[CLAIM + _digest(key)], indexes={org_keys_index(org_id): now}
    )
    return data, key


class UnknownKey(LookupError):
    pass


async def revoke_key(store: Store, key_id: str, now: float) -> dict[str, Any]:
    record = await store.get(KIND, key_id)
    if record is None:
        raise UnknownKey(key_id)
    if record.data["revoked_at"] is not None:
        return record.data
    data = dict(record.data, revoked_at=iso_at(now))
    await store.update(
        KIND, key_id, data, expect_version=record.version, claims=[], indexes=record.indexes
    )
    return data


async def org_of_key(store: Store, key: str) -> str | None:
    if not key.startswith(KEY_PREFIX):
        return None
    record = await store.get_by_claim(CLAIM + _digest(key))
    if record is None or record.kind != KIND:
        return None
    return record.data["org_id"]


async def authenticated_org(request: web.Request) -> str:
    """The organization the request's API key belongs to, or a 401 problem."""
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Problem(
            401,
            "unauthenticated",
            "send the organization's API key as Authorization: Bearer tv_...",
            headers={"WWW-Authenticate": 'Bearer realm="televisit"'},
        )
    org_id = await org_of_key(services(request).store, key.strip())
    if org_id is None:
        raise Problem(
            401,
            "unauthenticated",
            "the API key is unknown or revoked",
            headers={"WWW-Authenticate": 'Bearer realm="televisit", error="invalid_token"'},
        )
    return org_id
