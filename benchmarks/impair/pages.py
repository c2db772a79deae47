"""The parties of an impaired call: Debian's Chromium driven by Playwright (async API).

- ``VisitParty``: Televisit's own visit page (``/h/<token>``, ``/j/<token>``), joined through
  its pre-join view like a person would; its peer connection is
  ``window.televisit.session.pc``.
- ``BareParty``: a bare page with the fake camera and one peer connection per signaling
  exchange, driven from Python (Janus's videoroom: a publisher connection, a subscriber one).

Each party runs in its own browser so that its added delay (``delay_ms``, Chromium's
``WebRTC-FakeNetworkSendConfig`` / ``WebRTC-FakeNetworkReceiveConfig`` field trials, applied
by WebRTC's DegradedCall to RTP and RTCP both ways) is its own. ``sample()`` reads getStats of
every peer connection of the page: per inbound stream (frames decoded, freezes, frame width,
bytes, audio concealment), per outbound stream, and the selected candidate pair (local UDP
port, round trip, available outgoing bitrate).
"""

from __future__ import annotations

import time
from typing import Any

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection", "--autoplay-policy=no-user-gesture-required",
    "--disable-features=WebRtcHideLocalIpsWithMdns,Translate,MediaRouter,OptimizationHints",
]  # fmt: skip
BARE_ORIGIN = "http://127.0.0.1:9"  # never contacted: Playwright fulfils the page itself
TIMEOUT_MS = 60_000

# getStats of a list of peer connections -> {inbound: [...], outbound: [...], pair: {...}}
STATS_JS = """async (pcs) => {
  const out = { at: Date.now(), inbound: [], outbound: [], pair: null };
  for (const pc of pcs) {
    if (!pc || pc.connectionState === "closed") continue;
    const report = await pc.getStats();
    let selected = null;
    report.forEach((s) => { if (s.type === "transport" && s.selectedCandidatePairId) selected = s.selectedCandidatePairId; });
    report.forEach((s) => {
      if (s.type === "inbound-rtp") {
        out.inbound.push({ kind: s.kind, id: s.trackIdentifier || s.id, mid: s.mid,
          framesDecoded: s.framesDecoded || 0, freezeCount: s.freezeCount || 0,
          totalFreezesDuration: s.totalFreezesDuration || 0, frameWidth: s.frameWidth || 0,
          frameHeight: s.frameHeight || 0, bytesReceived: s.bytesReceived || 0,
          packetsReceived: s.packetsReceived || 0, packetsLost: s.packetsLost || 0,
          nackCount: s.nackCount || 0, pliCount: s.pliCount || 0,
          retransmittedBytesReceived: s.retransmittedBytesReceived || 0,
          concealedSamples: s.concealedSamples || 0, silentConcealedSamples: s.silentConcealedSamples || 0,
          totalSamplesReceived: s.totalSamplesReceived || 0, fecPacketsReceived: s.fecPacketsReceived || 0 });
      } else if (s.type === "outbound-rtp") {
        out.outbound.push({ kind: s.kind, rid: s.rid || "", bytesSent: s.bytesSent || 0,
          frameWidth: s.frameWidth || 0, framesPerSecond: s.framesPerSecond || 0,
          targetBitrate: s.targetBitrate || 0, retransmittedBytesSent: s.retransmittedBytesSent || 0,
          qualityLimitationReason: s.qualityLimitationReason || "", active: s.active !== false,
          limited: s.qualityLimitationDurations || {}, frameHeight: s.frameHeight || 0,
          framesEncoded: s.framesEncoded || 0 });
      } else if (s.type === "candidate-pair" && s.id === selected && !out.pair) {
        const local = report.get(s.localCandidateId);
        out.pair = { port: local ? local.port : null, rtt: s.currentRoundTripTime ?? null,
          outgoing: s.availableOutgoingBitrate ?? null };
      }
    });
  }
  return out;
}"""

PORTS_JS = """async (pcs) => {
  const ports = [];
  for (const pc of pcs) {
    if (!pc) continue;
    const report = await pc.getStats();
    let selected = null;
    report.forEach((s) => { if (s.type === "transport" && s.selectedCandidatePairId) selected = s.selectedCandidatePairId; });
    const pair = selected && report.get(selected);
    const local = pair && report.get(pair.localCandidateId);
    ports.push(local ? local.port : null);
  }
  return ports;
}"""

BARE_PAGE = """<!doctype html><meta charset="utf-8"><title>bare</title><body><script>
window.pcs = [];
window.ready = navigator.mediaDevices.getUserMedia({audio: true,
  video: {width: {ideal: 1280}, height: {ideal: 720}, frameRate: {ideal: 30}}}).then((s) => (window.stream = s));
window.publish = async () => {
  await window.ready;
  const pc = new RTCPeerConnection({iceServers: []});
  window.pcs.push(pc);
  for (const t of window.stream.getTracks()) pc.addTrack(t, window.stream);
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((r) => { if (pc.iceGatheringState === "complete") r(); else pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && r(); });
  return [window.pcs.length - 1, pc.localDescription.sdp];
};
window.accept = (i, sdp) => window.pcs[i].setRemoteDescription({type: "answer", sdp});
window.answer = async (sdp) => {
  const pc = new RTCPeerConnection({iceServers: []});
  window.pcs.push(pc);
  pc.ontrack = (ev) => { const v = document.createElement(ev.track.kind); v.autoplay = true; v.muted = true; v.srcObject = new MediaStream([ev.track]); document.body.append(v); };
  await pc.setRemoteDescription({type: "offer", sdp});
  await pc.setLocalDescription(await pc.createAnswer());
  await new Promise((r) => { if (pc.iceGatheringState === "complete") r(); else pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && r(); });
  return pc.localDescription.sdp;
};
</script></body>"""


