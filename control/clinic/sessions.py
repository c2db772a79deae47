"""Staff login sessions, and dedicated stations (long-lived logins an administrator can revoke).

The bearer token is never stored: the record id is its SHA-256, so a copy of the store does not
let anyone sign in. The same id names the session to administrators ("revoke station X").
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from control.clinic.accounts import Staff, get_staff
from control.clinic.errors import Invalid, Missing
from control.store import NotFound, Store

KIND = "staff_login"
TOKEN_PREFIX = "tvs_"
# Sessions revoke_all reads at once from an account's index.
PAGE = 1000


@dataclass(frozen=True, slots=True)
class Login:
    id: str
    staff_id: str
    org_id: str
    created_at: float
    expires_at: float
    station: str | None  # the station's name when this is a dedicated station

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "staff_id": self.staff_id,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "station": self.station,
        }


def login_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:40]


def _login(id: str, d: dict[str, Any]) -> Login:
    return Login(id, d["staff_id"], d["org_id"], d["created_at"], d["expires_at"], d["station"])


async def open_login(
    store: Store, staff: Staff, *, now: float, ttl_seconds: float, station: str | None = None
) -> tuple[str, Login]:
    """A new session for ``staff``; returns the bearer token (shown once) and the session."""
    if station is not None:
        station = station.strip()
        if not 1 <= len(station) <= 80:
            raise Invalid("station: 1-80 characters", field="station")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    data = {
        "staff_id": staff.id,
        "org_id": staff.org_id,
        "created_at": now,
        "expires_at": now + ttl_seconds,
        "station": station,
        "credential": staff.credential,
    }
    indexes = {f"login:staff:{staff.id}": now}
    if station is not None:
        indexes[f"login:stations:{staff.org_id}"] = now
    rec = await store.create(KIND, login_id(token), data, indexes=indexes)
    return token, _login(rec.id, rec.data)


async def resolve(store: Store, token: str, *, now: float) -> tuple[Login, Staff] | None:
    """The live session and its (enabled) account for a bearer token, else None."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    rec = await store.get(KIND, login_id(token))
    if rec is None:
        return None
    login = _login(rec.id, rec.data)
    if now >= login.expires_at:
        await _forget(store, login.id)
        return None
    staff = await get_staff(store, login.staff_id)
    if staff is None or staff.disabled:
        return None
    # Opened under an earlier password: revoke_all may not have reached it (a login racing
    # the change). Sessions stored before the field was recorded have none.
    if rec.data.get("credential", staff.credential) != staff.credential:
        await _forget(store, login.id)
        return None
    return login, staff


async def _forget(store: Store, id: str) -> None:
    try:
        await store.delete(KIND, id)
    except NotFound:
        pass  # logged out twice, or expired and removed by another request meanwhile


async def close_login(store: Store, token: str) -> None:
    await _forget(store, login_id(token))


async def list_stations(store: Store, org_id: str, *, now: float) -> list[Login]:
    """The organization's live stations, oldest first. Expired ones are forgotten here: a
    station that never signs in again stays in the index, and one page of 1,000 of them hid
    every station signed in since from its administrators (who could not sign it out)."""
    logins = [_login(r.id, r.data) for r in await store.every(f"login:stations:{org_id}")]
    for login in logins:
        if login.expires_at <= now:
            await _forget(store, login.id)
    return [login for login in logins if login.expires_at > now]


async def revoke(store: Store, org_id: str, id: str) -> Login:
    """End the session ``id`` of this organization (a station, or any login)."""
    rec = await store.get(KIND, id)
    if rec is None or rec.data["org_id"] != org_id:
        raise Missing(f"session {id} not found", field="id")
    await _forget(store, id)
    return _login(rec.id, rec.data)


async def revoke_all(store: Store, staff_id: str) -> int:
    """End every session of an account (its password changed or it was disabled): how many.
    Page by page, as each forgotten one leaves the index: one page of 1,000 left the
    newest sessions of an account signed in more often than that alive."""
    done = 0
    while True:
        recs = await store.range(f"login:staff:{staff_id}", limit=PAGE)
        for r in recs:
            await _forget(store, r.id)
        done += len(recs)
        if len(recs) < PAGE:
            return done
