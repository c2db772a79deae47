"""SMS text in the GSM 7-bit default alphabet (3GPP TS 23.038, formerly GSM 03.38) and the
number of segments a message takes, as a carrier bills it.

The character tables (the basic set, where ä ö å Ä Ö Å are single septets, and the extension
table reached with ESC, whose characters cost two septets) come from the ``gsm0338`` codec:
data better taken from a tested codec than retyped. The segment arithmetic follows 3GPP TS
23.040: one message carries 160 septets (70 UCS-2 code units); a concatenated one spends 6
octets of each segment on its user data header, leaving 153 septets (67 code units), and
an ESC pair (or a UTF-16 surrogate pair) is never split across two segments.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)

CODEC = "gsm03.38"
GSM_SINGLE, GSM_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67

# Common characters outside the alphabet with a GSM spelling (typography, letters that do
# not decompose into a base letter plus accents).
_SPELLED = {
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-",
    "\u2212": "-", "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u2032": "'", "`": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2026": "...", "\u00a0": " ", "\u202f": " ", "\u2009": " ", "\t": " ",
    "\u0141": "L", "\u0142": "l", "\u0110": "D", "\u0111": "d", "\u0131": "i",
    "\u0152": "OE", "\u0153": "oe", "\u00de": "Th", "\u00fe": "th", "\u00f0": "d",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Segments:
    """How a text travels: ``encoding`` ``gsm7`` or ``ucs2``, ``count`` segments, ``units``
    septets (gsm7) or UTF-16 code units (ucs2)."""

    encoding: str
    count: int
    units: int


def septet_costs(text: str) -> list[int] | None:
    """Septets per character (1 basic, 2 extension), or None when a character is outside
    the GSM 7-bit alphabet."""
    try:
        return [len(ch.encode(CODEC)) for ch in text]
    except UnicodeEncodeError:
        return None


def _count(costs: list[int], single: int, multi: int) -> int:
    total = sum(costs)
    if total <= single:
        return 1 if total else 0
    count, used = 1, 0
    for cost in costs:
        if used + cost > multi:  # an ESC or surrogate pair stays in one segment
            count, used = count + 1, 0
        used += cost
    return count


def segments(text: str) -> Segments:
    """The segments ``text`` takes: GSM 7-bit when every character is in the alphabet,
    otherwise UCS-2 for the whole message (one stray character is enough)."""
    costs = septet_costs(text)
    if costs is not None:
        return Segments("gsm7", _count(costs, GSM_SINGLE, GSM_MULTI), sum(costs))
    units = [len(ch.encode("utf-16-le")) // 2 for ch in text]
    return Segments("ucs2", _count(units, UCS2_SINGLE, UCS2_MULTI), sum(units))


def to_gsm(text: str) -> str:
    """``text`` spelled in the GSM 7-bit alphabet: characters in it stay, common typography
    and letters get their usual spelling (– to -, Ł to L, ç to c: accents dropped when the
    accented letter is missing), anything else becomes ``?``. Clinic and client names come
    from outside; one emoji would otherwise turn the whole SMS into UCS-2."""
    out = []
    for ch in text:
        if septet_costs(ch) is not None:
            out.append(ch)
        elif ch in _SPELLED:
            out.append(_SPELLED[ch])
        else:
            base = "".join(
                c
                for c in unicodedata.normalize("NFKD", ch)
                if not unicodedata.combining(c) and septet_costs(c) is not None
            )
            out.append(base or "?")
    return "".join(out)
