"""Devices: the staff app's sign-in, one per phone, made by redeeming a login key.

The app holds a bearer token ``tvm_...``; the store keeps only its SHA-256, as the claim
``mobile-device-token:<hex>`` of the record ``mobile_device/<dev id>`` (a copy of the store lets
nobody in). A device is listed to its user and to administrators with its last sync, and either
can revoke it: the record stays (so the app is told "signed out" rather than "unknown") but
leaves the listings. An administrator's new password for the account signs out every device
of it (``revoke_every``): a password changed after a phone was lost must lock that phone out.
(Not a stamp of the password on each device, as sessions have: the demo accounts get new
passwords at every start, and their phones, offline notes pending, would be signed out by a
restart.) Every call of the app passes ``authorize``: the token is live, the account enabled
and in the group ``mobile``, and the organization has the app on.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from control.clinic.accounts import Staff, get_staff
from control.clinic.errors import Missing, Unauthenticated
from control.clinic.records import Write, mutate
from control.mobile import orgsettings
from control.mobile.errors import DeviceRevoked, NotPermitted
from control.store import Record, Store
from control.times import iso_at

KIND = "mobile_device"
TOKEN_PREFIX = "tvm_"
# Syncing records the time at most this often (a sync is not worth a write every time).
TOUCH_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    org_id: str
    staff_id: str
    name: str
    created_at: float
    last_sync_at: float | None
    revoked_at: float | None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "staff_id": self.staff_id,
            "name": self.name,
            "created_at": iso_at(self.created_at),
            "last_sync_at": None if self.last_sync_at is None else iso_at(self.last_sync_at),
        }


def _device(rec: Record) -> Device:
    d = rec.data
    return Device(
        rec.id, d["org_id"], d["staff_id"], d["name"], d["created_at"], d["last_sync_at"],
        d["revoked_at"],
    )  # fmt: skip


def _token_claim(token: str) -> str:
    return "mobile-device-token:" + hashlib.sha256(token.encode()).hexdigest()


def staff_index(staff_id: str) -> str:
    return f"mobile:devices:staff:{staff_id}"


def org_index(org_id: str) -> str:
    return f"mobile:devices:org:{org_id}"


def _indexes(data: dict[str, Any]) -> dict[str, float]:
    if data["revoked_at"] is not None:
        return {}
    created = data["created_at"]
    return {staff_index(data["staff_id"]): created, org_index(data["org_id"]): created}


async def register(store: Store, staff: Staff, name: str, *, now: float) -> tuple[str, Device]:
    """A new device of ``staff``: (its token, shown once, and the device)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    data = {
        "org_id": staff.org_id,
        "staff_id": staff.id,
        "name": name,
        "created_at": now,
        "last_sync_at": None,
        "revoked_at": None,
        "revoked_by": None,
    }
    rec = await store.create(
        KIND, "dev_" + secrets.token_hex(8), data, claims=[_token_claim(token)],
        indexes=_indexes(data),
    )  # fmt: skip
    return token, _device(rec)


async def authorize(store: Store, token: str) -> tuple[Device, Staff]:
    """The device and its account for a bearer token, if they may use the app now.

    Unauthenticated (401) for an unknown token, DeviceRevoked (401) for a signed-out device
    or a disabled account, NotPermitted (403) without the group ``mobile``, MobileDisabled
    (403) while the organization has the app off.
    """
    rec = None
    if token.startswith(TOKEN_PREFIX) and len(token) <= 200:
        rec = await store.get_by_claim(_token_claim(token))
    if rec is None or rec.kind != KIND:
        raise Unauthenticated("this device is not signed in: enter a login key from your profile")
    device = _device(rec)
    if device.revoked_at is not None:
        raise DeviceRevoked(
            f"this device was signed out at {iso_at(device.revoked_at)}; show login "
            "credentials in your profile to sign in again"
        )
    staff = await get_staff(store, device.staff_id)
    if staff is None or staff.disabled:
        raise DeviceRevoked("this account is disabled; ask your administrator")
    if not staff.can("mobile"):
        raise NotPermitted(f"{staff.username} may not use the mobile app (needs group 'mobile')")
    await orgsettings.require_enabled(store, device.org_id)
    return device, staff


async def touch(store: Store, device: Device, now: float) -> None:
    """Record a sync (at most once a TOUCH_SECONDS; a race with a revoke leaves the revoke)."""
    if device.last_sync_at is not None and now - device.last_sync_at < TOUCH_SECONDS:
        return

    def change(rec: Record) -> Write:
        data = {**rec.data, "last_sync_at": now}
        return data, rec.claims, rec.indexes

    await mutate(store, KIND, device.id, change, what="device")


async def listed(store: Store, index: str) -> list[Device]:
    """The devices of ``staff_index(...)`` or ``org_index(...)``, oldest first."""
    return [_device(r) for r in await store.every(index)]


async def revoke(store: Store, device_id: str, by: Staff, *, now: float) -> Device:
    """Sign the device out: its user may, and an administrator of its organization. Other
    people's devices look absent (Missing)."""
    rec = await store.get(KIND, device_id)
    mine = rec is not None and rec.data["staff_id"] == by.id
    theirs = rec is not None and rec.data["org_id"] == by.org_id and by.can("administer")
    if rec is None or not (mine or theirs):
        raise Missing(f"device {device_id} not found", field="id")
    return await _sign_out(store, device_id, by, now)


async def revoke_every(store: Store, staff: Staff, by: Staff, *, now: float) -> int:
    """Sign out every device of ``staff`` (their password changed), ``by`` an administrator
    who may (the caller checks): how many."""
    found = await listed(store, staff_index(staff.id))
    for device in found:
        await _sign_out(store, device.id, by, now)
    return len(found)


async def _sign_out(store: Store, device_id: str, by: Staff, now: float) -> Device:
    def change(rec: Record) -> Write:
        if rec.data["revoked_at"] is not None:
            return rec.data, rec.claims, rec.indexes
        data = {**rec.data, "revoked_at": now, "revoked_by": by.id}
        return data, rec.claims, _indexes(data)

    return _device(await mutate(store, KIND, device_id, change, what="device"))
