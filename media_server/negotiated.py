"""What aiortc keeps of each negotiation, kept once: ``compact(pc)`` after each one.

An idle member's memory is mostly what its peer connection keeps from negotiating (issue 17:
``benchmarks.memory --frames 0 --consults 24``, 0.38 MB RSS per idle participant, ~0.25 MB
of it Python objects). Two parts of that are dead weight, released without changing what
aiortc or the forwarding path read:

- The superseded local description: aiortc never promotes our offer when its answer arrives
  (JSEP, RFC 8829 4.1.10: ``setRemoteDescription(answer)`` makes the pending local
  description current). Its ``localDescription`` is ``pending or current``, so the first
  answer we gave the client stays referenced as "current" for the connection's life, read by
  nothing (0.383 -> 0.361 MB RSS per idle participant).
- Copies of equal codecs: every transceiver's negotiated codecs are deep copies
  (``find_common_codecs``), and every parsed description its own objects: ~90 codec and ~120
  feedback objects per participant, nearly all equal to another participant's. Equal ones
  become one shared object (0.361 -> 0.301 MB). Nothing changes a codec once negotiated (a
  subscription that rewrites a payload type copies first: ``Subscription.bind``), so readers
  cannot tell; each negotiation makes new objects (aiortc parses and copies anew), which are
  shared in turn.

aiortc 1.x's private attributes are used (as ``Participant`` does for its certificate).
"""

from __future__ import annotations

import weakref
from typing import Any

from aiortc import RTCPeerConnection
from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpCodecParameters

# Codec -> its shared equal. Weak: a codec no connection holds any more leaves the table, so a
# client offering many distinct fmtp lines cannot grow it beyond what live connections keep.
_codecs: weakref.WeakValueDictionary[tuple[Any, ...], RTCRtpCodecParameters] = (
    weakref.WeakValueDictionary()
)
_feedback: weakref.WeakValueDictionary[tuple[str, str | None], RTCRtcpFeedback] = (
    weakref.WeakValueDictionary()
)


def compact(pc: RTCPeerConnection) -> None:
    """After ``pc`` applied an answer (ours to the client's offer, or the client's to ours):
    let go of the superseded local description and share the negotiated codecs."""
    _settle(pc)
    _share_codecs(pc)


def _settle(pc: RTCPeerConnection) -> None:
    # After setRemoteDescription(answer) to our offer: our offer becomes the current local
    # description and the one before it is let go (aiortc keeps both referenced).
    pending = pc._RTCPeerConnection__pendingLocalDescription
    if pending is not None and pc.signalingState == "stable":
        pc._RTCPeerConnection__currentLocalDescription = pending
        pc._RTCPeerConnection__pendingLocalDescription = None


def shared(codec: RTCRtpCodecParameters) -> RTCRtpCodecParameters:
    """The one object equal to ``codec`` in every field (itself, the first time): for a codec
    kept for the connection's life and never changed (copy it first to change it)."""
    feedback = tuple((f.type, f.parameter) for f in codec.rtcpFeedback)
    parameters = tuple(sorted(codec.parameters.items(), key=lambda item: item[0]))
    key = (codec.mimeType, codec.clockRate, codec.channels, codec.payloadType, parameters, feedback)
    try:
        found = _codecs.get(key)
    except TypeError:  # an unhashable parameter value: keep this one to itself
        return codec
    if found is not None:
        return found
    # Equal feedback entries are shared across different codecs too (nack, nack pli, ...).
    codec.rtcpFeedback = [
        _feedback.setdefault((f.type, f.parameter), f) for f in codec.rtcpFeedback
    ]
    _codecs[key] = codec
    return codec


def _share_codecs(pc: RTCPeerConnection) -> None:
    # Each negotiated codec pc holds (its transceivers' and its descriptions') becomes the
    # shared equal one.
    for transceiver in pc.getTransceivers():
        transceiver._codecs = [shared(c) for c in transceiver._codecs]
    descriptions = (
        pc._RTCPeerConnection__currentLocalDescription,
        pc._RTCPeerConnection__currentRemoteDescription,
        pc._RTCPeerConnection__pendingLocalDescription,
        pc._RTCPeerConnection__pendingRemoteDescription,
    )
    for description in descriptions:
        for media in description.media if description is not None else ():
            media.rtp.codecs = [shared(c) for c in media.rtp.codecs]
