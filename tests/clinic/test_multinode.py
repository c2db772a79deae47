"""Two control nodes on one Redis: a request made through one reaches a dashboard on the other,
and either node can answer it."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer

from control.app import create_app
from control.clinic.accounts import create_staff
from control.store.factory import open_bus, open_store

from .helpers import Clock

PASSWORD = "correct horse"


@pytest.mark.parametrize("backend", ["redis"])
async def test_dashboard_on_another_node_hears_the_request(settings, backend):
    nodes = []
    try:
        for _ in range(2):
            store, bus = open_store(settings), open_bus(settings)
            await store.open()
            await bus.open()
            app = create_app(settings, store, bus=bus, clock=Clock(), background=False)
            client = TestClient(TestServer(app, host="127.0.0.1"))
            await client.start_server()
            nodes.append((store, bus, client))
        (store_a, _, a), (_, _, b) = nodes
        prov = await create_staff(store_a, "org1", username="drwho", display_name="Dr Who",
                                  password=PASSWORD, groups=["provide"])  # fmt: skip
        await create_staff(store_a, "org1", username="desk", display_name="Desk",
                           password=PASSWORD, groups=["request"])  # fmt: skip

        async def login(client, name):
            resp = await client.post(
                "/api/v1/clinic/login", json={"username": name, "password": PASSWORD}
            )
            client.session.cookie_jar.clear()
            return {"Authorization": f"Bearer {(await resp.json())['token']}"}

        provider_on_b = await login(b, "drwho")
        desk_on_a = await login(a, "desk")
        await b.put(
            "/api/v1/clinic/me/availability", headers=provider_on_b, json={"available": True}
        )
        async with b.ws_connect("/api/v1/clinic/events", headers=provider_on_b) as ws:
            assert (await asyncio.wait_for(ws.receive_json(), 30))["type"] == "hello"
            resp = await a.post(
                "/api/v1/clinic/requests", headers=desk_on_a, json={"provider_id": prov.id}
            )
            rq = (await resp.json())["request"]
            event = await asyncio.wait_for(ws.receive_json(), 30)
            assert (event["type"], event["request"]["id"]) == ("request.created", rq["id"])
            # Answered on node B, seen by the requester's session of node A.
            resp = await b.post(f"/api/v1/clinic/requests/{rq['id']}/decline", headers=provider_on_b,
                                json={"note": "later"})  # fmt: skip
            assert resp.status == 200
        got = await (await a.get(f"/api/v1/clinic/requests/{rq['id']}", headers=desk_on_a)).json()
        assert (got["request"]["state"], got["request"]["note"]) == ("declined", "later")
    finally:
        for store, bus, client in nodes:
            await client.close()
            await bus.close()
            await store.close()
