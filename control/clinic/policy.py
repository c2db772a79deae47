"""Per-organization virtual clinic options: decline notes on/off and the account services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from control.clinic.errors import Conflict, Invalid
from control.store import AlreadyExists, Record, Store, VersionConflict

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
                raise Invalid("service: this organization has no account services", field="service")
            return None
        if service is None or service == "":
            if len(self.services) == 1:
                return self.services[0]
            raise Invalid(f"service: choose one of {list(self.services)}", field="service")
        if service not in self.services:
            raise Invalid(
                f"service: {service!r} is not one of {list(self.services)}", field="service"
            )
        return service


def check_services(services: list[str]) -> tuple[str, ...]:
    cleaned = tuple(dict.fromkeys(s.strip() for s in services))
    if len(cleaned) > MAX_SERVICES or any(not 1 <= len(s) <= 80 for s in cleaned):
        raise Invalid(
            f"services: at most {MAX_SERVICES} names of 1-80 characters", field="services"
        )
    return cleaned


async def get_policy(store: Store, org_id: str) -> Policy:
    rec = await store.get(KIND, org_id)
    if rec is None:
        return Policy(org_id)
    return Policy(org_id, rec.data["notes_enabled"], tuple(rec.data["services"]))


async def set_policy(
    store: Store,
    org_id: str,
    *,
    notes_enabled: bool | None = None,
    services: list[str] | None = None,
) -> Policy:
    for _ in range(8):
        rec: Record | None = await store.get(KIND, org_id)
        current = (
            Policy(org_id, rec.data["notes_enabled"], tuple(rec.data["services"]))
            if rec
            else Policy(org_id)
        )
        data = {
            "notes_enabled": current.notes_enabled if notes_enabled is None else notes_enabled,
            "services": list(current.services if services is None else check_services(services)),
        }
        try:
            if rec is None:
                await store.create(KIND, org_id, data)
            else:
                await store.update(KIND, org_id, data, expect_version=rec.version)
        except (AlreadyExists, VersionConflict):
            continue  # another admin wrote at the same time: read again
        return Policy(org_id, data["notes_enabled"], tuple(data["services"]))
    raise Conflict("policy is changing too often; try again")
