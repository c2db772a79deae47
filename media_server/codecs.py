"""The codecs the SFU forwards, how they are told apart, and where a stream may start.

Publishers may send Opus audio and VP8 or H.264 (packetization-mode 0 or 1) video. A publish
leg's answer negotiates every such codec of the client's offer, in the order the room prefers
(browsers send with the first codec of the answer; the Publication learns from the payload
type which one actually arrives). A subscription leg is offered every forwarded codec the
subscriber decodes, the one its source sends first. Video legs both ways negotiate RTX (RFC
4588) for each codec: publishers' retransmissions are unwrapped on the way in, ours to
subscribers go out on the RTX SSRC; forwarding itself stays a plain header rewrite.

H.264 is matched as RFC 6184 (section 8.1) says: by profile (profile_idc plus the constraint
flags of profile-iop, so 42e0xx, 42c0xx and 4240xx are all Constrained Baseline, 4200xx
Baseline, 4d00xx Main, 6400xx High) and packetization mode; the level never splits two codecs
(level-asymmetry-allowed). The profile patterns are aiortc's (libwebrtc's) table.
"""

from __future__ import annotations

import copy

from aiortc.codecs import CODECS, is_rtx
from aiortc.rtcpeerconnection import find_common_codecs
from aiortc.rtcrtpparameters import (
    RTCRtcpFeedback,
    RTCRtpCodecCapability,
    RTCRtpCodecParameters,
)
from aiortc.sdp import H264Profile, parse_h264_profile_level_id

FORWARDED = {"audio": ("audio/opus",), "video": ("video/VP8", "video/H264")}
# What a missing profile-level-id means (RFC 6184 says Baseline 1.0; WebRTC stacks since
# libwebrtc treat it as Constrained Baseline 3.1, and so does aiortc).
DEFAULT_PROFILE_LEVEL_ID = "42e01f"
PACKETIZATION_MODES = ("0", "1")  # single NAL unit; non-interleaved (STAP-A, FU-A)

# A stream of the key profile decodes with a decoder of any profile in the value (Constrained
# Baseline is the common subset of Baseline, Main and High; Constrained High of High).
_DECODED_BY = {
    H264Profile.PROFILE_CONSTRAINED_BASELINE: {
        H264Profile.PROFILE_CONSTRAINED_BASELINE,
        H264Profile.PROFILE_BASELINE,
        H264Profile.PROFILE_MAIN,
        H264Profile.PROFILE_CONSTRAINED_HIGH,
        H264Profile.PROFILE_HIGH,
    },
    H264Profile.PROFILE_CONSTRAINED_HIGH: {
        H264Profile.PROFILE_CONSTRAINED_HIGH,
        H264Profile.PROFILE_HIGH,
    },
}


class NoCommonCodec(ValueError):
    """The offer has no codec the SFU forwards for this m-line."""


def _mode(codec: RTCRtpCodecParameters | RTCRtpCodecCapability) -> str:
    return str(codec.parameters.get("packetization-mode", "0"))


def _add_packetization_mode_0() -> None:
    """aiortc's table knows H.264 packetization-mode 1 only; a device that sends single NAL
    units only (mode 0, common in embedded and SIP gear) could not be answered at all. The
    mode 0 twins are appended, so every aiortc peer still prefers what it had."""
    video = CODECS["video"]
    if any(_mode(c) == "0" for c in video if c.mimeType == "video/H264"):
        return
    next_pt = max(c.payloadType for c in video) + 1
    for base in [c for c in video if c.mimeType == "video/H264"]:
        codec = copy.deepcopy(base)
        codec.payloadType = next_pt
        codec.parameters = {**base.parameters, "packetization-mode": "0"}
        rtx = RTCRtpCodecParameters(
            mimeType="video/rtx",
            clockRate=base.clockRate,
            payloadType=next_pt + 1,
            parameters={"apt": next_pt},
        )
        codec.rtcpFeedback = [
            RTCRtcpFeedback(type=f.type, parameter=f.parameter) for f in base.rtcpFeedback
        ]
        video += [codec, rtx]
        next_pt += 2


_add_packetization_mode_0()


def h264_profile(codec: RTCRtpCodecParameters | RTCRtpCodecCapability) -> H264Profile | None:
    """The RFC 6184 profile of an H.264 codec (None: not H.264, or not a known profile)."""
    if codec.mimeType.lower() != "video/h264":
        return None
    try:
        value = str(codec.parameters.get("profile-level-id", DEFAULT_PROFILE_LEVEL_ID))
        return parse_h264_profile_level_id(value)[0]
    except ValueError:
        return None


def forwarded(codec: RTCRtpCodecParameters, kind: str) -> bool:
    """Is this a media codec the SFU forwards (not RTX, a known H.264 profile and mode)?"""
    if is_rtx(codec) or codec.mimeType not in FORWARDED.get(kind, ()):
        return False
    if codec.mimeType == "video/H264":
        return _mode(codec) in PACKETIZATION_MODES and h264_profile(codec) is not None
    return True


# What setCodecPreferences takes to negotiate RTX for every codec that has one (aiortc adds the
# RTX of each preferred codec when any RTX is among the preferences).
RTX_CAPABILITY = RTCRtpCodecCapability(mimeType="video/rtx", clockRate=90000)


def rtx_types(negotiated: list[RTCRtpCodecParameters]) -> dict[int, int]:
    """RTX payload type -> the payload type it repairs (its ``apt``, RFC 4588 8.6), for the RTX
    codecs among ``negotiated``; one without a usable apt is left out."""
    out = {}
    for codec in negotiated:
        apt = str(codec.parameters.get("apt", "")) if is_rtx(codec) else ""
        if apt.isdigit() and codec.payloadType is not None:
            out[codec.payloadType] = int(apt)
    return out


