"""Organization API keys: ``Authorization: Bearer tv_...`` from clinic software.

Only the SHA-256 of a key is stored, as the claim ``apikey:<hex>`` of its record (kind
``apikey``), so a key is found in one lookup and a leaked store does not leak keys. Revoking
drops the claim and is a sequenced write (``REVOCATIONS``): the key stops working at once on
every node. Requests check keys through a ``KeyCache``: the organization of a key seen before
is trusted while the revocation sequence stands still, which costs one read of one number
instead of the claim's lookup and its record's decoding.

``bearer_token`` reads the credential of every kind of caller (API keys, staff logins, the
staff app's devices) the same way.
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
# Sequenced index of revoked keys: its sequence moves with every revocation, on any node.
REVOCATIONS = "apikey-revocations"
CACHED_KEYS = 1024  # keys a KeyCache remembers (an org uses a few)


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
        KIND,
        key_id,
        data,
        expect_version=record.version,
        claims=[],
        indexes=record.indexes,
        sequenced=REVOCATIONS,
    )
    return data


async def _org_of_digest(store: Store, digest: str) -> str | None:
    record = await store.get_by_claim(CLAIM + digest)
    if record is None or record.kind != KIND:
        return None
    return record.data["org_id"]


async def org_of_key(store: Store, key: str) -> str | None:
    """The organization of a live key, None for an unknown or revoked one (a store lookup)."""
    if not key.startswith(KEY_PREFIX):
        return None
    return await _org_of_digest(store, _digest(key))


class KeyCache:
    """``org_of_key`` with the answers for live keys remembered (at most ``CACHED_KEYS``).

    Each call reads the revocation sequence (one number: SQLite reads it on the loop thread,
    Redis in one GET); when it moved since the answers were looked up they are all dropped,
    so a revoked key is refused by the next request on every node, as with a lookup per
    request. Unknown and revoked keys are never remembered (each costs a lookup)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._orgs: dict[str, str] = {}  # digest -> org id
        self._revocations = -1  # the sequence's value when _orgs was looked up

    async def org_of_key(self, key: str) -> str | None:
        if not key.startswith(KEY_PREFIX):
            return None
        revocations = await self._store.sequence(REVOCATIONS)
        if revocations != self._revocations:
            self._orgs.clear()
            self._revocations = revocations
        digest = _digest(key)
        org_id = self._orgs.get(digest)
        if org_id is None:
            org_id = await _org_of_digest(self._store, digest)
            # Only if no revocation came (and was seen by another request) while looking:
            # the answer may be older than it.
            if org_id is not None and self._revocations == revocations:
                if len(self._orgs) >= CACHED_KEYS:
                    self._orgs.clear()
                self._orgs[digest] = org_id
        return org_id


def credential(text: str | None) -> str:
    """``text`` if it can be one of our credentials (printable ASCII: every key and token we
    issue is base64url with a prefix), else "". aiohttp hands header bytes that are not UTF-8
    on as lone surrogates, which hashing a key (str.encode) raised on: a 500."""
    return text if text and text.isascii() and text.isprintable() else ""


def bearer_token(request: web.Request) -> str:
    """The credential of ``Authorization: Bearer <credential>`` (the scheme in any case, RFC
    7235 2.1), or "" when there is none."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return credential(value.strip()) if scheme.lower() == "bearer" else ""


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
    org_id = await services(request).api_keys.org_of_key(bearer_token(request))
    if org_id is None:
        raise Problem(
            401,
            "unauthenticated",
            "the API key is unknown or revoked",
            headers={"WWW-Authenticate": 'Bearer realm="televisit", error="invalid_token"'},
        )
    return org_id
