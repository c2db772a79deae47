"""What a client's offer must hold before aiortc sees it (aiortc trusts it and breaks).

aiortc applies a description in place: when it fails halfway, the peer connection keeps what
it had set up, and some shapes it does not check at all. Each check here is one such shape,
found by the SDP fuzz harness (tests/media_path/test_sdp_fuzz.py).
"""

from __future__ import annotations

from aiortc.sdp import SessionDescription


def check_offer(description: SessionDescription) -> None:
    """Raise ValueError for an offer aiortc would mishandle.

    - A BUNDLE group whose first tag names no m-line (RFC 8843 section 7.2 requires every
      tag to name an m-line of the offer): aiortc bundles the other m-lines onto the missing
      one's transport, i.e. onto none, and the peer connection cannot even be closed.
    """
    mids = {m.rtp.muxId for m in description.media}
    for group in description.group:
        if group.semantic == "BUNDLE":
            missing = [tag for tag in group.items if tag not in mids]
            if missing:
                raise ValueError(f"the BUNDLE group names mid {missing[0]!r}, which no m-line has")
