"""2% packet loss on one leg is repaired: NACKs, retransmissions, and the video keeps decoding."""

from __future__ import annotations

import logging

import pytest

from .peers import DecodeErrors, wait_for

FRAMES = 150  # ~5 s of video at aiortc's 30 fps


@pytest.fixture
def decode_errors() -> DecodeErrors:
    handler = DecodeErrors()
    logger = logging.getLogger("aiortc.rtcrtpreceiver")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


async def video_under_loss(call, drop) -> int:
    """Once video flows, lose 2% of one leg's RTP (``drop(fraction)`` -> a lost-count
    reader) until the subscriber decoded FRAMES more frames; how many packets were lost."""
    b = call.b
    await wait_for(lambda: b.client.frames("video") >= 5, 30, "first frames")
    lost = drop(0.02)
    start = b.client.frames("video")
    await wait_for(lambda: b.client.frames("video") >= start + FRAMES, 90, "video under loss")
    return lost()


async def test_loss_towards_the_subscriber_is_repaired_from_the_send_history(
    make_call, decode_errors: DecodeErrors
) -> None:
    call = await make_call()
    a, b = call.a, call.b
    lost = await video_under_loss(call, b.client.drop_incoming_rtp)

    video = next(s for s in b.participant.subscriptions if s.kind == "video")
    assert lost >= 5
    assert video.nacks_received > 0
    assert video.retransmissions > 0
    # Every loss the subscriber asked about was still in the history.
    assert video.retransmissions_missed == 0
    # ... and came back on the RTX SSRC its answer accepted (RFC 4588): aiortc's receiver
    # counts that stream apart (its statistics) and unwraps it into the packets it repairs.
    assert video.retransmissions_rtx == video.retransmissions
    stats = (await b.client.pc.getStats()).values()
    rtx = [s for s in stats if s.type == "inbound-rtp" and s.ssrc == video.out.rtx_ssrc]
    assert video.out.rtx_ssrc and rtx and rtx[0].packetsReceived > 0, rtx
    assert video.rtx_received > 0  # its receiver reports for that SSRC reached the leg's loss
    sent = a.client.video.frames
    assert decode_errors.count <= 2, "lost packets reached the decoder unrepaired"
    assert b.client.frames("video") >= 0.8 * (sent - 10)


async def test_loss_from_the_publisher_is_nacked_upstream(
    make_call, decode_errors: DecodeErrors
) -> None:
    call = await make_call()
    a, b = call.a, call.b
    lost = await video_under_loss(call, a.client.drop_outgoing_rtp)

    video = next(p for p in a.participant.publications if p.kind == "video")
    assert lost >= 5
    assert video.nacks_sent > 0
    assert video.nacks.recovered > 0  # the publisher's retransmissions filled the gaps
    # ... sent as RTX (RFC 4588, negotiated in our answer) on the SSRC its ssrc-group FID
    # names, and unwrapped here into the packets they repair.
    assert video.rtx_types and video.inbound.rtx_in > 0, (video.rtx_types, a.participant.dropped)
    assert decode_errors.count <= 2
    assert b.client.frames("video") >= 0.8 * (a.client.video.frames - 10)
