"""Bad input and bad credentials: always problem+json naming the field, never a 500."""

from __future__ import annotations

import asyncio
import codecs
import json
import re
import sys

import brotli
import pytest

from control import auth as auth_keys
from control.orgs import create_org
from control.routes import ROUTES

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

from .helpers import appointment_body, department_body, problem


async def post(client, auth, body, url="/api/v1/appointments", **kwargs):
    return await client.post(url, data=body if isinstance(body, bytes | str) else None,
                             json=None if isinstance(body, bytes | str) else body,
                             headers={**auth, **kwargs.pop("headers", {})}, **kwargs)  # fmt: skip


@pytest.mark.parametrize(
    "raw",
    [
        b"{", b"not json", b"\xff\xfe", b'{"a": 1,}', b"[1, 2]", b'"text"', b"null",
        # Past Python's 4,300-digit limit: json.loads raised ValueError, a 500.
        b'{"external_id": ' + b"1" * 5000 + b"}",
        b'{"external_id": "\\ud800"}',  # a lone surrogate
        b"[" * 50000,
    ],
)  # fmt: skip
async def test_malformed_json_is_400(client, auth, raw):
    body = await problem(
        await post(client, auth, raw, headers={"Content-Type": "application/json"}), 400
    )
    assert body["type"].endswith("malformed-json")


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_that_does_not_inflate_is_400(client, auth, encoding):
    # Not compressed at all, though the header says so: aiohttp's RequestPayloadError, a 500.
    resp = await post(client, auth, b'{"name": "x"}', url="/api/v1/departments",
                      headers={"Content-Encoding": encoding})  # fmt: skip
    body = await problem(resp, 400)
    assert body["type"].endswith("malformed-body") and encoding in body["detail"], body


def _compressed(coding: str, raw: bytes) -> bytes:
    return brotli.compress(raw) if coding == "br" else zstd.compress(raw)


@pytest.mark.parametrize("coding", ["br", "zstd"])
async def test_a_body_in_every_coding_aiohttp_reads_is_read(client, auth, coding):
    # Without a decoder aiohttp's parser answered br and zstd with a plain-text 400.
    raw = json.dumps(department_body()).encode()
    headers = {"Content-Encoding": coding, "Content-Type": "application/json"}
    ok = await post(client, auth, _compressed(coding, raw), url="/api/v1/departments",
                    headers=headers)  # fmt: skip
    assert ok.status == 201, await ok.text()
    bad = await post(client, auth, raw, url="/api/v1/departments", headers=headers)
    body = await problem(bad, 400)
    assert body["type"].endswith("malformed-body") and coding in body["detail"], body


@pytest.mark.parametrize("coding", ["compress", "x-gzip", "gzip, br", "snappy"])
async def test_a_coding_that_is_not_read_is_415_naming_it(client, auth, coding):
    # Passed through as it came: the answer was "the body is not valid JSON".
    resp = await post(client, auth, b"\x1f\x9d\x90{", url="/api/v1/departments",
                      headers={"Content-Encoding": coding})  # fmt: skip
    body = await problem(resp, 415)
    assert body["type"].endswith("unsupported-encoding") and repr(coding) in body["detail"]
    assert resp.headers["Accept-Encoding"] == "gzip, deflate, br, zstd, identity"


async def test_a_byte_order_mark_is_ignored(client, auth, department):
    raw = codecs.BOM_UTF8 + json.dumps(appointment_body(department["id"])).encode()
    assert (await post(client, auth, raw)).status == 201


