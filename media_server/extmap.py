"""Header-extension ids in the server's renegotiation offers.

aiortc's createOffer resets every transceiver to its built-in ids (mid=1, ssrc-audio-level=2,
abs-send-time=3), but in a BUNDLE group an id means one URI for the whole session, and the
client fixed that mapping in its first offer. Chrome refuses a re-offer that moves an id
("RTP extension ID reassignment not supported"), so each server offer is rewritten to the
client's ids; URIs the client never used get ids it does not use.
"""

from __future__ import annotations

import re

_EXTMAP = re.compile(r"^a=extmap:(\d+)(/\S+)? (\S+)(.*)$")
# One-byte header extensions: ids 1-14 (RFC 8285).
_IDS = range(1, 15)


def extension_ids(sdp: str) -> dict[str, int]:
    """URI -> id of every a=extmap line in ``sdp`` (the first mapping of a URI wins)."""
    ids: dict[str, int] = {}
    for line in sdp.splitlines():
        match = _EXTMAP.match(line)
        if match:
            ids.setdefault(match.group(3), int(match.group(1)))
    return ids


def align(sdp: str, client_ids: dict[str, int]) -> str:
    """``sdp`` with every extension id replaced by the client's id for the same URI."""
    chosen = dict(client_ids)
    free = (i for i in _IDS if i not in set(chosen.values()))

    def rewrite(line: str) -> str:
        match = _EXTMAP.match(line)
        if not match:
            return line
        uri = match.group(3)
        if uri not in chosen:
            chosen[uri] = next(free)
        return f"a=extmap:{chosen[uri]}{match.group(2) or ''} {uri}{match.group(4)}"

    ending = "\r\n" if "\r\n" in sdp else "\n"
    return ending.join(rewrite(line) for line in sdp.split(ending))
