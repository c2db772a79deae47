"""GS1 check digits: every GTIN made with its check digit passes, every one-digit typo fails."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control.mobile import gtin

bodies = st.sampled_from([7, 11, 12, 13]).flatmap(
    lambda n: st.text(alphabet="0123456789", min_size=n, max_size=n)
)


@given(bodies, st.data())
def test_a_made_gtin_passes_and_any_single_digit_typo_fails(body, data):
    code = body + str(gtin.check_digit(body))
    assert gtin.normalize(code) == code.zfill(14)
    at = data.draw(st.integers(0, len(code) - 1))
    typo = data.draw(st.sampled_from([d for d in "0123456789" if d != code[at]]))
    with pytest.raises(ValueError, match="check digit"):
        gtin.normalize(code[:at] + typo + code[at + 1 :])


@pytest.mark.parametrize(
    "code, message",
    [("4006381333931", None), ("96385074", None), ("12345", "8, 12, 13 or 14"),
     ("4006381333932", "check digit"), ("40063813339３1", "digits only"), ("", "digits only")],
)  # fmt: skip
def test_known_codes(code, message):
    if message is None:
        assert len(gtin.normalize(code)) == 14
    else:
        with pytest.raises(ValueError, match=message):
            gtin.normalize(code)
