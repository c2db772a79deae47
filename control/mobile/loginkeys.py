"""One-time login keys: what "Show login credentials" in a user's profile shows, typed into the
app once to get a device token.

A key is 10 characters of Crockford's base32 (50 random bits; no I, L, O or U, so nothing
reads as another character), shown as ``ABCDE-FGHJK``; typing is forgiving (case, spaces and
dashes ignored, O read as 0, I and L as 1). Only its SHA-256 is stored (record
``mobile_login_key/<hash>``); it works once, until ``mobile.login_key_minutes`` after it was
shown, and a user has at most one (the claim ``mobile-login-key:<staff id>``): showing
credentials again replaces the previous key. Guessing meets the budgets of PIN guessing
(control/ratelimit.py, ``limiter``), with amounts of its own (``GUESSING``): per client address
20 attempts a minute and 20 wrong keys an hour; for the deployment 100 looked-up wrong keys a
minute, past which only addresses without a wrong key on record are looked up (50 a minute).
So one guesser, from any number of addresses, cannot lock out the staff signing in (a single
node-wide limit of 100 wrong keys a minute had refused every device login on the node), and at
most 216,000 wrong keys are looked up a day: at 50 bits and 1,000 live keys, 1 - (1 - 1000 /
2^50)^216000 = 1.9e-7 that any guess in a day hits.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from config.settings import JoinSettings
from control.clinic.accounts import Staff
from control.clinic.errors import Unauthenticated
from control.ratelimit import JoinLimiter
from control.store import AlreadyExists, NotFound, Store, UniqueConflict, VersionConflict

KIND = "mobile_login_key"
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 10
_TYPOS = str.maketrans({"O": "0", "I": "1", "L": "1", "-": None, " ": None})
ISSUE_ATTEMPTS = 5
# A staff member mistyping a key a few times stays far from these (see the module).
GUESSING = JoinSettings(
    per_ip_per_minute=20, failed_per_ip_per_hour=20, failed_per_minute=100, fresh_per_minute=50
)
BUDGET_KIND = "keybudget"


@dataclass(frozen=True, slots=True)
class LoginKey:
    key: str  # as shown: ABCDE-FGHJK
    expires_at: float


def normalize(typed: str) -> str:
    return typed.upper().translate(_TYPOS)


def _record_id(normalized: str) -> str:
    return hashlib.sha256(normalized.encode()).hexdigest()[:40]


def _claim(staff_id: str) -> str:
    return f"mobile-login-key:{staff_id}"


async def issue(store: Store, staff: Staff, *, now: float, ttl_seconds: float) -> LoginKey:
    """A new key for ``staff``, replacing their previous one (which stops working)."""
    for _ in range(ISSUE_ATTEMPTS):
        previous = await store.get_by_claim(_claim(staff.id))
        if previous is not None:
            try:
                await store.delete(KIND, previous.id, expect_version=previous.version)
            except (NotFound, VersionConflict):
                pass  # used or replaced meanwhile
        raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
        data = {
            "staff_id": staff.id,
            "org_id": staff.org_id,
            "expires_at": now + ttl_seconds,
            "credential": staff.credential,
        }
        try:
            await store.create(KIND, _record_id(raw), data, claims=[_claim(staff.id)])
        except (UniqueConflict, AlreadyExists):
            continue  # another tab showed credentials at the same moment: try again
        return LoginKey(f"{raw[:5]}-{raw[5:]}", data["expires_at"])
    raise RuntimeError("could not issue a login key")  # pragma: no cover - five lost races


async def redeem(store: Store, typed: str, *, now: float) -> tuple[str, str, str | None]:
    """Use the key up: (its staff id, org id, the password it was shown under: the
    ``Staff.credential`` of then, None for keys shown before it was recorded). Exactly one of
    racing redeemers wins; an unknown, used or expired key raises InvalidKey (401)."""
    normalized = normalize(typed)
    if len(normalized) != LENGTH or any(c not in ALPHABET for c in normalized):
        raise InvalidKey()
    rec = await store.get(KIND, _record_id(normalized))
    if rec is None:
        raise InvalidKey()
    try:
        await store.delete(KIND, rec.id, expect_version=rec.version)
    except (NotFound, VersionConflict) as exc:
        raise InvalidKey() from exc
    if now >= rec.data["expires_at"]:
        raise InvalidKey()
    return rec.data["staff_id"], rec.data["org_id"], rec.data.get("credential")


class InvalidKey(Unauthenticated):
    """Unknown, used or expired: all look the same to the caller."""

    kind = "invalid-login-key"

    def __init__(self) -> None:
        super().__init__(
            "this login key is wrong, used or expired: show login credentials again in your "
            "profile",
            field="key",
        )


def limiter(store: Store) -> JoinLimiter:
    """The login-key guessing budgets (``GUESSING``, deployment-wide ones in ``store``)."""
    return JoinLimiter(GUESSING, store, kind=BUDGET_KIND)
