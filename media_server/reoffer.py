"""Server re-offers keep the numbering the client chose in its first offer.

aiortc's createOffer renumbers every m-line from its built-in tables (opus=96, VP8=97,
sdes:mid=1, ...), including the m-lines the client already negotiated. In a BUNDLE group an
extension id or a payload type names one thing for the whole session, and the client fixed
those names in its offer. Chrome refuses a re-offer that moves an extension id ("RTP extension
ID reassignment not supported") and, worse, silently accepts a moved payload type and starts
sending with it - packets the publication, negotiated on the old type, would drop. So each
server offer is rewritten to the client's numbering: same URI -> the client's id, same codec ->
the client's payload type; anything the client never named gets a number it does not use.
When the client's offer used every number (all 14 one-byte extension ids, all 32 dynamic
payload types), what the client never named is left out of the re-offer rather than given a
number that already means something else.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from aiortc.sdp import parse_h264_profile_level_id

from media_server.codecs import DEFAULT_PROFILE_LEVEL_ID

_EXTMAP = re.compile(r"^a=extmap:(\d+)(/\S+)? (\S+)(.*)$")
_RTPMAP = re.compile(r"^a=rtpmap:(\d+) ([^/\s]+)/(\d+)(?:/(\d+))?")
_FMTP = re.compile(r"^a=fmtp:(\d+) (.*)$")
_PT_LINE = re.compile(r"^(a=(?:rtpmap|fmtp|rtcp-fb)):(\d+)(.*)$")
_APT = re.compile(r"\bapt=(\d+)")
# One-byte header extension ids (RFC 8285) and the dynamic payload types (RFC 3551).
_EXTENSION_IDS = range(1, 15)
_DYNAMIC_PTS = range(96, 128)

CodecKey = tuple[str, ...]


@dataclass
class Numbering:
    """What a description calls each extension URI and each codec."""

    extension_ids: dict[str, int] = field(default_factory=dict)
    payload_types: dict[CodecKey, int] = field(default_factory=dict)
    # payload type -> its fmtp parameters as the client wrote them (H.264 level included)
    fmtp: dict[int, str] = field(default_factory=dict)


def _sections(lines: list[str]) -> Iterator[list[int]]:
    """Line indexes of each m-section (the session part is skipped)."""
    current: list[int] | None = None
    for i, line in enumerate(lines):
        if line.startswith("m="):
            if current is not None:
                yield current
            current = [i]
        elif current is not None:
            current.append(i)
    if current is not None:
        yield current


def _codec_keys(lines: list[str], section: list[int]) -> dict[int, CodecKey]:
    """Payload type -> a key that names the codec independently of the number."""
    names: dict[int, tuple[str, str, str]] = {}
    params: dict[int, str] = {}
    for i in section:
        if match := _RTPMAP.match(lines[i]):
            pt, name, clock, channels = match.groups()
            if int(pt) <= 127:  # RTP has 7 bits for it; anything else names nothing
                names[int(pt)] = (name.lower(), clock, channels or "1")
        elif match := _FMTP.match(lines[i]):
            params[int(match.group(1))] = match.group(2)
    keys: dict[int, CodecKey] = {}
    for pt, base in names.items():
        fmtp = params.get(pt, "")
        if base[0] == "h264":
            # RFC 6184 8.1: the profile and the packetization mode tell H.264s apart, the
            # level does not (42c00c and 42e01f are one codec, Constrained Baseline).
            values = dict(p.strip().split("=", 1) for p in fmtp.split(";") if "=" in p)
            base += (values.get("packetization-mode", "0"), _h264_profile(values))
        keys[pt] = base
    for pt, key in list(keys.items()):
        if key[0] == "rtx" and (apt := _APT.search(params.get(pt, ""))):
            keys[pt] = ("rtx", *keys.get(int(apt.group(1)), ("?",)))
    return keys


def _h264_profile(values: dict[str, str]) -> str:
    level_id = values.get("profile-level-id", DEFAULT_PROFILE_LEVEL_ID)
    try:
        return parse_h264_profile_level_id(level_id)[0].name.lower()
    except ValueError:
        return level_id.lower()  # an unknown profile matches only itself


def numbering(sdp: str) -> Numbering:
    """The numbering of ``sdp`` (the first name given to a URI or codec wins). Numbers no
    session can use (extension ids outside 1-255, RFC 8285; payload types over 127) name
    nothing."""
    lines = sdp.splitlines()
    out = Numbering()
    for line in lines:
        if (match := _EXTMAP.match(line)) and int(match.group(1)) in _EXTENSION_IDS:
            out.extension_ids.setdefault(match.group(3), int(match.group(1)))
    for section in _sections(lines):
        for pt, key in _codec_keys(lines, section).items():
            if pt <= 127:
                out.payload_types.setdefault(key, pt)
        for i in section:
            if match := _FMTP.match(lines[i]):
                out.fmtp.setdefault(int(match.group(1)), match.group(2))
    return out


def reserve(client: Numbering, uri: str) -> int | None:
    """The id ``client`` gives extension ``uri``, else the first one-byte id it leaves free,
    kept in ``client`` from then on: every later re-offer names ``uri`` with it (Chrome
    refuses a moved id), and ``align`` gives it to nothing else. None: no id is free."""
    if uri not in client.extension_ids:
        taken = set(client.extension_ids.values())
        free = next((i for i in _EXTENSION_IDS if i not in taken), None)
        if free is None:
            return None
        client.extension_ids[uri] = free
    return client.extension_ids[uri]


# Marks a line of the server's offer to leave out (nothing free to name it with).
_DROP = "\x00"


def _renumber_section(
    lines: list[str], section: list[int], remap: dict[int, int | None], fmtp: dict[int, str]
) -> None:
    """Apply ``remap`` to the section's payload types (a type mapped to None is left out); a
    codec renumbered to a client's type gets the client's fmtp for it (``fmtp``)."""

    def keep(pt: str) -> bool:
        return not pt.isdigit() or remap.get(int(pt), 0) is not None

    m_line = lines[section[0]].split(" ")
    lines[section[0]] = " ".join(
        m_line[:3]
        + [str(remap.get(int(f), f)) if f.isdigit() else f for f in m_line[3:] if keep(f)]
    )
    for i in section[1:]:
        if match := _PT_LINE.match(lines[i]):
            prefix, pt, rest = match.groups()
            apt = _APT.search(rest)
            if not keep(pt) or (apt and not keep(apt.group(1))):
                lines[i] = _DROP
                continue
            rest = _APT.sub(lambda a: f"apt={remap.get(int(a.group(1)), a.group(1))}", rest)
            new_pt = remap.get(int(pt), int(pt))
            if prefix == "a=fmtp" and not apt and new_pt in fmtp:
                rest = f" {fmtp[new_pt]}"
            lines[i] = f"{prefix}:{new_pt}{rest}"


def align(sdp: str, client: Numbering) -> str:
    """``sdp`` renumbered to ``client``'s extension ids and payload types, and with the
    client's own fmtp lines for the codecs it named (an answer goes through this too)."""
    ending = "\r\n" if "\r\n" in sdp else "\n"
    lines = sdp.split(ending)

    ids: dict[str, int | None] = dict(client.extension_ids)
    free_ids = (i for i in _EXTENSION_IDS if i not in set(ids.values()))
    for i, line in enumerate(lines):
        if match := _EXTMAP.match(line):
            _, direction, uri, rest = match.groups()
            if uri not in ids:
                ids[uri] = next(free_ids, None)
            ext_id = ids[uri]
            lines[i] = (
                _DROP if ext_id is None else f"a=extmap:{ext_id}{direction or ''} {uri}{rest}"
            )

    pts: dict[CodecKey, int | None] = dict(client.payload_types)
    free_pts = (p for p in _DYNAMIC_PTS if p not in set(pts.values()))
    for section in _sections(lines):
        keys = _codec_keys(lines, section)
        for pt, key in keys.items():
            if key not in pts:
                pts[key] = pt if pt < 96 else next(free_pts, None)
        # rtx of a codec left out goes too (its apt would name nothing).
        remap = {pt: pts[key] for pt, key in keys.items()}
        # The client's fmtp only where it named this very codec (the same key).
        fmtp = {
            new: client.fmtp[new]
            for pt, key in keys.items()
            if (new := remap[pt]) is not None
            and new in client.fmtp
            and client.payload_types.get(key) == new
        }
        _renumber_section(lines, section, remap, fmtp)
    return ending.join(line for line in lines if line != _DROP)
