"""Email through SMTP with aiosmtplib (settings [notify.smtp]).

The SMTP transaction is driven step by step (connect, MAIL, RCPT, DATA) so the worker can
record the moment before DATA (``handoff``): an SMTP server delivers nothing before the
final dot of DATA is acknowledged, so a failure before that point is safe to retry, and
only a break during DATA leaves the outcome unknown. SMTP has no idempotency mechanism;
the Message-ID (derived from the idempotency key) at least lets a mail client or a human
recognise a repeat.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formataddr, formatdate, parseaddr
from typing import Any

import aiosmtplib

from config.settings import SmtpSettings
from control.notify import ics
from control.notify.errors import DeliveryError

_DEFAULT_DOMAIN = "televisit.local"


def sender_address(settings: SmtpSettings) -> str:
    return parseaddr(settings.from_address)[1]


def message_id(idempotency_key: str, settings: SmtpSettings) -> str:
    domain = sender_address(settings).rpartition("@")[2] or _DEFAULT_DOMAIN
    return f"<{idempotency_key}@{domain}>"


def build_mime(message: dict[str, Any], settings: SmtpSettings) -> EmailMessage:
    """text/plain UTF-8 with an HTML alternative, and the calendar entry (``invite.ics``,
    text/calendar) when the message has one."""
    client_name = message.get("to_name") or ""
    mime = EmailMessage(policy=SMTP)
    mime["From"] = settings.from_address
    mime["To"] = formataddr((client_name, message["to"])) if client_name else message["to"]
    mime["Subject"] = message["subject"]
    mime["Date"] = formatdate(message["created_at"], usegmt=True)
    mime["Message-ID"] = message_id(message["idempotency_key"], settings)
    mime["Auto-Submitted"] = "auto-generated"
    mime.set_content(message["body"], charset="utf-8", cte="quoted-printable")
    if message.get("html"):
        mime.add_alternative(
            message["html"], subtype="html", charset="utf-8", cte="quoted-printable"
        )
    if message.get("calendar"):
        mime.add_attachment(
            message["calendar"].encode("utf-8"),
            maintype="text",
            subtype="calendar",
            filename=ics.FILENAME,
            params={"method": "PUBLISH", "charset": "utf-8"},
        )
    # After the body: set_content drops, and add_alternative moves, every Content-* header.
    mime["Content-Language"] = message["language"]
    return mime


def _message_bytes(message: dict[str, Any], settings: SmtpSettings) -> bytes:
    """The MIME message, or a permanent failure: what cannot be built now never will be."""
    address = message["to"]
    if not address.isascii():
        raise DeliveryError("email address is not ASCII (SMTPUTF8 is not used)", permanent=True)
    try:
        Address(addr_spec=address)
        return build_mime(message, settings).as_bytes()
    except (ValueError, TypeError, IndexError) as exc:
        raise DeliveryError(f"cannot build the email: {exc}", permanent=True) from exc


def _reply_error(exc: aiosmtplib.SMTPResponseException) -> DeliveryError:
    return DeliveryError(
        f"SMTP server answered {exc.code} {exc.message}", permanent=500 <= exc.code < 600
    )


class EmailSender:
    def __init__(self, settings: SmtpSettings, timeout_seconds: float) -> None:
        self.settings = settings
        self.timeout = timeout_seconds

    async def close(self) -> None:
        """Nothing to release: each message uses its own connection."""

    async def send(
        self, message: dict[str, Any], handoff: Callable[[], Awaitable[None]]
    ) -> str | None:
        """Return the Message-ID; raise DeliveryError (``unknown`` if DATA broke off)."""
        cfg = self.settings
        raw = _message_bytes(message, cfg)
        client = aiosmtplib.SMTP(
            hostname=cfg.host,
            port=cfg.port,
            timeout=self.timeout,
            start_tls=cfg.starttls,
            username=cfg.username or None,
            password=cfg.password or None,
        )
        try:
            try:
                await client.connect()
                await client.mail(sender_address(cfg))
                await client.rcpt(message["to"])
            except aiosmtplib.SMTPResponseException as exc:
                raise _reply_error(exc) from exc
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                raise DeliveryError(f"SMTP server unreachable: {exc!r}") from exc
            await handoff()
            try:
                await client.data(raw)
            except aiosmtplib.SMTPResponseException as exc:
                # A reply to DATA is definite: the server did not take the message.
                raise _reply_error(exc) from exc
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                raise DeliveryError(
                    f"connection lost during SMTP DATA: {exc!r}", unknown=True
                ) from exc
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                await client.quit()  # the message is accepted; a failed goodbye changes nothing
            return message_id(message["idempotency_key"], cfg)
        finally:
            client.close()
