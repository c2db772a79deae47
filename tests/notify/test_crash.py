"""At most once across a crash: a worker process is SIGKILLed in the middle of a send, then a
new worker takes over the store. The new worker runs with its clock moved past the dead
worker's lease, which is what waiting out the lease would do, without the wait."""

import asyncio
import json
import sys
import time
from pathlib import Path

import pytest

from control.notify import UNKNOWN_AFTER_RESTART, OutboxWorker, delivery_status, queue_links
from control.notify.worker import lease_seconds

from .helpers import appointment, department, wait_for

SCRIPT = Path(__file__).with_name("worker_process.py")


@pytest.fixture
def crash_settings(make_settings, store):
    # The dead worker's send must still be in flight when it is killed: a long send timeout.
    return make_settings(send_timeout_seconds=60.0)


@pytest.fixture
def dedupe_settings(make_settings, store):
    """For a gateway that drops a repeated Idempotency-Key (notify.sms.gateway_dedupes)."""
    return make_settings(send_timeout_seconds=60.0, gateway_dedupes=True)


@pytest.fixture
async def run_worker_process():
    """Start the worker in its own process; whatever a test leaves running is killed after."""
    started = []

    async def run(settings):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            json.dumps(settings_overrides(settings)),
            stdout=asyncio.subprocess.PIPE,
        )
        started.append(proc)
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line.strip() == b"ready"
        return proc

    yield run
    for proc in started:
        if proc.returncode is None:
            proc.kill()
            await asyncio.wait_for(proc.wait(), 30)


def settings_overrides(settings):
    data = settings.model_dump(mode="json")
    return {section: data[section] for section in ("server", "store", "notify", "pins")}


async def kill(proc):
    proc.kill()  # SIGKILL: no cleanup, no outcome written
    await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == -9


async def message(store, message_id):
    return (await store.get("message", message_id)).data


async def restart_after_lease(store, settings):
    later = lease_seconds(settings.notify) + 1
    worker = OutboxWorker(store, settings, clock=lambda: time.time() + later)
    await worker.start()
    return worker


async def settle(store, channel):
    async def done():
        status = await delivery_status(store, "appt-1")
        return status[channel]["status"] in ("sent", "failed")

    await wait_for(done, limit=60, what=f"{channel} settled after restart")
    return (await delivery_status(store, "appt-1"))[channel]


async def test_email_killed_during_data_is_not_sent_twice(
    run_worker_process, store, crash_settings, smtp_server
):
    mailbox = smtp_server.mailbox
    mailbox.stall_at = "DATA"
    [queued] = await queue_links(store, crash_settings, appointment(), department(), ["email"])
    proc = await run_worker_process(crash_settings)
    await wait_for(mailbox.stalled.is_set, limit=60, what="the server to hold DATA")
    assert (await message(store, queued["id"]))["handoff_at"] is not None
    await kill(proc)
    mailbox.release.set()
    assert (await message(store, queued["id"]))["status"] == "sending"

    worker = await restart_after_lease(store, crash_settings)
    try:
        status = await settle(store, "email")
    finally:
        await worker.stop()
    assert status["status"] == "failed" and status["last_error"] == UNKNOWN_AFTER_RESTART
    assert mailbox.count() == 1


async def test_email_killed_before_data_is_sent_after_restart(
    run_worker_process, store, crash_settings, smtp_server
):
    mailbox = smtp_server.mailbox
    mailbox.stall_at = "RCPT"
    [queued] = await queue_links(store, crash_settings, appointment(), department(), ["email"])
    proc = await run_worker_process(crash_settings)
    await wait_for(mailbox.stalled.is_set, limit=60, what="the server to hold RCPT")
    await kill(proc)
    mailbox.release.set()
    stuck = await message(store, queued["id"])
    assert stuck["status"] == "sending" and stuck["handoff_at"] is None and mailbox.count() == 0

    worker = await restart_after_lease(store, crash_settings)
    try:
        status = await settle(store, "email")
    finally:
        await worker.stop()
    assert status["status"] == "sent" and status["attempts"] == 2
    [received] = mailbox.messages
    assert received.message["Message-ID"].startswith(f"<{queued['idempotency_key']}@")


