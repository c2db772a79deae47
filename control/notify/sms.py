"""SMS through a configurable HTTP gateway (settings [notify.sms]).

One JSON POST ``{"to", "from", "text"}`` with ``Authorization: Bearer <api_key>`` when a key
is set and ``Idempotency-Key`` (the same for every attempt of one message).

At most once, whatever the gateway does with the key. The contract relied on: a gateway
that answers non-2xx did not accept the message, and one that could not be connected to
received nothing. What happens after the request may have reached it depends on
``notify.sms.gateway_dedupes``:
- false (the default; any gateway): the worker records the handoff before the POST, like SMTP
  before DATA. A connection refused is retried; an attempt that dies after the request went
  out (no answer in time, the connection broke, the worker crashed) is marked failed
  "delivery unknown; resend if needed" and never sent again.
- true (only for a gateway documented to drop a repeated Idempotency-Key): no handoff is
  recorded; such an attempt is sent again with the same key and the gateway drops the repeat.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from config.settings import SmsSettings
from control.notify.errors import DeliveryError, http_refusal
from control.notify.http import HttpSender

_ERROR_TEXT_MAX = 200
_SECRETS = re.compile(r"https?://\S+|\d{6,}")


class SmsSender(HttpSender):
    def __init__(self, settings: SmsSettings, timeout_seconds: float) -> None:
        super().__init__(timeout_seconds)
        self.settings = settings

    async def send(
        self, message: dict[str, Any], handoff: Callable[[], Awaitable[None]]
    ) -> str | None:
        """Return the gateway's message id if it gives one; raise DeliveryError otherwise
        (``unknown`` when the request may have reached the gateway that does not dedupe)."""
        headers = {"Idempotency-Key": message["idempotency_key"]}
        if self.settings.api_key:
            headers["Authorization"] = f"Bearer {self.settings.api_key}"
        payload = {"to": message["to"], "from": self.settings.sender, "text": message["body"]}
        if not self.settings.gateway_dedupes:
            await handoff()
        try:
            async with self.session().post(
                self.settings.gateway_url, json=payload, headers=headers, allow_redirects=False
            ) as resp:
                text = await resp.text(errors="replace")
                if 200 <= resp.status < 300:
                    return _provider_id(resp, text)
        except aiohttp.ClientConnectorError as exc:  # no connection: nothing was sent
            raise DeliveryError(f"SMS gateway unreachable: {exc!r}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            unknown = not self.settings.gateway_dedupes
            raise DeliveryError(f"SMS gateway did not answer: {exc!r}", unknown=unknown) from exc
        reason = f"SMS gateway answered HTTP {resp.status}: {_redact(text)[:_ERROR_TEXT_MAX]}"
        raise http_refusal(reason, resp.status)


def _redact(text: str) -> str:
    # Gateways may echo the request: keep the join link (a token) and PIN out of logs and
    # of the status the API shows.
    return _SECRETS.sub("[redacted]", text)


def _provider_id(resp: aiohttp.ClientResponse, text: str) -> str | None:
    if resp.content_type != "application/json":
        return None
    try:
        body = json.loads(text)
    except ValueError:
        return None
    ident = body.get("id") if isinstance(body, dict) else None
    return str(ident) if ident is not None else None
