"""A second device typing the client's PIN while the client is in the call (issue 12 item
10), in real Chromium: the device waits with a notice, the clinic's page asks "Another device
wants to join" with the client's name, and the clinic refuses (that device sees why) or lets
one in (the first device sees it was replaced)."""

from __future__ import annotations

from playwright.sync_api import expect

from .helpers import DESKTOP, PHONE, assert_decoding, open_page, strings
from .test_call import join_call

CLINIC_LANG = "fi"  # the department's default (live_server's department)
CLIENT_LANG = "sv"


def by_pin(browser, live_server, pin: str, label: str):
    page = open_page(
        browser, f"{live_server.base}/pin", viewport=PHONE, locale="sv-SE", label=label
    )
    page.locator("#pin").fill(pin)
    page.locator("#pin-submit").click()
    join_call(page)
    return page


def test_the_clinic_decides_about_a_second_device(browser, live_server, screenshots):
    appt = live_server.make_appointment(client_language=CLIENT_LANG, client="Maija Virtanen")
    pin = appt["telemedicine"]["pin"]
    fi, sv = strings(CLINIC_LANG), strings(CLIENT_LANG)
    clinic = open_page(browser, appt["telemedicine"]["host_url"], viewport=DESKTOP, label="clinic")
    join_call(clinic)
    client = by_pin(browser, live_server, pin, "client")
    assert_decoding(clinic, "the clinic")

    # Someone else types the PIN: they wait, and the clinic is asked.
    other = by_pin(browser, live_server, pin, "other")
    expect(other.locator("#stream-notice")).to_have_text(sv["admit.waiting"])
    dialog = clinic.locator("#admit-dialog")
    expect(dialog).to_be_visible()
    expect(clinic.locator("#admit-text")).to_have_text(
        fi["admit.text"].format(name="Maija Virtanen")
    )
    clinic.screenshot(path=screenshots / "admit-dialog-clinic-desktop.png")
    clinic.locator("#admit-refuse").click()
    expect(dialog).to_be_hidden()
    expect(other.locator("body")).to_have_attribute("data-view", "error")
    expect(other.locator("#error-title")).to_have_text(sv["error.not_admitted_title"])
    other.screenshot(path=screenshots / "admit-refused-phone.png")
    # The client kept its seat and its call.
    expect(client.locator("body")).to_have_attribute("data-view", "room")
    assert_decoding(clinic, "the clinic, after the refusal")

    # The client's new phone: the clinic lets it in and the old device is told.
    new_phone = by_pin(browser, live_server, pin, "new phone")
    expect(dialog).to_be_visible()
    clinic.locator("#admit-allow").click()
    expect(new_phone.locator("body")).to_have_attribute("data-room", "active")
    expect(client.locator("body")).to_have_attribute("data-view", "error")
    expect(client.locator("#error-title")).to_have_text(sv["error.replaced_title"])
    assert_decoding(new_phone, "the admitted device")
    for page in (clinic, client, other, new_phone):
        page.context.close()
