"""Per-organization virtual clinic options: decline notes on/off and the account services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from control.clinic.errors import Invalid
from control.clinic.records import Write, upsert
from control.store import Record, Store

KIND = "clinic_policy"
MAX_SERVICES = 50


@dataclass(frozen=True, slots=True)
class Policy:
    org_id: str
    notes_enabled: bool = True
    services: tuple[str, ...] = ()

    def public(self) -> dict[str, Any]:
        return {"notes_enabled": self.notes_enabled, "services": list(self.services)}

    def pick_service(self, service: str | None) -> str | None:
        """The service a request carries: required to be one of several, implied if only one."""
        if not self.services:
            if service:
                raise Invalid(
                    "This organization has no account services; send the request without one.",
                    field="service",
                )
            return None
        if service is None or service == "":
            if len(self.services) == 1:
                return self.services[0]
            raise Invalid(
                f"Choose one of the account services: {', '.join(self.services)}.",
                field="service",
                services=list(self.services),
            )
        if service not in self.services:
            raise Invalid(
                f"{service} is not one of the account services: {', '.join(self.services)}.",
                field="service",
                services=list(self.services),
            )
        return service


def check_services(services: list[str]) -> tuple[str, ...]:
    cleaned = tuple(dict.fromkeys(s.strip() for s in services))
    if len(cleaned) > MAX_SERVICES or any(not 1 <= len(s) <= 80 for s in cleaned):
        raise Invalid(
            f"services: at most {MAX_SERVICES} names of 1-80 characters", field="services"
        )
    return cleaned


def _from_data(org_id: str, data: dict[str, Any]) -> Policy:
    return Policy(org_id, data["notes_enabled"], tuple(data["services"]))


async def get_policy(store: Store, org_id: str) -> Policy:
    rec = await store.get(KIND, org_id)
    return Policy(org_id) if rec is None else _from_data(org_id, rec.data)


async def set_policy(
    store: Store,
    org_id: str,
    *,
    notes_enabled: bool | None = None,
    services: list[str] | None = None,
) -> Policy:
    cleaned = None if services is None else check_services(services)

    def make(rec: Record | None) -> Write:
        current = Policy(org_id) if rec is None else _from_data(org_id, rec.data)
        data = {
            "notes_enabled": current.notes_enabled if notes_enabled is None else notes_enabled,
            "services": list(current.services if cleaned is None else cleaned),
        }
        return data, (), {}

    rec, _ = await upsert(store, KIND, org_id, make, what="policy")
    assert rec is not None
    return _from_data(org_id, rec.data)
