"""The whole consultation in real Chromium through `televisit serve` and its SFU: the clinic
opens its host link on a desktop, the client its link on a phone-sized screen. The first one
waits (the timer ticks), both then decode each other's video, chat both ways (as text, with
the unread count and "copy chat"), the client's connection drops and comes back by itself,
the clinic hangs up and both see the ended view, each in its own language."""

from __future__ import annotations

from playwright.sync_api import expect

from .helpers import DESKTOP, PHONE, assert_decoding, open_page, poll, strings

CLINIC_LANG = "fi"  # the department's default (live_server's department)
CLIENT_LANG = "sv"  # the appointment's client language
CLIPBOARD = ["clipboard-read", "clipboard-write"]


def join_call(page) -> None:
    expect(page.locator("body")).to_have_attribute("data-view", "prejoin")
    # The camera preview runs before joining.
    poll(
        lambda: page.evaluate("document.getElementById('preview-video').videoWidth"),
        lambda width: width > 0,
        "the camera preview",
    )
    page.locator("#join-button").click()
    expect(page.locator("body")).to_have_attribute("data-view", "room")


def open_call(browser, appt: dict) -> tuple:
    """The clinic (desktop) and the client (phone) in the appointment's call, both decoding."""
    tele = appt["telemedicine"]
    clinic = open_page(browser, tele["host_url"], viewport=DESKTOP, label="clinic")
    join_call(clinic)
    client = open_page(browser, tele["join_url"], viewport=PHONE, label="client")
    join_call(client)
    assert_decoding(clinic, "the clinic")
    assert_decoding(client, "the client")
    return clinic, client


def timer_seconds(page) -> int:
    minutes, seconds = page.locator("#waiting-timer").inner_text().split(":")[-2:]
    return int(minutes) * 60 + int(seconds)


# The active flag of each simulcast encoding of the page's video sender, by rid.
ENCODINGS_JS = """() => {
  const pc = window.televisit.session.pc;
  const sender = pc.getSenders().find((s) => s.track && s.track.kind === "video");
  return Object.fromEntries(sender.getParameters().encodings.map((e) => [e.rid, e.active]));
}"""


