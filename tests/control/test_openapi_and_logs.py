"""The OpenAPI document covers every route; request logs are JSON and hold no secrets."""

from __future__ import annotations

import io
import json
import logging

from control import logs
from control.openapi import document
from control.routes import ROUTES

from .helpers import BASE, appointment_body, token_of


async def test_every_route_is_documented(client):
    resp = await client.get("/api/v1/openapi.json")
    doc = await resp.json()
    assert resp.status == 200 and doc["openapi"].startswith("3.1")
    assert doc == document()
    served = {(r.method.lower(), r.path) for r in ROUTES}
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert served == documented
    # And every route in the table is what the app actually serves.
    app_routes = {
        (r.method.lower(), r.resource.canonical)
        for r in client.app.router.routes()
        if r.method != "HEAD" and r.resource is not None
    }
    assert served <= app_routes
    schemas = doc["components"]["schemas"]

    def resolve(ref):
        return schemas[ref["$ref"].rsplit("/", 1)[1]]

    create = doc["paths"]["/api/v1/appointments"]["post"]
    body = resolve(create["requestBody"]["content"]["application/json"]["schema"])
    assert body["additionalProperties"] is False
    assert {"department_id", "external_id", "start", "end", "client"} <= set(body["required"])
    assert create["security"] == [{"apiKey": []}]
    join = doc["paths"]["/api/v1/join"]["post"]
    assert "security" not in join
    assert set(resolve(join["responses"]["200"]["content"]["application/json"]["schema"])["properties"]) >= {
        "room_id", "token", "role", "signaling_url", "ice_servers", "language"
    }  # fmt: skip
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["summary"] and op["responses"], (method, path)


class Lines:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    def all(self) -> list[dict]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]


async def test_request_logs_are_json_without_secrets(client, auth, org, department, clock):
    lines = Lines()
    handler = logging.StreamHandler(lines.stream)
    handler.setFormatter(logs.JsonFormatter())
    access = logging.getLogger("televisit.access")
    access.addHandler(handler)
    old_level = access.level
    access.setLevel(logging.INFO)
    try:
        resp = await client.post(
            "/api/v1/appointments", json=appointment_body(department["id"]), headers=auth
        )
        appt = await resp.json()
        tele = appt["telemedicine"]
        clock.set(BASE)
        await client.post("/api/v1/join", json={"pin": tele["pin"]})
        await client.post("/api/v1/join", json={"token": token_of(tele["token_url"])})
        await client.get(
            f"/api/v1/appointments?token={token_of(tele['host_url'])}&pin={tele['pin']}",
            headers=auth,
        )
        await client.get(
            "/api/v1/departments", headers={"Authorization": "Bearer tv_wrong-key-123"}
        )
        page = await client.get(f"/h/{token_of(tele['host_url'])}")  # the link's visit page
    finally:
        access.removeHandler(handler)
        access.setLevel(old_level)
    got = lines.all()
    assert [(g["method"], g["path"], g["status"]) for g in got] == [
        ("POST", "/api/v1/appointments", 201),
        ("POST", "/api/v1/join", 200),
        ("POST", "/api/v1/join", 200),
        ("GET", "/api/v1/appointments", 200),
        ("GET", "/api/v1/departments", 401),
        ("GET", "/h/***", page.status),
    ]
    assert all(g["msg"] == "request" and "ms" in g and g["remote"] for g in got)
    text = lines.stream.getvalue()
    secrets = [
        tele["pin"],
        token_of(tele["token_url"]),
        token_of(tele["host_url"]),
        org["key"],
        "tv_wrong-key-123",
    ]
    for secret in secrets:
        assert secret not in text


def test_secret_route_parameters_are_masked():
    from aiohttp.test_utils import make_mocked_request
    from aiohttp.web_urldispatcher import UrlMappingMatchInfo

    request = make_mocked_request("GET", "/j/eyJhbGciOi.abc.def?x=1")
    request._match_info = UrlMappingMatchInfo({"token": "eyJhbGciOi.abc.def"}, None)  # type: ignore[arg-type]
    assert logs.safe_path(request) == "/j/***"


def test_aioice_check_chatter_stays_out_of_info_logs():
    ice = logging.getLogger("aioice.ice")
    try:
        for level, shown in (("info", ["warning"]), ("debug", ["info", "warning"])):
            out = io.StringIO()
            logs.configure(level, stream=out)
            ice.info("Check CandidatePair(...) State.WAITING -> State.IN_PROGRESS")
            ice.warning("Connection(0) ICE failed")
            logging.getLogger("televisit.test").info("an operator's line")
            lines = [json.loads(line) for line in out.getvalue().splitlines()]
            assert [r["level"] for r in lines if r["logger"] == "aioice.ice"] == shown, level
            assert any(r["logger"] == "televisit.test" for r in lines)
    finally:
        logs.configure("info")


def test_log_levels_set_single_loggers_over_the_log_level():
    # server.log_levels: the SFU's adaptation trace at debug while everything else stays at info.
    trace, other = logging.getLogger("televisit.adaptation"), logging.getLogger("televisit.test")
    try:
        out = io.StringIO()
        logs.configure("info", stream=out, levels={"televisit.adaptation": "debug"})
        trace.debug("allocation")
        other.debug("not shown")
        lines = [json.loads(line) for line in out.getvalue().splitlines()]
        assert [(r["logger"], r["level"]) for r in lines] == [("televisit.adaptation", "debug")]
    finally:
        trace.setLevel(logging.NOTSET)
        logs.configure("info")
