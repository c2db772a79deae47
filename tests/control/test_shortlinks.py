"""The client's short link /v/<code>: it works, says why it stopped (expired, cancelled), is
revoked when the links are re-issued, and the code is random enough."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from control import appointments, shortlinks
from control.models import JoinResponse

from .helpers import BASE, appointment_body, problem, token_of


def code_of(appt):
    return appt["telemedicine"]["short_url"].rsplit("/", 1)[1]


async def join_code(client, code):
    return await client.post("/api/v1/join", json={"code": code})


@pytest.fixture
async def appt(client, auth, department):
    resp = await client.post(
        "/api/v1/appointments",
        json=appointment_body(department["id"]),
        headers=auth,
    )
    assert resp.status == 201
    return await resp.json()


async def test_a_short_link_opens_the_room_as_the_client(client, auth, appt, department, clock):
    await client.patch(
        f"/api/v1/departments/{department['id']}",
        json={"time_zone": "Europe/Helsinki"},
        headers=auth,
    )
    clock.set(BASE)
    code = code_of(appt)
    assert len(code) == 12
    resp = await join_code(client, code)
    body = await resp.json()
    assert resp.status == 200, body
    JoinResponse.model_validate(body)
    # Resolved to the client's own token: the same answer as the long link gives.
    assert body["token"] == token_of(appt["telemedicine"]["token_url"])
    assert body["role"] == "guest" and body["name"] == appt["client"]["name"]
    assert body["time_zone"] == "Europe/Helsinki" and body["kind"] == "vet"
    assert body["clinic"] == {"name": "Kallio Vet", "phone": "+358912345678"}
    # Retyped in capitals or with spaces around it: still the same link.
    assert (await join_code(client, f" {code.upper()} ")).status == 200
    # The page itself is served at the short path.
    page = await client.get(f"/v/{code}")
    assert page.status == 200 and page.headers["Cache-Control"] == "no-store"


async def test_an_expired_short_link_says_so_and_names_the_clinic(client, appt, clock):
    clock.set(BASE + timedelta(minutes=30 + 61))  # after the end and the 60 min grace
    body = await problem(await join_code(client, code_of(appt)), 410)
    assert body["type"].endswith("token-expired") and body["language"] == "fi"
    assert body["clinic"] == {"name": "Kallio Vet", "phone": "+358912345678"}


async def test_cancelling_stops_the_short_link(client, auth, appt, clock):
    clock.set(BASE)
    resp = await client.post(f"/api/v1/appointments/{appt['id']}/cancel", headers=auth)
    assert resp.status == 200
    body = await problem(await join_code(client, code_of(appt)), 410)
    assert body["type"].endswith("appointment-cancelled")
    assert body["clinic"]["name"] == "Kallio Vet"


async def test_reissued_links_revoke_the_old_short_link(client, auth, appt, clock):
    clock.set(BASE)
    old = code_of(appt)
    # New times re-issue the tokens for the same client: the short link stays and follows.
    later = {"start": appt["start"].replace("10:00", "10:05"), "end": appt["end"]}
    resp = await client.patch(f"/api/v1/appointments/{appt['id']}", json=later, headers=auth)
    moved = await resp.json()
    assert resp.status == 200, moved
    assert code_of(moved) == old
    answer = await (await join_code(client, old)).json()
    assert answer["token"] == token_of(moved["telemedicine"]["token_url"])
    # A new client: a new code, and the old one names nothing.
    new_client = {**appt["client"], "name": "Maija Meikäläinen"}
    resp = await client.patch(
        f"/api/v1/appointments/{appt['id']}", json={"client": new_client}, headers=auth
    )
    patched = await resp.json()
    assert resp.status == 200, patched
    new = code_of(patched)
    assert new != old
    body = await problem(await join_code(client, old), 401)
    assert body["type"].endswith("token-invalid") and "clinic" not in body
    answer = await (await join_code(client, new)).json()
    assert answer["name"] == "Maija Meikäläinen"
    assert answer["token"] == token_of(patched["telemedicine"]["token_url"])


@pytest.mark.parametrize("code", ["", "short", "0" * 12, "abcdefghijkl", "a" * 13, "äbcdefghjkmn"])
async def test_unknown_and_malformed_codes_open_nothing(client, appt, clock, code):
    clock.set(BASE)
    body = await problem(await join_code(client, code), 401)
    assert body["type"].endswith("token-invalid")


def test_codes_carry_at_least_60_random_bits():
    assert len(shortlinks.ALPHABET) == len(set(shortlinks.ALPHABET)) == 32
    assert 10 <= shortlinks.LENGTH <= 12
    assert shortlinks.LENGTH * math.log2(len(shortlinks.ALPHABET)) >= 60
    codes = {shortlinks.new_code() for _ in range(2000)}
    assert len(codes) == 2000
    # Every symbol is used in every position (a fixed or narrowed position would show).
    for position in range(shortlinks.LENGTH):
        assert {c[position] for c in codes} == set(shortlinks.ALPHABET)
    assert all(shortlinks.normalized(c) == c for c in codes)


async def test_join_url_is_the_short_link_and_token_url_the_long_one(client, appt, clock):
    """Clinic software sending its own messages sends join_url: the short link, which joins
    as the long token_url does (a record with no short link gives the long one)."""
    tele = appt["telemedicine"]
    assert tele["join_url"] == tele["short_url"] and "/v/" in tele["join_url"]
    clock.set(BASE)
    by_code = await (await join_code(client, tele["join_url"].rsplit("/", 1)[1])).json()
    assert by_code["token"] == token_of(tele["token_url"])
    legacy = {"join_url": tele["token_url"], "short_url": ""}
    assert appointments.client_url(legacy) == tele["token_url"]
