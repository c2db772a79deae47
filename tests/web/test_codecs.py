"""Every device gets the call (issue 11), in real Chromium through `televisit serve`.

An H.264-only device is a Chromium page whose RTCPeerConnection is wrapped (see
../shared/notes/testing-webrtc-here.md, "An H.264-only browser"): every video transceiver
prefers H.264 only, and VP8/VP9/AV1 leave every SDP it handles. The clinic's page is a default
Chromium (VP8 first). Both directions decode video and audio for 30 s with no reconnect, each
way round; with a third member, a native app that sends only VP8, everyone decodes everyone,
the app's video is transcoded exactly once, and the transcoder stops when the H.264-only
member leaves.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from .devices import AppThread, app_token, h264_only_page, inbound, join_call, live
from .helpers import DESKTOP, open_page, poll

HOLD_SECONDS = 30.0


def metrics(server) -> dict[str, float]:
    return server.sfu_metrics()


def decoded(stream: dict[str, Any]) -> int:
    return stream["frames" if stream["kind"] == "video" else "samples"]


def hold(pages: dict[str, Any], streams: int) -> None:
    """For HOLD_SECONDS every page decodes ``streams`` videos and audios, on one peer
    connection, with no notice that a stream cannot be shown (growth is awaited with a
    generous bound afterwards: a loaded machine slows the fake camera, never the outcome)."""
    first = {}
    for label, page in pages.items():
        for kind in ("video", "audio"):
            poll(
                lambda p=page, k=kind: live(p, k),
                lambda v: len(v) >= streams,
                f"{label}'s {kind}",
                seconds=90,
            )
        page.evaluate("window.__pc = window.televisit.session.pc")
        first[label] = {(s["kind"], s["mid"]): decoded(s) for s in inbound(page)}
    time.sleep(HOLD_SECONDS)
    for label, page in pages.items():

        def grown(p=page, before=first[label]) -> list[tuple[str, str]]:
            return [
                (s["kind"], s["mid"]) for s in inbound(p)
                if (s["kind"], s["mid"]) in before
                and decoded(s) > before[(s["kind"], s["mid"])]
                + (HOLD_SECONDS if s["kind"] == "video" else 48000 * HOLD_SECONDS / 10)
            ]  # fmt: skip

        poll(grown, lambda g: len(g) >= 2 * streams, f"{label}'s streams to keep going", 60)
        assert page.evaluate("window.televisit.session.pc === window.__pc"), f"{label} reconnected"
        assert page.locator("#stream-notice").is_hidden(), label


@pytest.mark.parametrize("h264_side", ["client", "clinic"])
def test_default_and_h264_only_browsers_see_and_hear_each_other(
    browser, live_server, h264_side: str
) -> None:
    appt = live_server.make_appointment(client_language="en")
    urls = {"clinic": appt["telemedicine"]["host_url"], "client": appt["telemedicine"]["join_url"]}
    pages = {}
    for side in ("clinic", "client"):
        if side == h264_side:
            pages[side] = h264_only_page(browser, urls[side], side)
        else:
            pages[side] = open_page(browser, urls[side], viewport=DESKTOP, label=side)
        join_call(pages[side])
    hold(pages, streams=1)
    # The H.264-only side receives H.264; the default side too (its peer sends nothing else).
    for side, page in pages.items():
        codecs = {s["codec"] for s in live(page, "video")}
        assert codecs == {"video/H264"}, (side, codecs)
    counted = metrics(live_server)
    assert counted.get('televisit_sfu_room_events_total{event="stream_unavailable_video"}', 0) == 0
    for page in pages.values():
        page.context.close()


def test_three_parties_with_a_vp8_only_app(browser, live_server) -> None:
    appt = live_server.make_appointment(client_language="fi")
    host_url = appt["telemedicine"]["host_url"]
    clinic = open_page(browser, host_url, viewport=DESKTOP, label="clinic")
    join_call(clinic)

    token = app_token(live_server.data_dir, host_url, "Interpreter app")
    status, joined = live_server.call("POST", "/api/v1/join", {"token": token})
    assert status == 200, joined
    app = AppThread(joined["signaling_url"], token)  # the SFU worker holding the room
    try:
        client = h264_only_page(browser, appt["telemedicine"]["join_url"], "client")
        join_call(client)
        for label, page in (("clinic", clinic), ("client", client)):
            poll(
                lambda p=page: live(p, "video", 30),
                lambda v: len(v) == 2,
                f"{label}: 2 videos",
                seconds=90,
            )
        poll(app.video_tracks_decoding, lambda n: n == 2, "the app: 2 videos", seconds=90)
        assert app.error is None, app.error
        assert {s["codec"] for s in live(client, "video")} == {"video/H264"}
        counted = metrics(live_server)
        assert counted["televisit_sfu_transcoders_started_total"] == 1, counted
        assert counted["televisit_sfu_transcoders"] == 1
        # At least the 30 frames the client decoded: ">" relied on the encoder running ahead
        # of the client's first frame, which a held keyframe now cuts short (issue 17).
        assert counted['televisit_sfu_transcoded_frames_total{what="encoded"}'] >= 30

        # The H.264-only member leaves: nothing needs the transcoder any more.
        client.context.close()
        stopped = poll(
            lambda: metrics(live_server),
            lambda m: m["televisit_sfu_transcoders"] == 0,
            "the transcoder to stop",
        )
        decoded = stopped['televisit_sfu_transcoded_frames_total{what="decoded"}']
        time.sleep(2)
        again = metrics(live_server)
        assert again['televisit_sfu_transcoded_frames_total{what="decoded"}'] == decoded
        assert again["televisit_sfu_transcoders_started_total"] == 1
        assert len(live(clinic, "video", 30)) >= 1  # the clinic still sees the app
    finally:
        app.stop()
        clinic.context.close()
