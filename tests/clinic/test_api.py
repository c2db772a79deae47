"""The virtual clinic REST API: every transition over HTTP, refusals as problem+json."""

from __future__ import annotations

import asyncio

import pytest

from control import departments
from control.clinic import requests as vc_requests
from control.clinic.accounts import create_staff
from control.models import DepartmentCreate

PASSWORD = "correct horse battery"


async def _problem(resp, status: int, field: str | None = None) -> dict:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    body = await resp.json()
    assert body["status"] == status and body["title"] and body["detail"]
    if field is not None:
        assert body.get("field") == field, body
    return body


async def _login(client, username: str, **extra) -> dict:
    resp = await client.post(
        "/api/v1/clinic/login", json={"username": username, "password": PASSWORD, **extra}
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    client.session.cookie_jar.clear()  # these tests authenticate with the bearer token
    return {"Authorization": f"Bearer {body['token']}"}


@pytest.fixture
async def org(client, node):
    """org1: an administrator who creates a provider, a second provider and a station;
    org2: a provider of another organization."""
    store = node.clinic.store
    await create_staff(store, "org1", username="admin", display_name="Admin",
                       password=PASSWORD, groups=["administer"])  # fmt: skip
    await create_staff(store, "org2", username="far", display_name="Dr Far",
                       password=PASSWORD, groups=["provide", "request"])  # fmt: skip
    admin = await _login(client, "admin")
    ids = {}
    for username, name, groups in (
        ("drwho", "Dr Who", ["provide"]),
        ("drno", "Dr No", ["provide"]),
        ("desk", "Front desk", ["request"]),
    ):
        resp = await client.post(
            "/api/v1/clinic/staff", headers=admin,
            json={"username": username, "display_name": name, "password": PASSWORD, "groups": groups},
        )  # fmt: skip
        assert resp.status == 201, await resp.text()
        ids[username] = (await resp.json())["staff"]["id"]
    h = {u: await _login(client, u) for u in ("drwho", "drno", "desk", "far")}
    h["admin"] = admin
    for who in ("drwho", "drno", "far"):
        resp = await client.put("/api/v1/clinic/me/availability", headers=h[who],
                                json={"available": True})  # fmt: skip
        assert resp.status == 200 and (await resp.json())["staff"]["available"]
    return h, ids


async def _request(client, h, provider_id: str, **extra):
    return await client.post(
        "/api/v1/clinic/requests", headers=h, json={"provider_id": provider_id, **extra}
    )


async def test_login_me_logout(client, org):
    h, _ = org
    resp = await client.post(
        "/api/v1/clinic/login", json={"username": "desk", "password": "nope nope"}
    )
    await _problem(resp, 401, "password")
    resp = await client.post(
        "/api/v1/clinic/login", json={"username": "ghost", "password": "nope nope"}
    )
    await _problem(resp, 401, "password")
    resp = await client.post(
        "/api/v1/clinic/login", json={"username": "desk", "password": PASSWORD}
    )
    assert resp.cookies["tv_staff"]["httponly"]
    assert resp.cookies["tv_staff"]["samesite"] == "Lax"
    # The cookie alone signs the dashboards in.
    assert (await client.get("/api/v1/clinic/me")).status == 200
    client.session.cookie_jar.clear()
    me = await (await client.get("/api/v1/clinic/me", headers=h["desk"])).json()
    assert me["staff"]["username"] == "desk" and me["policy"]["notes_enabled"] is True
    assert me["time_zone"] == "UTC"  # an organization without departments
    await _problem(
        await client.get("/api/v1/clinic/me", headers={"Authorization": "Bearer x"}), 401
    )
    assert (await client.post("/api/v1/clinic/logout", headers=h["desk"])).status == 204
    await _problem(await client.get("/api/v1/clinic/me", headers=h["desk"]), 401)


async def test_bad_bodies_are_4xx_naming_the_field(client, org):
    h, ids = org
    url = "/api/v1/clinic/requests"
    resp = await client.post(
        url, headers={**h["desk"], "Content-Type": "application/json"}, data=b"{nope"
    )
    await _problem(resp, 400)
    await _problem(await client.post(url, headers=h["desk"], json=[1]), 400)
    await _problem(await client.post(url, headers=h["desk"], json={}), 422, "provider_id")
    resp = await client.post(url, headers=h["desk"], json={"provider_id": ids["drwho"], "x": 1})
    await _problem(resp, 422, "x")
    resp = await client.put(
        "/api/v1/clinic/me/availability", headers=h["drwho"], json={"available": "yes"}
    )
    await _problem(resp, 422, "available")


async def test_request_decline_with_note_dismiss_again_accept(client, org):
    h, ids = org
    resp = await _request(client, h["desk"], ids["drwho"])
    assert resp.status == 201
    rq = (await resp.json())["request"]
    assert rq["state"] == "requested" and rq["provider"]["name"] == "Dr Who"
    body = await _problem(await _request(client, h["desk"], ids["drwho"]), 409, "provider_id")
    assert body["request_id"] == rq["id"]
    inbox = (await (await client.get("/api/v1/clinic/requests", headers=h["drwho"])).json())[
        "inbox"
    ]
    assert [r["id"] for r in inbox] == [rq["id"]]

    url = f"/api/v1/clinic/requests/{rq['id']}"
    resp = await client.post(
        url + "/decline", headers=h["drwho"], json={"note": "In surgery until 3"}
    )
    assert (await resp.json())["request"]["note"] == "In surgery until 3"
    await _problem(await client.post(url + "/accept", headers=h["drwho"], json={}), 409, "state")
    got = (await (await client.get(url, headers=h["desk"])).json())["request"]
    assert (got["state"], got["note"]) == ("declined", "In surgery until 3")
    # Asking again before dismissing the decline: refused, as the dashboard's button is.
    body = await _problem(await _request(client, h["desk"], ids["drwho"]), 409, "provider_id")
    assert (body["request_id"], body["state"]) == (rq["id"], "declined")
    assert (await client.post(url + "/dismiss", headers=h["desk"], json={})).status == 200
    await _problem(await client.post(url + "/dismiss", headers=h["desk"], json={}), 409)

    rq2 = (await (await _request(client, h["desk"], ids["drwho"])).json())["request"]
    resp = await client.post(
        f"/api/v1/clinic/requests/{rq2['id']}/accept", headers=h["drwho"], json={}
    )
    out = await resp.json()
    assert out["request"]["state"] == "accepted" and "join" not in out
    visit = out["visit"]
    assert visit["requester"]["status"] == "not_arrived" and visit["room_id"]
    mine = (await (await client.get("/api/v1/clinic/visits", headers=h["desk"])).json())["visits"]
    assert [v["id"] for v in mine] == [visit["id"]]
    dash = await (await client.get("/api/v1/clinic/dashboard", headers=h["desk"])).json()
    assert dash["outbox"] == [] and [v["id"] for v in dash["visits"]] == [visit["id"]]
    assert {p["name"] for p in dash["providers"]} == {"Dr Who", "Dr No"}
    # Another provider's and another organization's staff cannot see the visit.
    await _problem(await client.get(f"/api/v1/clinic/visits/{visit['id']}", headers=h["drno"]), 403)
    await _problem(await client.get(f"/api/v1/clinic/visits/{visit['id']}", headers=h["far"]), 404)
    # ... nor learn that it exists by ending it (was 403 "you do not take part").
    await _problem(await client.post(f"/api/v1/clinic/visits/{visit['id']}/end",
                                     headers=h["far"], json={}), 404)  # fmt: skip
    resp = await client.post(
        f"/api/v1/clinic/visits/{visit['id']}/end", headers=h["drwho"], json={}
    )
    assert (await resp.json())["visit"]["state"] == "ended"
    await _problem(
        await client.post(f"/api/v1/clinic/visits/{visit['id']}/enter", headers=h["desk"], json={}),
        409,
    )


async def test_illegal_transitions(client, org, node):
    h, ids = org
    rq = (await (await _request(client, h["desk"], ids["drwho"])).json())["request"]
    url = f"/api/v1/clinic/requests/{rq['id']}"
    # A requester acting as provider.
    await _problem(await client.post(url + "/accept", headers=h["desk"], json={}), 403)
    # Another provider of the same organization.
    await _problem(await client.post(url + "/decline", headers=h["drno"], json={}), 403)
    # A provider of another organization: the request does not exist for them.
    await _problem(await client.post(url + "/accept", headers=h["far"], json={}), 404, "request_id")
    await _problem(await _request(client, h["far"], ids["drwho"]), 404, "provider_id")
    # Providers cannot request (no request group), requesters cannot toggle availability.
    await _problem(await _request(client, h["drwho"], ids["drno"]), 403)
    resp = await client.put(
        "/api/v1/clinic/me/availability", headers=h["desk"], json={"available": True}
    )
    await _problem(resp, 403)
    # Dismissing an open request; cancelling someone else's.
    await _problem(await client.post(url + "/dismiss", headers=h["desk"], json={}), 409, "state")
    await _problem(await client.post(url + "/cancel", headers=h["drwho"], json={}), 403)
    await _problem(
        await client.post("/api/v1/clinic/requests/rq_nope/accept", headers=h["drwho"], json={}),
        404,
    )
    # Not signed in.
    await _problem(await client.post(url + "/accept", json={}), 401)

    # Expired: the deadline passes, the sweeper runs, accepting is refused.
    node.clinic.clock.advance(node.settings.clinic.request_expiry_seconds + 1)
    assert await vc_requests.sweep(node.clinic) == 1
    body = await _problem(
        await client.post(url + "/accept", headers=h["drwho"], json={}), 409, "state"
    )
    assert body["state"] == "expired"
    got = (await (await client.get(url, headers=h["desk"])).json())["request"]
    assert (got["state"], got["reason"]) == ("expired", "no answer")
    # Cancel is the requester's; then the pair is free again.
    await client.post(url + "/dismiss", headers=h["desk"], json={})
    rq = (await (await _request(client, h["desk"], ids["drwho"])).json())["request"]
    resp = await client.post(
        f"/api/v1/clinic/requests/{rq['id']}/cancel", headers=h["desk"], json={}
    )
    assert (await resp.json())["request"]["state"] == "cancelled"


async def test_unavailable_provider_and_notes_policy(client, org):
    h, ids = org
    await client.put("/api/v1/clinic/me/availability", headers=h["drno"], json={"available": False})
    resp = await _request(client, h["desk"], ids["drno"])
    assert resp.status == 201
    rq = (await resp.json())["request"]
    assert (rq["state"], rq["reason"]) == ("declined", "unavailable")

    resp = await client.put("/api/v1/clinic/policy", headers=h["admin"],
                            json={"notes_enabled": False, "services": ["Cardiology", "Dermatology"]})  # fmt: skip
    assert (await resp.json())["policy"]["services"] == ["Cardiology", "Dermatology"]
    await _problem(await client.put("/api/v1/clinic/policy", headers=h["drwho"], json={}), 403)
    await _problem(await _request(client, h["desk"], ids["drwho"]), 422, "service")
    rq = (await (await _request(client, h["desk"], ids["drwho"], service="Cardiology")).json())[
        "request"
    ]
    assert rq["service"] == "Cardiology"
    url = f"/api/v1/clinic/requests/{rq['id']}/decline"
    await _problem(await client.post(url, headers=h["drwho"], json={"note": "no"}), 422, "note")
    assert (await client.post(url, headers=h["drwho"], json={})).status == 200


async def test_dedicated_station_revoked_by_admin(client, org):
    h, _ = org
    station = await _login(client, "desk", station="Exam room 2")
    listed = (await (await client.get("/api/v1/clinic/stations", headers=h["admin"])).json())[
        "stations"
    ]
    assert [s["station"] for s in listed] == ["Exam room 2"]
    assert listed[0]["expires_at"] - listed[0]["created_at"] == pytest.approx(365 * 86400)
    await _problem(await client.get("/api/v1/clinic/stations", headers=h["desk"]), 403)
    await _problem(
        await client.delete(f"/api/v1/clinic/sessions/{listed[0]['id']}", headers=h["far"]), 403
    )
    assert (await client.get("/api/v1/clinic/me", headers=station)).status == 200
    resp = await client.delete(f"/api/v1/clinic/sessions/{listed[0]['id']}", headers=h["admin"])
    assert resp.status == 204
    await _problem(await client.get("/api/v1/clinic/me", headers=station), 401)
    assert (await client.get("/api/v1/clinic/me", headers=h["desk"])).status == 200  # other login


async def test_disabling_an_account_ends_its_sessions(client, org):
    h, ids = org
    resp = await client.patch(
        f"/api/v1/clinic/staff/{ids['desk']}", headers=h["admin"], json={"disabled": True}
    )
    assert (await resp.json())["staff"]["disabled"]
    await _problem(await client.get("/api/v1/clinic/me", headers=h["desk"]), 401)
    resp = await client.post(
        "/api/v1/clinic/login", json={"username": "desk", "password": PASSWORD}
    )
    await _problem(resp, 401)


async def test_login_guessing_is_throttled(client, org):
    statuses = []
    for _ in range(12):
        resp = await client.post(
            "/api/v1/clinic/login", json={"username": "desk", "password": "wrong one"}
        )
        statuses.append(resp.status)
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]
    assert int(resp.headers["Retry-After"]) >= 1


