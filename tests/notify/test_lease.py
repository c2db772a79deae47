"""The claim is a lease: a worker that lost it never hands its message over."""

import asyncio
import time

from control.notify import OutboxWorker, delivery_status, queue_links
from control.notify.worker import lease_seconds

from .helpers import appointment, department, wait_for


async def test_a_worker_whose_lease_was_taken_over_does_not_send_data(store, settings, smtp_server):
    mailbox = smtp_server.mailbox
    mailbox.stall_at = "RCPT"
    [queued] = await queue_links(store, settings, appointment(), department(), ["email"])
    slow = OutboxWorker(store, settings)
    slow_round = asyncio.create_task(slow.run_once())
    await wait_for(mailbox.stalled.is_set, what="the first worker to stall in RCPT")

    # A second worker that sees the lease as expired takes the message over and sends it.
    later = lease_seconds(settings.notify) + 1
    takeover = OutboxWorker(store, settings, clock=lambda: time.time() + later)
    await takeover.run_once()
    assert mailbox.count() == 1 and takeover.recovered == 1

    mailbox.release.set()
    await asyncio.wait_for(slow_round, 60)  # its handoff write conflicts: no DATA
    await slow.stop()
    await takeover.stop()
    assert mailbox.count() == 1
    status = (await delivery_status(store, "appt-1"))["email"]
    assert status["status"] == "sent" and status["attempts"] == 2
    assert (await store.get("message", queued["id"])).data["claimed_by"] == takeover.id


async def test_a_connection_lost_during_data_marks_the_email_unknown(store, settings, smtp_server):
    smtp_server.mailbox.drop_in_data = True
    await queue_links(store, settings, appointment(), department(), ["email"])
    worker = OutboxWorker(store, settings)
    await worker.start()
    try:
        await wait_for(lambda: worker.failed == 1, what="the outcome to be written")
    finally:
        await worker.stop()
    status = (await delivery_status(store, "appt-1"))["email"]
    assert status["status"] == "failed" and status["attempts"] == 1
    assert status["last_error"].startswith("delivery unknown (connection lost during SMTP DATA")
    assert status["last_error"].endswith("resend if needed")
    assert smtp_server.mailbox.count() == 1


async def test_stop_lets_a_send_in_flight_finish(store, settings, smtp_server):
    mailbox = smtp_server.mailbox
    mailbox.stall_at = "RCPT"
    await queue_links(store, settings, appointment(), department(), ["email"])
    worker = OutboxWorker(store, settings)
    await worker.start()
    await wait_for(mailbox.stalled.is_set, what="the send to stall")
    stopping = asyncio.create_task(worker.stop())
    await asyncio.sleep(0.2)
    assert not stopping.done()
    mailbox.release.set()
    await asyncio.wait_for(stopping, 60)
    assert (await delivery_status(store, "appt-1"))["email"]["status"] == "sent"
    assert mailbox.count() == 1
