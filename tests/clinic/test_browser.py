"""The virtual clinic in real Chromium against `televisit serve` (its SFU included), signed in
with the demo accounts the server prints at start. Two contexts, a provider and a requester
station: the provider goes available, the station requests, the request appears live, the
provider declines with a note, the station sees the note and dismisses, requests again, the
provider accepts and enters, the station enters the waiting room (the provider's dashboard says
so), the provider joins and both decode each other's video; the hang-up closes the session."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.conftest import free_port
from tests.web.helpers import DESKTOP, PHONE, TIMEOUT_MS, assert_decoding, open_page
from tests.web.server import LiveServer

BANNER_LINES = 20
expect.set_options(timeout=TIMEOUT_MS)
DEMO_LINE = re.compile(r"^\s+(demo\.\w+)\s+(\S+)\s+")


@pytest.fixture(scope="module")
def clinic_server(tmp_path_factory):
    """`televisit serve` and the demo clinic accounts of its banner (username -> password)."""
    server = LiveServer(tmp_path_factory.mktemp("clinic"), free_port())
    server.start()
    try:
        logins: dict[str, str] = {}
        assert server.proc is not None and server.proc.stdout is not None
        for _ in range(BANNER_LINES):
            found = DEMO_LINE.match(server.proc.stdout.readline())
            if found:
                logins[found.group(1)] = found.group(2)
            if len(logins) == 3:
                break
        assert set(logins) == {"demo.provider", "demo.station", "demo.admin"}, logins
        yield server, logins
    finally:
        server.stop()


def sign_in(page, username: str, password: str, *, station: str | None = None) -> None:
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    if station:
        page.get_by_label("This is a dedicated station").check()
        page.get_by_label("Station name").fill(station)
    page.get_by_role("button", name="Sign in").click()


def join_call(page) -> None:
    """The visit page's pre-join step (tests/web/test_call.py drives the same page)."""
    expect(page.locator("body")).to_have_attribute("data-view", "prejoin")
    page.locator("#join-button").click()
    expect(page.locator("body")).to_have_attribute("data-view", "room")


def test_virtual_clinic_in_chromium(browser, clinic_server, screenshots):
    server, logins = clinic_server
    prov = open_page(browser, f"{server.base}/clinic/", viewport=DESKTOP, label="provider")
    sign_in(prov, "demo.provider", logins["demo.provider"])
    prov.wait_for_url("**/clinic/provider")
    toggle = prov.get_by_role("switch")
    expect(toggle).to_have_text("I am unavailable for sessions")
    expect(prov.locator("#live")).to_have_text("live")
    toggle.click()
    expect(toggle).to_have_text("I am available for sessions")
    expect(toggle).to_have_attribute("aria-checked", "true")

    desk = open_page(browser, f"{server.base}/clinic/", viewport=PHONE, label="station")
    sign_in(desk, "demo.station", logins["demo.station"], station="Exam room 2")
    desk.wait_for_url("**/clinic/requester")
    expect(desk.locator("#live")).to_have_text("live")
    doctor = desk.locator("li[data-provider]", has_text="Dr Demo Provider")
    expect(doctor.locator(".badge")).to_have_text("available")
    request_button = doctor.get_by_role("button", name="Request session now")
    request_button.click()
    expect(desk.get_by_text("Waiting for Dr Demo Provider")).to_be_visible()

    # The request appears at the top of the provider's dashboard without a reload.
    incoming = prov.locator("#requests li[data-request]")
    expect(incoming).to_have_count(1)
    expect(incoming.locator(".name")).to_have_text("Demo exam room (requester)")
    expect(prov).to_have_title(re.compile(r"^\(1\) Session request"))
    prov.screenshot(path=screenshots / "clinic-provider-request.png")
    incoming.get_by_role("button", name="Decline").click()
    incoming.get_by_label("Note to the requester").fill("In surgery, try again at 3 pm")
    incoming.get_by_role("button", name="Send decline").click()
    expect(incoming).to_have_count(0)

    declined = desk.locator("li.declined")
    expect(declined).to_contain_text("Dr Demo Provider declined your request.")
    expect(declined.locator(".note")).to_have_text("In surgery, try again at 3 pm")
    expect(request_button).to_be_disabled()  # dismiss first, then try again
    desk.screenshot(path=screenshots / "clinic-station-declined.png")
    declined.get_by_role("button", name="Dismiss").click()
    expect(declined).to_have_count(0)
    request_button.click()

    # Accept and enter: the provider's room opens in its own tab.
    expect(incoming).to_have_count(1)
    with prov.context.expect_page() as opened:
        incoming.get_by_role("button", name="Accept and enter").click()
    prov_room = opened.value
    prov_room.wait_for_url(re.compile(r"/h/"))
    expect(prov_room.locator("#appt-client")).to_have_text("Demo exam room (requester)")
    session = prov.locator("#sessions li[data-visit]")
    expect(session.locator(".status")).to_have_text("Not arrived yet")

    visit = desk.locator("li[data-visit]", has_text="Session with Dr Demo Provider")
    with desk.context.expect_page() as opened:
        visit.get_by_role("button", name="Enter waiting room").click()
    desk_room = opened.value
    desk_room.wait_for_url(re.compile(r"/j/"))
    join_call(desk_room)
    expect(desk_room.locator("body")).to_have_attribute("data-room", "waiting")

    # The provider's dashboard shows the station arrived, from the SFU's room events.
    expect(session.locator(".status")).to_have_text("In waiting room")
    prov.screenshot(path=screenshots / "clinic-provider-in-waiting-room.png")
    join_call(prov_room)
    for page in (prov_room, desk_room):
        expect(page.locator("body")).to_have_attribute("data-room", "active")
    prov_video = assert_decoding(prov_room, "the provider")
    desk_video = assert_decoding(desk_room, "the station")
    assert prov_video["frameWidth"] >= 320 and desk_video["frameWidth"] >= 320
    expect(session.locator(".status")).to_have_text("In meeting")
    prov_room.screenshot(path=screenshots / "clinic-provider-in-call.png")

    # The provider hangs up: the consultation ends and the session leaves both dashboards.
    prov_room.locator("#btn-hangup").click()
    prov_room.locator("#hangup-confirm").click()
    for page in (prov_room, desk_room):
        expect(page.locator("body")).to_have_attribute("data-view", "ended")
    expect(prov.locator("#sessions li[data-visit]")).to_have_count(0)
    expect(desk.locator("li[data-visit]")).to_have_count(0)
    prov.context.close()
    desk.context.close()
