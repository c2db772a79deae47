"""Join tokens: short HS256 JWTs naming a room, a participant and a role.

The client's link carries its guest token (``{base_url}/j/<token>``) inside an SMS, so the
claims are short: ``r`` room id, ``n`` participant name, ``ro`` role (``h`` host, ``g`` guest),
``a`` appointment id (absent for rooms that are not appointments), ``v`` the link version of
that role (absent = 0; a re-issue that replaces a role's identity raises it, and the room's
owner refuses older versions: control.join), ``d`` a device id on tokens a PIN join issued (a
second device of a connected member must be admitted by the clinic:
media_server/admission.py), ``iat``, ``exp``. The
header's ``kid`` names the signing key; every configured key verifies, so keys rotate by adding
a new one as ``tokens.active_kid`` and removing the old one after its tokens expired.

With no keys configured a random one is generated once and kept in ``<data_dir>/secrets.json``
(mode 0600) so links stay valid across restarts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import jwt

from config.settings import Settings

ALGORITHM = "HS256"
SECRETS_FILE = "secrets.json"
ROLE_CODES = {"host": "h", "guest": "g"}
ROLES = {code: role for role, code in ROLE_CODES.items()}


class TokenError(Exception):
    """A token that cannot be used. ``reason`` is ``invalid``, ``expired`` or ``unknown-key``."""

    def __init__(self, reason: str, detail: str, grant: Grant | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        # Set for an expired token whose signature held: the page can still speak the
        # holder's language.
        self.grant = grant


@dataclass(frozen=True, slots=True)
class Grant:
    """What a verified token allows: ``name`` may join ``room_id`` as ``role`` until then."""

    room_id: str
    name: str
    role: str
    appointment_id: str | None
    expires_at: float
    version: int = 0
    device: str | None = None


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


class _Signer:
    """HS256 signing with the header encoded once and the key's HMAC state prepared once
    (RFC 7515 compact serialization, RFC 7519 claims): byte for byte what ``jwt.encode``
    produces for the same claims and headers (tests/control/test_tokens.py compares them),
    at a fraction of its cost - PyJWT re-encodes the header, re-checks and re-prepares the key
    and re-creates the HMAC for every token. Verifying stays with PyJWT."""

    def __init__(self, kid: str, secret: str) -> None:
        header = {"alg": ALGORITHM, "kid": kid}  # sorted keys, as PyJWT writes headers
        self._head = _b64(json.dumps(header, separators=(",", ":"), sort_keys=True).encode())
        self._head += b"."
        self._mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)

    def sign(self, claims: dict[str, object]) -> str:
        body = self._head + _b64(
            json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode()
        )
        mac = self._mac.copy()
        mac.update(body)
        return (body + b"." + _b64(mac.digest())).decode()


class Keyring:
    def __init__(self, keys: dict[str, str], active_kid: str) -> None:
        if active_kid not in keys:
            raise ValueError(f"active key {active_kid!r} is not among the keys")
        self.keys = dict(keys)
        self.active_kid = active_kid
        self._signer = _Signer(active_kid, self.keys[active_kid])

    def issue_token(
        self,
        *,
        room_id: str,
        name: str,
        role: str,
        expires_at: float,
        appointment_id: str | None = None,
        version: int = 0,
        device: str | None = None,
        now: float | None = None,
    ) -> str:
        claims: dict[str, object] = {
            "r": room_id,
            "n": name,
            "ro": ROLE_CODES[role],
            "iat": int(time.time() if now is None else now),
            "exp": int(expires_at),
        }
        if appointment_id is not None:
            claims["a"] = appointment_id
        if version:
            claims["v"] = version
        if device is not None:
            claims["d"] = device
        # No "typ" header: every byte counts in an SMS (names as UTF-8, not \\u escapes).
        return self._signer.sign(claims)

    def verify_token(self, token: str, *, now: float | None = None) -> Grant:
        if not token.isascii():
            # A JWT is base64url and dots; PyJWT raised UnicodeEncodeError on a lone
            # surrogate (JSON signaling frames may carry one), which is no InvalidTokenError.
            raise TokenError("invalid", "the token is malformed")
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError as exc:
            raise TokenError("invalid", "the token is malformed") from exc
        key = self.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise TokenError("unknown-key", "the token was signed with a key this server lacks")
        try:
            # Expiry is checked here (not by PyJWT) so tests can move the clock.
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "require": ["exp", "r", "n", "ro"],
                },
            )
        except jwt.InvalidTokenError as exc:
            raise TokenError("invalid", "the token is not valid") from exc
        role = ROLES.get(claims["ro"])
        if role is None or not isinstance(claims["r"], str) or not isinstance(claims["n"], str):
            raise TokenError("invalid", "the token is not valid")
        if not isinstance(claims["exp"], int | float):
            raise TokenError("invalid", "the token is not valid")
        appointment_id = claims.get("a")
        version = claims.get("v", 0)
        if isinstance(version, bool) or not isinstance(version, int):
            raise TokenError("invalid", "the token is not valid")
        grant = Grant(
            room_id=claims["r"],
            name=claims["n"],
            role=role,
            appointment_id=appointment_id if isinstance(appointment_id, str) else None,
            expires_at=float(claims["exp"]),
            version=version,
            device=claims["d"] if isinstance(claims.get("d"), str) else None,
        )
        if (time.time() if now is None else now) >= claims["exp"]:
            raise TokenError("expired", "the token has expired", grant)
        return grant


def _generated_key(data_dir: Path) -> dict[str, str]:
    """The key kept in <data_dir>/secrets.json, created once (atomically, owner-only)."""
    path = data_dir / SECRETS_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    created = {"kid": "k" + secrets.token_hex(3), "secret": secrets.token_urlsafe(48)}
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(created, out)
        out.flush()
        os.fsync(out.fileno())
    try:
        # link() fails if another process created the file meanwhile: then theirs wins.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return json.loads(path.read_text())


def load_keyring(settings: Settings) -> Keyring:
    if settings.tokens.secrets:
        return Keyring(settings.tokens.secrets, settings.tokens.active_kid)
    generated = _generated_key(settings.server.data_dir)
    return Keyring({generated["kid"]: generated["secret"]}, generated["kid"])


_KEYRINGS: dict[tuple[object, ...], Keyring] = {}


def keyring_for(settings: Settings) -> Keyring:
    """One keyring per distinct key configuration (loaded once per process)."""
    key = (
        tuple(sorted(settings.tokens.secrets.items())),
        settings.tokens.active_kid,
        str(settings.server.data_dir.resolve()),
    )
    ring = _KEYRINGS.get(key)
    if ring is None:
        ring = _KEYRINGS[key] = load_keyring(settings)
    return ring
