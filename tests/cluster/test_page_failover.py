"""The visit page in Chromium survives its SFU worker being killed: the clinic's page and the
client's page, in a call on one of two workers, rejoin by themselves once the worker is
SIGKILLed (each asks POST /api/v1/join again and is sent to the worker the room was placed on
next), both decode video again, and the clinic saw "reconnecting", never the ended view."""

from __future__ import annotations

import os
import signal
import time

from playwright.sync_api import expect

from tests.web.helpers import inbound_video, poll
from tests.web.test_call import open_call

from .nodes import Node

WATCH = """() => {
  window.seen = [];
  const s = window.televisit.session;
  s.addEventListener("link", (e) => window.seen.push("link:" + e.detail.status));
  s.addEventListener("ended", () => window.seen.push("ended"));
}"""


def test_both_pages_come_back_after_their_worker_is_killed(browser, host: Node) -> None:
    appt = host.make_appointment(client_language="en")
    clinic, client = open_call(browser, appt)
    url = clinic.evaluate("window.televisit.session.join.signaling_url")
    assert client.evaluate("window.televisit.session.join.signaling_url") == url
    for page in (clinic, client):
        page.evaluate(WATCH)
    old_pcs = [page.evaluate_handle("window.televisit.session.pc") for page in (clinic, client)]

    os.kill(host.workers()[url]["pid"], signal.SIGKILL)
    at = time.monotonic()
    for label, page, old in (
        ("the clinic", clinic, old_pcs[0]),
        ("the client", client, old_pcs[1]),
    ):
        poll(
            lambda p=page, o=old: p.evaluate("o => window.televisit.session.pc !== o", o),
            bool,
            f"{label} to notice and rejoin",
            seconds=90,
        )
        # The new peer connection's counters start at zero.
        poll(
            lambda p=page: inbound_video(p),
            lambda v: bool(v) and v["framesDecoded"] >= 20 and v["frameWidth"] > 0,
            f"{label} to decode again after the failover",
            seconds=90,
        )
    print(f"both pages decode again {time.monotonic() - at:.2f} s after the SIGKILL")

    moved = clinic.evaluate("window.televisit.session.join.signaling_url")
    assert moved != url
    assert client.evaluate("window.televisit.session.join.signaling_url") == moved
    seen = clinic.evaluate("window.seen")
    assert "link:reconnecting" in seen and "ended" not in seen, seen
    expect(clinic.locator("body")).to_have_attribute("data-view", "room")
    expect(clinic.locator("body")).to_have_attribute("data-room", "active")
    clinic.context.close()
    client.context.close()
