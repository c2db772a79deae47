"""Joining by PIN and by token, the SFU's authorize_join, and throttled guessing."""

from __future__ import annotations

import json
from datetime import timedelta

import jwt
import pytest

from control import join, pins
from control.join import JoinRefused, authorize_join
from control.models import JoinResponse
from control.services import SERVICES

from .helpers import BASE, appointment_body, problem, token_of


@pytest.fixture
async def appt(client, auth, department):
    resp = await client.post(
        "/api/v1/appointments", json=appointment_body(department["id"]), headers=auth
    )
    assert resp.status == 201
    return await resp.json()


async def join_pin(client, pin):
    return await client.post("/api/v1/join", json={"pin": pin})


async def test_join_by_pin(client, appt, clock):
    clock.set(BASE - timedelta(minutes=59))  # an early client: inside the 60 min before
    resp = await join_pin(client, appt["telemedicine"]["pin"])
    body = await resp.json()
    assert resp.status == 200, body
    JoinResponse.model_validate(body)
    assert body["room_id"] == appt["telemedicine"]["room_id"]
    assert body["role"] == "guest" and "name" not in body
    assert body["signaling_url"] == "wss://tv.example/ws"
    assert body["ice_servers"] == [] and body["language"] == "fi"
    assert body["appointment"] == {"start": appt["start"], "end": appt["end"]}
    assert "host_view" not in body
    # The token it hands out is what the SFU accepts.
    grant = await authorize_join(
        client.app[SERVICES].store, client.app[SERVICES].settings, body["token"], now=clock()
    )
    assert (grant.room_id, grant.role, grant.appointment_id) == (
        body["room_id"],
        "guest",
        appt["id"],
    )
    assert grant.name == appt["client"]["name"]  # the SFU seats it as the client


async def test_a_pin_join_tells_nothing_personal_of_the_client(client, appt, clock):
    """Issue 12 item 10: a guessed PIN must not give away whom it belongs to (not in the
    answer, not in the token it hands out, not when that token is used as a link)."""
    clock.set(BASE)
    body = await (await join_pin(client, appt["telemedicine"]["pin"])).json()
    personal = [appt["client"]["name"], appt["client"]["phone"], appt["client"]["email"]]
    payload = jwt.decode(body["token"], options={"verify_signature": False})
    again = await (await client.post("/api/v1/join", json={"token": body["token"]})).json()
    for seen in (json.dumps(x, ensure_ascii=False) for x in (body, payload, again)):
        assert not [p for p in personal if p in seen], seen
    assert again["room_id"] == body["room_id"] and "name" not in again
    assert body["clinic"]["name"] and body["appointment"]["start"] == appt["start"]


async def test_wrong_expired_early_and_cancelled_pins_look_the_same(
    client, auth, appt, department, clock, settings
):
    pin = appt["telemedicine"]["pin"]
    other = str((int(pin) + 1) % 10**settings.pins.digits).zfill(settings.pins.digits)
    answers = []
    clock.set(BASE - timedelta(minutes=61))  # not yet open
    answers.append(await problem(await join_pin(client, pin), 404))
    clock.set(BASE)
    answers.append(await problem(await join_pin(client, other), 404))  # never existed
    answers.append(await problem(await join_pin(client, "12ab"), 404))  # not even a PIN
    clock.set(BASE + timedelta(minutes=30 + 60))  # end + grace: over
    answers.append(await problem(await join_pin(client, pin), 404))
    clock.set(BASE)
    await client.post(f"/api/v1/appointments/{appt['id']}/cancel", headers=auth)
    answers.append(await problem(await join_pin(client, pin), 404))
    assert all(a == answers[0] for a in answers), answers


async def test_a_pin_typed_with_spaces_or_another_scripts_digits_joins(client, appt, clock):
    # The /pin page drops spaces and dashes itself; a native app sending them, or an Arabic
    # keypad's digits, got the 404 of a wrong PIN and spent the address's wrong-PIN budget.
    clock.set(BASE)
    pin = appt["telemedicine"]["pin"]
    arabic = "".join(chr(0x660 + int(d)) for d in pin)
    for typed in (f" {pin[:3]} {pin[3:7]}-{pin[7:]} ", arabic):
        resp = await join_pin(client, typed)
        assert resp.status == 200, await resp.text()
    await problem(await join_pin(client, pin[:-1] + "x"), 404)


