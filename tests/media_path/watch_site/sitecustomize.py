"""Runs at the start of every Python process that has this folder on its PYTHONPATH: with
TELEVISIT_TEST_DECODER_LOG set, the decoder watch is installed (tests/media_path/watched_server.py)."""

import os

if os.environ.get("TELEVISIT_TEST_DECODER_LOG"):
    from tests.media_path.watched_server import install

    install(os.environ["TELEVISIT_TEST_DECODER_LOG"])
