"""Sections of a server offer that the client's answer refused.

A client may refuse one m-line of a server offer: JSEP marks it ``m=<kind> 0`` (an H.264-only
phone offered a VP8 stream), or it answers with codecs we never offered. aiortc cannot apply
such an answer at all ("Failed to set remote video description send parameters"), so one
refused stream would take every other one of the answer down with it - the audio too.

``accept(answer, offer)`` turns every refused audio/video section of ``answer`` into an
``inactive`` section aiortc can apply (our offered codecs, the transport attributes of the
bundle's accepted section, back in the BUNDLE group) and says which sections it refused and
why. The caller binds the other sections as usual and treats the refused ones as streams the
subscriber cannot receive. JSEP: RFC 8829 5.3.1 (rejecting an m-section), RFC 8843 (BUNDLE).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiortc.codecs import is_rtx
from aiortc.rtcpeerconnection import find_common_codecs
from aiortc.sdp import GroupDescription, MediaDescription, SessionDescription

DISCARD_PORT = 9


@dataclass(frozen=True)
class Refusal:
    """One refused section: its mid, its kind and why (for logs, metrics and the client)."""

    mid: str
    kind: str
    reason: str  # "rejected" (port 0) | "no_common_codec"
    detail: str  # e.g. "offered VP8; answered H264"


def _names(codecs: list) -> str:  # noqa: ANN001 - aiortc codec parameters
    names = sorted({c.name for c in codecs if not is_rtx(c)})
    return ", ".join(names) or "none"


def accept(answer: str, offer: str) -> tuple[str, list[Refusal]]:
    """``answer`` with its refused audio/video sections made applicable, and the refusals.

    Sections are matched to ``offer`` (our local offer) by position, as JSEP requires. An
    answer that is not SDP, or whose sections do not line up with the offer, is returned as
    it is (aiortc then refuses it with the precise reason). Raises nothing.
    """
    try:
        parsed = SessionDescription.parse(answer)
        ours = SessionDescription.parse(offer)
    except Exception:
        return answer, []
    if len(parsed.media) != len(ours.media):
        return answer, []
    refusals: list[Refusal] = []
    for media, offered in zip(parsed.media, ours.media, strict=True):
        if media.kind not in ("audio", "video") or media.kind != offered.kind:
            continue
        mid = media.rtp.muxId or offered.rtp.muxId or ""
        if media.port == 0:
            reason = "rejected"
        elif not any(
            not is_rtx(c) for c in find_common_codecs(offered.rtp.codecs, media.rtp.codecs)
        ):
            reason = "no_common_codec"
        else:
            continue
        detail = f"offered {_names(offered.rtp.codecs)}; answered {_names(media.rtp.codecs)}"
        refusals.append(Refusal(mid=mid, kind=media.kind, reason=reason, detail=detail))
    if not refusals:
        return answer, []
    transport = _accepted_transport(parsed, {r.mid for r in refusals})
    if transport is None:
        return answer, refusals  # nothing to borrow ICE/DTLS from: aiortc refuses it
    refused_mids = {r.mid for r in refusals}
    for i, (media, offered) in enumerate(zip(parsed.media, ours.media, strict=True)):
        mid = media.rtp.muxId or offered.rtp.muxId
        if mid not in refused_mids:
            continue
        parsed.media[i] = _inactive(offered, mid, transport)
    _bundle(parsed, [m.rtp.muxId for m in ours.media])
    return str(parsed), refusals


def _accepted_transport(parsed: SessionDescription, refused: set[str]) -> MediaDescription | None:
    for media in parsed.media:
        if media.rtp.muxId in refused or media.port == 0:
            continue
        if media.ice and media.ice.usernameFragment and media.dtls and media.dtls.fingerprints:
            return media
    return None


def _inactive(offered: MediaDescription, mid: str, transport: MediaDescription) -> MediaDescription:
    """The answer section a client that accepts nothing of ``offered`` would have sent."""
    media = MediaDescription(
        kind=offered.kind,
        port=DISCARD_PORT,
        profile=offered.profile,
        fmt=[c.payloadType for c in offered.rtp.codecs],
    )
    media.host = transport.host
    media.direction = "inactive"
    media.rtp.codecs = offered.rtp.codecs
    media.rtp.muxId = mid
    media.rtcp_host, media.rtcp_port = "0.0.0.0", DISCARD_PORT  # a=rtcp-mux needs a=rtcp
    media.rtcp_mux = True
    media.ice = transport.ice
    media.dtls = transport.dtls
    return media


def _bundle(parsed: SessionDescription, mids: list[str]) -> None:
    """Every section back in one BUNDLE group, in offer order: aiortc would otherwise start
    a separate ICE transport for a section left out of it."""
    parsed.group = [g for g in parsed.group if g.semantic != "BUNDLE"]
    parsed.group.append(GroupDescription(semantic="BUNDLE", items=list(mids)))