def _with(department_id, path, value):
    body = appointment_body(department_id)
    node = body
    *parents, last = path.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    return body


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("client.phone", "0401234567", "client.phone"),  # not E.164
        ("client.phone", "+0401234567", "client.phone"),
        ("client.phone", "+35840 1234567", "client.phone"),
        ("client.email", "matti.example.com", "client.email"),
        ("client.email", "matti@", "client.email"),
        ("client.email", "a b@example.com", "client.email"),
        # Taken, then failed at every send ("email address is not ASCII (SMTPUTF8 is not
        # used)"): mail goes out without SMTPUTF8, which this address needs.
        ("client.email", "\u00e4nna@example.com", "client.email"),
        ("client.language", "de", "client.language"),
        ("start", "2026-12-01T10:00:00", "start"),  # no time zone
        ("start", "tomorrow", "start"),
        # In UTC before year 1 or after 9999: writing them back was a 500.
        ("start", "0001-01-01T00:30:00+01:00", "start"),
        ("end", "9999-12-31T23:30:00-01:00", "end"),
        ("end", 1733047200, "end"),  # a number is not a time here
        ("end", "2026-12-01T09:59:00Z", "(body)"),  # before the start
        ("end", "2026-12-01T10:00:00Z", "(body)"),  # zero length
        ("external_id", "", "external_id"),
        # C1 controls and line separators were taken: NEL (U+0085) breaks lines for
        # str.splitlines and mail readers, as U+2028 does on pages.
        ("client.name", "Anna\x85Bcc: x@example.com", "client.name"),
        ("provider.name", "Dr\u2028Who", "provider.name"),
        ("external_id", "A\x9f1", "external_id"),
        # Bidirectional overrides, and embeddings or isolates that reach past the name, were
        # taken and reordered what the recipient reads around the name (UAX #9).
        ("client.name", "Anna \u202eexe.fdp", "client.name"),  # RLO, never closed
        ("client.name", "\u202dAnna\u202c", "client.name"),  # an override, even closed
        ("patient.name", "\u2067\u05de\u05d9\u05e8\u05d9", "patient.name"),  # RLI left open
        ("provider.name", "Dr Who\u2069", "provider.name"),  # a stray PDI
        ("provider.name", "\u202bDr\u2069", "provider.name"),  # RLE closed by a PDI
        ("patient.species", "\u2066\u2067cat\u2069\u2069", "patient.species"),  # nested
        ("external_id", "\u2066A-1\u2069", "external_id"),  # ids take none
        ("external_id", "x" * 129, "external_id"),
        ("provider.name", None, "provider.name"),
        ("patient.species", 7, "patient.species"),
        ("surprise", "field", "surprise"),  # unknown fields are refused
        ("client.nickname", "Masa", "client.nickname"),
    ],
)
async def test_bad_appointment_fields_are_named(client, auth, department, path, value, field):
    body = await problem(await post(client, auth, _with(department["id"], path, value)), 422)
    assert body["field"] == field, body
    assert body["errors"][0]["field"] == field
    if path == "end" and field == "(body)":
        assert "end must be after start" in body["detail"]


async def test_right_to_left_names_are_taken_as_given(client, auth, department):
    # Arabic and Hebrew need no formatting; marks are allowed, and a name wrapped in one
    # embedding or isolate closed right after (Android's BidiFormatter, web pages) too.
    names = {
        "client.name": "\u0641\u0627\u0637\u0645\u0629 \u0639\u0644\u064a\u200f",
        "patient.name": "\u202b\u05de\u05d9\u05e8\u05d9\u202c (2)",
        "provider.name": "\u2068\u062f. \u0633\u0627\u0644\u0645\u2069 \u200eDVM",
    }
    body = appointment_body(department["id"])
    for path, value in names.items():
        group, key = path.split(".")
        body[group][key] = value
    resp = await post(client, auth, body)
    assert resp.status == 201, await resp.text()
    stored = await resp.json()
    for path, value in names.items():
        group, key = path.split(".")
        assert stored[group][key] == value


def _string_schemas(schema: dict, defs: dict, path: str = "") -> list[tuple[str, dict]]:
    """(field path, schema) of every string a request schema holds, through refs and unions."""
    if "$ref" in schema:
        return _string_schemas(defs[schema["$ref"].rsplit("/", 1)[1]], defs, path)
    if "anyOf" in schema:
        return [x for sub in schema["anyOf"] for x in _string_schemas(sub, defs, path)]
    if schema.get("type") == "object":
        return [x for name, sub in schema.get("properties", {}).items()
                for x in _string_schemas(sub, defs, f"{path}.{name}".lstrip("."))]  # fmt: skip
    if schema.get("type") == "array":
        return _string_schemas(schema.get("items", {}), defs, f"{path}[]")
    return [(path, schema)] if schema.get("type") == "string" else []


def test_every_patterned_string_of_every_request_refuses_an_override():
    # The whole kind: a field with a pattern of its own that let U+202E through would show
    # its text reversed wherever it is displayed.
    checked = 0
    for model in {route.request for route in ROUTES if route.request is not None}:
        schema = model.model_json_schema()
        for path, field in _string_schemas(schema, schema.get("$defs", {})):
            if "pattern" in field:
                checked += 1
                assert not re.search(field["pattern"], "Anna\u202e"), (model.__name__, path)
    assert checked > 50


async def test_missing_fields_are_named(client, auth, department):
    body = appointment_body(department["id"])
    del body["client"]
    assert (await problem(await post(client, auth, body), 422))["field"] == "client"


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"default_language": "de"}, "default_language"),
        ({"telemedicine_enabled": "yes"}, "telemedicine_enabled"),
        ({"contact": {"phone": "12345"}}, "contact.phone"),
        ({"contact": {"email": "nope"}}, "contact.email"),
        ({"name": ""}, "name"),
        ({"color": "red"}, "color"),
    ],
)
async def test_bad_department_fields_are_named(client, auth, over, field):
    resp = await post(client, auth, department_body(**over), url="/api/v1/departments")
    assert (await problem(resp, 422))["field"] == field


async def test_oversize_body_is_413(client, auth, department, settings):
    body = appointment_body(department["id"])
    body["patient"]["name"] = "x" * settings.server.max_body_bytes
    resp = await post(client, auth, body)
    assert (await problem(resp, 413))["type"].endswith("body-too-large")
    # The server is fine afterwards.
    assert (await post(client, auth, appointment_body(department["id"]))).status == 201


