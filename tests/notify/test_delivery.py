import random
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr

import icalendar
import pytest

from control.notify import OutboxWorker, delivery_status, queue_links
from control.notify.errors import LinkError
from control.notify.outbox import DUE_INDEX
from control.notify.worker import retry_delay

from .helpers import appointment, department, wait_for


@pytest.fixture
async def worker(store, settings):
    w = OutboxWorker(store, settings)
    await w.start()
    yield w
    await w.stop()


async def settled(store, appointment_id="appt-1", channels=("sms", "email")):
    """Wait until every channel's latest message is sent or failed; return the status."""
    status = {}

    async def done():
        status.update(await delivery_status(store, appointment_id))
        return all(status.get(c, {}).get("status") in ("sent", "failed") for c in channels)

    await wait_for(done, what=f"{channels} settled")
    return status


async def test_email_reaches_a_real_smtp_server_in_the_clients_language(
    store, settings, worker, smtp_server
):
    appt = appointment(language="sv")
    [queued] = await queue_links(store, settings, appt, department(), ["email"])
    worker.wake()
    status = await settled(store, channels=("email",))
    assert status["email"]["status"] == "sent" and status["email"]["attempts"] == 1
    assert status["email"]["sent_at"].endswith("Z")

    [received] = smtp_server.mailbox.messages
    assert received.rcpt_tos == ["asa.oberg@example.org"]
    assert received.mail_from == "no-reply@televisit.local"
    msg = received.message
    assert (
        msg["Subject"]
        == "Videobesök måndag 23 november 2026 kl. 16.30–17.00 (EET) – Eläinklinikka Kärpänen"
    )
    assert parseaddr(msg["To"]) == ("Åsa Öberg", "asa.oberg@example.org")
    assert msg["Message-ID"] == f"<{queued['idempotency_key']}@televisit.local>"
    assert msg["Content-Language"] == "sv"
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text.get_content_charset() == "utf-8"
    body = text.get_content().replace("\r\n", "\n")  # SMTP carries CRLF line ends
    assert body.startswith("Hej Åsa Öberg,")
    assert "Patient: Mörri" in body and "Tid: måndag 23 november 2026 kl. 16.30–17.00 (EET)" in body
    assert appt["telemedicine"]["short_url"] in body and "PIN-koden:\n123456789" in body
    assert "Eläinklinikka Kärpänen\nHämeentie 12, 00530 Helsinki\n+358 9 123 4567" in body
    assert "Hello" not in body and "Hei " not in body
    assert 'href="https://visit.example.org/v/abcdefghjkmn"' in html.get_content()
    # The calendar entry: the department's local time, with the zone's rules inside it.
    [invite] = [part for part in msg.iter_attachments() if part.get_filename() == "invite.ics"]
    assert invite.get_content_type() == "text/calendar"
    cal = icalendar.Calendar.from_ical(invite.get_content())
    [event] = cal.walk("VEVENT")
    start, end = event.decoded("dtstart"), event.decoded("dtend")
    assert str(start.tzinfo) == "Europe/Helsinki" and (start.hour, start.minute) == (16, 30)
    assert start.astimezone(UTC) == datetime(2026, 11, 23, 14, 30, tzinfo=UTC)
    assert end - start == timedelta(minutes=30)
    assert [tz["TZID"] for tz in cal.walk("VTIMEZONE")] == ["Europe/Helsinki"]
    assert str(event["summary"]) == "Videobesök: Eläinklinikka Kärpänen"
    assert str(event["url"]) == appt["telemedicine"]["short_url"]
    assert "123456789" in str(event["description"])


