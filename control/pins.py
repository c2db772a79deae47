"""PINs and rooms: what a native app types, and the room it opens.

A PIN is ``pins.digits`` random digits, held as the store claim ``pin:<digits>`` by its
appointment while the room is usable, so no two usable rooms share one. A room id is random
and URL-safe, held as ``room:<room_id>`` for as long as the appointment exists (the SFU finds
the appointment by its room).
"""

from __future__ import annotations

import secrets
import unicodedata
from dataclasses import dataclass

from config.settings import PinSettings

PIN_CLAIM = "pin:"
ROOM_CLAIM = "room:"
ROOM_PREFIX = "ap-"


def new_pin(digits: int) -> str:
    """``digits`` uniformly random digits (leading zeros included): one draw from the OS's
    CSPRNG for the whole PIN, not one per digit."""
    return f"{secrets.randbelow(10**digits):0{digits}d}"


def new_room_id() -> str:
    return ROOM_PREFIX + secrets.token_urlsafe(12)


# What people put between a PIN's digits when they copy or type it (the /pin page drops the
# same), and the decimal digits of any script (an Arabic or Devanagari keypad, full-width).
_SEPARATORS = str.maketrans("", "", " \t-.\u00a0\u2010\u2011\u2012\u2013\u2212")


def typed_pin(text: str, digits: int) -> str | None:
    """The PIN ``text`` spells (``digits`` ASCII digits), or None when it spells none:
    separators dropped, each decimal digit of any script read as its value."""
    bare = text.strip().translate(_SEPARATORS)
    if len(bare) != digits or not bare.isdecimal():
        return None
    return "".join(str(unicodedata.decimal(c)) for c in bare)


@dataclass(frozen=True, slots=True)
class Window:
    """When a room is usable: from ``opens`` to ``closes`` (epoch seconds)."""

    opens: float
    closes: float

    @classmethod
    def of(cls, start: float, end: float, pins: PinSettings) -> Window:
        return cls(start - pins.early_minutes * 60, end + pins.grace_minutes * 60)

    def state(self, now: float) -> str:
        """``early``, ``open`` or ``closed``."""
        if now < self.opens:
            return "early"
        return "open" if now < self.closes else "closed"
