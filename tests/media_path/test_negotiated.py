"""What a participant keeps of its negotiations (media_server/negotiated.py, issue 17 memory)."""

from __future__ import annotations

import gc
import weakref

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
