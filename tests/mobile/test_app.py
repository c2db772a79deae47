"""The staff app in real Chromium against `televisit serve` (SQLite), with a real local HTTP
receiver for the webhooks: sign in with a one-time key, load the agenda, go offline and
reload (shell and data from the cache), write two notes and three stock scans, close the
page, restart the server, reopen online: every item arrives once at the receiver and in the
pull API; a second device editing the same note sees the conflict; a revoked device is told
so; with the organization setting off no credentials are given. Bad input comes back as
problem+json and the app keeps the item with its error for the user to fix."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from tests.clinic.test_browser import sign_in as clinic_sign_in
from tests.conftest import free_port
from tests.web.helpers import PHONE, TIMEOUT_MS, poll
from tests.web.server import LiveServer

expect.set_options(timeout=TIMEOUT_MS)
API = "/api/v1"
DEMO_LINE = re.compile(r"^\s+(demo\.\w+)\s+(\S+)\s+")
GAUZE, SALINE, SYRINGE = "4006381333931", "96385074", "036000291452"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Receiver:
    """Clinic software's webhook endpoint on loopback: keeps every POST it accepts."""

    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        got = self.got

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                got.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/televisit"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in list(self.got)]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Clinic:
    """The server, its demo accounts signed in, and what clinic software pushes."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.logins: dict[str, str] = {}
        self.tokens: dict[str, str] = {}

    def start(self) -> None:
        """(Re)start the server and sign in its demo staff (new passwords each start)."""
        self.server.start()
        assert self.server.proc is not None and self.server.proc.stdout is not None
        self.logins.clear()
        while len(self.logins) < 3:
            found = DEMO_LINE.match(self.server.proc.stdout.readline())
            if found:
                self.logins[found.group(1)] = found.group(2)
        for user in ("demo.admin", "demo.provider"):
            status, body = self.server.call(
                "POST", f"{API}/clinic/login", {"username": user, "password": self.logins[user]}
            )
            assert status == 200, body
            self.tokens[user] = body["token"]

    def as_staff(self, user: str, method: str, path: str, body: Any = None):
        return self.server.call(method, API + path, body, token=self.tokens[user])

    def push(self, kind: str, id: str, body: dict[str, Any]) -> None:
        status, out = self.server.call("PUT", f"{API}/mobile/{kind}/{id}", body)
        assert status in (200, 201), out

    def login_key(self) -> str:
        status, body = self.as_staff("demo.provider", "POST", "/mobile/login-key")
        assert status == 201, body
        return body["key"]

    def appointment(self, n: int, start: datetime, patient_id: str | None = None) -> dict:
        status, body = self.server.call(
            "POST", f"{API}/appointments",
            {"department_id": self.server.department_id, "external_id": f"app-{n}-{time.time_ns()}",
             "start": iso(start), "end": iso(start + timedelta(minutes=30)),
             "provider": {"id": "vet-1", "name": "Dr. Aino Lehto"},
             "client": {"id": f"c{n}", "name": f"Client {n}", "phone": "+358401234567"},
             "patient": {"id": patient_id or f"p{n}", "name": f"Pet {n}", "species": "dog"}},
        )  # fmt: skip
        assert status == 201, body
        return body

    def pending(self) -> list[dict[str, Any]]:
        status, body = self.server.call("GET", f"{API}/mobile/submissions?limit=500")
        assert status == 200, body
        return body["submissions"]


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def clinic(tmp_path_factory, receiver):
    server = LiveServer(
        tmp_path_factory.mktemp("staffapp"),
        free_port(),
        settings={
            "TELEVISIT__MOBILE__WEBHOOK_URL": receiver.url,
            "TELEVISIT__MOBILE__WEBHOOK_SECRET": "s3cret",
            "TELEVISIT__NOTIFY__POLL_SECONDS": "0.2",
        },
    )
    c = Clinic(server)
    c.start()
    try:
        status, dept = server.call(
            "POST", f"{API}/departments",
            {"name": "Small animals", "telemedicine_enabled": True, "default_language": "en",
             "time_zone": "Europe/Helsinki"},
        )  # fmt: skip
        assert status == 201, dept
        server.department_id = dept["id"]
        assert c.as_staff("demo.admin", "PUT", "/mobile/settings", {"enabled": True})[0] == 200
        now = datetime.now(UTC)
        for n in (1, 2, 3):
            c.push("clients", f"c{n}", {"name": f"Client {n}", "phone": "+358401234567"})
            c.push("patients", f"p{n}", {"client_id": f"c{n}", "name": f"Pet {n}",
                                         "species": "dog", "alerts": "bites" if n == 1 else ""})  # fmt: skip
            c.push("history", f"h{n}", {"patient_id": f"p{n}", "at": iso(now - timedelta(days=40)),
                                        "type": "diagnosis", "title": "Otitis", "text": f"history of pet {n}"})  # fmt: skip
        c.push("consultations", "k1", {"patient_id": "p1", "started_at": iso(now - timedelta(days=9)),
                                        "provider_name": "Dr. Lehto", "reason": "limping",
                                        "notes": [{"at": iso(now - timedelta(days=9)), "text": "rest for a week"}]})  # fmt: skip
        for code, name in ((GAUZE, "Gauze"), (SALINE, "Saline 0.9%"), (SYRINGE, "Syringe 5 ml")):
            c.push("stock", code, {"gtin": code, "name": name, "unit": "pcs"})
        # An hour ago, but never before the start of the department's day: from 00:00 to 01:00
        # in Helsinki (22:00-23:00 UTC) "an hour ago" was yesterday there, and the test that
        # looks for it under Today failed at that hour of every day.
        helsinki_midnight = datetime.now(ZoneInfo("Europe/Helsinki")).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        c.appointment(1, max(now - timedelta(hours=1), helsinki_midnight.astimezone(UTC)))
        c.appointment(2, now + timedelta(hours=20))
        c.appointment(3, now - timedelta(hours=20))
        yield c
    finally:
        server.stop()


def phone(browser, label: str):
    """A phone-sized context (its own IndexedDB and service worker: one device)."""
    context = browser.new_context(viewport=PHONE, locale="en-GB", service_workers="allow")
    context.label = label  # type: ignore[attr-defined]
    return context


def open_app(context, base: str):
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    label = getattr(context, "label", "")
    page.on("pageerror", lambda e: print(f"[{label}] page error: {e}"))
    page.on(
        "console",
        lambda m: print(f"[{label}] console {m.type}: {m.text}") if m.type == "error" else None,
    )
    page.goto(f"{base}/staff/")
    expect(page.locator("body")).not_to_have_attribute("data-view", "loading")
    return page


def sign_in(page, key: str, name: str) -> None:
    expect(page.locator("body")).to_have_attribute("data-view", "signin")
    page.get_by_label("Login key").fill(key.lower().replace("-", " "))
    page.get_by_label("Name of this device").fill(name)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("body")).to_have_attribute("data-view", "agenda")


def settled(page) -> None:
    """The app finished its start-up refresh."""
    page.wait_for_function(
        "() => window.staffApp && window.staffApp.ready && !window.staffApp.busy"
    )


def controlled(page) -> None:
    """The service worker controls the page (it then answers the shell from its cache)."""
    page.evaluate("navigator.serviceWorker.ready")
    if not page.evaluate("!!navigator.serviceWorker.controller"):
        page.reload()
    page.wait_for_function("() => !!navigator.serviceWorker.controller")


def write_note(page, patient: str, text: str) -> None:
    page.locator("#agenda li[data-appointment]", has_text=patient).click()
    expect(page.locator("body")).to_have_attribute("data-view", "appointment")
    page.locator("#add-note").click()
    page.get_by_label("Note", exact=True).fill(text)
    page.get_by_role("button", name="Save").click()
    expect(page.locator("body")).to_have_attribute("data-view", "appointment")
    expect(page.locator("[data-note]", has_text=text)).to_contain_text("Waiting to be sent")
    page.locator("a.back").click()


def scan(page, code: str, quantity: int) -> None:
    page.get_by_label("Barcode (GTIN)").fill(code)
    page.get_by_label("Quantity").fill(str(quantity))
    page.get_by_role("button", name="Add to inventory").click()
    expect(page.locator("#scan-item")).to_contain_text(f"Added: {quantity} ×")


def test_offline_day_on_two_phones(browser, clinic, receiver, screenshots):
    base = clinic.server.base
    first = phone(browser, "phone")
    page = open_app(first, base)
    sign_in(page, clinic.login_key(), "Pixel")
    agenda = page.locator("#agenda li[data-appointment]")
    expect(agenda).to_have_count(3)
    today = page.locator("section.day", has_text="Today").filter(has_text="Pet 1")
    expect(today).to_have_count(1)  # in the Helsinki department's today (the demo one is empty)
    expect(page.locator("#status")).to_contain_text("Updated")
    controlled(page)
    settled(page)
    # Chromium's own verdict on the manifest, icons and service worker: installable (but for
    # the test browser's private profile).
    cdp = first.new_cdp_session(page)
    errors = cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]
    assert [e["errorId"] for e in errors if e["errorId"] != "in-incognito"] == []
    page.screenshot(path=screenshots / "staff-agenda.png")

    # Offline: the reload's shell comes from the worker's cache, the data from IndexedDB.
    first.set_offline(True)
    page.reload()
    expect(agenda).to_have_count(3)
    expect(page.locator("#offline")).to_be_visible()
    expect(page.locator("#status")).to_contain_text("Offline")
    agenda.filter(has_text="Pet 1").click()
    expect(page.locator("#appointment")).to_contain_text("history of pet 1")
    expect(page.locator("#appointment")).to_contain_text("rest for a week")
    expect(page.locator("#appointment .alert")).to_contain_text("bites")
    expect(page.locator("#telemedicine")).to_contain_text("needs a connection")
    page.locator("a.back").click()
    write_note(page, "Pet 1", "Limping on the left hind leg")
    write_note(page, "Pet 2", "Owner asks about the diet")
    page.locator("[data-tab=scan]").click()
    for code, quantity in ((GAUZE, 10), (SALINE, 2), (SYRINGE, 50)):
        scan(page, code, quantity)
    expect(page.locator("#pending-count")).to_have_text("5")
    page.screenshot(path=screenshots / "staff-offline-pending.png")
    assert receiver.got == [] and clinic.pending() == []
    page.close()

    # The server restarts meanwhile; the phone comes back online and opens the app.
    clinic.server.stop()
    clinic.start()
    first.set_offline(False)
    page = open_app(first, base)
    settled(page)
    expect(page.locator("#pending-count")).to_be_hidden()
    events = poll(receiver.events, lambda e: len(e) >= 5, "five webhook deliveries")
    time.sleep(1.0)  # a duplicate would show up now
    events = receiver.events()
    assert len(events) == 5 and len({e["id"] for e in events}) == 5
    assert sorted(e["type"] for e in events) == ["note.saved"] * 2 + ["stock.scanned"] * 3
    assert sorted(e["scan"]["quantity"] for e in events if e["type"] == "stock.scanned") == [
        2,
        10,
        50,
    ]
    pulled = clinic.pending()
    assert sorted(s["id"] for s in pulled) == sorted(e["id"] for e in events)
    status, acked = clinic.server.call(
        "POST", f"{API}/mobile/submissions/ack", {"ids": [s["id"] for s in pulled]}
    )
    assert status == 200 and len(acked["acknowledged"]) == 5 and clinic.pending() == []

    # A second phone: it sees the note, edits it offline while the first phone edits it too.
    second = phone(browser, "tablet")
    other = open_app(second, base)
    sign_in(other, clinic.login_key(), "Tablet")
    settled(other)
    other.locator("#agenda li[data-appointment]", has_text="Pet 1").click()
    note = other.locator("[data-note]", has_text="Limping on the left hind leg")
    expect(note).to_contain_text("Pixel")
    second.set_offline(True)
    note.get_by_role("link", name="Edit").click()
    other.get_by_label("Note", exact=True).fill("Limping: tablet's version")
    other.get_by_role("button", name="Save").click()
    expect(other.locator("#pending-count")).to_have_text("1")

    page.locator("#agenda li[data-appointment]", has_text="Pet 1").click()
    host = page.get_by_role("link", name="Open telemedicine view")  # online: the host page
    expect(host).to_have_attribute("href", re.compile(r"^http://127\.0\.0\.1:\d+/h/"))
    page.locator("[data-note]", has_text="Limping").get_by_role("link", name="Edit").click()
    page.get_by_label("Note", exact=True).fill("Limping: phone's version")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("[data-note]", has_text="phone's version")).to_contain_text("Version 2")

    second.set_offline(False)
    other.evaluate("window.dispatchEvent(new Event('online'))")
    other.locator("[data-tab=pending]").click()
    conflict = other.locator("#pending-list li[data-state=conflict]")
    expect(conflict).to_contain_text("Changed on another device")
    other.screenshot(path=screenshots / "staff-conflict.png")
    conflict.get_by_role("link", name="Resolve").click()
    expect(other.locator("#conflict-theirs")).to_have_text("Limping: phone's version")
    expect(other.locator("#conflict-by")).to_contain_text("Pixel")
    other.get_by_role("button", name="Keep mine").click()
    expect(other.locator("#pending-list")).to_contain_text("Everything has been sent.")
    latest = poll(
        lambda: [e for e in receiver.events() if e.get("note", {}).get("version") == 3],
        bool, "the resolved note at the receiver",
    )  # fmt: skip
    assert latest[0]["note"]["text"] == "Limping: tablet's version"
    assert latest[0]["device"]["name"] == "Tablet"

    # The user signs the phone out from their profile: the phone is told so.
    status, mine = clinic.as_staff("demo.provider", "GET", "/mobile/devices")
    pixel = next(d for d in mine["devices"] if d["name"] == "Pixel")
    assert pixel["last_sync_at"] is not None
    assert clinic.as_staff("demo.provider", "DELETE", f"/mobile/devices/{pixel['id']}")[0] == 204
    page.locator("#refresh").click()
    expect(page.locator("body")).to_have_attribute("data-view", "signedout")
    expect(page.locator("#signedout-reason")).to_contain_text("signed out in Televisit")
    page.screenshot(path=screenshots / "staff-signed-out.png")

    # The organization turns the app off: no credentials, and the tablet says why it stops.
    clinic.as_staff("demo.admin", "PUT", "/mobile/settings", {"enabled": False})
    status, body = clinic.as_staff("demo.provider", "POST", "/mobile/login-key")
    assert status == 403 and body["type"].endswith("mobile-disabled")
    other.locator("#refresh").click()
    expect(other.locator("#blocked")).to_contain_text("turned off")
    clinic.as_staff("demo.admin", "PUT", "/mobile/settings", {"enabled": True})
    first.close()
    second.close()


def test_refused_items_stay_with_their_error_to_fix(browser, clinic, receiver):
    ghost = clinic.appointment(9, datetime.now(UTC) + timedelta(hours=2), patient_id="p-ghost")
    context = phone(browser, "fixer")
    # The login key from "Show login credentials" in the user's profile.
    profile = context.new_page()
    profile.goto(f"{clinic.server.base}/clinic/")
    clinic_sign_in(profile, "demo.provider", clinic.logins["demo.provider"])
    profile.wait_for_url("**/clinic/provider")
    profile.get_by_role("link", name="My profile").click()
    profile.get_by_role("button", name="Show login credentials").click()
    key = profile.locator("#login-key")
    expect(key).to_have_text(re.compile(r"^[0-9A-Z]{5}-[0-9A-Z]{5}$"))
    page = open_app(context, clinic.server.base)
    sign_in(page, key.inner_text(), "Fixer")
    settled(page)
    profile.reload()
    expect(profile.locator("#devices li[data-device]", has_text="Fixer")).to_contain_text(
        "last sync"
    )
    profile.close()

    # A patient the clinic software never pushed: the note is refused and kept.
    page.locator(f"#agenda li[data-appointment='{ghost['id']}']").click()
    expect(page.locator("#appointment")).to_contain_text("not on the device")
    page.locator("#add-note").click()
    page.get_by_label("Note", exact=True).fill("Seen in the waiting room")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("[data-note]", has_text="Seen in the waiting room")).to_be_visible()

    # What the form does not let through, as another client could send it.
    page.evaluate(
        """async () => {
            const o = window.staffApp.outbox;
            await o.queueScan({barcode: "4006381333932", quantity: 1});
            await o.queueScan({barcode: "96385074", quantity: -3});
            await o.queueNote({noteId: crypto.randomUUID(), patientId: "p2", appointmentId: null,
                               text: "x".repeat(4001), base: 0});
        }"""
    )
    page.evaluate("document.dispatchEvent(new CustomEvent('outboxchange'))")
    page.locator("[data-tab=pending]").click()
    refused = page.locator("#pending-list li[data-state=error]")
    expect(refused).to_have_count(4)
    expect(refused.nth(0)).to_contain_text("patient_id: no patient 'p-ghost'")
    expect(refused.nth(1)).to_contain_text("check digit")
    expect(refused.nth(2)).to_contain_text("greater than 0")
    expect(refused.nth(3)).to_contain_text("at most 4000 characters")

    # Still there after closing the app; the user fixes the barcode and drops the rest.
    page.close()
    page = open_app(context, clinic.server.base)
    settled(page)
    page.locator("[data-tab=pending]").click()
    refused = page.locator("#pending-list li[data-state=error]")
    expect(refused).to_have_count(4)
    refused.nth(1).get_by_role("link", name="Edit").click()
    expect(page.locator("#scan-error")).to_contain_text("check digit")
    page.get_by_label("Barcode (GTIN)").fill("40063813339")  # a digit short: the form says so
    page.get_by_role("button", name="Add to inventory").click()
    expect(page.locator("#scan-error")).to_have_text("Not a valid barcode: check the digits.")
    page.get_by_label("Barcode (GTIN)").fill(GAUZE)
    expect(page.locator("#scan-item")).to_have_text("Gauze (pcs)")
    page.get_by_role("button", name="Add to inventory").click()
    expect(refused).to_have_count(3)
    while refused.count():
        refused.first.get_by_role("button", name="Discard").click()
        page.wait_for_timeout(100)
    expect(page.locator("#pending-list")).to_contain_text("Everything has been sent.")
    page.select_option("#language", "fi")
    expect(page.locator("#pending-list")).to_contain_text("Kaikki on lähetetty.")
    expect(page.locator("[data-tab=agenda]")).to_have_text("Ajanvaraukset")
    fixed = poll(
        lambda: [e for e in receiver.events() if e.get("device", {}).get("name") == "Fixer"],
        bool, "the corrected scan at the receiver",
    )  # fmt: skip
    assert [e["scan"]["barcode"] for e in fixed] == [GAUZE]

    # The administrator sees the setting and the device, and can sign it out.
    admin = browser.new_context()
    settings = admin.new_page()
    settings.goto(f"{clinic.server.base}/clinic/")
    clinic_sign_in(settings, "demo.admin", clinic.logins["demo.admin"])
    settings.wait_for_url("**/clinic/provider")
    settings.goto(f"{clinic.server.base}/clinic/admin")
    expect(settings.get_by_label("Enable the staff mobile app")).to_be_checked()
    device = settings.locator("#mobile-devices li[data-device]", has_text="Fixer")
    device.get_by_role("button", name="Sign out device").click()
    expect(device).to_have_count(0)
    page.locator("#refresh").click()
    expect(page.locator("body")).to_have_attribute("data-view", "signedout")
    admin.close()
    context.close()
