"""The outbox worker: delivers due messages with retries, at most once even across a crash.

Each round reads ``outbox:due`` up to now and claims each message with a versioned write
(``queued -> sending``, ``attempts + 1``, a lease until ``now + 2 * send_timeout + margin``);
a lost race is a VersionConflict and the message is left to the winner, so two workers
never send the same attempt. The send itself is bounded by ``send_timeout_seconds``, then
the outcome is written: ``sent``; ``failed`` with the reason for a permanent error (SMTP
5xx, HTTP 4xx other than 408/425/429) or after ``max_attempts``; otherwise back to
``queued`` with exponential backoff (``backoff_base * 2^(attempts-1)`` capped at
``backoff_max``, then "equal jitter": a random point in the upper half).

A message still ``sending`` when its lease ran out belongs to a worker that died (or
stopped being able to write). What happens next depends on what may already have reached
the provider:
- SMS: sent again with the SAME idempotency key; the gateway drops the repeat.
- Email: SMTP has no idempotency. The sender records ``handoff_at`` (a versioned write that
  also proves the lease is still held) just before the DATA command, and a server delivers
  nothing before the end of DATA is acknowledged. So an email whose attempt died before
  ``handoff_at`` is safely sent again; one that died after it might have been delivered and
  is marked ``failed`` with "delivery unknown after restart; resend if needed" (a resend
  from the clinic creates a new message). A live worker whose connection breaks during DATA
  marks the message failed the same way. At most once wins over at least once here: a
  duplicate email with a join link is worse than a clinic seeing "unknown, resend".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from config.settings import NotifySettings, Settings
from control.background import Background, worth_logging
from control.notify.errors import DeliveryError
from control.notify.outbox import ACTIVE, DUE_INDEX, KIND, save
from control.notify.sms import SmsSender
from control.notify.smtp import EmailSender
from control.notify.webhook import WebhookSender
from control.store import NotFound, Record, Store, VersionConflict

log = logging.getLogger(__name__)

UNKNOWN_AFTER_RESTART = "delivery unknown after restart; resend if needed"
# Time beyond two send timeouts for the claim and the outcome writes to reach the store.
LEASE_MARGIN_SECONDS = 5.0
BATCH = 50
CONCURRENCY = 8


class Sender(Protocol):
    async def send(
        self, message: dict[str, Any], handoff: Callable[[], Awaitable[None]]
    ) -> str | None:
        """Deliver ``message``; call ``await handoff()`` right before the point after which
        the provider may have accepted it. Raise DeliveryError on failure."""

    async def close(self) -> None: ...


def retry_delay(attempts: int, settings: NotifySettings, rng: random.Random | None = None) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt."""
    ceiling = min(
        settings.backoff_base_seconds * 2 ** max(attempts - 1, 0), settings.backoff_max_seconds
    )
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


def lease_seconds(settings: NotifySettings) -> float:
    return 2 * settings.send_timeout_seconds + LEASE_MARGIN_SECONDS


