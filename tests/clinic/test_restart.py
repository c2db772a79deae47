"""A restart loses no open request: the deadline is in the store and the next node expires it."""

from __future__ import annotations

from config import load_settings
from control.clinic import requests
from control.clinic.accounts import create_staff, get_staff
from control.clinic.context import Clinic

from .helpers import Clock, KeptEvents

PASSWORD = "correct horse"


async def test_open_request_survives_restart_and_expires(reopenable_store):
    settings = load_settings(environ={}).clinic
    clock = Clock()
    store = await reopenable_store()
    clinic = Clinic(store, settings, KeptEvents(), clock)
    prov = await create_staff(store, "org1", username="drwho", display_name="Dr Who",
                              password=PASSWORD, groups=["provide"])  # fmt: skip
    prov = await requests.set_availability(clinic, prov, True)
    desk = await create_staff(store, "org1", username="desk", display_name="Desk",
                              password=PASSWORD, groups=["request"])  # fmt: skip
    open_rq = await requests.create_request(clinic, desk, prov.id)
    await store.close()

    # A new node on the same store, after the deadline passed while nothing ran.
    clock.advance(settings.request_expiry_seconds + 30)
    store = await reopenable_store()
    clinic = Clinic(store, settings, KeptEvents(), clock)
    desk = await get_staff(store, desk.id)
    assert [r.id for r in await requests.requester_outbox(clinic, desk)] == [open_rq.id]
    assert await requests.sweep(clinic) == 1
    got = await requests.get_request(clinic, desk, open_rq.id)
    assert (got.state, got.reason) == ("expired", "no answer")
    assert clinic.events.seen[0][0] == "request.expired"
    # The pair's claim goes with the dismissal of the expired request.
    await requests.dismiss(clinic, desk, open_rq.id)
    assert (await requests.create_request(clinic, desk, prov.id)).state == "requested"
    await store.close()
