import pytest

from control.notify import LinkError, MissingContact, cancel_links, delivery_status, queue_links
from control.notify.outbox import DUE_INDEX, appointment_index

from .helpers import appointment, department


async def test_queue_records_one_message_per_channel_in_the_clients_language(store, settings):
    appt = appointment(language="sv")
    queued = await queue_links(store, settings, appt, department(), ["sms", "email"])
    assert [m["channel"] for m in queued] == ["sms", "email"]
    sms, email = queued
    assert sms["to"] == "+358401234567" and email["to"] == "asa.oberg@example.org"
    assert {m["status"] for m in queued} == {"queued"} and {m["attempts"] for m in queued} == {0}
    assert {m["language"] for m in queued} == {"sv"}
    assert sms["idempotency_key"] != email["idempotency_key"]
    assert email["subject"].startswith("Videobesök måndag 23 november 2026")
    assert "123456789" in sms["body"] and appt["telemedicine"]["short_url"] in sms["body"]
    due = await store.range(DUE_INDEX)
    assert sorted(r.id for r in due) == sorted(m["id"] for m in queued)
    assert len(await store.range(appointment_index("appt-1"))) == 2
    stored = await store.get("message", email["id"])
    assert stored is not None and stored.data == email

    status = await delivery_status(store, "appt-1")
    assert set(status) == {"sms", "email"}
    assert status["sms"]["status"] == "queued" and status["sms"]["sent_at"] is None
    assert status["sms"]["queued_at"].endswith("Z") and status["sms"]["last_error"] is None


async def test_department_language_when_the_client_has_none(store, settings):
    [sms] = await queue_links(
        store, settings, appointment(language=None), department(default_language="fi"), ["sms"]
    )
    assert sms["language"] == "fi" and "PIN: 123456789" in sms["body"]


async def test_resend_creates_new_messages_and_status_follows_the_latest(store, settings):
    appt, dep = appointment(), department()
    [first] = await queue_links(store, settings, appt, dep, ["email"])
    await store.update(
        "message",
        first["id"],
        dict(first, status="failed", last_error="boom"),
        expect_version=1,
        indexes={appointment_index("appt-1"): first["created_at"]},
    )
    assert (await delivery_status(store, "appt-1"))["email"]["status"] == "failed"
    [second] = await queue_links(store, settings, appt, dep, ["email"])
    assert second["id"] != first["id"] and second["idempotency_key"] != first["idempotency_key"]
    status = await delivery_status(store, "appt-1")
    assert status["email"]["status"] == "queued" and status["email"]["last_error"] is None
    assert await delivery_status(store, "another-appointment") == {}


@pytest.mark.parametrize(
    ("client", "channels", "field"),
    [
        ({"phone": None}, ["sms"], "client.phone"),
        ({"email": None}, ["email"], "client.email"),
        ({"email": ""}, ["sms", "email"], "client.email"),
    ],
)
async def test_missing_contact_is_refused_and_nothing_is_queued(
    store, settings, client, channels, field
):
    with pytest.raises(MissingContact) as err:
        await queue_links(store, settings, appointment(**client), department(), channels)
    assert isinstance(err.value, ValueError) and err.value.field == field
    assert await store.count(DUE_INDEX) == 0


@pytest.mark.parametrize("channels", [[], ["fax"], "sms", ["sms", "sms"]])
async def test_bad_channels_are_refused(store, settings, channels):
    with pytest.raises(LinkError) as err:
        await queue_links(store, settings, appointment(), department(), channels)
    assert err.value.field == "channels"
    assert await store.count(DUE_INDEX) == 0


async def test_an_appointment_without_a_room_is_refused(store, settings):
    appt = appointment()
    appt["telemedicine"] = None
    with pytest.raises(LinkError) as err:
        await queue_links(store, settings, appt, department(), ["sms"])
    assert err.value.field == "telemedicine"


async def test_telemedicine_off_or_a_cancelled_appointment_is_refused(store, settings):
    with pytest.raises(LinkError) as err:
        await queue_links(
            store, settings, appointment(), department(telemedicine_enabled=False), ["sms"]
        )
    assert err.value.field == "department.telemedicine_enabled"
    cancelled = dict(appointment(), status="cancelled")
    with pytest.raises(LinkError) as err:
        await queue_links(store, settings, cancelled, department(), ["sms"])
    assert err.value.field == "status"
    assert await store.count(DUE_INDEX) == 0


async def test_cancel_links_fails_what_is_still_queued(store, settings):
    await queue_links(store, settings, appointment(), department(), ["sms", "email"])
    assert await cancel_links(store, "appt-1") == 2
    status = await delivery_status(store, "appt-1")
    assert {s["status"] for s in status.values()} == {"failed"}
    assert {s["last_error"] for s in status.values()} == {"appointment cancelled"}
    assert await store.count(DUE_INDEX) == 0  # no worker will pick them up
    assert await cancel_links(store, "appt-1") == 0
