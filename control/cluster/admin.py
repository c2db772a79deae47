"""`televisit admin workers` and `televisit admin drain`: the registry as JSON, and a drain
request on the bus (topic ``sfu:drain``) confirmed from the registry."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from config.settings import Settings
from control.cluster.localbus import process_bus
from control.cluster.registry import DRAIN_TOPIC, Registry
from control.store import Store

CONFIRM_SECONDS = 15.0


class NothingToDrain(Exception):
    """No live worker matches the request."""


async def workers(store: Store) -> list[dict[str, Any]]:
    """Every live worker's last heartbeat (id, node, url, state, rooms, cpu, pps, ...)."""
    return [w.model_dump() for w in await Registry(store).live()]


async def drain(
    settings: Settings, store: Store, *, worker: str | None = None, node: str | None = None
) -> dict[str, Any]:
    """Ask one worker, or every worker of one node, to drain; returns once each reports
    ``draining`` (or left) in the registry. Raises NothingToDrain, TimeoutError."""
    registry = Registry(store)
    targets = {
        w.id
        for w in await registry.live()
        if (worker and w.id == worker) or (node and w.node == node)
    }
    if not targets:
        raise NothingToDrain(f"no live worker {'of node ' + node if node else worker}")
    bus = process_bus(settings)
    await bus.open()
    try:
        await bus.publish(DRAIN_TOPIC, {"worker": worker} if worker else {"node": node})
    finally:
        await bus.close()
    deadline = time.monotonic() + CONFIRM_SECONDS
    while True:
        live = {w.id: w for w in await registry.live()}
        pending = {t for t in targets if t in live and live[t].accepting}
        if not pending:
            return {"draining": sorted(targets)}
        if time.monotonic() > deadline:
            raise TimeoutError(f"workers did not confirm the drain: {', '.join(sorted(pending))}")
        await asyncio.sleep(0.2)
