"""The codecs the SFU forwards and how each leg is pinned to one of them.

Publishers may send Opus audio and VP8 or H.264 (packetization-mode 1) video. The publish leg's
answer is pinned to the first such codec of the client's offer (browsers send with the first
codec of the answer, so the publication's codec is known from the SDP); a subscription leg is
offered exactly the publisher's codec. RTX is not negotiated on either leg: retransmissions
travel on the media SSRC, which keeps the forwarding path a plain header rewrite.
"""

from __future__ import annotations

from aiortc.codecs import CODECS, is_rtx
from aiortc.rtcpeerconnection import find_common_codecs
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpCodecParameters

FORWARDED = {"audio": ("audio/opus",), "video": ("video/VP8", "video/H264")}


class NoCommonCodec(ValueError):
    """The offer has no codec the SFU forwards for this m-line."""


def _forwarded(codec: RTCRtpCodecParameters, kind: str) -> bool:
    if is_rtx(codec) or codec.mimeType not in FORWARDED[kind]:
        return False
    if codec.mimeType == "video/H264":
        return str(codec.parameters.get("packetization-mode", "0")) == "1"
    return True


def publish_codec(kind: str, offered: list[RTCRtpCodecParameters]) -> RTCRtpCodecParameters:
    """The codec the SFU accepts for one offered m-line (aiortc's parameters, offer's PT)."""
    if kind not in FORWARDED:
        raise NoCommonCodec(f"cannot forward {kind} media")
    for codec in find_common_codecs(CODECS[kind], offered):
        if _forwarded(codec, kind):
            return codec
    names = ", ".join(sorted({c.mimeType for c in offered})) or "none"
    raise NoCommonCodec(f"no forwardable {kind} codec offered (offered: {names})")


def capability(codec: RTCRtpCodecParameters) -> RTCRtpCodecCapability:
    """The capability ``setCodecPreferences`` accepts for a negotiated codec."""
    return RTCRtpCodecCapability(
        mimeType=codec.mimeType,
        clockRate=codec.clockRate,
        channels=codec.channels,
        parameters=dict(codec.parameters),
    )


def describe(codec: RTCRtpCodecParameters) -> str:
    """``VP8`` / ``H264 42e01f`` / ``opus``: a short label for logs and metrics."""
    profile = codec.parameters.get("profile-level-id")
    return f"{codec.name} {profile}" if profile else codec.name


def starts_keyframe(codec_name: str, payload: bytes) -> bool:
    """Does this RTP payload begin a keyframe? (VP8: RFC 7741; H.264: RFC 6184, an SPS or IDR
    NAL unit alone, first in a STAP-A, or starting an FU-A.)"""
    if not payload:
        return False
    if codec_name == "VP8":
        return _vp8_keyframe_start(payload)
    if codec_name == "H264":
        return _h264_keyframe_start(payload)
    return True  # audio: every packet is a fine place to start


def _vp8_keyframe_start(payload: bytes) -> bool:
    first = payload[0]
    if not first & 0x10 or first & 0x0F:  # S bit set and partition 0: start of a frame
        return False
    pos = 1
    if first & 0x80:  # X: extension byte follows
        if len(payload) < 2:
            return False
        ext = payload[1]
        pos = 2
        if ext & 0x80:  # I: picture id, 1 or 2 bytes
            if len(payload) <= pos:
                return False
            pos += 2 if payload[pos] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            pos += 1
        if ext & 0x30:  # T or K: one byte
            pos += 1
    return len(payload) > pos and not payload[pos] & 0x01  # P bit 0: keyframe


H264_IDR = 5
H264_SPS = 7


def _h264_keyframe_start(payload: bytes) -> bool:
    nal_type = payload[0] & 0x1F
    if nal_type in (H264_IDR, H264_SPS):
        return True
    if nal_type == 24:  # STAP-A: 16-bit size, then the first NAL unit header
        return len(payload) > 3 and payload[3] & 0x1F in (H264_IDR, H264_SPS)
    if nal_type == 28:  # FU-A: start bit and the fragmented unit's type
        return (
            len(payload) > 1
            and bool(payload[1] & 0x80)
            and payload[1] & 0x1F in (H264_IDR, H264_SPS)
        )
    return False


def interchangeable(a: RTCRtpCodecParameters, b: RTCRtpCodecParameters) -> bool:
    """Can a receiver negotiated for ``a`` be fed ``b``'s payloads (same codec and, for H.264,
    the same profile and packetization mode)? Payload types may differ: they are rewritten."""
    if a.mimeType.lower() != b.mimeType.lower() or a.clockRate != b.clockRate:
        return False
    if a.mimeType.lower() == "video/h264":
        keys = ("profile-level-id", "packetization-mode")
        return all(
            str(a.parameters.get(k)).lower() == str(b.parameters.get(k)).lower() for k in keys
        )
    return True
