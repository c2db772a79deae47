"""The request state machine on both stores: every transition, the illegal ones included."""

from __future__ import annotations

import asyncio

import pytest

from config import load_settings
from control.clinic import passwords, requests, visits
from control.clinic.accounts import create_staff
from control.clinic.context import Clinic
from control.clinic.errors import Conflict, Forbidden, Invalid, Missing
from control.clinic.policy import set_policy

from .helpers import Clock, KeptEvents, provider_and_desk

EXPIRY = 120


@pytest.fixture
def clinic(store):
    settings = load_settings(environ={}, overrides={"clinic": {"request_expiry_seconds": EXPIRY}})
    return Clinic(store, settings.clinic, KeptEvents(), Clock())


@pytest.fixture
async def people(clinic):
    async def make(org, name, groups):
        return await create_staff(
            clinic.store, org, username=name, display_name=name.title(),
            password="correct horse", groups=groups,
        )  # fmt: skip

    prov = await make("org1", "drwho", ["provide"])
    prov = await requests.set_availability(clinic, prov, True)
    other_prov = await make("org1", "drno", ["provide"])
    other_prov = await requests.set_availability(clinic, other_prov, True)
    req = await make("org1", "station1", ["request"])
    foreign = await make("org2", "drfar", ["provide", "request"])
    foreign = await requests.set_availability(clinic, foreign, True)
    return prov, other_prov, req, foreign


async def test_request_then_accept_opens_visit(clinic, people):
    prov, _, req, _ = people
    r = await requests.create_request(clinic, req, prov.id)
    assert r.state == "requested" and r.expires_at == clinic.clock() + EXPIRY
    assert "request.created" in clinic.events.types_for(prov.id)
    assert [x.id for x in await requests.provider_inbox(clinic, prov)] == [r.id]
    assert [x.id for x in await requests.requester_outbox(clinic, req)] == [r.id]

    accepted, visit = await requests.accept(clinic, prov, r.id)
    assert accepted.state == "accepted" and accepted.visit_id == visit.id
    assert visit.state == "open" and visit.requester_status == "not_arrived"
    assert await requests.provider_inbox(clinic, prov) == []
    assert await requests.requester_outbox(clinic, req) == []
    assert [v.id for v in await visits.open_visits(clinic, req)] == [visit.id]
    assert [v.id for v in await visits.open_visits(clinic, prov)] == [visit.id]
    assert "visit.opened" in clinic.events.types_for(req.id)

    # Answered once: every further answer is refused.
    for act in (
        requests.accept(clinic, prov, r.id),
        requests.decline(clinic, prov, r.id, None),
        requests.cancel(clinic, req, r.id),
        requests.dismiss(clinic, req, r.id),
    ):
        with pytest.raises(Conflict) as exc:
            await act
        assert exc.value.status == 409
    # The pair is free again.
    assert (await requests.create_request(clinic, req, prov.id)).state == "requested"


