"""Every route of the one routes table, fed ids and strings a store cannot key on (empty,
NUL, control characters, over-long) in its path and in every string of its body: the answer is
a problem+json 4xx naming the field, never a 500 (issue 12 item 8: ``{"provider_id": ""}`` on
POST /clinic/requests was a 500 "id must be a non-empty string").
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest

from control.clinic.accounts import create_staff
from control.orgs import create_org
from control.routes import ROUTES

PASSWORD = "correct horse battery"
HOSTILE = ["", "\x00", "a\x00b", "\x1f", "\x7f", "x" * 300]
PATH_IDS = ["%00", "a%00b", "%1F", "x" * 300]


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the refusals happen before the store; one backend is enough


def example(schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    """A plausible value for a JSON schema (just enough to reach the checks behind it)."""
    if "$ref" in schema:
        return example(defs[schema["$ref"].rsplit("/", 1)[1]], defs)
    if "anyOf" in schema:
        return example(next(s for s in schema["anyOf"] if s.get("type") != "null"), defs)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "object":
        return {name: example(sub, defs) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return [example(schema.get("items", {}), defs)]
    if kind == "boolean":
        return False
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    if schema.get("format") == "date-time":
        return "2026-12-01T10:00:00Z"
    return "x"


def string_paths(value: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in string_paths(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in string_paths(v, (*path, i))]
    return [path] if isinstance(value, str) else []


def replaced(body: Any, path: tuple, new: Any) -> Any:
    body = copy.deepcopy(body)
    node = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = new
    return body


@pytest.fixture
async def credentials(client, node) -> dict[str, dict[str, str]]:
    store = node.clinic.store
    org, _, key = await create_org(store, "Sweep", 0.0)
    await create_staff(store, org["id"], username="all", display_name="All",
                       password=PASSWORD, groups=["administer", "request", "provide"])  # fmt: skip
    resp = await client.post("/api/v1/clinic/login", json={"username": "all", "password": PASSWORD})
    token = (await resp.json())["token"]
    client.session.cookie_jar.clear()
    return {
        "apikey": {"Authorization": f"Bearer {key}"},
        "staff": {"Authorization": f"Bearer {token}"},
    }


async def test_no_route_answers_a_hostile_id_or_string_with_a_server_error(
    client, credentials, caplog
):
    caplog.set_level(logging.ERROR)
    tried = 0
    for route in ROUTES:
        if route.path.endswith(("/events", "/login")) or route.method == "GET" and not route.query:
            if "{id}" not in route.path:
                continue
        headers = credentials.get(route.auth or "", {})
        paths = [route.path.replace("{id}", i) for i in PATH_IDS] if "{id}" in route.path else []
        bodies: list[Any] = []
        if route.request is not None:
            schema = route.request.model_json_schema()
            base = example(schema, schema.get("$defs", {}))
            bodies = [replaced(base, p, h) for p in string_paths(base) for h in HOSTILE]
        valid_path = route.path.replace("{id}", "nosuch")
        calls = [(p, None) for p in paths] + [(valid_path, b) for b in bodies]
        for path, body in calls:
            resp = await client.request(route.method, path, json=body, headers=headers)
            text = await resp.text()
            tried += 1
            assert resp.status < 500, (route.method, path, body, text)
            if resp.status >= 400 and resp.status != 404 or body is not None:
                assert resp.content_type == "application/problem+json", (path, body, text)
    assert tried > 100
    assert not [r for r in caplog.records if "unhandled" in r.getMessage()]


async def test_an_empty_or_nul_provider_id_names_the_field(client, credentials):
    for bad in ("", "\x00", "vet\x00"):
        resp = await client.post(
            "/api/v1/clinic/requests", json={"provider_id": bad}, headers=credentials["staff"]
        )
        assert resp.status == 422, await resp.text()
        assert (await resp.json())["field"] == "provider_id"
