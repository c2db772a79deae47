"""Media-path fixtures: uvloop (the servers' loop) and a call factory that always cleans up."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import uvloop

from .peers import Call, media_settings


@pytest.fixture
def event_loop_policy() -> uvloop.EventLoopPolicy:
    return uvloop.EventLoopPolicy()


@pytest.fixture
async def make_call() -> AsyncIterator[Callable[..., Any]]:
    calls: list[Call] = []

    async def make(codec: str = "VP8", sizes=((320, 240), (320, 240)), **media: Any) -> Call:
        call = Call(media_settings(**media), codec, sizes)
        calls.append(call)
        await call.start()
        return call

    yield make
    for call in calls:
        await call.close()
