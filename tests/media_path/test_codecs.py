"""H.264 and VP8 as the SFU tells them apart and finds where a stream may start (RFC 6184,
RFC 7741): profile matching, decoder compatibility, keyframe starts in every packetization."""

from __future__ import annotations

import struct

import pytest
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from media_server import codecs

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)


def h264(profile: str | None, mode: str = "1", pt: int = 100) -> RTCRtpCodecParameters:
    parameters = {"packetization-mode": mode}
    if profile is not None:
        parameters["profile-level-id"] = profile
    return RTCRtpCodecParameters(
        mimeType="video/H264", clockRate=90000, payloadType=pt, parameters=parameters
    )


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("42e01f", "42E01F", True),
        ("42e01f", "42c00c", True),  # both Constrained Baseline; the level never splits them
        ("42e01f", "42401f", True),
        ("42e01f", "42001f", False),  # Baseline
        ("4d001f", "4d0032", True),  # Main, level asymmetry
        ("4d001f", "42001f", False),
        ("640c1f", "640c34", True),  # Constrained High
        ("64001f", "640c1f", False),  # High vs Constrained High
        (None, "42e01f", True),  # no profile-level-id: Constrained Baseline 3.1
    ],
)
def test_h264_is_matched_by_profile_not_level(a: str | None, b: str, same: bool) -> None:
    assert codecs.same_format(h264(a), h264(b, pt=102)) is same


def test_h264_packetization_modes_are_different_codecs() -> None:
    assert not codecs.same_format(h264("42e01f"), h264("42e01f", mode="0"))
    assert codecs.same_format(VP8, RTCRtpCodecParameters("video/VP8", 90000, payloadType=97))


def test_which_decoder_takes_which_stream() -> None:
    # Constrained Baseline plays on Baseline, Main and High decoders, not the other way round.
    for receiver in ("42001f", "4d001f", "64001f", "42e01f"):
        assert codecs.decodes(h264(receiver), h264("42e01f"))
    assert not codecs.decodes(h264("42e01f"), h264("42001f"))
    assert not codecs.decodes(h264("42e01f"), h264("64001f"))
    # A mode 1 depacketizer takes single NAL units (mode 0); a mode 0 one takes no FU-A.
    assert codecs.decodes(h264("42e01f", mode="1"), h264("42e01f", mode="0"))
    assert not codecs.decodes(h264("42e01f", mode="0"), h264("42e01f", mode="1"))
    assert not codecs.decodes(VP8, h264("42e01f")) and not codecs.decodes(h264("42e01f"), VP8)
    assert not codecs.decodes(h264("zzzzzz"), h264("zzzzzz"))


def test_publish_codecs_accepts_both_packetization_modes_in_offer_order() -> None:
    offered = [h264("42c00c", mode="0", pt=101), VP8, h264("42e01f", pt=103)]
    accepted = codecs.publish_codecs("video", offered)
    modes = [(c.name, c.payloadType, c.parameters.get("packetization-mode")) for c in accepted]
    assert modes == [("H264", 101, "0"), ("VP8", 96, None), ("H264", 103, "1")]
    with pytest.raises(codecs.NoCommonCodec, match="no forwardable video codec"):
        codecs.publish_codecs("video", [h264("f40032")])  # High 4:4:4 Predictive


# ---- keyframe starts -----------------------------------------------------------------------

AUD = bytes([0x09, 0xF0])
SEI = bytes([0x06, 0x05, 0x01, 0x00, 0x80])
SPS = bytes([0x67, 0x42, 0xE0, 0x1F, 0xDA, 0x01, 0x40])
PPS = bytes([0x68, 0xCE, 0x3C, 0x80])
IDR = bytes([0x65, 0x88, 0x84]) + bytes(40)
P_SLICE = bytes([0x41, 0x9A, 0x02]) + bytes(40)


def stap_a(*units: bytes) -> bytes:
    return bytes([0x78]) + b"".join(struct.pack("!H", len(u)) + u for u in units)


def fu_a(unit: bytes, start: bool, end: bool = False) -> bytes:
    header = (0x80 if start else 0) | (0x40 if end else 0) | (unit[0] & 0x1F)
    return bytes([(unit[0] & 0xE0) | 28, header]) + unit[1:]


