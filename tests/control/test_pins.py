"""PINs: the right length, digits only, every value reachable (leading zeros kept)."""

from __future__ import annotations

from collections import Counter

import pytest

from control.pins import new_pin, typed_pin


def test_pins_are_digits_of_the_right_length_and_cover_the_space() -> None:
    drawn = [new_pin(2) for _ in range(3000)]
    assert all(typed_pin(p, 2) == p for p in drawn)
    assert len(set(drawn)) == 100  # 00..99 all seen: leading zeros are kept
    first = Counter(p[0] for p in drawn)
    assert min(first.values()) > 200  # each leading digit ~300 times, none starved
    assert all(typed_pin(p, 9) == p for p in (new_pin(9) for _ in range(100)))


@pytest.mark.parametrize(
    ("typed", "pin"),
    [
        (" 012 3456-7890 ", "01234567890"),  # copied with its grouping
        (
            "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660",
            "01234567890",
        ),  # Arabic-Indic
        (
            "\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19\uff10",
            "01234567890",
        ),  # full-width
        ("0123456789", None),  # a digit short
        ("0123456789a", None),
        ("\u00b20123456789", None),  # a superscript is a digit, but no decimal one
    ],
)
def test_a_typed_pin_is_read_as_the_digits_it_spells(typed, pin) -> None:
    assert typed_pin(typed, 11) == pin