def field_trials(delay_ms: int) -> list[str]:
    """Chromium flags adding ``delay_ms`` to every RTP/RTCP packet sent and received."""
    if not delay_ms:
        return []
    config = f"queue_delay_ms:{delay_ms}"
    return [f"--force-fieldtrials=WebRTC-FakeNetworkSendConfig/{config}/"
            f"WebRTC-FakeNetworkReceiveConfig/{config}/"]  # fmt: skip


class Party:
    """One person in the call: a browser, a page, its peer connections."""

    PCS_JS = "window.pcs"

    def __init__(self, name: str, role: str, delay_ms: int = 0) -> None:
        self.name = name
        self.role = role
        self.delay_ms = delay_ms
        self.browser: Any = None
        self.page: Any = None
        self.ports_down: set[int] = set()  # UDP ports this party receives media on
        self.ports_up: set[int] = set()  # ... and sends media from
        self.opened_at: float | None = None  # when it opened its page (time.monotonic)

    async def launch(self, playwright: Any) -> None:
        self.browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=[*FLAGS, *field_trials(self.delay_ms)]
        )
        context = await self.browser.new_context(viewport={"width": 1280, "height": 800},
                                                 locale="en-GB")  # fmt: skip
        self.page = await context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.page.on("pageerror", lambda e: print(f"[{self.name}] page error: {e}"))
        self.page.on("console", lambda m: m.type == "error" and print(f"[{self.name}] {m.text}"))

    async def sample(self) -> dict[str, Any]:
        stats = await self.page.evaluate(f"async () => ({STATS_JS})({self.PCS_JS})")
        stats["t"] = time.monotonic()
        return stats

    async def ports(self) -> list[int | None]:
        return await self.page.evaluate(f"async () => ({PORTS_JS})({self.PCS_JS})")

    async def close(self) -> None:
        if self.browser is not None:
            await self.browser.close()
            self.browser = None


# The visit page's own member id and, per mid of its peer connection, the msid stream (the
# publisher's participant id: the SFU names each subscription's stream after its publisher).
IDENTITY_JS = """() => {
  const s = window.televisit && window.televisit.session;
  const streams = {};
  let mid = null;
  for (const line of ((s && s.pc && s.pc.remoteDescription && s.pc.remoteDescription.sdp) || "").split(/\\r?\\n/)) {
    if (line.startsWith("m=")) mid = null;
    else if (line.startsWith("a=mid:")) mid = line.slice(6);
    else if (line.startsWith("a=msid:") && mid !== null) streams[mid] = line.slice(7).split(" ")[0];
  }
  return { self: s && s.self ? s.self.id : null, streams };
}"""


class VisitParty(Party):
    """Televisit's visit page at ``url`` (a host or guest link)."""

    PCS_JS = "[window.televisit && window.televisit.session && window.televisit.session.pc]"
    member_id: str | None = None
    stream_of_mid: dict[str, str] = {}  # mid -> publisher participant id ("member.generation")

    async def identify(self) -> None:
        found = await self.page.evaluate(IDENTITY_JS)
        self.member_id = found["self"]
        self.stream_of_mid = found["streams"]

    async def join(self, url: str) -> None:
        await self.page.goto(url)
        await self.page.wait_for_function(
            "() => document.getElementById('preview-video')?.videoWidth > 0"
        )
        await self.page.locator("#join-button").click()
        await self.page.wait_for_function("() => document.body.dataset.view === 'room'")

    async def learn_ports(self) -> None:
        ports = [p for p in await self.ports() if p]
        self.ports_down = self.ports_up = set(ports)


class BareParty(Party):
    """The bare page: ``publish()`` -> (index, offer), ``accept``, ``answer(offer)``."""

    async def open(self) -> None:
        async def fulfil(route: Any) -> None:
            await route.fulfill(status=200, content_type="text/html", body=BARE_PAGE)

        await self.page.route(f"{BARE_ORIGIN}/bare", fulfil)
        await self.page.goto(f"{BARE_ORIGIN}/bare")
        await self.page.evaluate("window.ready.then(() => true)")

    async def publish(self) -> tuple[int, str]:
        index, sdp = await self.page.evaluate("window.publish()")
        return index, sdp

    async def accept(self, index: int, sdp: str) -> None:
        await self.page.evaluate("([i, sdp]) => window.accept(i, sdp)", [index, sdp])

    async def answer(self, sdp: str) -> str:
        return await self.page.evaluate("(sdp) => window.answer(sdp)", sdp)

    async def learn_ports(self) -> None:
        ports = await self.ports()
        # pcs[0] publishes, the others subscribe
        self.ports_up = {ports[0]} if ports and ports[0] else set()
        self.ports_down = {p for p in ports[1:] if p}
