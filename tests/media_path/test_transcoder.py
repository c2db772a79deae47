"""The transcoding fallback with real aiortc peers: a VP8 publisher's stream reaches a
subscriber that negotiated only H.264, decoded once and encoded once, and the transcoder stops
with its last subscription."""

from __future__ import annotations

from media_server import codecs
from media_server.transcoder import Transcoders, targets

from .peers import wait_for


async def test_a_vp8_stream_reaches_an_h264_only_subscription(make_call) -> None:
    call = await make_call("VP8", sizes=((320, 240), (320, 240)))
    a, b = call.a, call.b
    video = next(p for p in a.participant.publications if p.kind == "video")
    await wait_for(lambda: video.packets_in > 30, 30, "video from the publisher")
    h264 = next(c for c in targets() if c.name == "H264")
    # b's device decodes H.264 only: its new m-line negotiates nothing else.
    b.participant.declared_codecs["video"] = [h264]
    tracks_before = len(b.client.received)
    sub = await b.participant.subscribe(video)
    await wait_for(lambda: sub.codecs, 20, "the H.264-only m-line negotiated")
    assert [c.name for c in sub.codecs] == ["H264"]
    assert not sub.decodable  # the publisher sends VP8

    registry = Transcoders(max_running=2)
    transcoder = registry.get(video, h264)
    assert transcoder is not None and registry.running == {}
    sub.switch_source(transcoder)
    assert transcoder.running and list(registry.running.values()) == [transcoder]
    assert registry.get(video, h264) is transcoder  # shared by whoever needs it next
    await wait_for(lambda: len(b.client.received) > tracks_before, 20, "the new track")
    track = b.client.received[-1]
    await wait_for(lambda: track.frames >= 30, 40, "H.264 frames decoded by the subscriber")
    assert (track.width, track.height) == (320, 240)
    assert sub.decodable and sub.out.payload_type == sub.codecs[0].payloadType
    assert transcoder.frames_decoded >= 30 and transcoder.frames_encoded >= 30
    assert transcoder.keyframes_encoded >= 1
    assert a.participant.faults.count == 0 and registry.faults.count == 0, registry.faults.by_place

    await b.participant.unsubscribe(sub)
    assert not transcoder.running and registry.running == {}
    transcoder.join()
    decoded = transcoder.frames_decoded
    await wait_for(lambda: video.packets_in > 200, 20, "more video from the publisher")
    assert transcoder.frames_decoded == decoded  # nothing decodes once it stopped
    assert registry.totals()["frames_decoded"] == decoded
    assert codecs.describe(transcoder.codec) == "H264 42e01f"
