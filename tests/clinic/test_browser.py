"""The virtual clinic in real Chromium against `televisit serve` (its SFU included), signed in
with the demo accounts the server prints at start. Two contexts, a provider and a requester
station: the provider goes available, the station requests, the request appears live, the
provider declines with a note, the station sees the note and dismisses, requests again, the
provider accepts, the station enters the waiting room (the provider's dashboard says so), the
provider's "Enter meeting" goes straight into the call and both decode each other's video; the
room's header is a visit's (requester, start time, no patient, no paw); the hang-up closes the
session; "Accept and enter" enters at once. An administrator, in Finnish, adds account
services: the signed-in station offers the choice at once and waits for it; a refused form
says why in a sentence above the panels; the language menu switches and is remembered."""

from __future__ import annotations

import json
import re
import urllib.request
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from control.clinic.pages import WEB_DIR as CLINIC_DIR
from tests.conftest import free_port
from tests.web.helpers import DESKTOP, PHONE, TIMEOUT_MS, assert_decoding, open_page
from tests.web.server import LiveServer

BANNER_LINES = 20
expect.set_options(timeout=TIMEOUT_MS)
DEMO_LINE = re.compile(r"^\s+(demo\.\w+)\s+(\S+)\s+")


def started(tmp_path_factory, settings=None):
    """`televisit serve` and the demo clinic accounts of its banner (username -> password)."""
    server = LiveServer(tmp_path_factory.mktemp("clinic"), free_port(), settings=settings)
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


@pytest.fixture(scope="module")
def clinic_server(tmp_path_factory):
    yield from started(tmp_path_factory)


@pytest.fixture(scope="module")
def hurried_server(tmp_path_factory):
    """A server whose requests expire after 5 s (the shortest allowed)."""
    yield from started(
        tmp_path_factory,
        {
            "TELEVISIT__CLINIC__REQUEST_EXPIRY_SECONDS": "5",
            "TELEVISIT__CLINIC__SWEEP_SECONDS": "0.5",
        },
    )


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

    # Accept: the session waits on both dashboards.
    expect(incoming).to_have_count(1)
    incoming.get_by_role("button", name="Accept", exact=True).click()
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
    # "Enter meeting" enters: no pre-join screen to click through.
    with prov.context.expect_page() as opened:
        session.get_by_role("button", name="Enter meeting").click()
    prov_room = opened.value
    prov_room.wait_for_url(re.compile(r"/h/[^#]+$"))
    expect(prov_room.locator("body")).to_have_attribute("data-view", "room")
    # The header of a visit: who asked, when it started (24-hour clock), no patient, no paw.
    expect(prov_room.locator("#appt-client-label")).to_have_text("Requester")
    expect(prov_room.locator("#appt-client")).to_have_text("Demo exam room (requester)")
    expect(prov_room.locator("#appt-patient-row")).to_be_hidden()
    expect(prov_room.locator("#appt-time-label")).to_have_text("Started")
    expect(prov_room.locator("#appt-time")).to_have_text(re.compile(r"^\d{2}:\d{2}$"))
    expect(prov_room.locator(".brand .for-vet")).to_be_hidden()
    expect(prov_room.locator(".brand .for-other")).to_be_visible()
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

    # "Accept and enter": the provider's room opens in its own tab, already in the call.
    request_button.click()
    expect(incoming).to_have_count(1)
    with prov.context.expect_page() as opened:
        incoming.get_by_role("button", name="Accept and enter").click()
    entered = opened.value
    expect(entered.locator("body")).to_have_attribute("data-view", "room")
    expect(entered.locator("body")).to_have_attribute("data-room", "waiting")
    entered.locator("#btn-hangup").click()
    entered.locator("#hangup-confirm").click()
    expect(prov.locator("#sessions li[data-visit]")).to_have_count(0)
    prov.context.close()
    desk.context.close()


