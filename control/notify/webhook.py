"""Webhooks through the outbox: a message's JSON ``body`` POSTed to its ``to`` URL.

Headers: ``Content-Type: application/json``, ``X-Televisit-Event`` (the event type, kept in
the message's ``subject``), ``Idempotency-Key`` (the event id: a receiver drops a repeat, which
is what makes a retry after a crash safe, as for SMS) and, with a secret,
``X-Televisit-Signature: sha256=<hex HMAC-SHA256 of the body>`` (the virtual clinic's webhook
signs the same way). A 2xx answer is delivery; a 4xx other than 408/425/429 fails the message
for good (it stays readable through the pull API of its producer), anything else is retried.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from control.clinic.webhook import signature
from control.notify.errors import DeliveryError, http_refusal
from control.notify.http import HttpSender

_ERROR_TEXT_MAX = 200


class WebhookSender(HttpSender):
    def __init__(self, secret: str, timeout_seconds: float) -> None:
        super().__init__(timeout_seconds)
        self.secret = secret

    async def send(
        self, message: dict[str, Any], handoff: Callable[[], Awaitable[None]]
    ) -> str | None:
        """POST the body; raise DeliveryError unless the receiver answers 2xx. ``handoff`` is
        not called: the idempotency key makes a repeat harmless."""
        body = message["body"].encode()
        headers = {
            "Content-Type": "application/json",
            "X-Televisit-Event": message["subject"],
            "Idempotency-Key": message["idempotency_key"],
        }
        if self.secret:
            headers["X-Televisit-Signature"] = signature(self.secret, body)
        try:
            async with self.session().post(
                message["to"], data=body, headers=headers, allow_redirects=False
            ) as resp:
                text = await resp.text(errors="replace")
                if 200 <= resp.status < 300:
                    return None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(f"webhook receiver unreachable: {exc!r}") from exc
        raise http_refusal(
            f"webhook receiver answered HTTP {resp.status}: {text[:_ERROR_TEXT_MAX]}", resp.status
        )
