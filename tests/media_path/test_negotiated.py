"""What a participant keeps of its negotiations (media_server/negotiated.py, issue 17 memory)."""

from __future__ import annotations

import gc
import weakref

from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpCodecParameters

from media_server import negotiated

from .peers import Call, keeps_receiving, media_settings, wait_for


def _local(pc):
    return (
        pc._RTCPeerConnection__currentLocalDescription,
        pc._RTCPeerConnection__pendingLocalDescription,
    )


async def test_an_answered_offer_becomes_current_and_the_first_answer_is_let_go() -> None:
    call = Call(media_settings(), "VP8")
    try:
        await call.a.connect()
        pc = call.a.participant.pc
        first_answer = weakref.ref(_local(pc)[0])
        await call.b.connect()
        for subscriber, publisher in ((call.a, call.b), (call.b, call.a)):
            for publication in publisher.participant.publications:
                await subscriber.participant.subscribe(publication)
        await wait_for(
            lambda: (
                all(s.mid for s in call.a.participant.subscriptions)
                and pc.signalingState == "stable"
            ),
            20,
            "a's subscriptions negotiated",
        )
        current, pending = _local(pc)
        assert pending is None
        kinds = [m.kind for m in current.media if m.kind != "application"]
        assert kinds == ["audio", "video", "audio", "video"]  # the subscriptions' offer
        assert pc.localDescription.sdp == str(current)
        gc.collect()
        assert first_answer() is None
        await keeps_receiving(call.a.client, call.b.client, video=10, audio=10)
    finally:
        await call.close()


async def test_equal_negotiated_codecs_are_one_object_across_participants(make_call) -> None:
    call = await make_call()
    await wait_for(
        lambda: all(s.mid for side in (call.a, call.b) for s in side.participant.subscriptions),
        20,
        "subscriptions negotiated",
    )
    a, b = (side.participant.pc.getTransceivers() for side in (call.a, call.b))
    assert len(a) == len(b) == 4
    for ours, theirs in zip(a, b, strict=True):
        assert ours._codecs and len(ours._codecs) == len(theirs._codecs)
        assert all(x is y for x, y in zip(ours._codecs, theirs._codecs, strict=True))
    video = [c for c in a[1]._codecs if c.mimeType == "video/VP8"][0]
    assert any(f is g for f in video.rtcpFeedback for g in a[3]._codecs[0].rtcpFeedback)
    # What each client's offer said it decodes, kept for the connection's life: shared too.
    for kind in ("audio", "video"):
        ours, theirs = (side.participant.receive_codecs[kind] for side in (call.a, call.b))
        assert ours and all(x is y for x, y in zip(ours, theirs, strict=True))
    await keeps_receiving(call.a.client, call.b.client, video=10, audio=10)


def test_codecs_that_differ_in_anything_stay_apart() -> None:
    def codec(pt: int = 96, feedback: str | None = "pli", **parameters) -> RTCRtpCodecParameters:
        return RTCRtpCodecParameters(
            mimeType="video/rtx" if "apt" in parameters else "video/VP8", clockRate=90000,
            payloadType=pt, parameters=parameters,
            rtcpFeedback=[RTCRtcpFeedback(type="nack", parameter=feedback)],
        )  # fmt: skip

    kept = [codec(), codec(97), codec(feedback=None), codec(apt=96), codec(apt="96")]
    shared = [negotiated.shared(c) for c in kept]
    assert all(s is c for s, c in zip(shared, kept, strict=True))
    again = [codec(), codec(97), codec(feedback=None), codec(apt=96), codec(apt="96")]
    assert all(negotiated.shared(c) is s for c, s in zip(again, kept, strict=True))
    assert negotiated.shared(codec(apt=["unhashable"])).parameters == {"apt": ["unhashable"]}
