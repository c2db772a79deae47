"""A room's codec choice: which codec each publisher sends, and who needs a fallback.

Every member decodes some codecs (declared at join by a native app, else the codecs of its
offer). For each video publication the room prefers, in this order:

1. a codec every other member decodes, among those the publisher negotiated: the publisher is
   answered with it first (it starts with it) or, if it already sends another, asked to switch
   (a server re-offer of its m-line with that codec first; ``Participant.request_codec``);
2. for a member that decodes none of what the publisher sends, once a switch is impossible or
   was refused: a transcoder to a codec that member decodes (``transcoder.Transcoder``);
3. otherwise the stream cannot be shown to that member, and both sides are told.

Ties go to ``media.video_codecs`` (the operator's order), then H.264 Constrained Baseline
over other profiles (every H.264 decoder takes it), packetization-mode 1 over 0, then the
publisher's own order. A member whose codecs are unknown (it offered no video) is
taken to decode everything the SFU forwards, as browsers do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.sdp import H264Profile
from pydantic import BaseModel, ConfigDict, Field

from media_server import codecs

Known = list[RTCRtpCodecParameters] | None  # what one member decodes of one kind; None: unknown


def can_decode(known: Known, codec: RTCRtpCodecParameters) -> bool:
    return known is None or any(codecs.decodes(k, codec) for k in known)


def _rank(codec: RTCRtpCodecParameters, preference: Sequence[str]) -> tuple[int, int, int]:
    name = preference.index(codec.name) if codec.name in preference else len(preference)
    # Constrained Baseline first: every H.264 decoder takes it (codecs.decodes).
    profile = (
        0 if codecs.h264_profile(codec) in (None, H264Profile.PROFILE_CONSTRAINED_BASELINE) else 1
    )
    mode = 0 if str(codec.parameters.get("packetization-mode", "1")) == "1" else 1
    return name, profile, mode


def publish_order(
    offered: list[RTCRtpCodecParameters], receivers: list[Known], preference: Sequence[str]
) -> list[RTCRtpCodecParameters]:
    """The publisher's codecs in the order to answer them (it sends with the first): those
    every receiver decodes first, then by ``preference``; stable otherwise."""
    return sorted(
        offered,
        key=lambda c: (not all(can_decode(r, c) for r in receivers), *_rank(c, preference)),
    )


def switch_target(
    negotiated: list[RTCRtpCodecParameters], receivers: list[Known], preference: Sequence[str]
) -> RTCRtpCodecParameters | None:
    """The codec to ask the publisher for: negotiated on its m-line and decoded by every
    receiver (the preferred one), or None."""
    fit = [c for c in negotiated if all(can_decode(r, c) for r in receivers)]
    return min(fit, key=lambda c: _rank(c, preference)) if fit else None


def transcode_target(
    known: Known, candidates: list[RTCRtpCodecParameters], preference: Sequence[str]
) -> RTCRtpCodecParameters | None:
    """What to transcode to for one member: the preferred candidate it decodes, or None."""
    fit = [c for c in candidates if can_decode(known, c)]
    return min(fit, key=lambda c: _rank(c, preference)) if fit else None


# ---- capabilities a native app declares at join (docs/signaling.md) -----------------------


class DeclaredCodec(BaseModel):
    """One codec a client decodes: ``{"codec": "H264", "profile_level_id": "42e01f",
    "packetization_mode": 1}`` or ``{"codec": "VP8"}``."""

    model_config = ConfigDict(extra="forbid")
    codec: Literal["VP8", "H264", "opus"]
    profile_level_id: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{6}$")
    packetization_mode: Literal[0, 1] | None = None


class Capabilities(BaseModel):
    """The `capabilities` field of `join`: what the client decodes, per kind."""

    model_config = ConfigDict(extra="forbid")
    video: list[DeclaredCodec] | None = Field(default=None, max_length=32)
    audio: list[DeclaredCodec] | None = Field(default=None, max_length=32)

    def codecs(self) -> dict[str, list[RTCRtpCodecParameters]]:
        """Per kind, as codec parameters the matching functions take. Raises ValueError for a
        codec of the wrong kind or an H.264 profile nobody knows."""
        out: dict[str, list[RTCRtpCodecParameters]] = {}
        for kind, declared in (("video", self.video), ("audio", self.audio)):
            if declared is None:
                continue
            out[kind] = [_parameters(kind, d) for d in declared]
        return out


def _parameters(kind: str, declared: DeclaredCodec) -> RTCRtpCodecParameters:
    audio = declared.codec == "opus"
    if audio != (kind == "audio"):
        raise ValueError(f"{declared.codec} is not a {kind} codec")
    parameters: dict[str, str | int | None] = {}
    if declared.codec == "H264":
        # No profile: Baseline (RFC 6184's default profile), which covers Constrained Baseline.
        parameters["profile-level-id"] = (declared.profile_level_id or "42001f").lower()
        parameters["packetization-mode"] = str(
            1 if declared.packetization_mode is None else declared.packetization_mode
        )
    codec = RTCRtpCodecParameters(
        mimeType=f"{kind}/{declared.codec}",
        clockRate=48000 if audio else 90000,
        channels=2 if audio else None,
        payloadType=0,
        parameters=parameters,
    )
    if declared.codec == "H264" and codecs.h264_profile(codec) is None:
        raise ValueError(f"unknown H.264 profile-level-id {declared.profile_level_id!r}")
    return codec
