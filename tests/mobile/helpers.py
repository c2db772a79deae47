"""The mobile tests' clinic: accounts, the setting, devices and the records clinic software
pushes, through the real API."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from control.clinic.accounts import create_staff
from tests.control.helpers import PROBLEM, department_body

API = "/api/v1"
PASSWORD = "correct horse battery"
# 2026-12-01 12:00 in Helsinki (UTC+2): yesterday, today and tomorrow are Nov 30 - Dec 2 there.
NOON = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def key() -> str:
    return uuid.uuid4().hex


async def problem(resp: Any, status: int, kind: str | None = None, field: str | None = None):
    """The response is problem+json with ``status`` (and type ending ``kind``, ``field``)."""
    text = await resp.text()
    assert resp.status == status, text
    assert resp.content_type == PROBLEM, text
    body = await resp.json(content_type=None)
    if kind is not None:
        assert body["type"] == f"urn:televisit:problem:{kind}", body
    if field is not None:
        assert body.get("field") == field, body
    return body


@dataclass
class Clinic:
    client: Any
    store: Any
    org: dict[str, str]
    clock: Any
    department: dict[str, Any] = field(default_factory=dict)
    admin: dict[str, str] = field(default_factory=dict)  # request headers of a signed-in admin
    vet: dict[str, str] = field(default_factory=dict)

    @property
    def api(self) -> dict[str, str]:
        return {"Authorization": self.org["auth"]}

    async def setup(self) -> None:
        self.clock.set(NOON)
        resp = await self.client.post(
            f"{API}/departments",
            json=department_body(time_zone="Europe/Helsinki"),
            headers=self.api,
        )
        assert resp.status == 201, await resp.text()
        self.department = await resp.json()
        self.admin = await self.account("admin", ["administer", "mobile"])
        self.vet = await self.account("vet", ["provide", "mobile"])

    async def account(self, username: str, groups: list[str]) -> dict[str, str]:
        """Create an account and sign it in: its request headers."""
        await create_staff(
            self.store, self.org["id"], username=username, display_name=username.title(),
            password=PASSWORD, groups=groups,
        )  # fmt: skip
        resp = await self.client.post(
            f"{API}/clinic/login", json={"username": username, "password": PASSWORD}
        )
        assert resp.status == 200, await resp.text()
        return {"Authorization": f"Bearer {(await resp.json())['token']}"}

    async def enable(self, on: bool = True) -> None:
        resp = await self.client.put(
            f"{API}/mobile/settings", json={"enabled": on}, headers=self.admin
        )
        assert resp.status == 200, await resp.text()

    async def login_key(self, staff: dict[str, str]) -> str:
        resp = await self.client.post(f"{API}/mobile/login-key", headers=staff)
        assert resp.status == 201, await resp.text()
        return (await resp.json())["key"]

    async def device(self, staff: dict[str, str] | None = None, name: str = "Phone") -> dict:
        """A signed-in device of ``staff`` (the vet): its request headers."""
        login = await self.login_key(staff or self.vet)
        resp = await self.client.post(
            f"{API}/mobile/device-login", json={"key": login, "name": name}
        )
        assert resp.status == 201, await resp.text()
        body = await resp.json()
        return {"Authorization": f"Bearer {body['token']}", "X-Device": body["device"]["id"]}

    # --- what clinic software pushes ----------------------------------------------------

    async def put(self, kind: str, id: str, body: dict[str, Any], status: int | None = None):
        """PUT a record; asserts ``status`` when given, else success (200 or 201)."""
        resp = await self.client.put(f"{API}/mobile/{kind}/{id}", json=body, headers=self.api)
        if status is not None:
            assert resp.status == status, await resp.text()
        else:
            assert resp.status in (200, 201), await resp.text()
        return resp

    async def family(self, n: int, history: int = 2) -> None:
        """Client c<n>, their patient p<n> and ``history`` entries h<n>-<k>."""
        await self.put("clients", f"c{n}", {"name": f"Client {n}", "phone": "+358401112223"})
        await self.put(
            "patients", f"p{n}", {"client_id": f"c{n}", "name": f"Pet {n}", "species": "cat"}
        )
        for k in range(history):
            at = NOON - timedelta(days=30 * (k + 1))
            await self.put(
                "history", f"h{n}-{k}",
                {"patient_id": f"p{n}", "at": iso(at), "type": "diagnosis", "title": f"Visit {k}",
                 "text": "Otitis externa"},
            )  # fmt: skip

    async def appointment(self, n: int, start: datetime, **over: Any) -> dict[str, Any]:
        body = {
            "department_id": self.department["id"],
            "external_id": f"A-{n}-{start.timestamp():.0f}",
            "start": iso(start),
            "end": iso(start + timedelta(minutes=30)),
            "provider": {"id": "vet-7", "name": "Dr. Aino Lehto"},
            "client": {"id": f"c{n}", "name": f"Client {n}", "phone": "+358401112223"},
            "patient": {"id": f"p{n}", "name": f"Pet {n}", "species": "cat"},
            **over,
        }
        resp = await self.client.post(f"{API}/appointments", json=body, headers=self.api)
        assert resp.status == 201, await resp.text()
        return await resp.json()

    # --- the app --------------------------------------------------------------------------

    async def sync(self, device: dict[str, str], cursor: str | None = None):
        query = {} if cursor is None else {"cursor": cursor}
        return await self.client.get(f"{API}/mobile/app/sync", params=query, headers=device)

    async def note(self, device, note_id, text, *, base=0, patient="p1", k=None, **over):
        body = {"idempotency_key": k or key(), "base_version": base, "patient_id": patient,
                "text": text, **over}  # fmt: skip
        return await self.client.put(f"{API}/mobile/app/notes/{note_id}", json=body, headers=device)

    async def scan(self, device, barcode, quantity=1, k=None):
        body = {"idempotency_key": k or key(), "barcode": barcode, "quantity": quantity,
                "scanned_at": iso(NOON)}  # fmt: skip
        return await self.client.post(f"{API}/mobile/app/stock-scans", json=body, headers=device)