async def test_provider_dashboard_hears_requests_live(client, org):
    h, ids = org
    # compress: offered as a browser does, declined (its zlib state would stay per dashboard);
    # Origin: this server's own page, as the dashboard's.
    origin = str(client.make_url("")).rstrip("/")
    headers = {**h["drwho"], "Origin": origin}
    async with client.ws_connect("/api/v1/clinic/events", headers=headers, compress=15) as ws:
        assert ws.compress == 0
        hello = await asyncio.wait_for(ws.receive_json(), 30)
        assert hello["type"] == "hello"
        rq = (await (await _request(client, h["desk"], ids["drwho"])).json())["request"]
        event = await asyncio.wait_for(ws.receive_json(), 30)
        assert (event["type"], event["request"]["id"]) == ("request.created", rq["id"])
        await client.post(f"/api/v1/clinic/requests/{rq['id']}/cancel", headers=h["desk"], json={})
        event = await asyncio.wait_for(ws.receive_json(), 30)
        assert (event["type"], event["request"]["state"]) == ("request.cancelled", "cancelled")
    resp = await client.get("/api/v1/clinic/events")
    await _problem(resp, 401)


async def test_a_signed_in_station_hears_policy_changes_live(client, org):
    h, ids = org
    station = await _login(client, "desk", station="Exam room 3")
    async with client.ws_connect("/api/v1/clinic/events", headers=station) as ws:
        assert (await asyncio.wait_for(ws.receive_json(), 30))["type"] == "hello"
        services = ["General", "Dermatology"]
        resp = await client.put(
            "/api/v1/clinic/policy",
            headers=h["admin"],
            json={"notes_enabled": True, "services": services},
        )
        assert resp.status == 200
        event = await asyncio.wait_for(ws.receive_json(), 30)
        assert event["type"] == "policy.updated"
        assert event["policy"] == {"notes_enabled": True, "services": services}
    # The refusal without a choice is a sentence naming the services (no Python list).
    body = await _problem(await _request(client, h["desk"], ids["drwho"]), 422, "service")
    assert body["detail"] == "Choose one of the account services: General, Dermatology."
    assert body["services"] == services


