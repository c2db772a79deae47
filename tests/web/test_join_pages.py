"""Real Chromium against `televisit serve`: joining by PIN, links that no longer work, and a
camera the browser refuses. Every message is checked in the language it should be in."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from playwright.sync_api import expect

from .helpers import PHONE, open_page, strings
from .server import CLINIC, TIME_ZONE


def error_card(page, lang: str, kind: str, clinic_known: bool = True) -> None:
    """The error view in ``lang``; where the link named its appointment, the page says whom
    to contact: the clinic's name and phone (a tel: link)."""
    s = strings(lang)
    expect(page.locator("body")).to_have_attribute("data-view", "error")
    expect(page.locator("html")).to_have_attribute("lang", lang)
    expect(page.locator("#error-title")).to_have_text(s[f"error.{kind}_title"])
    if not clinic_known:
        expect(page.locator("#error-hint")).to_have_text(s["error.hint_guest"])
        expect(page.locator("#error-clinic")).to_be_hidden()
        return
    expect(page.locator("#error-hint")).to_have_text(s["error.hint_guest_clinic"])
    expect(page.locator("#error-clinic")).to_be_visible()
    expect(page.locator("#error-clinic-name")).to_have_text(CLINIC["name"])
    phone = page.locator("#error-clinic-phone")
    expect(phone).to_have_text(CLINIC["phone"])
    expect(phone).to_have_attribute("href", f"tel:{CLINIC['phone']}")


def test_join_by_pin(browser, live_server, screenshots):
    appt = live_server.make_appointment(client_language="sv", client="Sven Berg")
    pin = appt["telemedicine"]["pin"]
    # A Finnish browser: before the PIN is known, the page follows the browser.
    page = open_page(
        browser, f"{live_server.base}/pin", viewport=PHONE, locale="fi-FI", label="pin"
    )
    fi = strings("fi")
    expect(page.locator("h1").first).to_have_text(fi["pin.title"])
    pin_box = page.get_by_label(fi["pin.label"], exact=True)

    pin_box.fill("12ab")
    page.get_by_role("button", name=fi["pin.submit"]).click()
    expect(page.locator("#pin-error")).to_have_text(fi["pin.invalid"])
    expect(pin_box).to_have_attribute("aria-invalid", "true")

    wrong = "0" * len(pin) if pin != "0" * len(pin) else "1" * len(pin)
    pin_box.fill(wrong)
    page.get_by_role("button", name=fi["pin.submit"]).click()
    expect(page.locator("#pin-error")).to_have_text(fi["pin.not_found"])
    page.screenshot(path=screenshots / "pin-wrong-phone.png")

    # Spaces as printed in an SMS are fine.
    pin_box.fill(f"{pin[:3]} {pin[3:6]} {pin[6:]}")
    page.get_by_role("button", name=fi["pin.submit"]).click()
    sv = strings("sv")
    expect(page.locator("body")).to_have_attribute("data-view", "prejoin")
    expect(page.locator("html")).to_have_attribute("lang", "sv")
    expect(page.locator("#prejoin-title")).to_have_text(sv["prejoin.title"])
    # The address became the client's link, so a reload rejoins without the PIN.
    assert re.search(r"/j/[\w.-]+$", page.url), page.url
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-view", "prejoin")
    page.context.close()


def test_pin_typed_on_any_keypad(browser, live_server):
    """The page takes what the server reads as a PIN (pins.typed_pin): an Arabic-Indic
    keypad's digits with dashes, and full-width digits each followed by a space (longer than
    the 20 characters the box once held)."""
    for label, spell in (
        ("arabic", lambda d: "-".join(chr(0x660 + int(c)) for c in d)),
        ("fullwidth", lambda d: " ".join(chr(0xFF10 + int(c)) for c in d)),
    ):
        pin = live_server.make_appointment(client_language="fi")["telemedicine"]["pin"]
        page = open_page(
            browser, f"{live_server.base}/pin", viewport=PHONE, locale="fi-FI", label=label
        )
        fi = strings("fi")
        page.get_by_label(fi["pin.label"], exact=True).fill(spell(pin))
        page.get_by_role("button", name=fi["pin.submit"]).click()
        expect(page.locator("body")).to_have_attribute("data-view", "prejoin")
        page.context.close()


def test_cancelled_link_in_the_clients_language(browser, live_server, screenshots):
    appt = live_server.make_appointment(client_language="fi")
    live_server.cancel(appt["id"])
    # The SMS's short link: resolved on the server, it says the same as the long one.
    page = open_page(browser, appt["telemedicine"]["short_url"], label="cancelled")
    error_card(page, "fi", "cancelled")
    expect(page.locator("#error-text")).to_have_text(strings("fi")["error.cancelled_text"])
    expect(page.locator("#error-retry")).to_be_hidden()
    page.screenshot(path=screenshots / "link-cancelled.png")
    page.context.close()


def test_expired_link_in_the_clients_language(browser, live_server, screenshots):
    # Over well past the room's grace after the end: the link's token has expired.
    appt = live_server.make_appointment(
        client_language="fi", start=datetime.now(UTC) - timedelta(hours=4)
    )
    page = open_page(browser, appt["telemedicine"]["join_url"], label="expired")
    error_card(page, "fi", "expired")
    expect(page.locator("#error-text")).to_have_text(strings("fi")["error.expired_text"])
    expect(page.locator("#error-retry")).to_be_hidden()
    page.screenshot(path=screenshots / "link-expired.png")
    page.context.close()


