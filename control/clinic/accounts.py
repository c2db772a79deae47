"""Staff accounts of an organization: who may request, provide or administer.

Record ``staff/<id>``: the user name is a unique claim (one name, one account, across
organizations, so a login form needs only name and password); providers also sit in an
index per organization so requesters can list whom they may reach.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from control.clinic import passwords
from control.clinic.errors import Conflict, Forbidden, Invalid, Missing
from control.clinic.records import mutate
from control.store import Record, Store, UniqueConflict

KIND = "staff"
# Permission groups. "mobile": may access / edit the mobile app settings in the profile (show
# login credentials, see and sign out their devices); without it no device of theirs syncs.
GROUPS = ("request", "provide", "administer", "mobile")
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,63}$")


@dataclass(frozen=True, slots=True)
class Staff:
    id: str
    org_id: str
    username: str
    display_name: str
    groups: tuple[str, ...]
    available: bool
    disabled: bool
    created_at: float
    # Names the password in force (a digest of its hash): a session opened under another
    # password is over (sessions.resolve), whenever and however many were opened.
    credential: str

    def can(self, group: str) -> bool:
        return not self.disabled and group in self.groups

    def require(self, group: str) -> None:
        if not self.can(group):
            verb = {
                "request": "request sessions",
                "provide": "provide sessions",
                "mobile": "use the mobile app",
            }.get(group, "administer accounts")
            raise Forbidden(f"{self.username} may not {verb} (needs group {group!r})")

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "org_id": self.org_id,
            "username": self.username,
            "display_name": self.display_name,
            "groups": list(self.groups),
            "available": self.available,
            "disabled": self.disabled,
        }


def _from_record(rec: Record) -> Staff:
    d = rec.data
    return Staff(
        id=rec.id,
        org_id=d["org_id"],
        username=d["username"],
        display_name=d["display_name"],
        groups=tuple(d["groups"]),
        available=d["available"],
        disabled=d["disabled"],
        created_at=d["created_at"],
        credential=hashlib.sha256(d["password"].encode()).hexdigest()[:16],
    )


def _claims(data: dict[str, Any]) -> tuple[str, ...]:
    return (f"staff-username:{data['username']}",)


def _indexes(data: dict[str, Any]) -> dict[str, float]:
    org, created = data["org_id"], data["created_at"]
    idx = {f"staff:org:{org}": created}
    if "provide" in data["groups"] and not data["disabled"]:
        idx[f"staff:providers:{org}"] = created
    return idx


def normalize_username(username: str) -> str:
    name = username.strip().lower()
    if not USERNAME_RE.match(name):
        raise Invalid("username: 2-64 characters, letters, digits and . _ @ -", field="username")
    return name


def check_groups(groups: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise Invalid(f"groups: unknown {unknown}; known {list(GROUPS)}", field="groups")
    return tuple(g for g in GROUPS if g in groups)


def check_password(password: str) -> None:
    if not passwords.MIN_LENGTH <= len(password) <= passwords.MAX_LENGTH:
        raise Invalid(
            f"password: {passwords.MIN_LENGTH}-{passwords.MAX_LENGTH} characters", field="password"
        )


def check_display_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise Invalid("display_name: 1-100 characters", field="display_name")
    return name


async def create_staff(
    store: Store,
    org_id: str,
    *,
    username: str,
    display_name: str,
    password: str,
    groups: list[str] | tuple[str, ...],
    now: float | None = None,
) -> Staff:
    name = normalize_username(username)
    check_password(password)
    data = {
        "org_id": org_id,
        "username": name,
        "display_name": check_display_name(display_name),
        "groups": list(check_groups(groups)),
        "password": await asyncio.to_thread(passwords.hash_password, password),
        "available": False,
        "disabled": False,
        "created_at": time.time() if now is None else now,
    }
    try:
        rec = await store.create(
            KIND, "st_" + secrets.token_hex(8), data, claims=_claims(data), indexes=_indexes(data)
        )
    except UniqueConflict as exc:
        raise Conflict(f"username {name!r} is taken", field="username") from exc
    return _from_record(rec)


async def get_staff(store: Store, staff_id: str) -> Staff | None:
    rec = await store.get(KIND, staff_id)
    return _from_record(rec) if rec else None


async def staff_in_org(store: Store, org_id: str, staff_id: str, *, what: str = "staff") -> Staff:
    """The account, only if it belongs to ``org_id`` (other organizations' ids look absent)."""
    staff = await get_staff(store, staff_id)
    if staff is None or staff.org_id != org_id:
        raise Missing(f"{what} {staff_id} not found", field=f"{what}_id")
    return staff


async def authenticate(store: Store, username: str, password: str) -> Staff | None:
    """The account for these credentials, or None (same work done either way)."""
    rec = await store.get_by_claim(f"staff-username:{username.strip().lower()}")
    stored = rec.data["password"] if rec else passwords.DUMMY_HASH
    ok = await asyncio.to_thread(passwords.verify_password, stored, password)
    if not ok or rec is None or rec.data["disabled"]:
        return None
    return _from_record(rec)


async def list_staff(store: Store, org_id: str, *, providers_only: bool = False) -> list[Staff]:
    index = f"staff:{'providers' if providers_only else 'org'}:{org_id}"
    return [_from_record(r) for r in await store.every(index)]


async def update_staff(
    store: Store,
    staff_id: str,
    *,
    display_name: str | None = None,
    groups: list[str] | None = None,
    disabled: bool | None = None,
    password: str | None = None,
    available: bool | None = None,
) -> Staff:
    new_hash = None
    if password is not None:
        check_password(password)
        new_hash = await asyncio.to_thread(passwords.hash_password, password)
    fields: dict[str, Any] = {}
    if display_name is not None:
        fields["display_name"] = check_display_name(display_name)
    if groups is not None:
        fields["groups"] = list(check_groups(groups))
    if disabled is not None:
        fields["disabled"] = disabled
    if available is not None:
        fields["available"] = available
    if new_hash is not None:
        fields["password"] = new_hash

    def change(rec: Record) -> tuple[dict[str, Any], tuple[str, ...], dict[str, float]]:
        data = {**rec.data, **fields}
        if "provide" not in data["groups"] or data["disabled"]:
            data["available"] = False
        return data, _claims(data), _indexes(data)

    return _from_record(await mutate(store, KIND, staff_id, change, what="staff"))
