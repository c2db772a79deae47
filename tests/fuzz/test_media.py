"""A short fuzz run of the compiled media path in ``make test`` (tests/fuzz/media.py says what
is checked); the long runs are ``make fuzz`` (atheris, AddressSanitizer) and
``FUZZ_EXAMPLES=N`` (hypothesis, at random)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzzing import fuzz_settings

from . import media


@fuzz_settings(400)
@given(st.binary(min_size=1, max_size=600))
def test_media_path_fuzz(data: bytes) -> None:
    media.run(data)


# Inputs the long runs found, replayed every run (each failed on the build before its fix).
FOUND = {
    # a VP8 descriptor with no VP8 after it reached the subscriber (fixed by 684f715)
    "vp8_descriptor_without_vp8": bytes.fromhex(
        "2e75686d5901f9fe0101010101680000000000000001010159010101010159013cfe01010101010101015901010101010001010101ffffd40101010101010101590101010101000101010101d40175c5690101010101010147474747474747474747474747474747474747474747010101016d09090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909092d09090909090909090909090909090909090909090909090909090909090909090909090909"
    ),
}


@pytest.mark.parametrize("name", sorted(FOUND))
def test_inputs_the_long_runs_found(name: str) -> None:
    media.run(FOUND[name])
