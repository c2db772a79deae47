"""Virtual clinic events POSTed to the organization's webhook (settings.clinic.webhook_url).

Delivery is at-least-once per node while it runs: a bounded queue, retries with exponential
backoff up to ``webhook_max_attempts``. Each body carries the event id so a receiver can drop
repeats; with ``webhook_secret`` set, ``X-Televisit-Signature: sha256=<hex HMAC of the body>``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from typing import Any

import aiohttp

from config.settings import ClinicSettings
from control.background import Background, worth_logging

log = logging.getLogger(__name__)
QUEUE_MAX = 1000


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Webhook:
    def __init__(self, settings: ClinicSettings) -> None:
        self.settings = settings
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_MAX)
        self.delivered = self.failed = self.dropped = 0
        self._task = Background("clinic-webhook")
        self._http: aiohttp.ClientSession | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.settings.webhook_url)

    def enqueue(self, event: dict[str, Any]) -> None:
        if not self.enabled:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            if worth_logging(self.dropped):
                log.warning("clinic webhook queue full: %d events dropped", self.dropped)

    async def start(self) -> None:
        if self.enabled and not self._task.running:
            timeout = aiohttp.ClientTimeout(total=self.settings.webhook_timeout_seconds)
            self._http = aiohttp.ClientSession(timeout=timeout)
            self._task.start(self._run)

    async def stop(self) -> None:
        await self._task.stop()
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _run(self) -> None:
        while True:
            event = await self.queue.get()
            await self._deliver(event)

    async def _deliver(self, event: dict[str, Any]) -> None:
        assert self._http is not None
        body = json.dumps(event, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "X-Televisit-Event": event["type"]}
        if self.settings.webhook_secret:
            headers["X-Televisit-Signature"] = signature(self.settings.webhook_secret, body)
        delay = 0.5
        for attempt in range(1, self.settings.webhook_max_attempts + 1):
            try:
                async with self._http.post(
                    self.settings.webhook_url, data=body, headers=headers
                ) as resp:
                    if resp.status < 300:
                        self.delivered += 1
                        return
                    problem = f"HTTP {resp.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = repr(exc)
            if attempt < self.settings.webhook_max_attempts:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        self.failed += 1
        log.warning("clinic webhook gave up on %s %s: %s", event["type"], event["id"], problem)
