"""Sending links: refusals naming the field, the outbox records, and real delivery by the
app's own outbox worker to a local SMTP server (aiosmtpd) and the SMS gateway stand-in."""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import timedelta
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller

from config import load_settings
from control import appointment_api
from control.notify.devgateway import DevSmsGateway

from .helpers import BASE, appointment_body, department_body, iso, problem


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def book(http, auth, department_id, **over):
    resp = await http.post(
        "/api/v1/appointments", json=appointment_body(department_id, **over), headers=auth
    )
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def send(client, auth, appt_id, channels):
    return await client.post(
        f"/api/v1/appointments/{appt_id}/telemedicine/send",
        json={"channels": channels},
        headers=auth,
    )


async def test_send_queues_both_channels_and_marks_links_sent(
    client, auth, department, store, clock
):
    appt = await book(client, auth, department["id"])
    resp = await send(client, auth, appt["id"], ["sms", "email"])
    body = await resp.json()
    assert resp.status == 202, body
    assert body["queued"] == ["sms", "email"]
    tele = body["appointment"]["telemedicine"]
    assert tele["links_sent_at"] is not None
    assert {c: d["status"] for c, d in tele["delivery"].items()} == {
        "sms": "queued",
        "email": "queued",
    }
    messages = await store.range(f"msgs:{appt['id']}")
    by_channel = {m.data["channel"]: m.data for m in messages}
    assert by_channel["sms"]["to"] == "+358401234567"
    assert by_channel["email"]["to"] == "matti@example.com"
    assert (
        tele["pin"] in by_channel["sms"]["body"] and tele["short_url"] in by_channel["sms"]["body"]
    )
    # The stored marker the clinic's list shows as an icon.
    got = await (await client.get(f"/api/v1/appointments/{appt['id']}", headers=auth)).json()
    assert got["telemedicine"]["links_sent_at"] == tele["links_sent_at"]
    # Resending queues new messages; the latest per channel is the status shown.
    assert (await send(client, auth, appt["id"], ["sms"])).status == 202
    assert len(await store.range(f"msgs:{appt['id']}")) == 3


async def test_a_client_changed_while_links_are_sent_sends_the_old_one_nothing(
    client, auth, department, store, monkeypatch
):
    # The clinic PATCHes a new client (a corrected phone number, say) while a send for the old
    # one is between queueing its messages and marking the links sent: the new client's
    # never-sent links were marked sent, and the old client got the old, dead ones.
    appt = await book(client, auth, department["id"])
    url = f"/api/v1/appointments/{appt['id']}"
    new_client = {"name": "Liisa", "phone": "+358409876543"}
    real = appointment_api.queue_links

    async def queue_then_patch(*args, **kwargs):
        queued = await real(*args, **kwargs)
        resp = await client.patch(url, json={"client": new_client}, headers=auth)
        assert resp.status == 200, await resp.text()
        return queued

    monkeypatch.setattr(appointment_api, "queue_links", queue_then_patch)
    body = await problem(await send(client, auth, appt["id"], ["sms"]), 409)
    assert body["type"].endswith("client-changed") and body["field"] == "client"
    got = await (await client.get(url, headers=auth)).json()
    assert got["client"]["name"] == "Liisa"
    assert got["telemedicine"]["pin"] != appt["telemedicine"]["pin"]
    assert got["telemedicine"]["links_sent_at"] is None
    assert [m.data["status"] for m in await store.range(f"msgs:{appt['id']}")] == ["failed"]
    monkeypatch.undo()
    assert (await send(client, auth, appt["id"], ["sms"])).status == 202
    got = await (await client.get(url, headers=auth)).json()
    assert got["telemedicine"]["links_sent_at"] is not None
    sms = [m.data for m in await store.range(f"msgs:{appt['id']}")]
    assert [(m["to"], m["status"]) for m in sms] == [
        ("+358401234567", "failed"),
        ("+358409876543", "queued"),
    ]