async def test_sms_goes_to_the_gateway_with_key_and_bearer(store, settings, worker, sms_gateway):
    appt = appointment(language="fi")
    [queued] = await queue_links(store, settings, appt, department(), ["sms"])
    worker.wake()
    status = await settled(store, channels=("sms",))
    assert status["sms"]["status"] == "sent"
    [request] = sms_gateway.requests
    assert request["key"] == queued["idempotency_key"] and request["auth"] == "Bearer test-key"
    assert request["body"]["to"] == "+358401234567" and request["body"]["from"] == "Kärpänen"
    text = request["body"]["text"]
    assert text.startswith("Videokäynti, Eläinklinikka Kärpänen, ma 23.11. klo 16.30 EET.")
    assert appt["telemedicine"]["short_url"] in text and "PIN: 123456789" in text
    stored = await store.get("message", queued["id"])
    assert stored.data["provider_ref"] == "sms-1"
    assert await store.count(DUE_INDEX) == 0


async def test_transient_gateway_errors_are_retried_with_backoff_and_the_same_key(
    store, settings, worker, sms_gateway
):
    sms_gateway.failures = [500, 503, 429]
    [queued] = await queue_links(store, settings, appointment(), department(), ["sms"])
    worker.wake()
    status = await settled(store, channels=("sms",))
    assert status["sms"]["status"] == "sent" and status["sms"]["attempts"] == 4
    assert sms_gateway.keys_seen() == [queued["idempotency_key"]] * 4
    assert len(sms_gateway.delivered) == 1
    # Each wait is at least half of base * 2^(n-1): a lower bound, so no speed assumption.
    times = [r["at"] for r in sms_gateway.requests]
    for n, (before, after) in enumerate(zip(times, times[1:], strict=False), start=1):
        assert after - before >= 0.05 * 2 ** (n - 1) / 2


async def test_client_errors_fail_at_once_with_the_reason(store, settings, worker, sms_gateway):
    sms_gateway.failures = [400]
    await queue_links(store, settings, appointment(), department(), ["sms"])
    worker.wake()
    status = await settled(store, channels=("sms",))
    assert status["sms"]["status"] == "failed" and status["sms"]["attempts"] == 1
    reason = status["sms"]["last_error"]
    assert "HTTP 400" in reason and "simulated 400" in reason
    # The stand-in echoes the text: the link and PIN are masked, not stored or logged.
    assert "[redacted]" in reason and "https://" not in reason and "123456789" not in reason
    assert len(sms_gateway.requests) == 1
    assert await store.count(DUE_INDEX) == 0


async def test_a_gateway_that_stays_down_fails_after_max_attempts(store, make_settings, dead_url):
    settings = make_settings(sms_url=dead_url)
    worker = OutboxWorker(store, settings)
    await worker.start()
    try:
        await queue_links(store, settings, appointment(), department(), ["sms"])
        status = await settled(store, channels=("sms",))
    finally:
        await worker.stop()
    assert status["sms"]["status"] == "failed" and status["sms"]["attempts"] == 4
    assert status["sms"]["last_error"].startswith(
        "gave up after 4 attempts: SMS gateway unreachable"
    )


async def test_smtp_rejection_fails_at_once_and_temporary_refusal_is_retried(
    store, settings, worker, smtp_server
):
    smtp_server.mailbox.reject_rcpt = "550 5.1.1 No such mailbox"
    await queue_links(store, settings, appointment(), department(), ["email"])
    worker.wake()
    status = await settled(store, channels=("email",))
    assert status["email"]["status"] == "failed" and status["email"]["attempts"] == 1
    assert (
        "550" in status["email"]["last_error"]
        and "No such mailbox" in status["email"]["last_error"]
    )
    assert smtp_server.mailbox.count() == 0

    smtp_server.mailbox.reject_rcpt = None
    smtp_server.mailbox.reject_data = ["451 4.3.0 Try again later"] * 2
    await queue_links(store, settings, appointment(), department(), ["email"])
    worker.wake()
    status = await settled(store, channels=("email",))
    assert status["email"]["status"] == "sent" and status["email"]["attempts"] == 3
    assert smtp_server.mailbox.count() == 1


