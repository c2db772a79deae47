"""Transport-wide congestion control from a real subscriber (media.downlink_transport_cc):
Debian's Chromium, driven by Playwright, receives an aiortc publisher's audio and video
through a server Participant, answers our transport-cc, and its feedback comes back to the
downlink estimator as packet results (rtpforward.Departures). On loopback the arrival deltas
follow the send deltas, and Chrome, with the element in every packet, sends no REMB."""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest

from media_server import reoffer, rtpheader
from media_server.participant import Participant
from media_server.rtpforward import SENT_MEDIA
from tests.web.conftest import BASE_FLAGS, CHROMIUM, require_chromium

from .peers import Client, ServerSide, media_settings, wait_for

# The page: one peer connection that receives what the server offers. Its own offer carries the
# chat data channel, and with ``publish`` a tone (WebAudio: no camera needed) whose section
# names transport-cc: the server then uses the page's id both ways; without, one it picked
# (reoffer.reserve).
PAGE_JS = """async (publish) => {
  const pc = window.pc = new RTCPeerConnection({iceServers: []});
  pc.createDataChannel('chat');
  if (publish) {
    const audio = new AudioContext(), tone = audio.createOscillator();
    const out = audio.createMediaStreamDestination();
    tone.connect(out);
    tone.start();
    pc.addTrack(out.stream.getAudioTracks()[0], out.stream);
  }
  await pc.setLocalDescription(await pc.createOffer());
  while (pc.iceGatheringState !== 'complete')
    await new Promise(r => setTimeout(r, 20));
  return pc.localDescription.sdp;
}"""
ANSWER_JS = """async (sdp) => {
  await window.pc.setRemoteDescription({type: 'answer', sdp});
}"""
REOFFER_JS = """async (sdp) => {
  await window.pc.setRemoteDescription({type: 'offer', sdp});
  await window.pc.setLocalDescription(await window.pc.createAnswer());
  return window.pc.localDescription.sdp;
}"""
DECODED_JS = """async () => {
  let frames = 0;
  (await window.pc.getStats()).forEach(s => {
    if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded || 0;
  });
  return frames;
}"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("publish", [False, True], ids=["receives", "publishes-too"])
async def test_chromium_feedback_arrives_as_packet_results_and_its_rembs_stop(
    publish: bool,
) -> None:
    require_chromium()
    from playwright.async_api import async_playwright

    settings = media_settings(downlink_transport_cc=True)
    publisher = ServerSide("pub", settings, Client("pub"))
    page = None
    answering: set[asyncio.Task[None]] = set()

    async def on_offer(sdp: str) -> None:
        async def answer() -> None:
            await subscriber.handle_answer(await page.evaluate(REOFFER_JS, sdp))

        task = asyncio.ensure_future(answer())
        answering.add(task)
        task.add_done_callback(answering.discard)

    subscriber = Participant("sub", settings=settings, on_offer=on_offer,
                             on_publication=lambda p: None, on_chat=lambda p, m: None,
                             on_state=lambda p, s: None)  # fmt: skip
    feedbacks: list[tuple[float, list[tuple[int, int, int, int, int]]]] = []
    rembs: list[float] = []
    downlink = subscriber.downlink
    on_packet_results, on_remb = downlink.on_packet_results, downlink.on_remb

    def results_seen(results: list[tuple[int, int, int, int, int]], now: float) -> bool:
        feedbacks.append((now, results))
        return on_packet_results(results, now)

    def remb_seen(bitrate: int) -> None:
        rembs.append(time.monotonic())
        on_remb(bitrate)

    downlink.on_packet_results, downlink.on_remb = results_seen, remb_seen  # observed, not mocked
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=BASE_FLAGS
        )
        try:
            page = await (await browser.new_context()).new_page()
            await publisher.connect()
            offer = await page.evaluate(PAGE_JS, publish)
            answer = await subscriber.handle_offer(offer)
            await page.evaluate(ANSWER_JS, answer)
            for publication in publisher.participant.publications:
                await subscriber.subscribe(publication)
            await wait_for(lambda: len(feedbacks) >= 30, 40, "30 transport-cc feedbacks")
            decoded = await page.evaluate(DECODED_JS)
            started = feedbacks[0][0]
            await asyncio.sleep(2)  # REMBs sent before the first feedback may be in flight
            rembs_before = len(rembs)
            await asyncio.sleep(3)
            late_rembs = len(rembs) - rembs_before
        finally:
            await browser.close()
            await subscriber.close()
            await publisher.participant.close()
            await publisher.client.close()

    departures = subscriber.departures
    assert departures is not None and departures.feedbacks >= 30 and departures.malformed == 0
    offered = reoffer.numbering(offer).extension_ids.get(rtpheader.URI_TRANSPORT_CC)
    assert (offered is not None) == publish
    if publish:  # one id per URI in the bundle: the page's, both ways
        assert departures.ext_id == offered
        assert subscriber.transport_feedback is not None
        assert subscriber.transport_feedback.arrivals.recorded > 0
    assert subscriber.subscriptions and all(
        s._subscriber_ext.get(rtpheader.URI_TRANSPORT_CC) == departures.ext_id
        for s in subscriber.subscriptions
    )
    assert decoded > 0
    results = [r for _, batch in feedbacks for r in batch]
    seqs = [r[0] for r in results]
    assert len(set(seqs)) == len(seqs)  # each packet delivered once (none lost on loopback)
    assert {r[4] for r in results} >= {SENT_MEDIA}
    # Sent times are taken as each packet leaves (the batch's sendmmsg): in sequence order.
    sent_us = [r[1] for r in sorted(results)]
    assert sent_us[0] > 0 and sent_us == sorted(sent_us)
    received = [r for r in results if r[3] >= 0]
    assert len(received) >= 0.95 * len(results)
    # On loopback what the receiver saw between two packets is what we put between them,
    # to its 250 us tick and the scheduling of two busy processes.
    gaps = [
        abs((b[3] - a[3]) - (b[1] - a[1]))
        for _, batch in feedbacks
        for a, b in zip(batch, batch[1:], strict=False)
        if a[3] >= 0 and b[3] >= 0 and b[0] == a[0] + 1
    ]
    assert len(gaps) > 100 and statistics.median(gaps) < 2000, sorted(gaps)[-10:]
    # Chrome sends no REMB for packets that carry the element.
    assert late_rembs == 0, (late_rembs, [t - started for t in rembs])
