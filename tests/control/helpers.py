"""Bodies and a clock shared by the control API tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

# 2026-12-01T10:00:00Z: appointments in the tests start around here.
BASE = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: float = BASE.timestamp() - 86400.0  # a day before the first appointment

    def __call__(self) -> float:
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment.timestamp()


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def department_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Small animals",
        "telemedicine_enabled": True,
        "default_language": "fi",
        "contact": {
            "name": "Kallio Vet",
            "address": "Fleminginkatu 1, Helsinki",
            "phone": "+358912345678",
            "email": "info@kallio.example",
        },
    }
    body.update(over)
    return body


def appointment_body(department_id: str, **over: Any) -> dict[str, Any]:
    start = over.pop("start_at", BASE)
    body: dict[str, Any] = {
        "department_id": department_id,
        "external_id": "A-1",
        "start": iso(start),
        "end": iso(start + timedelta(minutes=30)),
        "provider": {"id": "vet-7", "name": "Dr. Aino Lehto"},
        "client": {
            "name": "Matti Meikäläinen",
            "phone": "+358401234567",
            "email": "matti@example.com",
            "language": "fi",
        },
        "patient": {"name": "Musti", "species": "dog"},
    }
    body.update(over)
    return body


PROBLEM = "application/problem+json"


async def problem(resp: Any, status: int) -> dict[str, Any]:
    """Assert ``resp`` is a problem+json with ``status``; return its body."""
    text = await resp.text()
    assert resp.status == status, text
    assert resp.content_type == PROBLEM, (resp.content_type, text)
    body = await resp.json(content_type=None)
    assert body["status"] == status and body["type"].startswith("urn:televisit:problem:")
    assert body["title"] and body["detail"]
    return body


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]