async def test_unreachable_smtp_server_is_retried_then_failed(store, make_settings, sms_gateway):
    from .helpers import free_port

    settings = make_settings(smtp={"host": "127.0.0.1", "port": free_port()})
    worker = OutboxWorker(store, settings)
    await worker.start()
    try:
        await queue_links(store, settings, appointment(), department(), ["email", "sms"])
        status = await settled(store)
    finally:
        await worker.stop()
    assert status["email"]["status"] == "failed" and status["email"]["attempts"] == 4
    assert "SMTP server unreachable" in status["email"]["last_error"]
    assert status["sms"]["status"] == "sent"  # one channel's trouble does not hold up the other


async def test_two_workers_racing_deliver_each_message_once(
    store, settings, smtp_server, sms_gateway
):
    from .helpers import open_test_store

    other_store = await open_test_store(settings)
    ids = [f"appt-{i}" for i in range(15)]
    for appointment_id in ids:
        appt = appointment()
        appt["id"] = appointment_id
        await queue_links(store, settings, appt, department(), ["sms", "email"])
    workers = [OutboxWorker(store, settings), OutboxWorker(other_store, settings)]
    for w in workers:
        await w.start()
    try:
        for appointment_id in ids:
            await settled(store, appointment_id)
    finally:
        for w in workers:
            await w.stop()
        if other_store is not store:
            await other_store.close()
    assert smtp_server.mailbox.count() == len(ids)
    assert len(sms_gateway.requests) == len(ids)  # not merely deduped: sent once
    assert len(set(sms_gateway.keys_seen())) == len(ids)
    assert sum(w.sent for w in workers) == 2 * len(ids)
    for appointment_id in ids:
        status = await delivery_status(store, appointment_id)
        assert {s["status"] for s in status.values()} == {"sent"}
        assert {s["attempts"] for s in status.values()} == {1}


def test_retry_delay_doubles_is_capped_and_jittered(settings):
    rng = random.Random(7)
    notify = settings.notify  # base 0.05, max 0.2
    for attempts, ceiling in [(1, 0.05), (2, 0.1), (3, 0.2), (4, 0.2), (30, 0.2)]:
        delays = {retry_delay(attempts, notify, rng) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1


async def test_an_email_address_smtp_cannot_carry_is_refused_and_an_idn_is_delivered(
    store, settings, worker, smtp_server
):
    # Without SMTPUTF8 a local part that is not ASCII cannot be carried: refused when queued
    # (an appointment stored before the API checked it), where it used to fail at each send.
    with pytest.raises(LinkError) as refused:
        await queue_links(store, settings, appointment(email="åsa@exämple.org"), department(),
                          ["email"])  # fmt: skip
    assert refused.value.field == "client.email"
    # An internationalized domain goes in its ASCII form.
    await queue_links(store, settings, appointment(email="asa@exämple.org"), department(),
                      ["email"])  # fmt: skip
    worker.wake()
    status = await settled(store, channels=("email",))
    assert status["email"]["status"] == "sent", status
    [received] = smtp_server.mailbox.messages
    assert received.rcpt_tos == ["asa@xn--exmple-cua.org"]


async def test_an_sms_without_an_answer_is_not_sent_again_by_a_key_ignoring_gateway(
    store, make_settings, sms_gateway
):
    """A live worker whose request got no answer in time: the gateway may have the SMS, so it
    is marked "delivery unknown" instead of retried (the gateway would send it again)."""
    settings = make_settings(send_timeout_seconds=1.0)
    sms_gateway.dedupe = False
    sms_gateway.stall_next = True
    [queued] = await queue_links(store, settings, appointment(), department(), ["sms"])
    worker = OutboxWorker(store, settings)
    await worker.start()
    try:

        async def settled() -> bool:
            return (await delivery_status(store, "appt-1"))["sms"]["status"] == "failed"

        await wait_for(settled, limit=60, what="the SMS to be settled")
        sms_gateway.release.set()
        await worker.run_once()
    finally:
        await worker.stop()
    status = (await delivery_status(store, "appt-1"))["sms"]
    assert status["last_error"].startswith("delivery unknown") and status["attempts"] == 1
    assert len(sms_gateway.delivered) == 1 and sms_gateway.keys_seen() == [
        queued["idempotency_key"]
    ]
