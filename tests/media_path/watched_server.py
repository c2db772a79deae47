"""The decoder watch (tests/decoders.py) in every process of a ``televisit serve`` under test:
the serve process and each SFU worker process it starts. Each process appends
``{"watch": "installed", "pid"}`` and then one JSON line per decoder it opens to
``$TELEVISIT_TEST_DECODER_LOG``. Installed at interpreter start by watch_site/sitecustomize.py
(put it and the repository root on the server's PYTHONPATH: ``environment()``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests import decoders

SITE = Path(__file__).with_name("watch_site")
ROOT = Path(__file__).resolve().parents[2]


def environment(log: Path) -> dict[str, str]:
    """Environment variables that make every Python process started with them watched."""
    return {"TELEVISIT_TEST_DECODER_LOG": str(log), "PYTHONPATH": f"{SITE}{os.pathsep}{ROOT}"}


def install(path: str) -> None:
    def record(**entry: object) -> None:
        with open(path, "a") as log:
            log.write(json.dumps({**entry, "pid": os.getpid()}) + "\n")

    decoders.watch(lambda name, stack: record(decoder=name, stack=stack))
    record(watch="installed")