async def test_one_open_request_per_pair(clinic, people):
    prov, other, req, _ = people
    first = await requests.create_request(clinic, req, prov.id)
    with pytest.raises(Conflict) as exc:
        await requests.create_request(clinic, req, prov.id)
    assert exc.value.extra["request_id"] == first.id and exc.value.field == "provider_id"
    # Another provider is another pair.
    await requests.create_request(clinic, req, other.id)
    # Many at once: exactly one more open request could exist, and it already does.
    results = await asyncio.gather(
        *(requests.create_request(clinic, req, prov.id) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(x, Conflict) for x in results)


async def test_decline_with_note_dismiss_and_request_again(clinic, people):
    prov, _, req, _ = people
    r = await requests.create_request(clinic, req, prov.id)
    d = await requests.decline(clinic, prov, r.id, "  Busy with a patient, try at 3  ")
    assert (d.state, d.reason, d.note) == ("declined", "declined", "Busy with a patient, try at 3")
    assert "request.declined" in clinic.events.types_for(req.id)
    # The decline stays on the requester's dashboard until dismissed.
    assert [x.note for x in await requests.requester_outbox(clinic, req)] == [d.note]
    with pytest.raises(Conflict):
        await requests.accept(clinic, prov, r.id)  # already declined
    with pytest.raises(Forbidden):
        await requests.dismiss(clinic, prov, r.id)  # not the requester's
    # One rule with the dashboard: ask the same provider again only after dismissing.
    with pytest.raises(Conflict) as exc:
        await requests.create_request(clinic, req, prov.id)
    assert exc.value.extra == {"request_id": r.id, "state": "declined"}
    assert "dismiss" in exc.value.detail
    await requests.dismiss(clinic, req, r.id)
    assert await requests.requester_outbox(clinic, req) == []
    with pytest.raises(Conflict):
        await requests.dismiss(clinic, req, r.id)  # already dismissed
    again = await requests.create_request(clinic, req, prov.id)
    assert again.state == "requested" and again.id != r.id


async def test_note_refused_when_notes_disabled_and_when_too_long(clinic, people):
    prov, _, req, _ = people
    r = await requests.create_request(clinic, req, prov.id)
    with pytest.raises(Invalid) as exc:
        await requests.decline(clinic, prov, r.id, "x" * 501)
    assert exc.value.field == "note"
    await set_policy(clinic.store, "org1", notes_enabled=False)
    with pytest.raises(Invalid) as exc:
        await requests.decline(clinic, prov, r.id, "sorry")
    assert exc.value.field == "note" and "not enabled" in exc.value.detail
    assert (await requests.decline(clinic, prov, r.id, None)).note is None


async def test_unavailable_provider_declines_at_once_without_alert(clinic, people):
    prov, _, req, _ = people
    await requests.set_availability(clinic, prov, False)
    clinic.events.seen.clear()
    r = await requests.create_request(clinic, req, prov.id)
    assert (r.state, r.reason) == ("declined", "unavailable")
    assert clinic.events.types_for(req.id) == ["request.declined"]
    assert clinic.events.types_for(prov.id) == []
    assert await requests.provider_inbox(clinic, prov) == []
    # Like any answer, it is dismissed before asking again (and declined again).
    with pytest.raises(Conflict):
        await requests.create_request(clinic, req, prov.id)
    await requests.dismiss(clinic, req, r.id)
    assert (await requests.create_request(clinic, req, prov.id)).reason == "unavailable"


async def test_going_unavailable_declines_open_requests(clinic, people):
    prov, _, req, _ = people
    r = await requests.create_request(clinic, req, prov.id)
    await requests.set_availability(clinic, prov, False)
    got = await requests.get_request(clinic, req, r.id)
    assert (got.state, got.reason) == ("declined", "unavailable")


async def test_expiry_by_sweep_counts_as_no_answer(clinic, people):
    prov, _, req, _ = people
    r = await requests.create_request(clinic, req, prov.id)
    clinic.clock.advance(EXPIRY - 1)
    assert await requests.sweep(clinic) == 0
    clinic.clock.advance(1)
    assert await requests.sweep(clinic) == 1
    got = await requests.get_request(clinic, req, r.id)
    assert (got.state, got.reason) == ("expired", "no answer")
    assert "request.expired" in clinic.events.types_for(req.id)
    assert "request.expired" in clinic.events.types_for(prov.id)
    assert await requests.sweep(clinic) == 0
    with pytest.raises(Conflict) as exc:
        await requests.accept(clinic, prov, r.id)
    assert exc.value.extra["state"] == "expired"
    # Shown on the requester's dashboard like a decline, until dismissed.
    assert [x.id for x in await requests.requester_outbox(clinic, req)] == [r.id]
    with pytest.raises(Conflict) as exc:
        await requests.create_request(clinic, req, prov.id)
    assert exc.value.extra["state"] == "expired"
    await requests.dismiss(clinic, req, r.id)
    assert (await requests.create_request(clinic, req, prov.id)).state == "requested"


async def test_answer_after_deadline_is_refused_before_any_sweep(clinic, people):
    prov, _, req, _ = people
    r = await requests.create_request(clinic, req, prov.id)
    clinic.clock.advance(EXPIRY + 5)
    with pytest.raises(Conflict) as exc:
        await requests.accept(clinic, prov, r.id)
    assert exc.value.extra["state"] == "expired"
    assert (await requests.get_request(clinic, req, r.id)).state == "expired"


async def test_who_may_do_what(clinic, people):
    prov, other, req, foreign = people
    r = await requests.create_request(clinic, req, prov.id)
    with pytest.raises(Forbidden):  # a requester acting as provider
        await requests.accept(clinic, req, r.id)
    with pytest.raises(Forbidden):  # another provider of the same organization
        await requests.decline(clinic, other, r.id)
    with pytest.raises(Missing):  # a provider of another organization does not see it
        await requests.accept(clinic, foreign, r.id)
    with pytest.raises(Missing):
        await requests.get_request(clinic, foreign, r.id)
    with pytest.raises(Forbidden):  # only the requester cancels
        await requests.cancel(clinic, prov, r.id)
    with pytest.raises(Missing):  # providers of other organizations cannot be reached
        await requests.create_request(clinic, req, foreign.id)
    with pytest.raises(Forbidden):  # providers without the request group cannot request
        await requests.create_request(clinic, prov, other.id)
    desk2 = await create_staff(clinic.store, "org1", username="desk2", display_name="Desk 2",
                               password="correct horse", groups=["request"])  # fmt: skip
    with pytest.raises(Missing):  # a requester is not a provider
        await requests.create_request(clinic, desk2, req.id)
    with pytest.raises(Forbidden):
        await requests.set_availability(clinic, req, True)
    with pytest.raises(Missing):
        await requests.accept(clinic, prov, "rq_doesnotexist")
    c = await requests.cancel(clinic, req, r.id)
    assert (c.state, c.reason) == ("cancelled", "cancelled")
    assert await requests.requester_outbox(clinic, req) == []


async def test_services(clinic, people):
    prov, other, req, _ = people
    with pytest.raises(Invalid):  # none enabled
        await requests.create_request(clinic, req, prov.id, "Cardiology")
    await set_policy(clinic.store, "org1", services=["Cardiology"])
    assert (await requests.create_request(clinic, req, prov.id)).service == "Cardiology"
    await set_policy(clinic.store, "org1", services=["Cardiology", "Dermatology"])
    with pytest.raises(Invalid) as exc:
        await requests.create_request(clinic, req, other.id)
    assert exc.value.field == "service"
    with pytest.raises(Invalid):
        await requests.create_request(clinic, req, other.id, "Podiatry")
    r = await requests.create_request(clinic, req, other.id, "Dermatology")
    assert r.public()["service"] == "Dermatology"


async def test_accept_and_decline_race_has_one_winner(clinic, people):
    prov, _, req, _ = people
    for _ in range(3):
        r = await requests.create_request(clinic, req, prov.id)
        results = await asyncio.gather(
            requests.accept(clinic, prov, r.id),
            requests.decline(clinic, prov, r.id),
            return_exceptions=True,
        )
        assert sum(not isinstance(x, Exception) for x in results) == 1
        assert sum(isinstance(x, Conflict) for x in results) == 1
        final = await requests.get_request(clinic, req, r.id)
        if final.state == "accepted":
            await visits.end_visit(clinic, prov, final.visit_id)
        else:
            await requests.dismiss(clinic, req, r.id)


async def test_visit_status_follows_room_and_ends(clinic, people):
    prov, other, req, _ = people
    r = await requests.create_request(clinic, req, prov.id)
    _, visit = await requests.accept(clinic, prov, r.id)
    with pytest.raises(Forbidden):
        await visits.joinable_visit(clinic, other, visit.id)
    v, role = await visits.joinable_visit(clinic, req, visit.id)
    assert role == "requester"
    v = await visits.set_status(clinic, visit.room_id, "guest", "waiting")
    assert v.requester_status == "waiting"
    assert clinic.events.seen[-1][0] == "visit.updated"
    assert (await visits.visit_for_room(clinic.store, visit.room_id)).id == visit.id
    await visits.end_visit(clinic, prov, visit.id)
    with pytest.raises(Conflict):
        await visits.joinable_visit(clinic, req, visit.id)
    assert await visits.open_visits(clinic, req) == []
    assert await visits.set_status(clinic, visit.room_id, "guest", "left") is None


async def test_background_sweeper_expires_without_being_asked(node):
    """The node's own sweeper task (not a test's call) expires a request once its time is up."""
    clinic = node.clinic
    prov, desk = await provider_and_desk(clinic)
    r = await requests.create_request(clinic, desk, prov.id)
    node.sweeper.start()
    try:
        clinic.clock.advance(clinic.settings.request_expiry_seconds)
        for _ in range(600):  # bounded: up to 30 s on a busy machine
            # The sweep counts after it returns, which is after the record changed.
            done = (await requests.get_request(clinic, desk, r.id)).state == "expired"
            if done and node.sweeper.expired:
                break
            await asyncio.sleep(0.05)
        assert (await requests.get_request(clinic, desk, r.id)).reason == "no answer"
        assert node.sweeper.expired == 1 and node.sweeper.errors == 0
    finally:
        await node.sweeper.stop()


async def test_lists_past_a_page_show_every_item(clinic, monkeypatch):
    # One page of 500: the 501st request was missing from the provider's inbox (and not
    # declined when the provider went away), the requester's outbox and the open visits.
    monkeypatch.setattr(passwords, "hash_password", lambda password: "cheap")  # scrypt: 502 x
    staff = [
        await requests.set_availability(clinic, await create_staff(
            clinic.store, "big", username=f"vet{i:03}", display_name=f"Vet {i}",
            password="correct horse", groups=["provide", "request"], now=float(i),
        ), True)
        for i in range(502)
    ]  # fmt: skip
    hub, others = staff[0], staff[1:]
    for other in others:
        await requests.create_request(clinic, hub, other.id)
        await requests.create_request(clinic, other, hub.id)
    assert len(await requests.requester_outbox(clinic, hub)) == 501
    inbox = await requests.provider_inbox(clinic, hub)
    assert {r.requester_id for r in inbox} == {o.id for o in others}
    for req in inbox:
        await requests.accept(clinic, hub, req.id)
    assert len(await visits.open_visits(clinic, hub)) == 501
