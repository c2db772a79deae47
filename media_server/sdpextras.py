"""What the SFU's descriptions carry that aiortc cannot express: Opus in-band FEC and DTX,
transport-wide congestion control on the publishing side.

aiortc answers Opus with its own codec parameters (none: its capabilities have no fmtp, and
``setCodecPreferences`` refuses a capability with parameters it does not list), so a browser
publisher is never asked for in-band FEC or DTX. ``answer(sdp)`` adds them to every Opus
payload type of an answer (RFC 7587 7.1: ``useinbandfec=1`` asks the sender to add FEC, so a
lost packet is rebuilt from the next one; ``usedtx=1`` lets silence cost almost nothing on a
poor uplink), keeping any parameter aiortc did write. The text is changed before
``setLocalDescription``, which parses it again: what aiortc keeps is what the client reads.

``transport_cc(sdp, ext_id)`` negotiates transport-wide congestion control
(draft-holmer-rmcat-transport-wide-cc-extensions-01) where the client publishes: its packets
then carry a transport sequence number, we feed back which arrived and when
(``feedback.TransportFeedback``), and its own send-side estimator (libwebrtc's GoogCC) sees
what its uplink loses. Our delay-based REMB cannot: a policer drops without queueing, and a
publisher policed at 300 kbit/s kept sending ~0.7 Mbit/s. aiortc knows the extension only as a
sender's, so it never answers it; the text is changed like the Opus parameters above.
``transport_cc(sdp, ext_id, sending=True)`` does the same on the sections we send on
(``media.downlink_transport_cc``): our packets to the subscriber then carry our own transport
sequence (``rtpforward.Departures``) and its feedback tells our estimator when each arrived.
"""

from __future__ import annotations

import re

from media_server.rtpheader import URI_TRANSPORT_CC

OPUS_FMTP = {"minptime": "10", "useinbandfec": "1", "usedtx": "1"}
_RTPMAP = re.compile(r"^a=rtpmap:(\d+) opus/48000", re.I | re.M)
_ANY_RTPMAP = re.compile(r"^a=rtpmap:(\d+) ([^/\s]+)/", re.I)
_EXTMAP_TCC = re.compile(rf"^a=extmap:(\d+)(?:/\S+)? {re.escape(URI_TRANSPORT_CC)}$")
# Our directions on a section the client publishes on (recvonly: we created it so), and on one
# we send on (sendonly: a subscription).
_PUBLISHING = ("a=recvonly", "a=sendrecv")
_SENDING = ("a=sendonly", "a=sendrecv")
# Payload types that are no media of their own: libwebrtc names transport-cc on media codecs.
_NOT_MEDIA = {"rtx", "red", "ulpfec", "flexfec-03"}


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


def transport_cc(sdp: str, ext_id: int | None, sending: bool = False) -> str:
    """``sdp`` (our answer or re-offer, in the client's numbering) with transport-wide
    congestion control on every audio and video section the client publishes on (our side
    ``recvonly`` or ``sendrecv``), or with ``sending`` on every one we send on (``sendonly``
    or ``sendrecv``: subscriptions): ``a=extmap:<ext_id>`` of the transport-cc URI and
    ``a=rtcp-fb:<pt> transport-cc`` for each media codec. The other sections stay as they
    are. ``ext_id`` is the id the client's offer gave the extension (RFC 8285: one id per URI
    in a BUNDLE; ``reoffer.reserve`` gives one it did not name); None leaves ``sdp``
    unchanged (the client did not offer it, or the setting is off)."""
    if ext_id is None:
        return sdp
    directions = _SENDING if sending else _PUBLISHING
    eol = "\r\n" if "\r\n" in sdp else "\n"
    lines = sdp.split(eol)
    starts = [i for i, line in enumerate(lines) if line.startswith("m=")] + [len(lines)]
    out = lines[: starts[0]]
    for start, end in zip(starts, starts[1:], strict=False):
        section = lines[start:end]
        if section[0].startswith(("m=audio", "m=video")) and any(
            line in directions for line in section
        ):
            section = _with_transport_cc(section, ext_id)
        out += section
    return eol.join(out)


def transport_cc_by_mid(sdp: str) -> dict[str, int]:
    """mid -> the transport-cc extension's id, for each section of ``sdp`` (the client's
    answer) that kept ``a=extmap`` of it: aiortc leaves the extension out of what it
    negotiated (it knows it only as a sender's)."""
    out: dict[str, int] = {}
    for section in sdp.split("\nm=")[1:]:
        lines = [line.strip() for line in section.splitlines()]
        mid = next((line[6:] for line in lines if line.startswith("a=mid:")), None)
        for line in lines:
            match = _EXTMAP_TCC.match(line)
            if match and mid is not None:
                out[mid] = int(match.group(1))
    return out


def _with_transport_cc(section: list[str], ext_id: int) -> list[str]:
    section = [line for line in section if not _names_transport_cc(line)]
    taken = [line for line in section if line.startswith(f"a=extmap:{ext_id} ")]
    if taken:  # the id names something else here: the client's offer did not give it to us
        return section
    extmaps = [i for i, line in enumerate(section) if line.startswith("a=extmap:")]
    at = extmaps[-1] + 1 if extmaps else len(section)
    section.insert(at, f"a=extmap:{ext_id} {URI_TRANSPORT_CC}")
    out = []
    for line in section:
        out.append(line)
        match = _ANY_RTPMAP.match(line)
        if match and match.group(2).lower() not in _NOT_MEDIA:
            out.append(f"a=rtcp-fb:{match.group(1)} transport-cc")
    return out


def _names_transport_cc(line: str) -> bool:
    return line.endswith(f" {URI_TRANSPORT_CC}") or (
        line.startswith("a=rtcp-fb:") and line.endswith(" transport-cc")
    )