async def test_revoked_station_is_signed_out_of_its_live_feed(client, org):
    h, _ = org
    station = await _login(client, "desk", station="Lobby kiosk")
    listed = (await (await client.get("/api/v1/clinic/stations", headers=h["admin"])).json())[
        "stations"
    ]
    async with client.ws_connect("/api/v1/clinic/events", headers=station) as ws:
        assert (await asyncio.wait_for(ws.receive_json(), 30))["type"] == "hello"
        await client.delete(f"/api/v1/clinic/sessions/{listed[0]['id']}", headers=h["admin"])
        msg = await asyncio.wait_for(ws.receive(), 30)
        assert msg.type.name in ("CLOSE", "CLOSED") and ws.close_code == 4001


async def test_a_new_password_signs_the_old_login_out_of_its_live_feed(client, org):
    # The password change ended the login's session but its open socket went on hearing the
    # provider's requests (requester names and all).
    h, ids = org
    async with client.ws_connect("/api/v1/clinic/events", headers=h["drwho"]) as ws:
        assert (await asyncio.wait_for(ws.receive_json(), 30))["type"] == "hello"
        resp = await client.patch(f"/api/v1/clinic/staff/{ids['drwho']}", headers=h["admin"],
                                  json={"password": "a brand new password"})  # fmt: skip
        assert resp.status == 200, await resp.text()
        assert (await _request(client, h["desk"], ids["drwho"])).status == 201
        msg = await asyncio.wait_for(ws.receive(), 30)
        assert msg.type.name in ("CLOSE", "CLOSED") and ws.close_code == 4001, msg


