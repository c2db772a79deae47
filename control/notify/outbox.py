"""The durable outbox: one store record (kind ``message``) per link message and channel.

A message moves ``queued -> sending -> sent | failed``, or back to ``queued`` for a retry.
Indexes:
- ``outbox:due`` holds every message a worker must look at, scored by ``next_attempt_at``:
  for ``queued`` the time of the next attempt, for ``sending`` the end of the claiming
  worker's lease (after which the attempt is presumed dead and recovered, see worker.py).
  ``sent`` and ``failed`` messages leave it.
- ``msgs:<appointment_id>`` holds the appointment's messages scored by ``created_at``; the
  latest per channel is the channel's delivery status.

Besides the client's links (channels ``sms`` and ``email``), the outbox carries webhooks
(channel ``webhook``: a JSON body POSTed to clinic software, see ``queue_webhook``).

Every transition is a versioned write, so two workers never both win the same message.
A resend creates new messages (with new idempotency keys); old ones keep their history.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Collection, Iterable
from datetime import UTC, datetime
from typing import Any

from config.settings import Settings
from control.models import mail_address
from control.notify import ics, templates
from control.notify.errors import LinkError, MissingContact
from control.store import AlreadyExists, Record, Store, VersionConflict

KIND = "message"
DUE_INDEX = "outbox:due"
CHANNELS = ("sms", "email")
ACTIVE = ("queued", "sending")


def appointment_index(appointment_id: str) -> str:
    return f"msgs:{appointment_id}"


def indexes(message: dict[str, Any]) -> dict[str, float]:
    out = {}
    if message["appointment_id"] is not None:
        out[appointment_index(message["appointment_id"])] = message["created_at"]
    if message["status"] in ACTIVE:
        out[DUE_INDEX] = message["next_attempt_at"]
    return out


async def save(store: Store, record: Record, data: dict[str, Any]) -> Record:
    """Write ``data`` over ``record`` if nobody changed it since (VersionConflict otherwise)."""
    return await store.update(
        KIND, record.id, data, expect_version=record.version, indexes=indexes(data)
    )


def _check_channels(channels: Iterable[str]) -> list[str]:
    if isinstance(channels, str):
        raise LinkError("channels", 'channels must be a list such as ["sms", "email"]')
    chosen = list(channels)
    if not chosen:
        raise LinkError("channels", "choose at least one channel: sms, email")
    for channel in chosen:
        if channel not in CHANNELS:
            raise LinkError("channels", f"unknown channel {channel!r}; use sms or email")
    if len(set(chosen)) != len(chosen):
        raise LinkError("channels", "a channel is listed twice")
    return chosen


def _recipient(appointment: dict[str, Any], channel: str) -> str:
    client = appointment.get("client") or {}
    field = "phone" if channel == "sms" else "email"
    value = client.get(field)
    if not value:
        raise MissingContact(
            f"client.{field}", f"the client has no {field}, so links cannot be sent by {channel}"
        )
    if channel == "sms":
        return str(value)
    try:
        return mail_address(str(value))
    except ValueError as exc:  # stored before models.Email checked for it
        raise LinkError("client.email", f"client.email: {exc}") from exc


def _content(
    channel: str,
    language: str,
    vals: dict[str, str],
    appointment: dict[str, Any],
    department: dict[str, Any],
) -> dict[str, str | None]:
    if channel == "sms":
        return {"subject": None, "body": templates.render_sms(language, vals), "html": None}
    email = templates.render_email(language, vals)
    zone = department.get("time_zone") or "UTC"
    return {
        "subject": email.subject,
        "body": email.text,
        "html": email.html,
        "calendar": ics.calendar_entry(language, appointment, zone, vals),
    }


async def queue_links(
    store: Store,
    settings: Settings,
    appointment: dict[str, Any],
    department: dict[str, Any],
    channels: list[str],
) -> list[dict[str, Any]]:
    """Render and record one message per channel; a worker delivers them.

    Raises LinkError (a ValueError) naming the field when a channel is unknown, the client
    lacks that contact (MissingContact), the department has telemedicine off, or the
    appointment is cancelled or has no telemedicine links.
    """
    chosen = _check_channels(channels)
    if not department.get("telemedicine_enabled"):
        raise LinkError(
            "department.telemedicine_enabled", "telemedicine is turned off for this department"
        )
    if appointment.get("status") == "cancelled":
        raise LinkError("status", "the appointment is cancelled")
    tele = appointment.get("telemedicine") or {}
    if not tele.get("join_url") or not tele.get("pin"):
        raise LinkError("telemedicine", "the appointment has no telemedicine room to link to")
    recipients = {channel: _recipient(appointment, channel) for channel in chosen}
    language = templates.choose_language(appointment, department)
    vals = templates.values(language, appointment, department, settings.pins.early_minutes)
    # Render everything before writing anything: a template error leaves no half-queued send.
    contents = {
        channel: _content(channel, language, vals, appointment, department) for channel in chosen
    }
    now = time.time()
    queued = []
    for channel in chosen:
        message_id = uuid.uuid4().hex
        message = _message(
            message_id,
            channel,
            recipients[channel],
            contents[channel],
            appointment_id=appointment["id"],
            org_id=appointment.get("org_id"),
            to_name=vals["client_name"],
            language=language,
            idempotency_key=f"televisit-{message_id}",
            now=now,
        )
        record = await store.create(KIND, message_id, message, indexes=indexes(message))
        queued.append(record.data)
    return queued


def _message(
    message_id: str,
    channel: str,
    to: str,
    content: dict[str, str | None],
    *,
    appointment_id: str | None,
    org_id: str | None,
    to_name: str,
    language: str,
    idempotency_key: str,
    now: float,
) -> dict[str, Any]:
    """A new ``queued`` message record, due now."""
    return {
        "id": message_id,
        "appointment_id": appointment_id,
        "org_id": org_id,
        "channel": channel,
        "to": to,
        "to_name": to_name,
        **content,
        "language": language,
        "idempotency_key": idempotency_key,
        "status": "queued",
        "attempts": 0,
        "next_attempt_at": now,
        "last_error": None,
        "created_at": now,
        "sent_at": None,
        "claimed_by": None,
        "handoff_at": None,
        "provider_ref": None,
    }


async def queue_webhook(store: Store, url: str, org_id: str, event: dict[str, Any]) -> bool:
    """Record one webhook message POSTing ``event`` (JSON with ``id`` and ``type``) to ``url``.

    The message id and the ``Idempotency-Key`` the receiver sees are derived from the event
    id, so queueing the same event again is a no-op (returns False): a caller that crashed
    between recording an event and queueing it simply queues it again.
    """
    message_id = "wh_" + hashlib.sha256(event["id"].encode()).hexdigest()[:32]
    body = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    message = _message(
        message_id,
        "webhook",
        url,
        {"subject": event["type"], "body": body, "html": None},
        appointment_id=None,
        org_id=org_id,
        to_name="",
        language="",
        idempotency_key=event["id"],
        now=time.time(),  # the outbox runs on the wall clock, like queue_links
    )
    try:
        await store.create(KIND, message_id, message, indexes=indexes(message))
    except AlreadyExists:
        return False
    return True


async def cancel_links(
    store: Store,
    appointment_id: str,
    *,
    reason: str = "appointment cancelled",
    only: Collection[str] | None = None,
) -> int:
    """Fail the appointment's messages that no worker has started (``only`` these ids, when
    given), with ``reason``: the links they carry are dead (the appointment was cancelled, or
    its client replaced). Returns how many. A message already ``sending`` cannot be called
    back."""
    cancelled = 0
    for message in await messages_of(store, appointment_id):
        if message["status"] != "queued" or only is not None and message["id"] not in only:
            continue
        for _ in range(3):  # a worker may claim it meanwhile: then it is no longer queued
            record = await store.get(KIND, message["id"])
            if record is None or record.data["status"] != "queued":
                break
            data = dict(record.data, status="failed", last_error=reason)
            try:
                await save(store, record, data)
            except VersionConflict:
                continue
            cancelled += 1
            break
    return cancelled


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return (
        datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


async def messages_of(store: Store, appointment_id: str) -> list[dict[str, Any]]:
    """Every message of the appointment, oldest first."""
    return [r.data for r in await store.every(appointment_index(appointment_id))]


async def delivery_status(store: Store, appointment_id: str) -> dict[str, dict[str, Any]]:
    """Per channel, the latest message's status, attempts, last_error, sent_at, queued_at.

    Times are ISO 8601 UTC strings (``2026-11-23T14:30:00Z``) or None.
    """
    latest: dict[str, dict[str, Any]] = {}
    for message in await messages_of(store, appointment_id):
        latest[message["channel"]] = message  # oldest first, so the last one wins
    return {
        channel: {
            "status": m["status"],
            "attempts": m["attempts"],
            "last_error": m["last_error"],
            "sent_at": iso(m["sent_at"]),
            "queued_at": iso(m["created_at"]),
        }
        for channel, m in latest.items()
    }
