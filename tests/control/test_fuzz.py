"""Mutated bodies never get a 500: every answer is a success or a problem+json 4xx."""

from __future__ import annotations

import copy
import random
from typing import Any

from .helpers import BASE, PROBLEM, appointment_body, department_body

ODD_VALUES: list[Any] = [
    None, True, 0, -1, 1.5, 10**30, "", " ", "x" * 5000, "\x00", "☃", [], [1, "a"], {}, {"a": {}},
    "2026-12-01T10:00:00Z", "+358401234567", "a@b.fi", "NaN", "sms",
]  # fmt: skip
CASES = 150


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    return out


def mutate(body: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    body = copy.deepcopy(body)
    for _ in range(rng.randint(1, 3)):
        paths = _paths(body)
        if not paths:
            body["extra"] = rng.choice(ODD_VALUES)
            continue
        path = rng.choice(paths)
        parent = body
        for key in path[:-1]:
            parent = parent[key]
        if not isinstance(parent, dict):
            continue
        action = rng.random()
        if action < 0.2:
            parent.pop(path[-1], None)
        elif action < 0.3:
            parent[rng.choice(["extra", "id", "status", "telemedicine"])] = rng.choice(ODD_VALUES)
        else:
            parent[path[-1]] = rng.choice(ODD_VALUES)
    return body


async def check(resp) -> None:
    text = await resp.text()
    assert resp.status < 500, text
    if resp.status >= 400:
        assert resp.content_type == PROBLEM, text


async def test_mutated_bodies_never_crash(client, auth, department, clock):
    rng = random.Random(20261201)
    valid = appointment_body(department["id"])
    resp = await client.post("/api/v1/appointments", json=valid, headers=auth)
    appt = await resp.json()
    clock.set(BASE)
    for n in range(CASES):
        body = mutate(dict(valid, external_id=f"F-{n}"), rng)
        await check(await client.post("/api/v1/appointments", json=body, headers=auth))
        patch = mutate(
            {k: valid[k] for k in ("start", "end", "client", "patient", "provider")}, rng
        )
        await check(
            await client.patch(f"/api/v1/appointments/{appt['id']}", json=patch, headers=auth)
        )
        await check(
            await client.post(
                "/api/v1/departments", json=mutate(department_body(), rng), headers=auth
            )
        )
        await check(
            await client.post("/api/v1/join", json=mutate({"pin": "123456789", "token": "x"}, rng))
        )
        send = {"channels": rng.choice(ODD_VALUES)}
        await check(
            await client.post(
                f"/api/v1/appointments/{appt['id']}/telemedicine/send", json=send, headers=auth
            )
        )
    # Whatever happened, the store still answers consistently.
    resp = await client.get("/api/v1/appointments", headers=auth)
    assert resp.status == 200