async def test_visit_tokens_open_the_room_only_while_the_visit_is_open(client, org, node, settings):
    from control.join import JoinRefused, authorize_join

    h, ids = org
    rq = (await (await _request(client, h["desk"], ids["drwho"])).json())["request"]
    resp = await client.post(
        f"/api/v1/clinic/requests/{rq['id']}/accept", headers=h["drwho"], json={"enter": True}
    )
    out = await resp.json()
    host, visit = out["join"], out["visit"]
    assert host["role"] == "host" and host["room_id"] == visit["room_id"]
    assert host["url"].endswith(f"/h/{host['token']}")
    resp = await client.post(
        f"/api/v1/clinic/visits/{visit['id']}/enter", headers=h["desk"], json={}
    )
    guest = (await resp.json())["join"]
    assert guest["role"] == "guest" and guest["url"].endswith(f"/j/{guest['token']}")
    store, now = node.clinic.store, node.clinic.clock()
    for j, name in ((host, "Dr Who"), (guest, "Front desk")):
        grant = await authorize_join(store, settings, j["token"], now=now)
        assert (grant.room_id, grant.role, grant.name) == (visit["room_id"], j["role"], name)
    # The page's own join call (POST /api/v1/join with the link's token) admits it too; the
    # room's header reads its times in the organization's zone (its department's).
    await departments.create_department(
        store, "org1", DepartmentCreate(name="Vet", time_zone="Europe/Helsinki"), now
    )
    resp = await client.post("/api/v1/join", json={"token": guest["token"]})
    assert resp.status == 200, await resp.text()
    answer = await resp.json()
    assert answer["room_id"] == visit["room_id"] and answer["time_zone"] == "Europe/Helsinki"
    me = await (await client.get("/api/v1/clinic/me", headers=h["desk"])).json()
    assert me["time_zone"] == "Europe/Helsinki"
    # Someone else cannot enter; once closed, the tokens stop working.
    await _problem(
        await client.post(f"/api/v1/clinic/visits/{visit['id']}/enter", headers=h["drno"], json={}),
        403,
    )
    await client.post(f"/api/v1/clinic/visits/{visit['id']}/end", headers=h["desk"], json={})
    with pytest.raises(JoinRefused) as exc:
        await authorize_join(store, settings, guest["token"], now=now)
    assert exc.value.reason == "cancelled"


async def test_openapi_documents_the_clinic_api(client):
    doc = await (await client.get("/api/v1/openapi.json")).json()
    clinic = {p: ops for p, ops in doc["paths"].items() if p.startswith("/api/v1/clinic/")}
    assert len(clinic) >= 18
    login = clinic["/api/v1/clinic/login"]["post"]
    assert "security" not in login  # public
    assert login["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "LoginBody"
    )
    decline = clinic["/api/v1/clinic/requests/{id}/decline"]["post"]
    assert decline["security"] == [{"staffSession": []}]
    assert set(decline["responses"]) >= {"200", "401", "404", "422"}
    assert "RequestOut" in doc["components"]["schemas"]
    assert clinic["/api/v1/clinic/requests"]["post"]["responses"]["201"]


@pytest.mark.parametrize(
    # "http://[" is no URL at all: urllib's parser raised ValueError on it (a 500).
    "origin",
    ["https://evil.example", "http://[", "null", "http://evil.example/x"],
)
async def test_events_socket_refuses_other_origins(client, org, origin):
    h, _ = org
    headers = {**h["drwho"], "Origin": origin}
    await _problem(await client.get("/api/v1/clinic/events", headers=headers), 403)
