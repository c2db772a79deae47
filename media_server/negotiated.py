"""What aiortc keeps of each negotiation, kept once: ``compact(pc)`` after each one.

An idle member's memory is mostly what its peer connection keeps from negotiating (issue 17:
``benchmarks.memory --frames 0 --consults 24``, 0.38 MB RSS per idle participant, ~0.25 MB
of it Python objects). One part of that is dead weight, released without changing what
aiortc or the forwarding path read:

- The superseded local description: aiortc never promotes our offer when its answer arrives
  (JSEP, RFC 8829 4.1.10: ``setRemoteDescription(answer)`` makes the pending local
  description current). Its ``localDescription`` is ``pending or current``, so the first
  answer we gave the client stays referenced as "current" for the connection's life, read by
  nothing (0.383 -> 0.361 MB RSS per idle participant).

aiortc 1.x's private attributes are used (as ``Participant`` does for its certificate).
"""

from __future__ import annotations

from aiortc import RTCPeerConnection


def compact(pc: RTCPeerConnection) -> None:
    """After ``pc`` applied an answer (ours to the client's offer, or the client's to ours):
    let go of the superseded local description."""
    _settle(pc)


def _settle(pc: RTCPeerConnection) -> None:
    # After setRemoteDescription(answer) to our offer: our offer becomes the current local
    # description and the one before it is let go (aiortc keeps both referenced).
    pending = pc._RTCPeerConnection__pendingLocalDescription
    if pending is not None and pc.signalingState == "stable":
        pc._RTCPeerConnection__currentLocalDescription = pending
        pc._RTCPeerConnection__pendingLocalDescription = None