class OutboxWorker:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        sms_sender: Sender | None = None,
        email_sender: Sender | None = None,
        webhook_sender: Sender | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.settings = settings.notify
        self.clock = clock
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._owned: list[Sender] = []
        self.senders: dict[str, Sender] = {
            "sms": sms_sender
            or self._own(SmsSender(self.settings.sms, self.settings.send_timeout_seconds)),
            "email": email_sender
            or self._own(EmailSender(self.settings.smtp, self.settings.send_timeout_seconds)),
            "webhook": webhook_sender
            or self._own(
                WebhookSender(settings.mobile.webhook_secret, self.settings.send_timeout_seconds)
            ),
        }
        self.sent = self.failed = self.retried = self.recovered = self.errors = 0
        self._wake = asyncio.Event()
        self._stopping = False
        self._task = Background("notify-outbox")
        self._limit = asyncio.Semaphore(CONCURRENCY)

    def _own(self, sender: Sender) -> Sender:
        self._owned.append(sender)
        return sender

    async def start(self) -> None:
        if not self._task.running:
            self._stopping = False
            self._task.start(self._run)

    async def stop(self) -> None:
        """Let sends in flight finish (bounded by the lease), then close the senders."""
        if self._task.running:
            self._stopping = True
            self._wake.set()
            await self._task.stop(grace=lease_seconds(self.settings))
        for sender in self._owned:
            await sender.close()

    def wake(self) -> None:
        """Look for due messages now (the API calls this after queueing)."""
        self._wake.set()

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                more = await self.run_once()
            except Exception:  # the store may be briefly unreachable; the next round retries
                more = False
                self.errors += 1
                if worth_logging(self.errors):
                    log.exception("outbox round failed (%d failures so far)", self.errors)
            if more or self._stopping:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_seconds)

    async def run_once(self) -> bool:
        """Claim and deliver the messages due now; True if there may be more."""
        now = self.clock()
        due = await self.store.range(DUE_INDEX, hi=now, limit=BATCH)
        results = await asyncio.gather(
            *(self._process(r) for r in due if r.kind == KIND), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                # The message stays "sending" and is recovered when its lease runs out.
                self.errors += 1
                log.error("outbox delivery bookkeeping failed: %r", result)
        return len(due) == BATCH

    async def _process(self, record: Record) -> None:
        # Claim only when a send slot is free, so no lease runs out while waiting for one.
        async with self._limit:
            mine = await self._claim(record)
            if mine is not None:
                await self._deliver(mine)

    async def _claim(self, record: Record) -> Record | None:
        """Take the message for one attempt, or settle it if it must not be attempted."""
        now = self.clock()
        m = dict(record.data)
        if m["status"] not in ACTIVE or m["next_attempt_at"] > now:
            return None
        if m["status"] == "sending":
            self.recovered += 1
            log.warning(
                "message %s (%s): attempt %d was interrupted", m["id"], m["channel"], m["attempts"]
            )
            if m.get("handoff_at") is not None:
                await self._record(record, DeliveryError(UNKNOWN_AFTER_RESTART, unknown=True))
                return None
            m["last_error"] = f"attempt {m['attempts']} was interrupted before completing"
        if m["attempts"] >= self.settings.max_attempts:
            await self._record(record, DeliveryError(m["last_error"] or "no attempts left"))
            return None
        m.update(
            status="sending",
            attempts=m["attempts"] + 1,
            next_attempt_at=now + lease_seconds(self.settings),
            claimed_by=self.id,
            handoff_at=None,
        )
        try:
            return await save(self.store, record, m)
        except (VersionConflict, NotFound):
            return None  # another worker claimed or settled it first

    async def _deliver(self, record: Record) -> None:
        current = record

        async def handoff() -> None:
            nonlocal current
            # Raises VersionConflict if the lease was lost: then nothing is handed over.
            current = await save(self.store, current, dict(current.data, handoff_at=self.clock()))

        message = record.data
        outcome: DeliveryError | None = None
        ref = None
        try:
            async with asyncio.timeout(self.settings.send_timeout_seconds):
                ref = await self.senders[message["channel"]].send(message, handoff)
        except DeliveryError as exc:
            outcome = exc
        except (VersionConflict, NotFound):
            log.warning(
                "message %s: lease lost before handoff; left to its new owner", message["id"]
            )
            return
        except TimeoutError:
            outcome = DeliveryError(
                f"no answer within {self.settings.send_timeout_seconds:g}s",
                unknown=current.data.get("handoff_at") is not None,
            )
        except Exception as exc:
            log.exception("message %s: sender failed unexpectedly", message["id"])
            outcome = DeliveryError(
                f"sender error: {exc!r}", unknown=current.data.get("handoff_at") is not None
            )
        await self._record(current, outcome, ref)

    async def _record(
        self, record: Record, outcome: DeliveryError | None, ref: str | None = None
    ) -> None:
        """Write the attempt's outcome onto the message."""
        m = dict(record.data)
        now = self.clock()
        if outcome is None:
            m.update(status="sent", sent_at=now, provider_ref=ref, last_error=None)
        elif outcome.unknown:
            reason = outcome.reason
            if reason != UNKNOWN_AFTER_RESTART:
                reason = f"delivery unknown ({reason}); resend if needed"
            m.update(status="failed", last_error=reason)
        elif outcome.permanent or m["attempts"] >= self.settings.max_attempts:
            reason = outcome.reason
            if not outcome.permanent:
                reason = f"gave up after {m['attempts']} attempts: {reason}"
            m.update(status="failed", last_error=reason)
        else:
            delay = retry_delay(m["attempts"], self.settings)
            m.update(status="queued", next_attempt_at=now + delay, last_error=outcome.reason)
        try:
            await save(self.store, record, m)
        except (VersionConflict, NotFound):
            if outcome is None:
                await self._insist_sent(record.id, m)
            else:
                log.warning("message %s: changed by another worker; outcome dropped", m["id"])
            return
        if m["status"] == "sent":
            self.sent += 1
            log.info("message %s (%s) sent, attempt %d", m["id"], m["channel"], m["attempts"])
        elif m["status"] == "failed":
            self.failed += 1
            log.warning("message %s (%s) failed: %s", m["id"], m["channel"], m["last_error"])
        else:
            self.retried += 1
            log.info(
                "message %s (%s) attempt %d failed, retry in %.1fs: %s",
                m["id"],
                m["channel"],
                m["attempts"],
                m["next_attempt_at"] - now,
                m["last_error"],
            )

    async def _insist_sent(self, message_id: str, sent: dict[str, Any]) -> None:
        """The provider took the message but the lease had run out: the truth is "sent"."""
        for _ in range(5):
            current = await self.store.get(KIND, message_id)
            if current is None or current.data["status"] == "sent":
                return
            try:
                await save(
                    self.store,
                    current,
                    dict(
                        current.data,
                        **{k: sent[k] for k in ("status", "sent_at", "provider_ref", "last_error")},
                    ),
                )
                self.sent += 1
                return
            except VersionConflict:
                continue
        log.error("message %s: delivered but could not be marked sent", message_id)
