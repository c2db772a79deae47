"""A short fuzz run of the compiled media path in ``make test`` (tests/fuzz/media.py says what
is checked); the long run is ``make fuzz`` (atheris, AddressSanitizer)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from . import media


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=1, max_size=600))
def test_media_path_fuzz(data: bytes) -> None:
    media.run(data)
