"""What the SFU's answers carry that aiortc cannot express: Opus in-band FEC and DTX.

aiortc answers Opus with its own codec parameters (none: its capabilities have no fmtp, and
``setCodecPreferences`` refuses a capability with parameters it does not list), so a browser
publisher is never asked for in-band FEC or DTX. ``answer(sdp)`` adds them to every Opus
payload type of an answer (RFC 7587 7.1: ``useinbandfec=1`` asks the sender to add FEC, so a
lost packet is rebuilt from the next one; ``usedtx=1`` lets silence cost almost nothing on a
poor uplink), keeping any parameter aiortc did write. The text is changed before
``setLocalDescription``, which parses it again: what aiortc keeps is what the client reads.
"""

from __future__ import annotations

import re

OPUS_FMTP = {"minptime": "10", "useinbandfec": "1", "usedtx": "1"}
_RTPMAP = re.compile(r"^a=rtpmap:(\d+) opus/48000", re.I | re.M)


def answer(sdp: str) -> str:
    """``sdp`` with ``OPUS_FMTP`` on every Opus payload type (merged into an existing fmtp)."""
    eol = "\r\n" if "\r\n" in sdp else "\n"
    lines = sdp.split(eol)
    for pt in {m.group(1) for m in _RTPMAP.finditer(sdp)}:
        prefix = f"a=fmtp:{pt} "
        at = next((i for i, line in enumerate(lines) if line.startswith(prefix)), None)
        if at is None:
            rtpmap = next(i for i, line in enumerate(lines) if line.startswith(f"a=rtpmap:{pt} "))
            lines.insert(rtpmap + 1, prefix + _join(OPUS_FMTP))
            continue
        params = dict(p.split("=", 1) for p in lines[at][len(prefix) :].split(";") if "=" in p)
        lines[at] = prefix + _join({**params, **OPUS_FMTP})
    return eol.join(lines)


def _join(params: dict[str, str]) -> str:
    return ";".join(f"{k}={v}" for k, v in params.items())
