"""The client closes the call page and stays away past the reconnect grace: the clinic's page
sees the client leave (the server re-offers with the client's m-lines inactive, which Chromium
must accept), and when the client opens the link again both see each other's video anew."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from .conftest import serve
from .helpers import PHONE, assert_decoding, open_page, poll
from .server import LiveServer
from .test_call import join_call, open_call

GRACE_SECONDS = 2


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from serve(
        tmp_path_factory, {"TELEVISIT__MEDIA__RECONNECT_GRACE_SECONDS": str(GRACE_SECONDS)}
    )


def remote_tiles(page) -> int:
    return int(page.locator("#remote").get_attribute("data-count") or 0)


def test_client_who_left_comes_back_with_video(browser, live_server):
    appt = live_server.make_appointment(client_language="en")
    clinic, client = open_call(browser, appt)
    pc = clinic.evaluate_handle("window.televisit.session.pc")

    # The client goes away for longer than the grace: the clinic waits again, and its
    # peer connection took the server's re-offer (the client's m-lines inactive).
    client.context.close()
    expect(clinic.locator("body")).to_have_attribute("data-room", "waiting", timeout=30_000)
    poll(
        lambda: clinic.evaluate(
            """pc => pc.getTransceivers().filter(t => t.currentDirection === 'inactive').length""",
            pc,
        ),
        lambda inactive: inactive == 2,
        "the client's two m-lines to go inactive at the clinic",
    )
    assert clinic.evaluate("pc => pc.signalingState", pc) == "stable"
    poll(lambda: remote_tiles(clinic), lambda n: n == 0, "the client's tile to go dark")

    # The client opens the link again: same peer connection at the clinic, new m-lines.
    back = open_page(browser, appt["telemedicine"]["join_url"], viewport=PHONE, label="back")
    join_call(back)
    expect(clinic.locator("body")).to_have_attribute("data-room", "active", timeout=30_000)
    assert clinic.evaluate("pc => pc === window.televisit.session.pc", pc)
    assert_decoding(back, "the returning client")
    poll(lambda: remote_tiles(clinic), lambda n: n == 1, "one live remote tile at the clinic")
    before = clinic.evaluate(
        """pc => pc.getReceivers().filter(r => r.track.kind === 'video' && !r.track.muted
               && r.track.readyState === 'live').length""",
        pc,
    )
    assert before == 1
    clinic.context.close()
    back.context.close()
