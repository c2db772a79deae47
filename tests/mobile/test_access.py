"""Enabling the app, the permission right, one-time login keys and devices (both stores)."""

from __future__ import annotations

from control.clinic.accounts import list_staff
from control.mobile import devices, loginkeys

from .helpers import API, Clinic, problem


async def test_off_by_default_no_credentials_until_an_admin_turns_it_on(clinic: Clinic):
    c = clinic.client
    assert await (await c.get(f"{API}/mobile/settings", headers=clinic.vet)).json() == {
        "enabled": False
    }
    await problem(
        await c.post(f"{API}/mobile/login-key", headers=clinic.vet), 403, "mobile-disabled"
    )
    # Only administrators change the setting.
    resp = await c.put(f"{API}/mobile/settings", json={"enabled": True}, headers=clinic.vet)
    await problem(resp, 403, "forbidden")
    await clinic.enable()
    resp = await c.post(f"{API}/mobile/login-key", headers=clinic.vet)
    assert resp.status == 201
    body = await resp.json()
    assert len(body["key"]) == 11 and body["key"][5] == "-"
    assert body["app_url"] == "https://tv.example/staff/"


async def test_without_the_right_no_credentials_and_no_devices(clinic: Clinic):
    await clinic.enable()
    desk = await clinic.account("desk", ["request"])
    c = clinic.client
    await problem(await c.post(f"{API}/mobile/login-key", headers=desk), 403, "forbidden")
    await problem(await c.get(f"{API}/mobile/devices", headers=desk), 403, "forbidden")
    # Taking the right away stops a device that was signed in.
    device = await clinic.device()
    vet_id = (await (await c.get(f"{API}/clinic/me", headers=clinic.vet)).json())["staff"]["id"]
    resp = await c.patch(
        f"{API}/clinic/staff/{vet_id}", json={"groups": ["provide"]}, headers=clinic.admin
    )
    assert resp.status == 200, await resp.text()
    await problem(await clinic.sync(device), 403, "mobile-not-permitted")


async def test_a_login_key_works_once_and_expires(clinic: Clinic):
    await clinic.enable()
    c = clinic.client
    login = await clinic.login_key(clinic.vet)
    # Typed on a phone: lower case, spaces instead of the dash.
    typed = login.lower().replace("-", " ")
    resp = await c.post(f"{API}/mobile/device-login", json={"key": typed, "name": "Pixel"})
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["token"].startswith("tvm_") and body["device"]["name"] == "Pixel"
    assert body["staff"]["display_name"] == "Vet"
    again = await c.post(f"{API}/mobile/device-login", json={"key": login})
    await problem(again, 401, "invalid-login-key", "key")

    # Showing credentials again replaces the key; a key expires.
    first = await clinic.login_key(clinic.vet)
    second = await clinic.login_key(clinic.vet)
    await problem(await c.post(f"{API}/mobile/device-login", json={"key": first}), 401)
    clinic.clock.now += 15 * 60 + 1
    await problem(
        await c.post(f"{API}/mobile/device-login", json={"key": second}), 401, "invalid-login-key"
    )


async def test_guessing_keys_is_throttled(clinic: Clinic):
    await clinic.enable()
    c = clinic.client
    for _ in range(loginkeys.GUESSING.failed_per_ip_per_hour):
        resp = await c.post(f"{API}/mobile/device-login", json={"key": "AAAAA-AAAAA"})
        await problem(resp, 401, "invalid-login-key")
    login = await clinic.login_key(clinic.vet)
    blocked = await c.post(f"{API}/mobile/device-login", json={"key": login})
    body = await problem(blocked, 429, "rate-limited")
    assert int(blocked.headers["Retry-After"]) >= 1 and body["retry_after"] >= 1


async def test_one_guesser_on_many_addresses_locks_out_no_one_else(clinic: Clinic, from_address):
    # A node-wide 100 wrong keys a minute: a guesser on 11 addresses (10 each) refused every
    # staff member's device login on the node for the rest of the minute.
    await clinic.enable()
    path = f"{API}/mobile/device-login"
    guesses = loginkeys.GUESSING.failed_per_minute + 10
    per_address = loginkeys.GUESSING.failed_per_ip_per_hour
    statuses = [
        await from_address(f"127.0.1.{n // per_address}", {"key": "AAAAA-AAAAA"}, path=path)
        for n in range(guesses)
    ]
    # The deployment's budget is spent: the next address's first key is looked up (it had no
    # wrong key), its others and every known guesser's are refused.
    assert statuses == [401] * (guesses - 9) + [429] * 9, statuses
    assert await from_address("127.0.1.1", {"key": "AAAAA-AAAAA"}, path=path) == 429
    # The staff, each from an address without a wrong key, still sign in.
    for n, (who, headers) in enumerate((("vet", clinic.vet), ("admin", clinic.admin))):
        key = await clinic.login_key(headers)
        body = {"key": key, "name": f"{who}'s phone"}
        assert await from_address(f"127.0.2.{n}", body, path=path) == 201, who