def test_consultation(browser, live_server, screenshots):
    appt = live_server.make_appointment(
        client_language=CLIENT_LANG, client="Maija Virtanen", patient="Musti"
    )
    fi, sv = strings(CLINIC_LANG), strings(CLIENT_LANG)

    # --- the clinic opens the room first and waits ------------------------------------
    clinic = open_page(
        browser, appt["telemedicine"]["host_url"], viewport=DESKTOP, permissions=CLIPBOARD,
        label="clinic",
    )  # fmt: skip
    expect(clinic.locator("#appointment")).to_be_visible()
    expect(clinic.locator("#appt-client")).to_have_text("Maija Virtanen")
    expect(clinic.locator("#appt-patient")).to_have_text("Musti (dog)")
    expect(clinic.locator("html")).to_have_attribute("lang", CLINIC_LANG)
    join_call(clinic)
    expect(clinic.locator("body")).to_have_attribute("data-room", "waiting")
    waiting = clinic.locator("#waiting")
    expect(waiting).to_be_visible()
    expect(clinic.locator("#waiting-title")).to_have_text(
        fi["waiting.for_client"].format(name="Maija Virtanen")
    )
    first = timer_seconds(clinic)
    poll(lambda: timer_seconds(clinic), lambda s: s >= first + 2, "the waiting timer to tick")
    expect(clinic.locator("#self video")).to_be_visible()
    clinic.screenshot(path=screenshots / "waiting-clinic-desktop.png")

    # --- the client joins from a phone -----------------------------------------------
    client = open_page(
        browser, appt["telemedicine"]["join_url"], viewport=PHONE, permissions=CLIPBOARD,
        label="client",
    )  # fmt: skip
    expect(client.locator("html")).to_have_attribute("lang", CLIENT_LANG)
    expect(client.locator("#appointment")).to_be_hidden()  # the header is the clinic's
    join_call(client)
    for page in (clinic, client):
        expect(page.locator("body")).to_have_attribute("data-room", "active")
        expect(page.locator("#waiting")).to_be_hidden()
        expect(page.locator("#reconnecting")).to_be_hidden()
    clinic_video = assert_decoding(clinic, "the clinic")
    client_video = assert_decoding(client, "the client")
    # The fake camera is 640x480; both directions arrive at a real frame size.
    assert clinic_video["frameWidth"] >= 320 and client_video["frameWidth"] >= 320
    for page in (clinic, client):
        expect(page.locator("#remote .tile:not(.no-video) video")).to_have_count(1)
        expect(page.locator("#quality")).not_to_have_attribute("data-level", "unknown")
    # publish_layers (the SFU names the simulcast layers some subscriber needs): the page turns
    # the others off, and on again.
    layers = sorted(clinic.evaluate(ENCODINGS_JS))
    assert "f" in layers and "h" in layers, layers
    for rids in (["h"], layers):
        clinic.evaluate(
            "(rids) => window.televisit.session._onMessage({type: 'publish_layers', rids})", rids
        )
        poll(
            lambda: clinic.evaluate(ENCODINGS_JS),
            lambda active, rids=rids: active == {rid: rid in rids for rid in layers},
            f"the clinic's simulcast layers {rids} to be the active ones",
        )
    clinic.locator("#quality-button").click()
    expect(clinic.locator("#q-rtt")).to_contain_text("ms")
    expect(clinic.locator("#q-down")).to_contain_text("bit/s")
    clinic.screenshot(path=screenshots / "in-call-clinic-desktop.png")
    client.screenshot(path=screenshots / "in-call-client-phone.png")

    # --- chat both ways, rendered as text -----------------------------------------------
    hello = "Hej! Musti äter inte. <b>inte fetstil</b> & <img src=x onerror=alert(1)>"
    client.get_by_role("button", name=sv["controls.chat"]).click()
    expect(client.locator("#chat")).to_be_visible()
    client.get_by_role("textbox", name=sv["chat.input"]).fill(hello)
    client.get_by_role("textbox", name=sv["chat.input"]).press("Enter")
    mine = client.locator("#chat-log .msg.mine")
    expect(mine).to_have_count(1)
    expect(mine.locator(".text")).to_have_text(hello)
    expect(mine.locator(".who")).to_have_text(sv["chat.you"])

    badge = clinic.locator("#unread")
    expect(badge).to_have_text("1")
    expect(clinic.locator("#btn-chat")).to_have_attribute(
        "aria-label", fi["controls.chat_unread"].format(count=1)
    )
    clinic.locator("#btn-chat").click()
    expect(badge).to_be_hidden()
    theirs = clinic.locator("#chat-log .msg:not(.mine)")
    expect(theirs.locator(".text")).to_have_text(hello)
    expect(theirs.locator(".who")).to_have_text("Maija Virtanen")
    expect(theirs.locator("time")).to_have_text(  # HH:MM (Finnish style uses a dot)
        __import__("re").compile(r"^\d{2}[.:]\d{2}$")
    )
    assert clinic.locator("#chat-log b, #chat-log img").count() == 0  # never parsed as HTML
    expect(clinic.locator(".chat-note")).to_have_text(fi["chat.note"])

    reply = "Tervetuloa! Amoxicillin 250 mg\nkaksi kertaa päivässä"
    clinic.get_by_role("textbox", name=fi["chat.input"]).fill(reply)
    clinic.get_by_role("button", name=fi["chat.send"]).click()
    expect(client.locator("#chat-log .msg:not(.mine) .text")).to_have_text(reply)
    expect(client.locator("#chat-log .msg:not(.mine) .who")).to_have_text("Dr. Aino Lehto")
    clinic.screenshot(path=screenshots / "in-call-chat-clinic-desktop.png")
    client.screenshot(path=screenshots / "in-call-chat-client-phone.png")

    clinic.get_by_role("button", name=fi["chat.copy"]).click()
    expect(clinic.locator("#chat-status")).to_have_text(fi["chat.copied"])
    copied = clinic.evaluate("navigator.clipboard.readText()")
    assert "Maija Virtanen: " + hello in copied and reply in copied, copied
    client.locator("#chat-close").click()
    expect(client.locator("#chat")).to_be_hidden()

    # --- mute and camera off are real track switches ----------------------------------
    client.locator("#btn-mic").click()
    expect(client.locator("#btn-mic")).to_have_attribute("aria-pressed", "true")
    expect(client.locator("#btn-mic")).to_have_attribute("aria-label", sv["controls.unmute"])
    assert client.evaluate(
        "window.televisit.session.media.track('audio').enabled"
    ) is False  # fmt: skip
    client.locator("#btn-mic").click()
    expect(client.locator("#btn-mic")).to_have_attribute("aria-pressed", "false")

    # --- the client's connection drops; the page rejoins by itself ---------------------
    old_pc = client.evaluate_handle("window.televisit.session.pc")
    client.evaluate("window.televisit.session.ws.close(4999, 'test drop')")
    expect(clinic.locator("#reconnecting")).to_be_visible()
    expect(clinic.locator("#reconnecting-text")).to_have_text(
        fi["room.other_reconnecting"].format(name="Maija Virtanen")
    )
    clinic.screenshot(path=screenshots / "reconnecting-clinic-desktop.png")
    expect(clinic.locator("#reconnecting")).to_be_hidden(timeout=45_000)
    expect(client.locator("#reconnecting")).to_be_hidden(timeout=45_000)
    assert client.evaluate("(old) => window.televisit.session.pc !== old", old_pc)
    assert_decoding(client, "the client after rejoining")
    assert_decoding(clinic, "the clinic after the client rejoined")
    # The chat so far stays on the page.
    expect(client.locator("#chat-log .msg")).to_have_count(2)

    # --- the clinic hangs up: both see the end -------------------------------------------
    hangup = clinic.locator("#btn-hangup")
    expect(hangup).to_have_attribute("aria-label", fi["controls.hangup"])
    hangup.click()
    dialog = clinic.get_by_role("dialog", name=fi["hangup.title"])
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name=fi["hangup.confirm"]).click()
    for page, s in ((clinic, fi), (client, sv)):
        expect(page.locator("body")).to_have_attribute("data-view", "ended")
        expect(page.locator("#view-ended h1")).to_have_text(s["ended.title"])
    expect(clinic.locator("#ended-reason")).to_have_text(fi["ended.by_you"])
    expect(client.locator("#ended-reason")).to_have_text(
        sv["ended.by_other"].format(name="Dr. Aino Lehto")
    )
    # The camera is released and the chat can still be copied from the ended view.
    assert client.evaluate(
        "window.televisit.session.media.stream.getTracks().every((t) => t.readyState === 'ended')"
    )  # fmt: skip
    expect(client.locator("#ended-chat")).to_be_visible()
    client.screenshot(path=screenshots / "ended-client-phone.png")
    clinic.screenshot(path=screenshots / "ended-clinic-desktop.png")
    clinic.context.close()
    client.context.close()


