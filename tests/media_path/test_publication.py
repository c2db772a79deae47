"""Publication's receive-side bandwidth estimate: fed one packet per frame (the marker packet,
with the frame's bytes), it must follow the same trace as aiortc's estimator fed every packet;
it caps the publisher only when it says the uplink's queue grows, and never a publisher that
estimates its uplink itself from transport-cc feedback."""

from __future__ import annotations

import struct
from typing import Any

from aiortc.rate import RemoteBitrateEstimator
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from media_server import rtpheader
from media_server.allocator import SINGLE_TOP_BPS
from media_server.publication import Publication

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
AST_ID = 3
SSRC = 4321


def packet(seq: int, send_ms: float, marker: bool, size: int) -> bytes:
    ast = int(send_ms / 1000 * (1 << 18)) & 0xFFFFFF
    ext = bytes([(AST_ID << 4) | 2]) + ast.to_bytes(3, "big")
    fixed = struct.pack("!BBHII", 0x90, (0x80 if marker else 0) | 96, seq, seq * 3000, SSRC)
    return fixed + struct.pack("!HH", 0xBEDE, 1) + ext + bytes(size)


def trace(*phases: tuple[float, float]) -> list[tuple[bytes, int]]:
    """30 fps, 5 packets of 1,000 bytes per frame (1.2 Mbit/s) sent 1 ms apart; arrival is
    send + 20 ms plus a queue. Each phase is (seconds, queue growth in ms per frame): 0 is a
    steady link, more is overuse."""
    out = []
    frame = 0
    queue_ms = 0.0
    for seconds, growth in phases:
        for _ in range(int(seconds * 30)):
            queue_ms += growth
            for i in range(5):
                send_ms = frame * 1000 / 30 + i
                seq = (frame * 5 + i) & 0xFFFF
                out.append((packet(seq, send_ms, i == 4, 1000), int(send_ms + 20 + queue_ms)))
            frame += 1
    return out


def per_packet_estimate(packets: list[tuple[bytes, int]]) -> int | None:
    estimator = RemoteBitrateEstimator()
    estimate = None
    for data, arrival in packets:
        header = rtpheader.parse(data)
        ast = rtpheader.abs_send_time(data, header, AST_ID)
        remb = estimator.add(arrival, ast, len(data) - header.payload_offset, SSRC)
        if remb is not None:
            estimate = remb[0]
    return estimate


def publication_estimate(packets: list[tuple[bytes, int]]) -> int | None:
    return fed(packets).uplink_estimate


def fed(packets: list[tuple[bytes, int]], **fields: Any) -> Publication:
    pub = Publication(
        participant_id="p", kind="video", mid="1", codec=VP8, ssrc=SSRC,
        extensions={rtpheader.URI_ABS_SEND_TIME: AST_ID}, send_rtcp=lambda data: None,
        **fields,
    )  # fmt: skip
    for data, arrival_ms in packets:
        assert pub.inbound.receive(data, arrival_ms * 1000) is None
    return pub


def test_per_frame_estimate_matches_per_packet_on_a_steady_link() -> None:
    packets = trace((8, 0))
    reference = per_packet_estimate(packets)
    ours = publication_estimate(packets)
    assert reference is not None and ours is not None
    assert abs(ours - reference) <= 0.1 * reference, (ours, reference)


def test_per_frame_estimate_drops_like_per_packet_when_a_queue_builds() -> None:
    steady = publication_estimate(trace((4, 0)))
    packets = trace((4, 0), (4, 3))
    reference = per_packet_estimate(packets)
    ours = publication_estimate(packets)
    assert steady is not None and reference is not None and ours is not None
    assert reference < 0.8 * steady and ours < 0.8 * steady, (steady, reference, ours)
    assert abs(ours - reference) <= 0.15 * reference, (ours, reference)


def test_the_uplink_estimate_caps_a_publisher_only_while_its_queue_grows() -> None:
    # It is bounded by 1.5x what arrives: as a plain cap it would hold an encoder ramping up
    # at call start to 1.5x its start rate (single-layer publishers took 30 s to their top).
    steady, queued = fed(trace((8, 0))), fed(trace((4, 0), (4, 3)))
    for pub in (steady, queued):
        pub.bitrate = 1_200_000  # what the trace sends
    assert steady.bitrate_cap() == SINGLE_TOP_BPS
    assert queued.bitrate_cap() == queued.uplink_estimate < 0.85 * 1_200_000


def test_a_publisher_with_transport_cc_feedback_is_not_capped_by_our_estimate() -> None:
    # Chrome's send-side estimator sees the same queue in our feedback; our slower AIMD on
    # top of it held the encoder under its estimate and flapped the top layer (issue 13's
    # three-party start: 20 s to the top layer).
    queued = fed(trace((4, 0), (4, 3)), uplink_feedback=True)
    queued.bitrate = 1_200_000
    assert queued._estimator is None and queued.uplink_estimate is None
    assert queued.bitrate_cap() == SINGLE_TOP_BPS


def test_an_idle_publication_has_no_estimator_and_layers_share_their_primarys() -> None:
    # An idle member's video holds no estimator (1,000 rate buckets each, issue 17); the
    # first frame makes one, and every simulcast layer feeds its primary's: one uplink.
    assert fed([])._estimator is None
    primary = fed(trace((1, 0)))
    made = primary._estimator
    assert made is not None
    layer = fed(trace((1, 0)), primary=primary, rid="h")
    assert layer._estimator is None and primary._estimator is made