def test_room_not_open_yet_says_when(browser, live_server):
    start = datetime.now(UTC) + timedelta(days=1)
    appt = live_server.make_appointment(client_language="sv", start=start)
    page = open_page(
        browser, appt["telemedicine"]["join_url"], label="early", timezone_id="America/New_York"
    )
    error_card(page, "sv", "not_open")
    text = page.locator("#error-text").inner_text()
    # The clinic's local time (pins.early_minutes = 60 before the start), named with its zone
    # because this browser's clock is in another zone.
    opens = (start - timedelta(hours=1)).astimezone(ZoneInfo(TIME_ZONE))
    assert re.search(rf"{opens.hour:02d}[.:]{opens.minute:02d}", text), text
    assert re.search(r"EET|EEST|UTC\+[23]|GMT\+[23]|\+0[23]", text), text
    expect(page.locator("#error-retry")).to_be_visible()
    page.context.close()


def test_broken_link(browser, live_server):
    page = open_page(browser, f"{live_server.base}/j/not-a-real-token", locale="sv-SE", label="bad")
    error_card(page, "sv", "invalid", clinic_known=False)
    page.context.close()


def test_host_link_errors_point_to_the_clinic_software(browser, live_server):
    appt = live_server.make_appointment(client_language="en")
    live_server.cancel(appt["id"])
    page = open_page(browser, appt["telemedicine"]["host_url"], label="host-cancelled")
    expect(page.locator("#error-hint")).to_have_text(strings("fi")["error.hint_host"])
    page.context.close()


def test_denied_camera_is_explained(browser_without_media_permission, live_server, screenshots):
    appt = live_server.make_appointment(client_language="en")
    page = open_page(
        browser_without_media_permission, appt["telemedicine"]["join_url"], label="denied"
    )
    en = strings("en")
    expect(page.locator("body")).to_have_attribute("data-view", "prejoin")
    problem = page.locator("#media-problem")
    expect(problem).to_be_visible()
    expect(page.locator("#media-problem-title")).to_have_text(en["media.denied_title"])
    expect(page.locator("#media-problem-text")).to_have_text(en["media.denied_text"])
    expect(page.get_by_role("button", name=en["prejoin.retry"])).to_be_visible()
    # No silent black box: the preview says the camera is off, the toggles are disabled.
    expect(page.locator("#preview-empty")).to_be_visible()
    expect(page.locator("#pre-cam")).to_be_disabled()
    expect(page.get_by_role("button", name=en["prejoin.join"])).to_be_enabled()
    page.screenshot(path=screenshots / "prejoin-camera-denied.png")
    page.context.close()


# Each control's accessible name: aria-label, its <label>, or its own text.
UNNAMED_CONTROLS = """() => [...document.querySelectorAll(
    "button, select, input, textarea, [role=meter], [role=dialog], nav, aside, ol")]
  .filter((el) => !(el.getAttribute("aria-label") || "").trim()
    && !(el.labels && [...el.labels].some((l) => l.textContent.trim()))
    && !(el.getAttribute("aria-labelledby"))
    && !(el.tagName === "BUTTON" && el.textContent.trim()))
  .map((el) => el.id || el.outerHTML.slice(0, 80))"""


def test_every_control_is_labelled_in_every_language(browser, live_server):
    appt = live_server.make_appointment(client_language="en")
    page = open_page(browser, appt["telemedicine"]["host_url"], label="a11y")
    expect(page.locator("body")).to_have_attribute("data-view", "prejoin")
    for lang in ("fi", "sv", "en"):
        page.get_by_role(
            "combobox", name=strings(page.locator("html").get_attribute("lang"))["app.language"]
        ).select_option(lang)
        expect(page.locator("html")).to_have_attribute("lang", lang)
        s = strings(lang)
        assert page.evaluate(UNNAMED_CONTROLS) == []
        # Labels follow the language, including ones set by scripts.
        expect(page.locator("#btn-hangup")).to_have_attribute("aria-label", s["controls.hangup"])
        expect(page.locator("#pre-mic")).to_have_attribute("aria-label", s["controls.mute"])
        expect(page.locator("#prejoin-who")).to_contain_text("Maija Virtanen")
        expect(page.locator("#join-button")).to_have_text(s["prejoin.join"])
    page.context.close()


def test_missing_devices_are_explained(browser_without_devices, live_server):
    appt = live_server.make_appointment(client_language="sv")
    page = open_page(browser_without_devices, appt["telemedicine"]["join_url"], label="nodevice")
    sv = strings("sv")
    expect(page.locator("#media-problem-title")).to_have_text(sv["media.missing_title"])
    expect(page.locator("#media-problem-text")).to_have_text(sv["media.missing_both_text"])
    # No empty device pickers, and joining (to see, hear and chat) stays possible.
    expect(page.locator("#camera-select")).to_be_hidden()
    expect(page.locator("#mic-select")).to_be_hidden()
    expect(page.get_by_role("button", name=sv["prejoin.join"])).to_be_enabled()
    page.context.close()
