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

import asyncio
import base64
import json
import re
import threading
import time
import urllib.request
from typing import Any

import pytest
from playwright.sync_api import expect

from control.tokens import Keyring

from ..sfu.sfu_client import SfuClient
from .helpers import DESKTOP, PHONE, open_page, poll

SLOW_MS = 90_000  # a loaded machine slows page loads and camera start, never the outcome


def join_call(page) -> None:
    """Through the pre-join screen into the call (test_call's steps, with loaded-machine
    bounds)."""
    expect(page.locator("body")).to_have_attribute("data-view", "prejoin", timeout=SLOW_MS)
    poll(
        lambda: page.evaluate("document.getElementById('preview-video').videoWidth"),
        lambda width: width > 0,
        "the camera preview",
        seconds=SLOW_MS / 1000,
    )
    page.locator("#join-button").click(timeout=SLOW_MS)
    expect(page.locator("body")).to_have_attribute("data-view", "room", timeout=SLOW_MS)


HOLD_SECONDS = 30.0

# Wraps RTCPeerConnection before the page's scripts run: H.264 (+ rtx) only, both ways.
H264_ONLY = r"""
(() => {
  const Native = window.RTCPeerConnection;
  const OTHERS = /^(VP8|VP9|AV1)$/i;
  function strip(sdp) {
    const parts = sdp.split(/\r\n(?=m=)/);
    return parts.map((part) => {
      if (!part.startsWith("m=video")) return part;
      const lines = part.split("\r\n");
      const drop = new Set();
      for (const line of lines) {
        const m = /^a=rtpmap:(\d+) ([^/]+)\//.exec(line);
        if (m && OTHERS.test(m[2])) drop.add(m[1]);
      }
      for (const line of lines) {
        const m = /^a=fmtp:(\d+) apt=(\d+)/.exec(line);
        if (m && drop.has(m[2])) drop.add(m[1]);
      }
      const header = lines[0].split(" ");
      const kept = header.slice(3).filter((pt) => !drop.has(pt));
      if (!kept.length) return part; // nothing left: the codec preferences refuse it
      lines[0] = header.slice(0, 3).concat(kept).join(" ");
      return lines.filter((line) => {
        const m = /^a=(?:rtpmap|fmtp|rtcp-fb):(\d+)/.exec(line);
        return !(m && drop.has(m[1]));
      }).join("\r\n");
    }).join("\r\n");
  }
  function prefer(pc) {
    const codecs = RTCRtpReceiver.getCapabilities("video").codecs
      .filter((c) => /^video\/(H264|rtx)$/i.test(c.mimeType));
    for (const t of pc.getTransceivers()) {
      if (t.receiver.track.kind === "video" && !t.stopped) t.setCodecPreferences(codecs);
    }
  }
  const plain = (d) => (d && d.sdp ? { type: d.type, sdp: strip(d.sdp) } : d);
  class H264Only extends Native {
    async createOffer(options) {
      prefer(this);
      return plain(await super.createOffer(options));
    }
    async createAnswer(options) {
      prefer(this);
      return plain(await super.createAnswer(options));
    }
    setLocalDescription(d) { return super.setLocalDescription(plain(d)); }
    setRemoteDescription(d) { return super.setRemoteDescription(plain(d)); }
  }
  window.RTCPeerConnection = H264Only;
})();
"""

# Per inbound stream of the page: kind, codec, frames decoded (video), samples (audio).
INBOUND = """async () => {
  const pc = window.televisit?.session?.pc;
  if (!pc) return [];
  const stats = await pc.getStats();
  const out = [];
  stats.forEach((s) => {
    if (s.type !== "inbound-rtp") return;
    const codec = s.codecId ? stats.get(s.codecId)?.mimeType : null;
    out.push({kind: s.kind, mid: s.mid, codec, frames: s.framesDecoded || 0,
              samples: s.totalSamplesReceived || 0, packets: s.packetsReceived || 0});
  });
  return out;
}"""


def inbound(page) -> list[dict[str, Any]]:
    return page.evaluate(INBOUND)


def live(page, kind: str, floor: int = 10) -> list[dict[str, Any]]:
    """The page's inbound streams of ``kind`` that are decoding (frames or samples)."""
    key = "frames" if kind == "video" else "samples"
    return [s for s in inbound(page) if s["kind"] == kind and s[key] >= floor]


def metrics(server) -> dict[str, float]:
    with urllib.request.urlopen(server.base + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("televisit_sfu_") and " " in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def h264_only_page(browser, url: str, label: str, viewport=PHONE):
    context = browser.new_context(viewport=viewport, locale="en-GB")
    context.add_init_script(H264_ONLY)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.on("pageerror", lambda e: print(f"[{label}] page error: {e}"))
    page.goto(url)
    return page


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


def host_token_claims(url: str) -> dict[str, Any]:
    """The claims of the host link's token (room, expiry, link version), unverified."""
    payload = url.rsplit("/", 1)[-1].split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class AppThread:
    """A native app (aiortc, its own event loop on a thread) that sends only VP8 (320x240: the
    test process decodes two streams for it too) and declares it decodes VP8 and H.264."""

    def __init__(self, ws_url: str, token: str) -> None:
        self.client = SfuClient(ws_url, token, video_codec="VP8")
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        async def main() -> None:
            await self.client.connect()
            await self.client.join(capabilities={"video": [{"codec": "VP8"}, {"codec": "H264"}]})
            await self.client.publish()
            await asyncio.get_running_loop().run_in_executor(None, self._stop.wait)
            await self.client.close()

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by the test
            self.error = exc

    def video_tracks_decoding(self, floor: int = 20) -> int:
        return len([r for r in self.client.received if r.kind == "video" and r.frames >= floor])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def test_three_parties_with_a_vp8_only_app(browser, live_server) -> None:
    appt = live_server.make_appointment(client_language="fi")
    host_url = appt["telemedicine"]["host_url"]
    clinic = open_page(browser, host_url, viewport=DESKTOP, label="clinic")
    join_call(clinic)

    claims = host_token_claims(host_url)
    secrets = json.loads((live_server.data_dir / "secrets.json").read_text())
    token = Keyring({secrets["kid"]: secrets["secret"]}, secrets["kid"]).issue_token(
        room_id=claims["r"], name="Interpreter app", role="host", expires_at=claims["exp"],
        appointment_id=claims.get("a"), version=claims.get("v", 0),
    )  # fmt: skip
    app = AppThread(re.sub(r"^http", "ws", live_server.base) + "/ws", token)
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
        assert counted['televisit_sfu_transcoded_frames_total{what="encoded"}'] > 30

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