def publish_codecs(kind: str, offered: list[RTCRtpCodecParameters]) -> list[RTCRtpCodecParameters]:
    """Every codec the SFU accepts from one offered m-line, in offer order (aiortc's
    parameters, the offer's payload types). Raises NoCommonCodec when there is none."""
    if kind not in FORWARDED:
        raise NoCommonCodec(f"cannot forward {kind} media")
    found = [c for c in find_common_codecs(CODECS[kind], offered) if forwarded(c, kind)]
    if not found:
        names = ", ".join(sorted({c.mimeType for c in offered})) or "none"
        raise NoCommonCodec(f"no forwardable {kind} codec offered (offered: {names})")
    return found


def local_codecs(kind: str) -> list[RTCRtpCodecParameters]:
    """The forwarded codecs of aiortc's table (what a server offer can name)."""
    return [c for c in CODECS.get(kind, []) if forwarded(c, kind)]


def capability(codec: RTCRtpCodecParameters) -> RTCRtpCodecCapability:
    """The capability ``setCodecPreferences`` accepts for a negotiated codec."""
    return RTCRtpCodecCapability(
        mimeType=codec.mimeType,
        clockRate=codec.clockRate,
        channels=codec.channels,
        parameters=dict(codec.parameters),
    )


def capabilities(ordered: list[RTCRtpCodecParameters]) -> list[RTCRtpCodecCapability]:
    """``setCodecPreferences`` for codecs in this order (each aiortc codec once)."""
    out: list[RTCRtpCodecCapability] = []
    for codec in ordered:
        cap = capability(codec)
        if not any(c.mimeType == cap.mimeType and c.parameters == cap.parameters for c in out):
            out.append(cap)
    return out


def describe(codec: RTCRtpCodecParameters) -> str:
    """``VP8`` / ``H264 42e01f`` / ``opus``: a short label for logs and metrics."""
    profile = codec.parameters.get("profile-level-id")
    return f"{codec.name} {profile}" if profile else codec.name


def same_format(a: RTCRtpCodecParameters, b: RTCRtpCodecParameters) -> bool:
    """Do ``a`` and ``b`` name the same codec for offer/answer (RFC 6184 8.1: for H.264 the
    same profile and packetization mode; the level may differ)? Payload types may differ."""
    if a.mimeType.lower() != b.mimeType.lower() or a.clockRate != b.clockRate:
        return False
    if a.mimeType.lower() == "video/h264":
        profile = h264_profile(a)
        return profile is not None and profile == h264_profile(b) and _mode(a) == _mode(b)
    return True


def decodes(receiver: RTCRtpCodecParameters, stream: RTCRtpCodecParameters) -> bool:
    """Can a receiver negotiated for ``receiver`` be fed the payloads of ``stream``?

    Same codec; for H.264 a profile whose decoder takes the stream's (Constrained Baseline
    plays on a Baseline, Main or High decoder) and a packetization mode whose depacketizer
    takes it (mode 1 receivers also take mode 0's single NAL units). Levels are not compared:
    receivers accept level asymmetry and browsers decode any level their profile allows.
    """
    if receiver.mimeType.lower() != stream.mimeType.lower():
        return False
    if receiver.clockRate != stream.clockRate:
        return False
    if stream.mimeType.lower() != "video/h264":
        return True
    have, need = h264_profile(receiver), h264_profile(stream)
    if have is None or need is None:
        return False
    if have != need and have not in _DECODED_BY.get(need, ()):
        return False
    return _mode(stream) == "0" or _mode(receiver) == "1"


# ---- where a stream may start (keyframes) -------------------------------------------------

H264_IDR = 5
H264_SPS = 7
H264_STAP_A = 24
H264_FU_A = 28
# NAL units a decoder can start at: the sequence parameter set (the parameter sets and the
# IDR follow) or the IDR slice itself (parameter sets sent earlier or out of band).
_H264_STARTS = (H264_IDR, H264_SPS)


def starts_keyframe(codec_name: str, payload: bytes) -> bool:
    """Does this RTP payload begin a keyframe, i.e. may a fresh receiver start here?

    VP8 (RFC 7741 4.3): the first packet of partition 0 of a frame whose P bit is 0.
    H.264 (RFC 6184 5.6-5.8): a single NAL unit that is an SPS or IDR; a STAP-A holding an SPS
    or IDR anywhere (after an access unit delimiter or SEI too); the first fragment of an
    FU-A carrying an IDR or SPS. Audio: any packet.
    """
    if not payload:
        return False
    if codec_name == "VP8":
        return _vp8_keyframe_start(payload)
    if codec_name == "H264":
        return any(t in _H264_STARTS for t in h264_nal_types(payload, starts_only=True))
    return True


def h264_nal_types(payload: bytes, starts_only: bool = False) -> list[int]:
    """The NAL unit types one H.264 RTP payload carries (all units of a STAP-A; for an FU-A
    the fragmented unit's type, or nothing for a middle or end fragment when ``starts_only``).
    Truncated aggregation units are not counted."""
    nal_type = payload[0] & 0x1F
    if 1 <= nal_type <= 23:
        return [nal_type]
    if nal_type == H264_STAP_A:
        types, pos = [], 1
        while pos + 2 < len(payload):
            size = payload[pos] << 8 | payload[pos + 1]
            pos += 2
            if size == 0 or pos + size > len(payload):
                break
            types.append(payload[pos] & 0x1F)
            pos += size
        return types
    if nal_type == H264_FU_A and len(payload) > 1:
        if starts_only and not payload[1] & 0x80:
            return []
        return [payload[1] & 0x1F]
    return []  # STAP-B, MTAP, FU-B: interleaved mode only, which is not negotiated


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
