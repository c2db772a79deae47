"""The client on a phone: the clinic's picture is shown whole (a wound or an X-ray is not
cropped) and a tap fills the screen; a reload mid-call rejoins by itself within the reconnect
grace when the browser already grants camera and microphone, and shows the Join screen when
it does not or when the grace is over."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from .conftest import serve
from .helpers import DESKTOP, PHONE, assert_decoding, open_page
from .server import LiveServer
from .test_call import join_call

GRACE_SECONDS = 8
MEDIA = ["camera", "microphone"]

# What of the remote frame the video element shows, by its computed object-fit: the share of
# the frame's width and height inside the element's box, and the box inside the viewport.
SHOWN = """() => {
  const video = document.querySelector("#remote .tile:not(.no-video) video");
  const box = video.getBoundingClientRect();
  const fit = getComputedStyle(video).objectFit;
  const [w, h] = [video.videoWidth, video.videoHeight];
  const scale = fit === "cover" ? Math.max(box.width / w, box.height / h)
    : Math.min(box.width / w, box.height / h);
  return {
    fit, frame: [w, h], box: [box.left, box.top, box.right, box.bottom],
    viewport: [innerWidth, innerHeight],
    shownWidth: Math.min(1, box.width / (w * scale)),
    shownHeight: Math.min(1, box.height / (h * scale)),
    boxWidthUsed: (w * scale) / box.width,
  };
}"""


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from serve(
        tmp_path_factory, {"TELEVISIT__MEDIA__RECONNECT_GRACE_SECONDS": str(GRACE_SECONDS)}
    )


def call(browser, live_server, client_permissions):
    appt = live_server.make_appointment(client_language="en")
    clinic = open_page(browser, appt["telemedicine"]["host_url"], viewport=DESKTOP, label="clinic")
    join_call(clinic)
    client = open_page(
        browser,
        appt["telemedicine"]["short_url"],
        viewport=PHONE,
        permissions=client_permissions,
        label="client",
    )
    join_call(client)
    assert_decoding(client, "the client")
    return clinic, client


def test_the_whole_picture_on_a_phone_and_a_tap_fills(browser, live_server, screenshots):
    clinic, client = call(browser, live_server, MEDIA)
    shown = client.evaluate(SHOWN)
    assert shown["fit"] == "contain", shown
    # Every pixel of the frame is inside the element, and the element inside the screen.
    assert shown["shownWidth"] == 1 and shown["shownHeight"] == 1, shown
    left, top, right, bottom = shown["box"]
    assert left >= 0 and top >= 0 and right <= PHONE["width"] and bottom <= PHONE["height"]
    # ...at the largest size that fits: the frame spans the phone's width.
    assert shown["boxWidthUsed"] > 0.99, shown
    client.screenshot(path=screenshots / "phone-whole-picture.png")

    tile = client.locator("#remote .tile:not(.no-video)")
    tile.click()
    expect(tile).to_have_class("tile fill")
    filled = client.evaluate(SHOWN)
    # A 4:3 frame filling a portrait phone is cropped at its sides.
    assert filled["fit"] == "cover" and filled["shownWidth"] < 0.9, filled
    client.screenshot(path=screenshots / "phone-filled.png")
    tile.click()
    assert client.evaluate(SHOWN)["fit"] == "contain"
    for page in (clinic, client):
        page.context.close()


def test_a_reload_mid_call_rejoins_by_itself(browser, live_server):
    clinic, client = call(browser, live_server, MEDIA)
    client.reload()
    # No Join click: straight back into the call, both decoding again.
    expect(client.locator("body")).to_have_attribute("data-view", "room")
    expect(client.locator("body")).to_have_attribute("data-room", "active")
    assert_decoding(client, "the reloaded client")
    expect(clinic.locator("body")).to_have_attribute("data-room", "active")
    assert_decoding(clinic, "the clinic after the reload")

    # Away past the grace, then the link again: the Join screen, as for a new visit.
    url = client.url
    client.goto("about:blank")
    time.sleep(GRACE_SECONDS + 1)
    client.goto(url)
    expect(client.locator("body")).to_have_attribute("data-view", "prejoin")
    time.sleep(2)
    expect(client.locator("body")).to_have_attribute("data-view", "prejoin")
    for page in (clinic, client):
        page.context.close()


def test_a_reload_asks_again_without_a_standing_camera_permission(browser, live_server):
    clinic, client = call(browser, live_server, [])
    assert not client.evaluate(
        "async () => (await navigator.permissions.query({name: 'camera'})).state === 'granted'"
    )
    client.reload()
    expect(client.locator("body")).to_have_attribute("data-view", "prejoin")
    time.sleep(2)
    expect(client.locator("body")).to_have_attribute("data-view", "prejoin")
    join_call(client)  # one click and the call goes on
    assert_decoding(client, "the client after Join")
    for page in (clinic, client):
        page.context.close()
