"""One named background task of a control node (the clinic's sweeper, room watcher and webhook,
the notify outbox worker): started at most once, stopped by cancelling it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any


def worth_logging(failures: int) -> bool:
    """Log the first failure and every 100th after it: a lasting outage shows, but never floods."""
    return failures == 1 or failures % 100 == 0


class Background:
    def __init__(self, name: str) -> None:
        self.name = name
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        if self._task is None:
            self._task = asyncio.create_task(run(), name=self.name)

    async def stop(self, grace: float = 0.0) -> None:
        """Give the task ``grace`` seconds to end by itself (it must have been told to), then
        cancel it."""
        if self._task is None:
            return
        if grace > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), grace)
        self._task.cancel()  # a no-op if it has ended
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
