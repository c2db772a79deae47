"""``televisit serve`` with the decoder watch (tests/decoders.py) installed first: every decoder
the server process opens is appended as a JSON line to ``$TELEVISIT_TEST_DECODER_LOG``, whose
first line says the watch is live. Run as ``python -m tests.media_path.watched_server serve``."""

from __future__ import annotations

import json
import os
import sys

from tests import decoders


def main() -> None:
    path = os.environ["TELEVISIT_TEST_DECODER_LOG"]

    def record(**entry: object) -> None:
        with open(path, "a") as log:
            log.write(json.dumps(entry) + "\n")

    decoders.watch(lambda name, stack: record(decoder=name, stack=stack))
    record(watch="installed", pid=os.getpid())
    from control.cli import main as televisit

    sys.exit(televisit(sys.argv[1:]))


if __name__ == "__main__":
    main()
