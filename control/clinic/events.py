"""Virtual clinic events: onto the event bus (every node's dashboards) and to the webhook.

Topics: ``clinic:staff:<staff id>`` for what concerns one person, ``clinic:orgwide:<org>`` for
broadcasts to every dashboard of an organization (a provider's availability), and
``clinic:org:<org>`` carrying every event of the organization (administrators, clinic software).
A dashboard may hear one event on two topics; the event ``id`` lets it drop the repeat.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

from control.clinic.webhook import Webhook


class Bus(Protocol):
    async def publish(self, topic: str, event: dict[str, Any]) -> None: ...


def staff_topic(staff_id: str) -> str:
    return f"clinic:staff:{staff_id}"


def orgwide_topic(org_id: str) -> str:
    return f"clinic:orgwide:{org_id}"


def org_topic(org_id: str) -> str:
    return f"clinic:org:{org_id}"


class Events:
    """The EventSink of the running control node."""

    def __init__(self, bus: Bus, webhook: Webhook) -> None:
        self.bus = bus
        self.webhook = webhook

    async def emit(
        self, type: str, org_id: str, audience: tuple[str, ...] | None, **payload: Any
    ) -> None:
        event = {
            "id": "ev_" + secrets.token_hex(8),
            "type": type,
            "org_id": org_id,
            "ts": time.time(),
            **payload,
        }
        topics = [org_topic(org_id)]
        if audience is None:
            topics.append(orgwide_topic(org_id))
        else:
            topics += [staff_topic(s) for s in dict.fromkeys(audience)]
        for topic in topics:
            await self.bus.publish(topic, event)
        self.webhook.enqueue(event)


@contextlib.asynccontextmanager
async def listen(bus: Any, topics: list[str]) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
    """Events of ``topics`` while the block runs (subscribed before the block starts)."""
    async with bus.subscribe(*topics) as feed:
        yield feed