async def test_a_new_client_fails_what_is_still_queued_for_the_old_one(
    client, auth, department, store
):
    # Queued (the SMS gateway down, say) when the clinic corrected the client: the old
    # number was sent the old, dead PIN and links with the patient's name once it came back.
    appt = await book(client, auth, department["id"])
    assert (await send(client, auth, appt["id"], ["sms", "email"])).status == 202
    resp = await client.patch(f"/api/v1/appointments/{appt['id']}", headers=auth,
                              json={"client": {"name": "Liisa", "phone": "+358409876543"}})  # fmt: skip
    assert resp.status == 200, await resp.text()
    messages = [m.data for m in await store.range(f"msgs:{appt['id']}")]
    assert [(m["status"], m["last_error"]) for m in messages] == [
        ("failed", "the client changed")
    ] * 2
    # New times alone keep the client, and what was queued for it.
    assert (await send(client, auth, appt["id"], ["sms"])).status == 202
    resp = await client.patch(f"/api/v1/appointments/{appt['id']}", headers=auth,
                              json={"end": "2026-12-01T10:45:00Z"})  # fmt: skip
    assert resp.status == 200, await resp.text()
    statuses = [m.data["status"] for m in await store.range(f"msgs:{appt['id']}")]
    assert statuses == ["failed", "failed", "queued"]


async def test_an_appointment_cancelled_while_links_are_sent_sends_none(
    client, auth, department, store, monkeypatch
):
    # The cancel comes after this send read the appointment and before it queued: the cancel
    # had nothing to fail yet, and the messages went out with links that no longer work.
    appt = await book(client, auth, department["id"])
    real = appointment_api.queue_links

    async def cancel_then_queue(*args, **kwargs):
        resp = await client.post(f"/api/v1/appointments/{appt['id']}/cancel", headers=auth)
        assert resp.status == 200, await resp.text()
        return await real(*args, **kwargs)

    monkeypatch.setattr(appointment_api, "queue_links", cancel_then_queue)
    body = await problem(await send(client, auth, appt["id"], ["sms", "email"]), 409)
    assert body["type"].endswith("appointment-cancelled")
    messages = await store.range(f"msgs:{appt['id']}")
    assert [m.data["status"] for m in messages] == ["failed", "failed"]


async def test_links_of_an_appointment_that_is_over_are_not_sent(client, auth, department, clock):
    # They were queued and sent: dead links (410 token-expired) to the client.
    appt = await book(client, auth, department["id"])
    clock.set(BASE + timedelta(minutes=30 + 61))  # past the end and the 60 min grace
    body = await problem(await send(client, auth, appt["id"], ["sms"]), 409)
    assert body["type"].endswith("appointment-over") and body["field"] == "end"
    later = BASE + timedelta(days=1)
    moved = {"start": iso(later), "end": iso(later + timedelta(minutes=30))}
    resp = await client.patch(f"/api/v1/appointments/{appt['id']}", json=moved, headers=auth)
    assert resp.status == 200, await resp.text()
    assert (await send(client, auth, appt["id"], ["sms"])).status == 202


async def test_an_internationalized_domain_is_mailed_in_its_ascii_form(
    client, auth, department, store
):
    # Taken, then failed at every send: "email address is not ASCII (SMTPUTF8 is not used)".
    email = "anna@ex\u00e4mple.fi"
    appt = await book(client, auth, department["id"],
                      client={"name": "Anna", "email": email})  # fmt: skip
    assert appt["client"]["email"] == email  # stored as given
    assert (await send(client, auth, appt["id"], ["email"])).status == 202
    (message,) = [m.data for m in await store.range(f"msgs:{appt['id']}")]
    assert message["to"] == "anna@xn--exmple-cua.fi"


