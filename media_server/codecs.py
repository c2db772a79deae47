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