async def test_join_by_token_for_guest_and_host(client, appt, clock):
    clock.set(BASE)
    guest = await client.post(
        "/api/v1/join", json={"token": token_of(appt["telemedicine"]["token_url"])}
    )
    body = await guest.json()
    assert guest.status == 200 and body["role"] == "guest" and "host_view" not in body
    host = await client.post(
        "/api/v1/join", json={"token": token_of(appt["telemedicine"]["host_url"])}
    )
    body = await host.json()
    assert host.status == 200 and body["role"] == "host", body
    assert body["name"] == "Dr. Aino Lehto"
    assert body["host_view"] == {
        "client_name": appt["client"]["name"],
        "patient_name": "Musti",
        "patient_species": "dog",
        "start": appt["start"],
        "end": appt["end"],
    }
    assert body["language"] == "fi"  # the department's default for the clinic side


async def test_token_refusals_are_distinct(client, appt, clock, settings):
    token = token_of(appt["telemedicine"]["token_url"])
    clock.set(BASE - timedelta(hours=2))
    early = await problem(await client.post("/api/v1/join", json={"token": token}), 403)
    assert early["type"].endswith("room-not-open") and early["opens_at"] == "2026-12-01T09:00:00Z"
    assert early["language"] == "fi"
    clock.set(BASE + timedelta(hours=2))
    expired = await problem(await client.post("/api/v1/join", json={"token": token}), 410)
    assert expired["type"].endswith("token-expired")
    assert expired["language"] == "fi"  # the signature held, so the holder's language is known
    clock.set(BASE)
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    invalid = await problem(await client.post("/api/v1/join", json={"token": tampered}), 401)
    assert invalid["type"].endswith("token-invalid")
    garbage = await problem(await client.post("/api/v1/join", json={"token": "not-a-jwt"}), 401)
    assert garbage["type"].endswith("token-invalid")


async def test_join_body_errors(client):
    for body, field in [
        ({}, "(body)"),
        ({"pin": "1", "token": "x"}, "(body)"),
        ({"pin": 123456789}, "pin"),
        ({"room": "x"}, "room"),
    ]:
        resp = await client.post("/api/v1/join", json=body)
        assert (await problem(resp, 422))["field"] == field, body


async def test_authorize_join_follows_the_appointment(client, auth, appt, clock):
    svc = client.app[SERVICES]
    host = token_of(appt["telemedicine"]["host_url"])
    grant = await authorize_join(svc.store, svc.settings, host, now=BASE.timestamp())
    assert grant.role == "host" and grant.name == "Dr. Aino Lehto"
    with pytest.raises(JoinRefused) as early:
        await authorize_join(
            svc.store, svc.settings, host, now=(BASE - timedelta(hours=2)).timestamp()
        )
    assert early.value.reason == "not-yet-open"
    with pytest.raises(JoinRefused) as forged:
        await authorize_join(svc.store, svc.settings, host + "x", now=BASE.timestamp())
    assert forged.value.reason == "invalid"
    # A correctly signed token for a room nobody owns.
    stray = svc.keyring.issue_token(
        room_id=pins.new_room_id(),
        name="x",
        role="guest",
        expires_at=BASE.timestamp() + 3600,
        appointment_id=appt["id"],
    )
    with pytest.raises(JoinRefused) as unknown:
        await authorize_join(svc.store, svc.settings, stray, now=BASE.timestamp())
    assert unknown.value.reason == "invalid"
    clock.set(BASE)
    await client.post(f"/api/v1/appointments/{appt['id']}/cancel", headers=auth)
    with pytest.raises(JoinRefused) as cancelled:
        await authorize_join(svc.store, svc.settings, host, now=BASE.timestamp())
    assert cancelled.value.reason == "cancelled"


async def test_links_of_an_appointment_moved_later_keep_working(client, auth, appt, clock):
    # Their tokens expired when the first window closed: the client's /j/ link and the
    # clinic's stored host link were refused as expired in the new window.
    guest, host = (
        token_of(appt["telemedicine"]["token_url"]),
        token_of(appt["telemedicine"]["host_url"]),
    )
    later = BASE + timedelta(days=2)
    moved = {"start": later.isoformat(), "end": (later + timedelta(minutes=30)).isoformat()}
    resp = await client.patch(f"/api/v1/appointments/{appt['id']}", json=moved, headers=auth)
    assert resp.status == 200, await resp.text()
    clock.set(later)
    for token in (guest, host):
        resp = await client.post("/api/v1/join", json={"token": token})
        assert resp.status == 200, await resp.text()
    # ... and end with the new window.
    clock.set(later + timedelta(hours=2))
    await problem(await client.post("/api/v1/join", json={"token": host}), 410)