async def test_send_refusals_name_the_field(client, auth, department):
    no_phone = await book(client, auth, department["id"], external_id="A-2",
                          client={"name": "Liisa", "email": "liisa@example.com"})  # fmt: skip
    body = await problem(await send(client, auth, no_phone["id"], ["sms", "email"]), 422)
    assert body["field"] == "client.phone"
    assert (await send(client, auth, no_phone["id"], ["email"])).status == 202

    appt = await book(client, auth, department["id"])
    for channels, field in [
        ([], "channels"),
        (["fax"], "channels.0"),
        (["sms", "sms"], "(body)"),
        ("sms", "channels"),
    ]:
        body = await problem(await send(client, auth, appt["id"], channels), 422)
        assert body["field"] == field, (channels, body)

    await client.post(f"/api/v1/appointments/{appt['id']}/cancel", headers=auth)
    body = await problem(await send(client, auth, appt["id"], ["sms"]), 409)
    assert body["type"].endswith("appointment-cancelled")


async def test_send_refused_while_telemedicine_is_off_and_allowed_once_on(client, auth):
    resp = await client.post(
        "/api/v1/departments", json=department_body(telemedicine_enabled=False), headers=auth
    )
    dept = await resp.json()
    assert dept["telemedicine_enabled"] is False
    appt = await book(client, auth, dept["id"])
    assert appt["telemedicine"] is None
    body = await problem(await send(client, auth, appt["id"], ["sms"]), 409)
    assert body["field"] == "department.telemedicine_enabled"

    resp = await client.patch(
        f"/api/v1/departments/{dept['id']}", json={"telemedicine_enabled": True}, headers=auth
    )
    assert (await resp.json())["telemedicine_enabled"] is True
    resp = await send(client, auth, appt["id"], ["sms"])
    body = await resp.json()
    assert resp.status == 202, body
    assert body["appointment"]["telemedicine"]["pin"]  # the room was created on the way


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append(bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp():
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, mailbox
    controller.stop()


@pytest.fixture
async def sms_gateway():
    gateway = DevSmsGateway(free_port(), api_key="gw-key")
    await gateway.start()
    yield gateway
    await gateway.stop()


async def test_links_are_delivered_by_the_apps_worker(
    make_client, store, smtp, sms_gateway, tmp_path, auth, org
):
    controller, mailbox = smtp
    settings = load_settings(
        environ={},
        overrides={
            "server": {"data_dir": str(tmp_path / "d"), "public_url": "https://tv.example"},
            "notify": {
                "poll_seconds": 0.05,
                "smtp": {"host": "127.0.0.1", "port": controller.port},
                "sms": {"gateway_url": sms_gateway.url, "api_key": "gw-key"},
            },
        },
    )
    client = await make_client(store, settings=settings, background=True, clock=time.time)
    resp = await client.post("/api/v1/departments", json=department_body(), headers=auth)
    dept = await resp.json()
    appt = await book(client, auth, dept["id"])
    assert (await send(client, auth, appt["id"], ["sms", "email"])).status == 202

    status = {}
    for _ in range(600):  # bounded: up to 60 s on a busy machine
        got = await (await client.get(f"/api/v1/appointments/{appt['id']}", headers=auth)).json()
        status = {c: d["status"] for c, d in got["telemedicine"]["delivery"].items()}
        if status == {"sms": "sent", "email": "sent"}:
            break
        await asyncio.sleep(0.1)
    assert status == {"sms": "sent", "email": "sent"}, got["telemedicine"]["delivery"]
    tele = appt["telemedicine"]
    [sms] = sms_gateway.delivered.values()
    assert sms["body"]["to"] == "+358401234567"
    assert tele["pin"] in sms["body"]["text"] and tele["short_url"] in sms["body"]["text"]
    [raw] = mailbox.messages
    email = message_from_bytes(raw, policy=policy.default)
    text = email.get_body(("plain",)).get_content()
    assert email["To"].addresses[0].addr_spec == "matti@example.com"
    assert tele["pin"] in text and tele["short_url"] in text
    assert "Fleminginkatu 1, Helsinki" in text  # the clinic's contact info
