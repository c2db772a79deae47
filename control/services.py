"""What the control API's handlers share, kept on the aiohttp application."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from config.settings import Settings
from control.ratelimit import JoinLimiter
from control.store import Store
from control.tokens import Keyring

if TYPE_CHECKING:
    from control.auth import KeyCache  # control.auth reads Services from requests


class Wakeable(Protocol):
    """The notify outbox worker, as the API sees it: told to look now."""

    def wake(self) -> None: ...


class Publisher(Protocol):
    """The event bus, as the API sees it (control.bus.EventBus)."""

    async def publish(self, topic: str, event: dict[str, Any]) -> None: ...


@dataclass
class Services:
    settings: Settings
    store: Store
    keyring: Keyring
    limiter: JoinLimiter
    api_keys: KeyCache
    clock: Callable[[], float] = field(default=time.time)
    outbox_worker: Wakeable | None = None
    bus: Publisher | None = None


SERVICES = web.AppKey("services", Services)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]
