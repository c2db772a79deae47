"""SFU test fixtures: uvloop, and ``sfu`` (see harness.py) with media settings per module."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvloop

from config import load_settings

from .harness import LOOPBACK_MEDIA, Sfu, start_sfu


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """The servers run on uvloop, so the SFU tests do too."""
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture
def media_overrides() -> dict[str, Any]:
    """Override in a test module to change media settings."""
    return {}


@pytest.fixture
async def sfu(media_overrides: dict[str, Any]) -> AsyncIterator[Sfu]:
    settings = load_settings(environ={}, overrides={"media": {**LOOPBACK_MEDIA, **media_overrides}})
    sfu = await start_sfu(settings)
    try:
        yield sfu
    finally:
        for client in sfu.clients:
            # A client a test already broke must not keep the others open.
            with contextlib.suppress(Exception):
                await client.close()
        await sfu.worker.close()
        await sfu.server.close()
