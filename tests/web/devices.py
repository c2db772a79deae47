"""Devices of the codec tests and the codecs benchmark: an H.264-only Chromium page and a
native app (aiortc) that sends only VP8, joining a room with a token of its own."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from typing import Any

from playwright.sync_api import expect

from control.tokens import Keyring

from ..sfu.sfu_client import SfuClient
from .helpers import PHONE, poll

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


def h264_only_page(browser, url: str, label: str, viewport=PHONE):
    context = browser.new_context(viewport=viewport, locale="en-GB")
    context.add_init_script(H264_ONLY)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.on("pageerror", lambda e: print(f"[{label}] page error: {e}"))
    page.goto(url)
    return page


def host_token_claims(url: str) -> dict[str, Any]:
    """The claims of the host link's token (room, expiry, link version), unverified."""
    payload = url.rsplit("/", 1)[-1].split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def app_token(data_dir: Any, host_url: str, name: str) -> str:
    """A host token for ``name`` in the room of ``host_url`` (signed with the server's own
    generated key, the link version copied), for a third member such as an app."""
    claims = host_token_claims(host_url)
    secrets = json.loads((data_dir / "secrets.json").read_text())
    return Keyring({secrets["kid"]: secrets["secret"]}, secrets["kid"]).issue_token(
        room_id=claims["r"], name=name, role="host", expires_at=claims["exp"],
        appointment_id=claims.get("a"), version=claims.get("v", 0),
    )  # fmt: skip


class AppThread:
    """A native app (aiortc, its own event loop on a thread) that sends only VP8 (320x240: the
    test process decodes two streams for it too) and declares it decodes VP8 and H.264."""

    def __init__(self, ws_url: str, token: str, width: int = 320, height: int = 240) -> None:
        self.client = SfuClient(ws_url, token, video_codec="VP8", width=width, height=height)
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