def test_client_without_camera_or_microphone_still_joins(
    browser, browser_without_media_permission, live_server, screenshots
):
    """A client whose browser blocks the devices joins anyway: sees and hears the clinic,
    chats, and the clinic sees who is there without video."""
    appt = live_server.make_appointment(client_language="en", client="Pekka Blocked")
    en, fi = strings("en"), strings(CLINIC_LANG)
    clinic = open_page(browser, appt["telemedicine"]["host_url"], label="clinic")
    join_call(clinic)
    client = open_page(
        browser_without_media_permission, appt["telemedicine"]["join_url"], viewport=PHONE,
        label="client",
    )  # fmt: skip
    expect(client.locator("#media-problem-title")).to_have_text(en["media.denied_title"])
    client.get_by_role("button", name=en["prejoin.join"]).click()
    expect(clinic.locator("body")).to_have_attribute("data-room", "active")
    assert_decoding(client, "the client without devices")
    expect(client.locator("#btn-mic")).to_be_disabled()
    expect(client.locator("#btn-cam")).to_be_disabled()
    expect(clinic.locator("#remote-no-video")).to_have_text(
        fi["room.no_video"].format(name="Pekka Blocked")
    )
    client.get_by_role("button", name=en["controls.chat"]).click()
    client.get_by_role("textbox", name=en["chat.input"]).fill("No camera here, can you hear me?")
    client.get_by_role("textbox", name=en["chat.input"]).press("Enter")
    expect(clinic.locator("#unread")).to_have_text("1")
    clinic.screenshot(path=screenshots / "in-call-client-without-video-clinic.png")
    # On a phone the chat covers the call; close it to reach the controls.
    client.get_by_role("button", name=en["chat.close"]).click()
    client.locator("#btn-hangup").click()
    client.get_by_role("dialog").get_by_role("button", name=en["hangup.confirm"]).click()
    expect(client.locator("#ended-reason")).to_have_text(en["ended.by_you"])
    expect(clinic.locator("#ended-reason")).to_have_text(
        fi["ended.by_other"].format(name="Pekka Blocked")
    )
    clinic.context.close()
    client.context.close()


def test_same_link_in_a_second_tab_takes_over(browser, live_server):
    """Opening the link again elsewhere moves the call there; the first tab says so and can
    take it back."""
    appt = live_server.make_appointment(client_language="en")
    fi = strings(CLINIC_LANG)
    first = open_page(browser, appt["telemedicine"]["host_url"], label="tab1")
    join_call(first)
    expect(first.locator("body")).to_have_attribute("data-room", "waiting")
    second = first.context.new_page()
    second.goto(appt["telemedicine"]["host_url"])
    join_call(second)
    expect(second.locator("body")).to_have_attribute("data-room", "waiting")
    expect(first.locator("#error-title")).to_have_text(fi["error.replaced_title"])
    take_back = first.get_by_role("button", name=fi["error.use_here"])
    take_back.click()
    expect(first.locator("body")).to_have_attribute("data-view", "room")
    expect(first.locator("#waiting")).to_be_visible()
    expect(second.locator("#error-title")).to_have_text(fi["error.replaced_title"])
    first.context.close()
