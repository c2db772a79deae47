"""Shared pieces of the clinic tests: a clock the test moves, a sink that keeps events, and a
provider with a front desk to request them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from control.clinic import requests
from control.clinic.accounts import Staff, create_staff
from control.clinic.context import Clinic


@dataclass
class Clock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class KeptEvents:
    """An EventSink that keeps (type, audience, payload) for assertions."""

    seen: list[tuple[str, tuple[str, ...] | None, dict[str, Any]]] = field(default_factory=list)

    async def emit(
        self, type: str, org_id: str, audience: tuple[str, ...] | None, **payload: Any
    ) -> None:
        self.seen.append((type, audience, payload))

    def types_for(self, staff_id: str) -> list[str]:
        return [t for t, aud, _ in self.seen if aud is None or staff_id in aud]


async def provider_and_desk(clinic: Clinic) -> tuple[Staff, Staff]:
    """Dr Who (available) and the front desk that requests them, in org1."""
    prov = await create_staff(clinic.store, "org1", username="drwho", display_name="Dr Who",
                              password="correct horse", groups=["provide"])  # fmt: skip
    prov = await requests.set_availability(clinic, prov, True)
    desk = await create_staff(clinic.store, "org1", username="desk", display_name="Desk",
                              password="correct horse", groups=["request"])  # fmt: skip
    return prov, desk