async def test_devices_are_listed_with_last_sync_and_revoked_by_user_or_admin(clinic: Clinic):
    await clinic.enable()
    c = clinic.client
    phone = await clinic.device(name="Phone")
    tablet = await clinic.device(name="Tablet")
    assert (await clinic.sync(phone)).status == 200
    mine = (await (await c.get(f"{API}/mobile/devices", headers=clinic.vet)).json())["devices"]
    by_name = {d["name"]: d for d in mine}
    assert by_name["Phone"]["last_sync_at"] is not None
    assert by_name["Tablet"]["last_sync_at"] is None
    listed = await (await c.get(f"{API}/mobile/org/devices", headers=clinic.admin)).json()
    assert {(d["name"], d["staff_name"]) for d in listed["devices"]} == {
        ("Phone", "Vet"),
        ("Tablet", "Vet"),
    }
    await problem(await c.get(f"{API}/mobile/org/devices", headers=clinic.vet), 403)

    # Another user cannot revoke it; its user can; an administrator can.
    other = await clinic.account("other", ["mobile"])
    resp = await c.delete(f"{API}/mobile/devices/{phone['X-Device']}", headers=other)
    await problem(resp, 404)
    resp = await c.delete(f"{API}/mobile/devices/{phone['X-Device']}", headers=clinic.vet)
    assert resp.status == 204
    body = await problem(await clinic.sync(phone), 401, "device-revoked")
    assert "signed out" in body["detail"]
    resp = await c.delete(f"{API}/mobile/devices/{tablet['X-Device']}", headers=clinic.admin)
    assert resp.status == 204
    await problem(await c.get(f"{API}/mobile/app/me", headers=tablet), 401, "device-revoked")
    mine = await (await c.get(f"{API}/mobile/devices", headers=clinic.vet)).json()
    assert mine["devices"] == []


async def test_turning_the_app_off_stops_devices_and_credentials(clinic: Clinic):
    await clinic.enable()
    device = await clinic.device()
    key_before = await clinic.login_key(clinic.vet)
    await clinic.enable(False)
    body = await problem(await clinic.sync(device), 403, "mobile-disabled")
    assert "turned off" in body["detail"]
    await problem(await clinic.client.post(f"{API}/mobile/login-key", headers=clinic.vet), 403)
    resp = await clinic.client.post(f"{API}/mobile/device-login", json={"key": key_before})
    await problem(resp, 403, "mobile-disabled")
    await clinic.enable()
    assert (await clinic.sync(device)).status == 200


async def test_unknown_and_malformed_device_tokens_are_401(clinic: Clinic):
    await clinic.enable()
    for token in ("", "Bearer tvm_nope", "Bearer " + "x" * 300, "Bearer tv_apikeylike"):
        resp = await clinic.client.get(f"{API}/mobile/app/me", headers={"Authorization": token})
        await problem(resp, 401, "unauthenticated")
    # An organization API key is not a device.
    await problem(await clinic.sync(clinic.api), 401, "unauthenticated")


async def test_the_bearer_scheme_is_read_in_any_case(clinic: Clinic):
    # RFC 7235 2.1; the API key's routes did, the app's and the staff's routes refused it.
    await clinic.enable()
    device = await clinic.device()
    lower = {"Authorization": device["Authorization"].replace("Bearer ", "bearer ")}
    assert (await clinic.client.get(f"{API}/mobile/app/me", headers=lower)).status == 200
    staff = {"Authorization": clinic.vet["Authorization"].replace("Bearer ", "BEARER ")}
    assert (await clinic.client.get(f"{API}/mobile/devices", headers=staff)).status == 200


async def test_over_a_thousand_devices_are_all_listed(clinic: Clinic):
    # One page of 1,000 (LIST_MAX): the devices after it could not be seen, so not signed out.
    await clinic.enable()
    (vet,) = [s for s in await list_staff(clinic.store, clinic.org["id"]) if s.username == "vet"]
    for i in range(1001):
        await devices.register(clinic.store, vet, f"Phone {i}", now=float(i))
    for url, headers in (("devices", clinic.vet), ("org/devices", clinic.admin)):
        listed = await (await clinic.client.get(f"{API}/mobile/{url}", headers=headers)).json()
        assert len(listed["devices"]) == 1001 and listed["devices"][-1]["name"] == "Phone 1000"


async def test_a_new_password_signs_out_the_accounts_devices(clinic: Clinic):
    # A phone signed in before the password changed kept syncing: a password changed after
    # the phone was lost left it in. So did a login key shown before the change.
    await clinic.enable()
    c = clinic.client
    phone = await clinic.device(name="Phone")
    shown_before = await clinic.login_key(clinic.vet)
    admins_phone = await clinic.device(clinic.admin, name="Admin's phone")
    staff = await list_staff(clinic.store, clinic.org["id"])
    (vet,) = [s for s in staff if s.username == "vet"]
    resp = await c.patch(
        f"{API}/clinic/staff/{vet.id}",
        json={"password": "new battery staple"},
        headers=clinic.admin,
    )
    assert resp.status == 200, await resp.text()

    body = await problem(await clinic.sync(phone), 401, "device-revoked")
    assert "signed out" in body["detail"]
    resp = await c.post(f"{API}/mobile/device-login", json={"key": shown_before, "name": "X"})
    await problem(resp, 401, "invalid-login-key")
    listed = await (await c.get(f"{API}/mobile/org/devices", headers=clinic.admin)).json()
    assert [d["name"] for d in listed["devices"]] == ["Admin's phone"]
    assert (await clinic.sync(admins_phone)).status == 200  # other accounts' devices stay
    # Signed in under the new password, the vet signs the phone in again.
    resp = await c.post(
        f"{API}/clinic/login", json={"username": "vet", "password": "new battery staple"}
    )
    session = {"Authorization": f"Bearer {(await resp.json())['token']}"}
    assert (await clinic.sync(await clinic.device(session, name="Phone"))).status == 200