def test_services_live_errors_as_sentences_and_languages(browser, clinic_server, screenshots):
    server, logins = clinic_server
    desk = open_page(browser, f"{server.base}/clinic/", viewport=DESKTOP, label="station")
    sign_in(desk, "demo.station", logins["demo.station"], station="Exam room 5")
    desk.wait_for_url("**/clinic/requester")
    expect(desk.locator("#live")).to_have_text("live")
    expect(desk.locator("#services")).to_be_hidden()

    # The administrator works in Finnish (the browser's language).
    admin = open_page(browser, f"{server.base}/clinic/", viewport=DESKTOP, locale="fi-FI",
                      label="admin")  # fmt: skip
    fi = clinic_strings("fi")
    expect(admin.locator("h1")).to_have_text(fi["app.name"])
    admin.get_by_label(fi["login.username"]).fill("demo.admin")
    admin.get_by_label(fi["login.password"]).fill(logins["demo.admin"])
    admin.get_by_role("button", name=fi["login.submit"]).click()
    admin.wait_for_url("**/clinic/provider")
    admin.goto(f"{server.base}/clinic/admin")
    expect(admin.locator("h1")).to_have_text(fi["app.admin_name"])
    # The page fills the form when its data has loaded (then the staff table has rows): typing
    # before that would be overwritten.
    expect(admin.locator("#staff tr").first).to_be_visible()
    admin.locator("#policy textarea").fill("General\nDermatology")
    # Data arriving while the administrator types (the reload after another action: here a
    # provider disabled and enabled again, each button showing the reloaded state) keeps the
    # typed text; it used to be overwritten by the stored services (none), and saved so.
    provider = admin.locator("#staff tr", has_text="demo.provider")
    provider.get_by_role("button", name=fi["admin.disable"]).click()
    provider.get_by_role("button", name=fi["admin.enable"]).click()
    expect(provider.get_by_role("button", name=fi["admin.disable"])).to_be_visible()
    expect(admin.locator("#policy textarea")).to_have_value("General\nDermatology")
    admin.get_by_role("button", name=fi["admin.save"]).click()

    # The signed-in station offers the choice at once, and the button waits for it.
    expect(desk.locator("#services")).to_be_visible()
    doctor = desk.locator("li[data-provider]", has_text="Dr Demo Provider")
    ask = doctor.get_by_role("button", name="Request session now")
    expect(ask).to_be_disabled()
    expect(desk.locator("#choose-first")).to_be_visible()
    desk.get_by_label("Dermatology").check()
    expect(ask).to_be_enabled()
    expect(desk.locator("#choose-first")).to_be_hidden()

    # A refusal is a sentence in the reader's language, above the panels: the grid stays.
    panels = admin.locator("main > section")
    before = [panels.nth(i).bounding_box() for i in range(panels.count())]
    form = admin.locator("#new-staff")
    form.locator("input[name=display_name]").fill("Someone")
    form.locator("input[name=username]").fill("demo.station")  # taken
    form.locator("input[name=password]").fill("long enough password")
    form.get_by_role("button", name=fi["admin.create"]).click()
    expect(admin.locator("#error")).to_have_text(fi["error.username_taken"])
    banner = admin.locator("#error").bounding_box()
    after = [panels.nth(i).bounding_box() for i in range(panels.count())]
    assert banner["y"] + banner["height"] <= after[0]["y"]
    assert [(b["x"], b["width"]) for b in after] == [(b["x"], b["width"]) for b in before]
    admin.screenshot(path=screenshots / "clinic-admin-error-fi.png")

    # The language menu switches the page at once and is remembered on the next page.
    sv = clinic_strings("sv")
    admin.locator("#lang").select_option("sv")
    expect(admin.locator("h1")).to_have_text(sv["app.admin_name"])
    admin.goto(f"{server.base}/clinic/provider")
    expect(admin.locator("#requests-h")).to_have_text(sv["provider.requests"])

    admin.goto(f"{server.base}/clinic/admin")
    expect(admin.locator("#staff tr").first).to_be_visible()
    admin.locator("#policy textarea").fill("")
    admin.get_by_role("button", name=sv["admin.save"]).click()
    expect(desk.locator("#services")).to_be_hidden()
    expect(ask).to_be_enabled()
    admin.context.close()
    desk.context.close()


def clinic_strings(lang: str) -> dict[str, str]:
    return json.loads((CLINIC_DIR / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))


def test_an_unanswered_request_is_called_expired_once(browser, hurried_server):
    server, logins = hurried_server
    token = clinic_call(server, "POST", "/login", None, {
        "username": "demo.provider", "password": logins["demo.provider"]})["token"]  # fmt: skip
    clinic_call(server, "PUT", "/me/availability", token, {"available": True})
    desk = open_page(browser, f"{server.base}/clinic/", viewport=PHONE, label="station")
    sign_in(desk, "demo.station", logins["demo.station"])
    desk.wait_for_url("**/clinic/requester")
    doctor = desk.locator("li[data-provider]", has_text="Dr Demo Provider")
    ask = doctor.get_by_role("button", name="Request session now")
    ask.click()
    answer = desk.locator("li[data-request][data-state=expired]")
    expect(answer.locator(".name")).to_have_text("Request expired")
    expect(answer.locator(".meta")).to_have_text("Dr Demo Provider did not answer in time.")
    assert answer.inner_text().lower().count("answer") == 1, answer.inner_text()
    expect(ask).to_be_disabled()  # the same rule as the API: dismiss, then ask again
    answer.get_by_role("button", name="Dismiss").click()
    expect(ask).to_be_enabled()
    desk.context.close()


def clinic_call(server, method: str, path: str, token: str | None, body) -> dict:
    req = urllib.request.Request(
        f"{server.base}/api/v1/clinic{path}", data=json.dumps(body).encode(), method=method
    )
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def test_dashboard_times_are_the_organizations_not_the_readers(browser, clinic_server):
    """Issue 16: times in the department's zone, named where a reader elsewhere could misread
    them (the provider's browser in New York, the clinic in Helsinki). Last in this module:
    it moves the demo organization's zone."""
    server, logins = clinic_server
    status, found = server.call("GET", "/api/v1/departments")
    assert status == 200, found
    department = found["departments"][0]["id"]
    status, body = server.call(
        "PATCH", f"/api/v1/departments/{department}", {"time_zone": "Europe/Helsinki"}
    )
    assert status == 200, body
    login = clinic_call(server, "POST", "/login", None, {
        "username": "demo.provider", "password": logins["demo.provider"]})  # fmt: skip
    clinic_call(server, "PUT", "/me/availability", login["token"], {"available": True})
    admin = clinic_call(server, "POST", "/login", None, {
        "username": "demo.admin", "password": logins["demo.admin"]})  # fmt: skip
    status, me = server.call("GET", "/api/v1/clinic/me", token=admin["token"])
    assert me["time_zone"] == "Europe/Helsinki"
    offered = me["policy"]["services"]
    asked = clinic_call(server, "POST", "/requests", admin["token"], {
        "provider_id": login["staff"]["id"], "service": offered[0] if offered else None,
    })["request"]  # fmt: skip
    helsinki = datetime.fromtimestamp(asked["created_at"], ZoneInfo("Europe/Helsinki"))

    prov = open_page(
        browser, f"{server.base}/clinic/", label="provider-ny", timezone_id="America/New_York"
    )
    sign_in(prov, "demo.provider", logins["demo.provider"])
    prov.wait_for_url("**/clinic/provider")
    item = prov.locator(f"li[data-request='{asked['id']}'] .meta")
    expect(item).to_have_text(f"requested {helsinki:%H:%M} EET")
    prov.context.close()
