"""The media fuzz harness (tests/fuzz/media.py) under atheris, for long runs by hand:

    make fuzz                     # 1,000,000 inputs, the extension built with AddressSanitizer
    make fuzz FUZZ_RUNS=100000    # fewer

Arguments after the module are libFuzzer's (``-runs=N``, ``-max_len=N``, a corpus folder). A
finding stops the run and leaves the input as ``crash-<sha1>`` in the working directory;
``python -m tests.fuzz.fuzz_media crash-<sha1>`` replays it. Coverage guidance comes from the
Python side (every media_server module, instrumented by atheris); the compiled
path is checked by AddressSanitizer on every memory access, not coverage-instrumented (that
needs clang's -fsanitize=fuzzer-no-link; the build here is gcc's).
"""

from __future__ import annotations

import logging
import sys

import atheris

with atheris.instrument_imports(include=["media_server"]):
    from tests.fuzz import media


def main() -> None:
    from media_server import rtpforward

    print(f"fuzzing {rtpforward.__file__}", file=sys.stderr)  # the ASan build under make fuzz
    logging.disable(logging.CRITICAL)  # blanked-extension warnings: expected, once per input
    atheris.Setup(sys.argv, media.run)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