async def sms_killed_mid_request(run_worker_process, store, settings, sms_gateway):
    """A worker process is SIGKILLed while the gateway holds its SMS request (the gateway
    took the text; the answer is lost); a new worker takes over after the lease. Returns
    the queued message, the stuck record and the settled delivery status."""
    sms_gateway.stall_next = True
    [queued] = await queue_links(store, settings, appointment(), department(), ["sms"])
    proc = await run_worker_process(settings)
    await wait_for(sms_gateway.stalled.is_set, limit=60, what="the gateway to hold the request")
    await kill(proc)
    sms_gateway.release.set()
    stuck = await message(store, queued["id"])
    worker = await restart_after_lease(store, settings)
    try:
        status = await settle(store, "sms")
        await worker.run_once()  # another round: nothing more happens
    finally:
        await worker.stop()
    return queued, stuck, status


async def test_sms_killed_mid_request_is_retried_with_the_same_key(
    run_worker_process, store, dedupe_settings, sms_gateway
):
    """With a gateway that drops repeated keys (and says so: gateway_dedupes)."""
    queued, stuck, status = await sms_killed_mid_request(
        run_worker_process, store, dedupe_settings, sms_gateway
    )
    assert stuck["status"] == "sending"
    assert status["status"] == "sent" and status["attempts"] == 2
    assert sms_gateway.keys_seen() == [queued["idempotency_key"]] * 2
    assert len(sms_gateway.delivered) == 1  # the gateway's dedupe kept it to one text


async def test_sms_killed_mid_request_with_a_gateway_that_ignores_keys_is_not_sent_twice(
    run_worker_process, store, crash_settings, sms_gateway
):
    """Issue 12: at most once must not rest on the gateway honouring Idempotency-Key. By
    default the handoff is recorded before the POST, so the retry after the crash knows the
    gateway may have the message and does not send it again."""
    sms_gateway.dedupe = False
    _, stuck, status = await sms_killed_mid_request(
        run_worker_process, store, crash_settings, sms_gateway
    )
    assert stuck["status"] == "sending" and stuck["handoff_at"] is not None
    assert status["status"] == "failed" and status["last_error"] == UNKNOWN_AFTER_RESTART
    assert len(sms_gateway.requests) == 1 and len(sms_gateway.delivered) == 1


async def test_what_at_most_once_depends_on_a_key_ignoring_gateway_told_to_dedupe(
    run_worker_process, store, dedupe_settings, sms_gateway
):
    """The precise dependency: gateway_dedupes = true on a gateway that ignores the key
    delivers the SMS twice after a crash. That is why it is off unless the gateway drops
    repeats."""
    sms_gateway.dedupe = False
    _, _, status = await sms_killed_mid_request(
        run_worker_process, store, dedupe_settings, sms_gateway
    )
    assert status["status"] == "sent" and len(sms_gateway.delivered) == 2


async def test_a_live_worker_does_not_touch_a_message_another_worker_holds(
    run_worker_process, store, crash_settings, sms_gateway
):
    sms_gateway.stall_next = True
    [queued] = await queue_links(store, crash_settings, appointment(), department(), ["sms"])
    proc = await run_worker_process(crash_settings)
    try:
        await wait_for(sms_gateway.stalled.is_set, limit=60, what="the gateway to hold the request")
        # A second worker within the lease: it must leave the held message alone.
        worker = OutboxWorker(store, crash_settings)
        await worker.run_once()
        await worker.stop()
        assert (await message(store, queued["id"]))["attempts"] == 1
        assert len(sms_gateway.requests) == 1
        sms_gateway.release.set()
        status = await settle(store, "sms")
        assert status["status"] == "sent" and status["attempts"] == 1
    finally:
        await kill(proc)
