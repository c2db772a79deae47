"""Join tokens: claims, rotation by kid, expiry, tampering, the generated key file."""

from __future__ import annotations

import json
import stat

import jwt
import pytest
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st

from config import load_settings
from control.tokens import Keyring, TokenError, load_keyring

K1 = "a" * 40
K2 = "b" * 40
NOW = 1_800_000_000.0


def issue(ring: Keyring, **over):
    args = {"room_id": "ap-room", "name": "Matti", "role": "guest", "expires_at": NOW + 600,
            "appointment_id": "apt_1", "now": NOW, **over}  # fmt: skip
    return ring.issue_token(**args)


def test_round_trip_and_short_claims():
    ring = Keyring({"k1": K1}, "k1")
    token = issue(ring)
    grant = ring.verify_token(token, now=NOW)
    assert (grant.room_id, grant.name, grant.role, grant.appointment_id) == (
        "ap-room",
        "Matti",
        "guest",
        "apt_1",
    )
    assert grant.expires_at == NOW + 600
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "HS256", "kid": "k1"}
    claims = jwt.decode(
        token, K1, algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False}
    )
    assert set(claims) == {"r", "n", "ro", "a", "iat", "exp"}
    assert len(token) < 220  # it rides in an SMS


def test_rotation_old_tokens_verify_while_their_key_is_configured():
    old = Keyring({"k1": K1}, "k1")
    rotated = Keyring({"k1": K1, "k2": K2}, "k2")
    before = issue(old)
    after = issue(rotated)
    assert jwt.get_unverified_header(after)["kid"] == "k2"
    assert rotated.verify_token(before, now=NOW).name == "Matti"
    assert rotated.verify_token(after, now=NOW).name == "Matti"
    retired = Keyring({"k2": K2}, "k2")
    with pytest.raises(TokenError) as exc:
        retired.verify_token(before, now=NOW)
    assert exc.value.reason == "unknown-key"


def test_expired_tampered_and_foreign_tokens():
    ring = Keyring({"k1": K1}, "k1")
    token = issue(ring)
    with pytest.raises(TokenError) as expired:
        ring.verify_token(token, now=NOW + 600)
    assert expired.value.reason == "expired"
    header, payload, sig = token.split(".")
    forged_payload = jwt.utils.base64url_encode(
        json.dumps({"r": "ap-other", "n": "X", "ro": "h", "exp": NOW + 600}).encode()
    ).decode()
    for bad in [f"{header}.{forged_payload}.{sig}", token + "x", "x.y.z", "", "a" * 50]:
        with pytest.raises(TokenError) as exc:
            ring.verify_token(bad, now=NOW)
        assert exc.value.reason == "invalid", bad
    stranger = Keyring({"k1": "c" * 40}, "k1")  # same kid, other secret
    with pytest.raises(TokenError):
        ring.verify_token(issue(stranger), now=NOW)
    # alg=none must never pass.
    unsigned = jwt.encode(
        {"r": "ap-room", "n": "X", "ro": "h", "exp": NOW + 600},
        None,
        algorithm="none",
        headers={"kid": "k1"},
    )
    with pytest.raises(TokenError):
        ring.verify_token(unsigned, now=NOW)


def test_generated_key_is_kept_owner_only_and_reused(tmp_path):
    settings = load_settings(environ={}, overrides={"server": {"data_dir": str(tmp_path)}})
    first = load_keyring(settings)
    path = tmp_path / "secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_keyring(settings)  # a restart
    assert again.keys == first.keys and again.active_kid == first.active_kid
    assert again.verify_token(issue(first), now=NOW).room_id == "ap-room"


def test_configured_keys_win_over_the_generated_file(tmp_path):
    settings = load_settings(
        environ={},
        overrides={
            "server": {"data_dir": str(tmp_path)},
            "tokens": {"secrets": {"k9": K2}, "active_kid": "k9"},
        },
    )
    ring = load_keyring(settings)
    assert ring.keys == {"k9": K2} and not (tmp_path / "secrets.json").exists()


class _Utf8Json(json.JSONEncoder):
    def __init__(self, **kwargs: object) -> None:
        kwargs["ensure_ascii"] = False
        super().__init__(**kwargs)  # type: ignore[arg-type]


@given(
    name=st.text(min_size=1, max_size=40),
    room=st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_0123456789", min_size=1, max_size=24),
    role=st.sampled_from(["host", "guest"]),
    appointment=st.one_of(st.none(), st.text(max_size=20)),
    exp=st.integers(min_value=0, max_value=2**40),
    secret=st.text(min_size=32, max_size=64),
)
@examples(max_examples=200, deadline=None)
def test_issued_tokens_are_byte_for_byte_what_pyjwt_encodes(name, room, role, appointment, exp,
                                                            secret):  # fmt: skip
    ring = Keyring({"k1": secret}, "k1")
    token = ring.issue_token(
        room_id=room, name=name, role=role, expires_at=exp, appointment_id=appointment, now=1000
    )
    claims: dict[str, object] = {"r": room, "n": name, "ro": role[0], "iat": 1000, "exp": exp}
    if appointment is not None:
        claims["a"] = appointment
    expected = jwt.encode(
        claims,
        secret,
        algorithm="HS256",
        headers={"kid": "k1", "typ": None},
        json_encoder=_Utf8Json,
    )
    assert token == expected
    grant = ring.verify_token(token, now=exp - 1)
    assert (grant.name, grant.room_id, grant.appointment_id) == (name, room, appointment)


@pytest.mark.parametrize("token", ["\ud800", "eyJhbGciOiJIUzI1NiJ9.\udcff.x", "tok\u00e9n"])
def test_a_token_that_is_not_ascii_is_malformed(token):
    # A signaling frame's JSON may carry a lone surrogate: PyJWT raised UnicodeEncodeError.
    with pytest.raises(TokenError) as caught:
        Keyring({"k1": K1}, "k1").verify_token(token, now=NOW)
    assert caught.value.reason == "invalid"
