"""What the virtual clinic's operations need: store, settings, clock, event sink, room issuer."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from config.settings import ClinicSettings
from control.store import Store


class EventSink(Protocol):
    async def emit(
        self, type: str, org_id: str, audience: tuple[str, ...] | None, **payload: Any
    ) -> None:
        """Deliver one event to the dashboards of ``audience`` (staff ids; None = the whole
        organization) and to the webhook."""


@dataclass
class Clinic:
    store: Store
    settings: ClinicSettings
    events: EventSink
    clock: Callable[[], float] = field(default=time.time)