async def test_unknown_paths_and_methods(client, auth):
    await problem(await client.get("/api/v1/nothing-here", headers=auth), 404)
    await problem(await client.get("/api/v1/appointments/apt_missing", headers=auth), 404)
    resp = await client.delete("/api/v1/departments", headers=auth)
    await problem(resp, 405)
    assert "POST" in resp.headers["Allow"]


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer tv_unknown", "Bearer nope"],
)
async def test_missing_or_unknown_key_is_401(client, header):
    headers = {} if header is None else {"Authorization": header}
    resp = await client.get("/api/v1/departments", headers=headers)
    body = await problem(resp, 401)
    assert body["type"].endswith("unauthenticated")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_revoked_key_stops_at_once_and_others_keep_working(client, store, clock):
    org, first_record, first = await create_org(store, "Keys", clock())
    _, second = await auth_keys.create_key(store, org["id"], clock())
    for key in (first, second):
        resp = await client.get("/api/v1/departments", headers={"Authorization": f"Bearer {key}"})
        assert resp.status == 200
    await auth_keys.revoke_key(store, first_record["id"], clock())
    await problem(
        await client.get("/api/v1/departments", headers={"Authorization": f"Bearer {first}"}), 401
    )
    assert (
        await client.get("/api/v1/departments", headers={"Authorization": f"Bearer {second}"})
    ).status == 200


async def test_a_revocation_elsewhere_stops_a_remembered_key_at_once(
    make_client, make_store, clock
):
    """Two nodes have each served the key (so both remember it); a third client of the same
    data (`televisit admin revoke-key`) revokes it: both nodes refuse it on the next request."""
    nodes = [await make_client(await make_store()) for _ in range(2)]
    admin = await make_store()
    org, record, key = await create_org(admin, "Keys", clock())
    headers = {"Authorization": f"Bearer {key}"}
    for _ in range(2):
        for node in nodes:
            assert (await node.get("/api/v1/departments", headers=headers)).status == 200
    await auth_keys.revoke_key(admin, record["id"], clock())
    for node in nodes:
        await problem(await node.get("/api/v1/departments", headers=headers), 401)


async def test_keys_are_stored_only_hashed(store, clock):
    org, record, key = await create_org(store, "Hashes", clock())
    stored = await store.get("apikey", record["id"])
    assert key not in repr(stored)
    assert stored.claims == (f"apikey:{auth_keys._digest(key)}",)


async def test_unexpected_errors_are_a_generic_500_problem(client, auth, monkeypatch):
    from control import departments

    async def broken(store, org_id):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(departments, "list_departments", broken)
    body = await problem(await client.get("/api/v1/departments", headers=auth), 500)
    assert "secret internals" not in body["detail"]


async def _raw_get(client, path: str, header: bytes) -> tuple[int, bytes]:
    """GET with one header of raw bytes (aiohttp's client sends only str headers)."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".encode()
                 + header + b"\r\n\r\n")  # fmt: skip
    answer = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize(
    "path",
    ["/api/v1/departments", "/api/v1/clinic/me", "/api/v1/mobile/app/me"],
)
@pytest.mark.parametrize(
    "header",
    [
        # Bytes that are not UTF-8 reach the handler as lone surrogates: hashing them was a 500.
        b"Authorization: Bearer tv_\xff\xfe",
        b"Authorization: Bearer tvs_\xff",
        b"Authorization: Bearer tvm_\xc3",
        b"Authorization: Bearer tv_\xc3\xa9",  # UTF-8, but no key of ours
        b"Cookie: tv_staff=tvs_\xff",
    ],
)
async def test_credentials_that_are_not_ascii_are_unauthenticated(client, path, header):
    status, body = await _raw_get(client, path, header)
    assert status == 401, body
    assert json.loads(body)["type"].endswith("unauthenticated")


async def test_deeply_nested_json_is_400_not_a_crash(client, auth):
    raw = b"[" * 30000 + b"]" * 30000
    body = await problem(await post(client, auth, raw), 400)
    assert body["type"].endswith("malformed-json")


async def test_ids_that_cannot_be_store_keys(client, auth, department):
    for url in [
        "/api/v1/appointments/%00",
        "/api/v1/appointments/" + "a" * 200,
        "/api/v1/departments/x%01y",
    ]:
        await problem(await client.get(url, headers=auth), 404)
    for field in ["external_id", "department_id"]:
        body = appointment_body(department["id"])
        body[field] = "A\x00B"
        assert (await problem(await post(client, auth, body), 422))["field"] == field
    body = appointment_body(department["id"], provider={"id": "v\x00", "name": "Dr"})
    assert (await problem(await post(client, auth, body), 422))["field"] == "provider.id"
    resp = await client.get("/api/v1/appointments", params={"provider_id": "v\x00"}, headers=auth)
    assert (await problem(resp, 422))["field"] == "provider_id"
