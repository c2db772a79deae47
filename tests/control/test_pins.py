"""PINs: the right length, digits only, every value reachable (leading zeros kept)."""

from __future__ import annotations

from collections import Counter

from control.pins import looks_like_pin, new_pin


def test_pins_are_digits_of_the_right_length_and_cover_the_space() -> None:
    drawn = [new_pin(2) for _ in range(3000)]
    assert all(looks_like_pin(p, 2) for p in drawn)
    assert len(set(drawn)) == 100  # 00..99 all seen: leading zeros are kept
    first = Counter(p[0] for p in drawn)
    assert min(first.values()) > 200  # each leading digit ~300 times, none starved
    assert all(looks_like_pin(new_pin(9), 9) for _ in range(100))
