"""A short fuzz run of the compiled media path in ``make test`` (tests/fuzz/media.py says what
is checked); the long runs are ``make fuzz`` (atheris, AddressSanitizer) and
``FUZZ_EXAMPLES=N`` (hypothesis, at random)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzzing import fuzz_settings

from . import media


@fuzz_settings(400)
@given(st.binary(min_size=1, max_size=600))
def test_media_path_fuzz(data: bytes) -> None:
    media.run(data)