async def test_other_room_kinds_register_a_guard(client, clock):
    svc = client.app[SERVICES]
    seen = []

    async def guard(store, settings, grant, now):
        seen.append(grant.room_id)
        return join.Admission(
            grant, join.Audience("sv"), "2026-12-01T10:00:00Z", "2026-12-01T11:00:00Z", "clinic"
        )

    join.register_room_guard("zz-", guard)
    try:
        token = svc.keyring.issue_token(
            room_id="zz-1", name="Nurse", role="host", expires_at=clock() + 60
        )
        grant = await authorize_join(svc.store, svc.settings, token, now=clock())
        assert grant.room_id == "zz-1" and grant.appointment_id is None and seen == ["zz-1"]
    finally:
        del join._GUARDS["zz-"]


async def test_a_closed_room_frees_its_pin_for_a_new_appointment(
    client, auth, department, clock, monkeypatch, store, settings
):
    """PINs are unique among usable rooms: a PIN whose room closed can be issued again."""
    one, two = "1" * settings.pins.digits, "2" * settings.pins.digits
    issued = iter([one, one, two, one])
    monkeypatch.setattr(pins, "new_pin", lambda digits: next(issued))

    async def book(external_id, start):
        body = appointment_body(department["id"], external_id=external_id, start_at=start)
        resp = await client.post("/api/v1/appointments", json=body, headers=auth)
        assert resp.status == 201, await resp.text()
        return await resp.json()

    first = await book("P-1", BASE)
    assert first["telemedicine"]["pin"] == one
    # While the first room is usable the same PIN collides and another is chosen.
    second = await book("P-2", BASE + timedelta(days=1))
    assert second["telemedicine"]["pin"] == two
    # After the first room closed, its PIN is released on collision and reused.
    clock.set(BASE + timedelta(hours=3))
    third = await book("P-3", BASE + timedelta(days=2))
    assert third["telemedicine"]["pin"] == one
    clock.set(BASE + timedelta(days=2))
    resp = await join_pin(client, one)
    assert (await resp.json())["room_id"] == third["telemedicine"]["room_id"]


async def test_a_reissue_revokes_the_links_and_pin_it_replaces(client, auth, appt, clock):
    """Issue 12 item 12: after a PATCH of the client or the provider the old guest and host
    links (and the old client's PIN) no longer join; the new ones do; a time change keeps
    the identities and so the links."""
    clock.set(BASE)
    url = f"/api/v1/appointments/{appt['id']}"
    old = appt["telemedicine"]

    async def status(**body):
        return (await client.post("/api/v1/join", json=body)).status

    moved = await client.patch(
        url, json={"end": "2026-12-01T10:45:00Z"}, headers=auth
    )  # same identities: nothing revoked
    assert moved.status == 200
    assert await status(token=token_of(old["token_url"])) == 200

    new_client = {"name": "Maija", "phone": "+358409999999", "email": None, "language": "sv"}
    resp = await client.patch(url, json={"client": new_client}, headers=auth)
    guest_changed = (await resp.json())["telemedicine"]
    revoked = await problem(
        await client.post("/api/v1/join", json={"token": token_of(old["token_url"])}), 410
    )
    assert revoked["type"].endswith("token-revoked") and revoked["language"] == "sv"
    assert await status(pin=old["pin"]) == 404
    assert await status(token=token_of(guest_changed["token_url"])) == 200
    by_pin = await (await client.post("/api/v1/join", json={"pin": guest_changed["pin"]})).json()
    svc = client.app[SERVICES]
    seat = await authorize_join(svc.store, svc.settings, by_pin["token"], now=svc.clock())
    assert seat.name == "Maija"
    assert await status(token=token_of(old["host_url"])) == 200  # the provider did not change

    resp = await client.patch(
        url, json={"provider": {"id": "vet-9", "name": "Dr. Uusi"}}, headers=auth
    )
    host_changed = (await resp.json())["telemedicine"]
    assert await status(token=token_of(old["host_url"])) == 410
    assert await status(token=token_of(host_changed["host_url"])) == 200
    assert await status(token=token_of(guest_changed["token_url"])) == 200
    # The SFU asks the same question on every WebSocket join.
    svc = client.app[SERVICES]
    with pytest.raises(JoinRefused) as refused:
        await authorize_join(svc.store, svc.settings, token_of(old["host_url"]), now=clock())
    assert refused.value.reason == "revoked"