@pytest.mark.parametrize(
    ("payload", "starts"),
    [
        (SPS, True),
        (IDR, True),
        (PPS, False),
        (P_SLICE, False),
        # The failing inputs: the parameter sets after an AUD or SEI in one STAP-A.
        (stap_a(AUD, SPS, PPS, IDR), True),
        (stap_a(SEI, SPS, PPS, IDR), True),
        (stap_a(AUD, SPS, PPS), True),  # the IDR follows in FU-A: the gate opens here
        (stap_a(AUD, P_SLICE), False),
        (stap_a(SPS, PPS), True),
        (stap_a(AUD, SPS)[:-3], False),  # the SPS unit is cut short
        (fu_a(IDR, start=True), True),
        (fu_a(IDR, start=False), False),
        (fu_a(IDR, start=False, end=True), False),
        (fu_a(P_SLICE, start=True), False),
        (bytes([0x79, 0x00]), False),  # STAP-B: interleaved mode, never negotiated
    ],
)
def test_h264_keyframe_starts(payload: bytes, starts: bool) -> None:
    assert codecs.starts_keyframe("H264", payload) is starts


def test_vp8_keyframe_starts() -> None:
    assert codecs.starts_keyframe("VP8", bytes([0x10, 0x10]))  # S, partition 0, P=0
    assert not codecs.starts_keyframe("VP8", bytes([0x10, 0x11]))  # interframe
    assert not codecs.starts_keyframe("VP8", bytes([0x00, 0x10]))  # not a frame start
    assert not codecs.starts_keyframe("VP8", bytes([0x11, 0x10]))  # partition 1
    # X with a 15-bit picture id, TL0PICIDX and T/K, then the keyframe's first byte.
    assert codecs.starts_keyframe("VP8", bytes([0x90, 0xF0, 0x80, 0x01, 0x00, 0x00, 0x10]))
    assert not codecs.starts_keyframe("VP8", bytes([0x90, 0xF0, 0x80, 0x01, 0x00, 0x00]))
    assert not codecs.starts_keyframe("VP8", b"")


# ---- the keyframe gate on the compiled path ----------------------------------------------


def forwarded_payloads(payloads: list[bytes]) -> list[bytes]:
    """The payloads a fresh H.264 subscription forwards of these packets (one frame)."""
    from aiortc.rtp import RtpPacket

    from media_server.faults import Faults
    from media_server.publication import Publication
    from media_server.subscription import Subscription

    pub = Publication(
        participant_id="p", kind="video", mid="0", codec=h264("42e01f", pt=102), ssrc=5,
        extensions={}, send_rtcp=lambda data: None,
    )  # fmt: skip
    sent: list[bytes] = []
    sub = Subscription(pub, history_packets=64, faults=Faults("test"))
    sub.bind(
        ssrc=9, payload_type=100, mid="1", extensions={}, send_rtp=sent.append,
        send_rtcp=lambda data: None,
    )  # fmt: skip
    for i, payload in enumerate(payloads):
        packet = RtpPacket(payload_type=102, sequence_number=10 + i, timestamp=3000, ssrc=5)
        packet.payload = payload
        packet.marker = int(i == len(payloads) - 1)
        assert pub.inbound.receive(packet.serialize()) is None
    return [RtpPacket.parse(d).payload for d in sent]


def test_the_gate_opens_at_the_stap_a_with_the_parameter_sets() -> None:
    """STAP-A [AUD][SPS][PPS] then the IDR in FU-A: all of it reaches the subscriber (it was
    dropped, and the gate opened at the FU-A start: an IDR without its parameter sets)."""
    frame = [stap_a(AUD, SPS, PPS), fu_a(IDR[:20], start=True), fu_a(IDR[20:], False, True)]
    assert forwarded_payloads([fu_a(P_SLICE, start=True), *frame]) == frame


def test_the_gate_opens_at_a_stap_a_keyframe_after_an_aud_or_sei() -> None:
    for first in (AUD, SEI):
        frame = [stap_a(first, SPS, PPS, IDR)]
        assert forwarded_payloads([P_SLICE, *frame, P_SLICE]) == [*frame, P_SLICE]
