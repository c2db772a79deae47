"""Staff accounts, scrypt passwords, login sessions and dedicated stations."""

from __future__ import annotations

import pytest

from control.clinic import passwords, sessions
from control.clinic.accounts import authenticate, create_staff, list_staff, update_staff
from control.clinic.errors import Conflict, Forbidden, Invalid, Missing


def test_scrypt_hash_format_and_verify():
    h = passwords.hash_password("correct horse")
    scheme, log2_n, r, p, salt, digest = h.split("$")
    assert (scheme, int(log2_n), int(r), int(p)) == ("scrypt", 14, 8, 1)
    assert passwords.verify_password(h, "correct horse")
    assert not passwords.verify_password(h, "correct horse ")
    assert passwords.hash_password("correct horse") != h  # salted
    assert not passwords.verify_password("garbage", "x")
    assert not passwords.verify_password("bcrypt$1$2$3$AA==$AA==", "x")


async def test_create_authenticate_and_groups(store):
    s = await create_staff(
        store, "org1", username=" DrWho ", display_name="Dr Who", password="correct horse",
        groups=["provide", "request"],
    )  # fmt: skip
    assert s.username == "drwho" and s.groups == ("request", "provide") and not s.available
    assert (await authenticate(store, "DRWHO", "correct horse")).id == s.id
    assert await authenticate(store, "drwho", "wrong password") is None
    assert await authenticate(store, "nobody", "correct horse") is None
    with pytest.raises(Conflict) as exc:
        await create_staff(store, "org2", username="drwho", display_name="X",
                           password="correct horse", groups=[])  # fmt: skip
    assert exc.value.field == "username"
    for bad, field in (
        ({"username": "a"}, "username"),
        ({"password": "short"}, "password"),
        ({"groups": ["root"]}, "groups"),
        ({"display_name": " "}, "display_name"),
    ):
        args = {"username": "ok.name", "display_name": "Ok", "password": "long enough",
                "groups": ["request"], **bad}  # fmt: skip
        with pytest.raises(Invalid) as exc:
            await create_staff(store, "org1", **args)
        assert exc.value.field == field
    assert [x.id for x in await list_staff(store, "org1", providers_only=True)] == [s.id]
    s = await update_staff(store, s.id, available=True)
    assert s.available
    s = await update_staff(store, s.id, groups=["request"])  # no longer a provider
    assert not s.available and not s.can("provide")
    with pytest.raises(Forbidden):
        s.require("provide")
    assert await list_staff(store, "org1", providers_only=True) == []
    await update_staff(store, s.id, disabled=True)
    assert await authenticate(store, "drwho", "correct horse") is None


async def test_login_logout_expiry_and_stations(store):
    s = await create_staff(store, "org1", username="desk", display_name="Front desk",
                           password="correct horse", groups=["request"])  # fmt: skip
    token, login = await sessions.open_login(store, s, now=1000.0, ttl_seconds=3600)
    assert token.startswith("tvs_") and login.id == sessions.login_id(token)
    assert token not in str((await store.get(sessions.KIND, login.id)).data)
    assert (await sessions.resolve(store, token, now=1001.0))[1].id == s.id
    assert await sessions.resolve(store, token + "x", now=1001.0) is None
    assert await sessions.resolve(store, "not-a-token", now=1001.0) is None
    assert await sessions.resolve(store, token, now=1000.0 + 3600) is None  # expired
    assert await store.get(sessions.KIND, login.id) is None  # and forgotten

    token, _ = await sessions.open_login(store, s, now=2000.0, ttl_seconds=60)
    await sessions.close_login(store, token)
    await sessions.close_login(store, token)  # twice is fine
    assert await sessions.resolve(store, token, now=2001.0) is None

    st_token, station = await sessions.open_login(
        store, s, now=3000.0, ttl_seconds=365 * 86400, station="Exam room 2"
    )
    with pytest.raises(Invalid):
        await sessions.open_login(store, s, now=3000.0, ttl_seconds=1, station=" ")
    assert [x.station for x in await sessions.list_stations(store, "org1", now=3001.0)] == [
        "Exam room 2"
    ]
    assert await sessions.list_stations(store, "org2", now=3001.0) == []
    with pytest.raises(Missing):  # another organization's administrator
        await sessions.revoke(store, "org2", station.id)
    await sessions.revoke(store, "org1", station.id)
    assert await sessions.resolve(store, st_token, now=3002.0) is None
    assert await sessions.list_stations(store, "org1", now=3002.0) == []

    # Disabling an account ends its sessions at once.
    token, _ = await sessions.open_login(store, s, now=4000.0, ttl_seconds=60)
    await update_staff(store, s.id, disabled=True)
    assert await sessions.resolve(store, token, now=4001.0) is None
    assert await sessions.revoke_all(store, s.id) == 1


async def test_a_new_password_ends_every_session_opened_under_the_old_one(store):
    s = await create_staff(store, "org1", username="desk", display_name="Front desk",
                           password="correct horse", groups=["request"])  # fmt: skip
    # One more session than revoke_all read in one page: the newest one stayed signed in.
    tokens = [
        (await sessions.open_login(store, s, now=1000.0 + i, ttl_seconds=3600))[0]
        for i in range(sessions.PAGE + 1)
    ]
    # A login that checked the old password as the administrator changed it.
    racing = await authenticate(store, "desk", "correct horse")
    changed = await update_staff(store, s.id, password="battery staple")
    assert await sessions.revoke_all(store, s.id) == len(tokens)
    late, _ = await sessions.open_login(store, racing, now=3000.0, ttl_seconds=3600)
    for token in (tokens[0], tokens[-1], late):
        assert await sessions.resolve(store, token, now=3001.0) is None
    fresh, _ = await sessions.open_login(store, changed, now=3002.0, ttl_seconds=3600)
    assert (await sessions.resolve(store, fresh, now=3003.0))[1].id == s.id


async def test_stations_past_a_page_of_expired_ones_are_listed(store):
    # One page of 1,000 stations that had expired (never signed in again, so never removed)
    # hid the live one from its administrators, who then could not sign it out.
    s = await create_staff(store, "org1", username="kiosk", display_name="Kiosk",
                           password="correct horse", groups=["request"])  # fmt: skip
    for i in range(sessions.PAGE):
        await sessions.open_login(store, s, now=1000.0 + i, ttl_seconds=60, station=f"Old {i}")
    _, live = await sessions.open_login(store, s, now=5000.0, ttl_seconds=3600, station="Lobby")
    assert [x.station for x in await sessions.list_stations(store, "org1", now=5001.0)] == ["Lobby"]
    # ... and the expired ones are forgotten on the way.
    assert len(await store.range("login:stations:org1", limit=2000)) == 1


async def test_an_organization_of_over_a_thousand_lists_every_account(store, monkeypatch):
    # One page of 1,000: administrators could not see (nor disable) the accounts after it,
    # and requesters not reach the providers after it.
    monkeypatch.setattr(passwords, "hash_password", lambda password: "cheap")  # scrypt: 1,001 x
    for i in range(1001):
        await create_staff(store, "big", username=f"vet{i:04}", display_name=f"Vet {i}",
                           password="correct horse", groups=["provide"], now=float(i))  # fmt: skip
    everyone = await list_staff(store, "big")
    assert len(everyone) == 1001 and everyone[-1].username == "vet1000"
    assert len(await list_staff(store, "big", providers_only=True)) == 1001
