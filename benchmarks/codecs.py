"""`televisit bench codecs`: what an H.264-only device costs (issue 11). By hand, not a test.

1. Join to first decoded frame on the H.264-only side, per path (real Chromium through
   `televisit serve`; the H.264-only page is tests/web/devices.py's):
   - ``first``: the H.264-only member is there first; the clinic's page joins and is answered
     with H.264 first (it never sends VP8). Timed from the clinic's click on Join.
   - ``switch``: the clinic's page sends VP8; the H.264-only member joins, the clinic is asked
     to switch to H.264. Timed from the H.264-only member's click on Join.
   - ``transcode``: a native app sending only VP8 (aiortc, 320x240) is there; the H.264-only
     member joins and gets the app's video through a transcoder. Timed from its click.
   - ``backup``: not measured: a second (backup) publication is not implemented; the switch
     and the transcoder cover its cases.
2. Transcoder CPU per stream at 640x480 30 fps (VP8 -> H.264 and H.264 -> VP8): real-time paced
   RTP (a moving pattern) into a Publication with one transcoded subscription, in this
   process; the transcoder thread's CPU time per decoded frame, times 30, as a share of one
   core (a loaded machine slows the sender, not the per-frame figure).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

STREAM_SECONDS = 20.0
# The browser part drives the suite's page helpers (tests/web), which live in the checkout, not
# in the installed package: `televisit bench codecs` (a console script) did not find them.
CHECKOUT = Path(__file__).resolve().parents[1]


def first_frame(page, codec: str | None = None, seconds: float = 120.0) -> float:
    """Seconds until the page decodes its first remote video frame (of ``codec``)."""
    from tests.web.devices import inbound

    start = time.monotonic()
    while time.monotonic() - start < seconds:
        for s in inbound(page):
            if s["kind"] == "video" and s["frames"] > 0 and codec in (None, s["codec"]):
                return time.monotonic() - start
        time.sleep(0.05)
    raise TimeoutError("no frame decoded")


def click_join(page) -> None:
    """The pre-join screen, up to the click (the timer starts after it)."""
    from playwright.sync_api import expect

    from tests.web.helpers import poll

    expect(page.locator("body")).to_have_attribute("data-view", "prejoin", timeout=90_000)
    poll(
        lambda: page.evaluate("document.getElementById('preview-video').videoWidth"),
        lambda width: width > 0,
        "the camera preview",
        seconds=90,
    )
    page.locator("#join-button").click()


def _second_joins(browser: Any, server: Any, h264_first: bool) -> float:
    """Two pages in one appointment's room, the H.264-only client and the clinic (default
    codecs): one joins, then the other, timed from the second one's click to the client's first
    H.264 frame. ``h264_first``: the client is there first (path ``first``); otherwise the
    clinic sends VP8 for a while before the client joins (path ``switch``)."""
    from tests.web.devices import h264_only_page, join_call
    from tests.web.helpers import DESKTOP, open_page

    appt = server.make_appointment(client_language="en")
    client = h264_only_page(browser, appt["telemedicine"]["join_url"], "client")
    clinic = open_page(browser, appt["telemedicine"]["host_url"], viewport=DESKTOP)
    first, second = (client, clinic) if h264_first else (clinic, client)
    try:
        join_call(first)
        if not h264_first:
            time.sleep(5)  # sending VP8 for a while
        click_join(second)
        return first_frame(client, "video/H264")
    finally:
        client.context.close()
        clinic.context.close()


def _first(browser: Any, server: Any, sfu_port: int) -> float:
    return _second_joins(browser, server, h264_first=True)


def _switch(browser: Any, server: Any, sfu_port: int) -> float:
    return _second_joins(browser, server, h264_first=False)


def _transcode(browser: Any, server: Any, sfu_port: int) -> float:
    """A VP8-only app (aiortc, 320x240: it encodes in this process) is there; the H.264-only
    member joins: timed from its click."""
    from tests.web.devices import AppThread, app_token, h264_only_page

    appt = server.make_appointment(client_language="en")
    token = app_token(server.data_dir, appt["telemedicine"]["host_url"], "App")
    app = AppThread(f"ws://127.0.0.1:{sfu_port}/ws", token)
    try:
        time.sleep(5)
        client = h264_only_page(browser, appt["telemedicine"]["join_url"], "client")
        try:
            click_join(client)
            return first_frame(client, "video/H264")
        finally:
            client.context.close()
    finally:
        app.stop()


PATHS = {"first": _first, "switch": _switch, "transcode": _transcode}


def join_paths(out: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    if str(CHECKOUT) not in sys.path:
        sys.path.insert(0, str(CHECKOUT))

    from tests.web.conftest import ALLOW_MEDIA, BASE_FLAGS, CHROMIUM
    from tests.web.server import LiveServer

    from .targets import free_port

    results: dict[str, Any] = {}
    sfu_port = free_port()  # one SFU worker on a known port (the app signals to it)
    server = LiveServer(
        out / "server", free_port(),
        settings={"TELEVISIT__MEDIA__WORKERS": "1", "TELEVISIT__MEDIA__SIGNALING_PORT": str(sfu_port)},
    )  # fmt: skip
    server.start()
    try:
        server.make_department("en")
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=[*BASE_FLAGS, ALLOW_MEDIA]
            )
            for path in ("first", "switch", "transcode"):
                try:
                    results[path] = round(PATHS[path](browser, server, sfu_port), 2)
                except Exception as exc:  # one path failing must not lose the others
                    results[path] = f"failed: {exc}"
            results["backup"] = None
            browser.close()
    finally:
        server.stop()
    return results


async def transcoder_cpu(source_codec: str, target_codec: str, seconds: float) -> dict[str, Any]:
    """One transcoded stream, real-time paced, in this process."""
    import fractions

    import av
    import numpy as np
    from aiortc.codecs import get_encoder
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    from media_server import codecs
    from media_server.faults import Faults
    from media_server.publication import Publication
    from media_server.subscription import Subscription
    from media_server.transcoder import ENCODERS, Transcoders, _encoder, packetize, targets

    source = next(c for c in codecs.local_codecs("video") if c.name == source_codec)
    if source_codec == "H264":
        source = next(c for c in targets() if c.name == "H264")
    target = next(c for c in targets() if c.name == target_codec)
    want_keyframe = [True]  # the publisher honours PLI, as a browser does
    pub = Publication(
        participant_id="bench", kind="video", mid="0", codec=source, ssrc=1, extensions={},
        send_rtcp=lambda data: want_keyframe.__setitem__(0, True),
    )  # fmt: skip
    registry = Transcoders(1)
    transcoder = registry.get(pub, target)
    assert transcoder is not None
    packets_out = [0]
    sub = Subscription(transcoder, history_packets=1024, faults=Faults("bench"))  # type: ignore[arg-type]
    sub.bind(
        ssrc=2, payload_type=target.payloadType, mid="1", extensions={},
        send_rtp=lambda data: packets_out.__setitem__(0, packets_out[0] + 1),
        send_rtcp=lambda data: None,
        codecs=[RTCRtpCodecParameters(**{**target.__dict__})],
    )  # fmt: skip
    if source_codec == "VP8":
        vp8 = get_encoder(source)
        vp8.target_bitrate = 1_500_000

        def encode(frame: Any, key: bool) -> list[bytes]:
            return vp8.encode(frame, force_keyframe=key)[0]
    else:  # the transcoder's own libx264 setup and packetizer (aiortc's is medium preset)
        name, options = ENCODERS["H264"]
        x264 = _encoder(name, options, 640, 480, 1_500_000)

        def encode(frame: Any, key: bool) -> list[bytes]:
            frame = frame.reformat(format="yuv420p")
            frame.pict_type = (
                av.video.frame.PictureType.I if key else av.video.frame.PictureType.NONE
            )
            data = b"".join(bytes(p) for p in x264.encode(frame))
            return packetize("H264", data, 0) if data else []

    yy, xx = np.mgrid[0:480, 0:640]
    base = np.stack([(xx + yy) % 256, (2 * xx) % 256, (3 * yy) % 256], -1).astype(np.uint8)
    seq = 0
    start = time.monotonic()
    frames = int(seconds * 30)
    for i in range(frames):
        img = np.roll(base, i * 4, axis=1)
        img[200:260, (i * 6) % 580 : (i * 6) % 580 + 60] = 255
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts, frame.time_base = i * 3000, fractions.Fraction(1, 90000)
        payloads, ts = encode(frame, want_keyframe[0]), i * 3000
        want_keyframe[0] = False
        for j, payload in enumerate(payloads):
            marker = 0x80 if j == len(payloads) - 1 else 0
            head = bytes([0x80, marker | source.payloadType]) + seq.to_bytes(2, "big")
            head += ts.to_bytes(4, "big") + (1).to_bytes(4, "big")
            pub.inbound.receive(head + payload)
            seq = (seq + 1) & 0xFFFF
        await asyncio.sleep(max(0.0, start + (i + 1) / 30 - time.monotonic()))
    wall = time.monotonic() - start
    await asyncio.sleep(0.5)  # the last frames leave the thread
    sub.source.detach(sub)
    transcoder.join()
    return {
        "from": source_codec, "to": target_codec, "size": "640x480", "fps": 30,
        "seconds": round(wall, 1), "frames_in": transcoder.frames_in,
        "frames_encoded": transcoder.frames_encoded, "packets_out": packets_out[0],
        "frames_dropped": transcoder.frames_dropped,
        "frames_decoded": transcoder.frames_decoded,
        "cpu_seconds": round(transcoder.cpu_seconds, 2),
        # What one stream at a full 30 fps costs: the thread's CPU per decoded frame x 30.
        "ms_per_frame": round(1000 * transcoder.cpu_seconds / max(1, transcoder.frames_decoded), 2),
        "core_share": round(30 * transcoder.cpu_seconds / max(1, transcoder.frames_decoded), 3),
    }  # fmt: skip


def run(out: Path, smoke: bool = False) -> int:
    """Both measurements; JSON to ``out/codecs.json``, a table on stdout."""
    out.mkdir(parents=True, exist_ok=True)
    seconds = 3.0 if smoke else STREAM_SECONDS
    cpu = [
        asyncio.run(transcoder_cpu("VP8", "H264", seconds)),
        asyncio.run(transcoder_cpu("H264", "VP8", seconds)),
    ]
    from .report import machine

    result = {"scenario": "codecs", "machine": machine(), "transcoder": cpu, "join": {}}
    (out / "codecs.json").write_text(json.dumps(result, indent=2))
    joins = result["join"] = {} if smoke else join_paths(out)
    (out / "codecs.json").write_text(json.dumps(result, indent=2))
    print("transcoder CPU per stream (640x480, 30 fps), share of one core:")
    for row in cpu:
        print(f"  {row['from']:>4} -> {row['to']:<4}  {row['core_share']:.3f}  "
              f"({row['ms_per_frame']} ms/frame; {row['frames_encoded']}/{row['frames_in']} "
              f"frames in {row['seconds']} s)")  # fmt: skip
    if joins:
        print("join to first decoded frame on the H.264-only side (s):")
        for path, value in joins.items():
            shown = "not implemented" if value is None else value
            print(f"  {path:<10} {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1] if len(sys.argv) > 1 else "var/bench")))
