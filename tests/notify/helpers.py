"""Stand-ins for what lies outside Televisit: an SMTP server (real aiosmtpd) and an SMS
provider (a small aiohttp server that dedupes on Idempotency-Key like a real gateway)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller

from control.notify.devgateway import DevSmsGateway
from control.store.factory import open_store

STALL_LIMIT_SECONDS = 120.0


async def open_test_store(settings):
    """Another client of the store the settings name (SQLite file or Redis)."""
    store = open_store(settings)
    await store.open()
    return store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_for(condition, limit: float = 30.0, what: str = "condition") -> None:
    """Poll ``condition`` (sync or async) until true; fail after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def appointment(**client: Any) -> dict[str, Any]:
    base_client = {
        "name": "Åsa Öberg",
        "phone": "+358401234567",
        "email": "asa.oberg@example.org",
        "language": "sv",
    }
    base_client.update(client)
    return {
        "id": "appt-1",
        "org_id": "org-1",
        "department_id": "dep-1",
        "external_id": "A-77",
        "start": "2026-11-23T14:30:00Z",
        "end": "2026-11-23T15:00:00Z",
        "provider": {"id": "prov-1", "name": "Dr. Virtanen"},
        "client": base_client,
        "patient": {"name": "Mörri", "species": "dog"},
        "status": "booked",
        "telemedicine": {
            "room_id": "room-1",
            "pin": "123456789",
            "join_url": "https://visit.example.org/j/room-1?t=eyJhbGciOi.payload.sig",
            "short_url": "https://visit.example.org/v/abcdefghjkmn",
            "host_url": "https://visit.example.org/h/room-1?t=host",
            "links_sent_at": None,
        },
    }


def department(**over: Any) -> dict[str, Any]:
    dep = {
        "id": "dep-1",
        "org_id": "org-1",
        "name": "Small animals",
        "telemedicine_enabled": True,
        "default_language": "fi",
        "time_zone": "Europe/Helsinki",
        "contact": {
            "name": "Eläinklinikka Kärpänen",
            "address": "Hämeentie 12, 00530 Helsinki",
            "phone": "+358 9 123 4567",
            "email": "info@karpanen.example",
        },
    }
    dep.update(over)
    return dep


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.raw, policy=policy.default)  # type: ignore[return-value]


@dataclass
class Mailbox:
    """aiosmtpd handler. ``stall_at`` ("RCPT" or "DATA") makes the next transaction hang there
    until ``release`` is set; a stalled DATA has already stored the message (the server took it
    but its answer never reached the sender)."""

    messages: list[Received] = field(default_factory=list)
    reject_rcpt: str | None = None
    reject_data: list[str] = field(default_factory=list)
    stall_at: str | None = None
    drop_in_data: bool = False
    stalled: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        with self.lock:
            return len(self.messages)

    async def _stall(self, where: str) -> None:
        if self.stall_at != where:
            return
        self.stall_at = None
        self.stalled.set()
        await asyncio.to_thread(self.release.wait, STALL_LIMIT_SECONDS)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        await self._stall("RCPT")
        if self.reject_rcpt:
            return self.reject_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.reject_data:
            return self.reject_data.pop(0)
        with self.lock:
            self.messages.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content))
            )
        await self._stall("DATA")
        if self.drop_in_data:
            self.drop_in_data = False
            server.transport.close()  # the message is stored but its 250 never goes out
        return "250 Message accepted for delivery"


class SmtpServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.mailbox = Mailbox()
        self._controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self.mailbox.release.set()
        self._controller.stop()


class SmsGateway(DevSmsGateway):
    """The SMS provider stand-in: answers the statuses queued in ``failures`` first (echoing
    the text like some real gateways do), and with ``stall_next`` records the next delivery
    but holds its answer until ``release`` is set (the provider took it, the answer is lost)."""

    def __init__(self) -> None:
        super().__init__(free_port(), api_key="test-key")
        self.failures: list[int] = []
        self.stall_next = False
        self.stalled = asyncio.Event()
        self.release = asyncio.Event()

    async def before_delivery(self, body: dict[str, Any]) -> web.Response | None:
        if not self.failures:
            return None
        status = self.failures.pop(0)
        return web.Response(status=status, text=f"simulated {status}: {body['text']}")

    async def after_delivery(self, key: str) -> None:
        if self.stall_next:
            self.stall_next = False
            self.stalled.set()
            await asyncio.wait_for(self.release.wait(), STALL_LIMIT_SECONDS)

    async def stop(self) -> None:
        self.release.set()
        await super().stop()
