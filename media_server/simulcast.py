"""Simulcast on the publish leg: what the client offers, and the answer lines aiortc omits.

aiortc ignores ``a=rid`` / ``a=simulcast`` and answers without them (aiortc issue 676), so a
browser would fall back to its first encoding. ``offered(sdp)`` reads, per video m-line of the
client's offer, the rids it sends (RFC 8853 ``a=simulcast:send``, RFC 8851 ``a=rid``) and the
ids of the RID and repaired-RID header extensions (RFC 8852); ``answer(sdp, offers)`` adds to
the matching answer sections ``a=extmap`` for both extensions (the offer's ids), ``a=rid:X
recv`` per layer and ``a=simulcast:recv`` in the offer's order. The lines are added to the text
sent to the client, after aiortc has taken its own answer (its parser would drop them).

Layers arrive each on its own SSRC, announced by nothing but the RID extension of its packets
(participant.py routes them: one Publication per layer, ``Publication.layers``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from media_server.rtpheader import URI_REPAIRED_RID, URI_RID

MAX_LAYERS = 3
PAGE_RIDS = ("q", "h", "f")  # the visit page's layers, lowest first (js/session.js)
_RID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")


@dataclass(frozen=True)
class Offer:
    """One video m-line's simulcast offer: ``rids`` in the client's order, extension ids."""

    mid: str
    rids: tuple[str, ...]
    rid_ext: int
    repaired_ext: int | None


def _sections(lines: list[str]) -> list[tuple[int, int]]:
    starts = [i for i, line in enumerate(lines) if line.startswith("m=")]
    return [(s, e) for s, e in zip(starts, [*starts[1:], len(lines)], strict=True)]


def offered(sdp: str) -> dict[str, Offer]:
    """mid -> Offer for every video m-line that offers 2..MAX_LAYERS simulcast layers with the
    RID extension; anything else (one layer, no extension, malformed) is no simulcast."""
    lines = sdp.replace("\r\n", "\n").split("\n")
    out: dict[str, Offer] = {}
    for start, end in _sections(lines):
        if not lines[start].startswith("m=video"):
            continue
        section = lines[start:end]
        mid = next((line[6:].strip() for line in section if line.startswith("a=mid:")), None)
        exts = {}
        for line in section:
            if line.startswith("a=extmap:"):
                parts = line[9:].split()
                if len(parts) >= 2 and parts[0].split("/")[0].isdigit():
                    exts[parts[1]] = int(parts[0].split("/")[0])
        send = [line for line in section if line.startswith("a=simulcast:send ")]
        rid_ext = exts.get(URI_RID)
        if mid is None or not send or rid_ext is None:
            continue
        # "send q;h;f" (alternatives "a,b" keep their first; "~" marks a paused layer)
        rids = tuple(alt.split(",")[0].lstrip("~") for alt in send[0].split(" ", 1)[1].split(";"))
        declared = {line[6:].split()[0] for line in section
                    if line.startswith("a=rid:") and len(line[6:].split()) > 1
                    and line[6:].split()[1] == "send"}  # fmt: skip
        if not 2 <= len(rids) <= MAX_LAYERS or not all(_RID.match(r) and r in declared
                                                        for r in rids):  # fmt: skip
            continue
        out[mid] = Offer(mid, rids, rid_ext, exts.get(URI_REPAIRED_RID))
    return out


def answer(sdp: str, offers: dict[str, Offer]) -> str:
    """The answer text with the simulcast lines of every offered m-line it accepted."""
    if not offers:
        return sdp
    eol = "\r\n" if "\r\n" in sdp else "\n"
    lines = sdp.split(eol)
    for start, end in reversed(_sections(lines)):
        section = lines[start:end]
        if not section[0].startswith("m=video") or section[0].split()[1] == "0":
            continue
        mid = next((line[6:].strip() for line in section if line.startswith("a=mid:")), None)
        offer = offers.get(mid or "")
        if offer is None:
            continue
        taken = {line[9:].split()[0] for line in section if line.startswith("a=extmap:")}
        extra = []
        for ident, uri in ((offer.rid_ext, URI_RID), (offer.repaired_ext, URI_REPAIRED_RID)):
            if ident is not None and str(ident) not in taken:
                extra.append(f"a=extmap:{ident} {uri}")
        extra += [f"a=rid:{rid} recv" for rid in offer.rids]
        extra.append("a=simulcast:recv " + ";".join(offer.rids))
        at = end
        while at > start and lines[at - 1] == "":
            at -= 1
        lines[at:at] = extra
    return eol.join(lines)


def first_only(offer: Offer) -> Offer:
    """The offer answered with its first rid alone: the client sends one layer (the visit
    page's first is full resolution) and keeps the RID extension its offer tied to it."""
    return replace(offer, rids=offer.rids[:1])


def lowest_first(rids: tuple[str, ...]) -> list[str]:
    """The layers in rising order: the visit page's by name (it offers full resolution first,
    so that a server without simulcast gets that one), any other client's in its offer's order
    (RFC 8853 gives none; most clients offer the lowest first)."""
    if set(rids) <= set(PAGE_RIDS):
        return sorted(rids, key=PAGE_RIDS.index)
    return list(rids)
