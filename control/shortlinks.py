"""Short client links: ``{base_url}/v/<code>``, what the SMS and email carry.

A code is 12 symbols of a 32-symbol alphabet (60 bits from ``secrets``), lower case without
the look-alikes i, l, o, u, so it survives being read aloud or retyped; input is folded to
lower case. The code is a store claim ``short:<code>`` of its appointment, written with the
links it stands for: re-issuing the links makes a new code, and the old one then names
nothing. The server resolves a code to the appointment's current guest token on every use
(control/join.py), so whatever stops that token (expiry, cancellation, revocation) stops the
short link too.
"""

from __future__ import annotations

import secrets

SHORT_CLAIM = "short:"
PATH = "/v/"
ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
LENGTH = 12  # 12 * log2(32) = 60 bits
BITS = LENGTH * (len(ALPHABET).bit_length() - 1)


def new_code() -> str:
    """``LENGTH`` uniform symbols from one draw of the OS's CSPRNG (5 bits each)."""
    bits = secrets.randbits(BITS)
    return "".join(ALPHABET[(bits >> (5 * i)) & 31] for i in range(LENGTH))


def normalized(text: str) -> str | None:
    """The code as stored, or None when ``text`` cannot be one (no store read needed)."""
    code = text.strip().lower()
    if len(code) != LENGTH or any(c not in ALPHABET for c in code):
        return None
    return code


def url(base_url: str, code: str) -> str:
    return f"{base_url}{PATH}{code}"


def code_of(short_url: str) -> str:
    """The code at the end of a stored short URL."""
    return short_url.rsplit("/", 1)[1]
