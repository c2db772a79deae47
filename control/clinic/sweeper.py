"""Background task of each control node: expire requests whose deadline passed.

Deadlines live in the store (index ``vcreq:due``), so after a restart the first sweep catches
up. Several nodes may sweep at once; versioned writes let only one of them expire a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from control.clinic import requests
from control.clinic.context import Clinic

log = logging.getLogger(__name__)


class Sweeper:
    def __init__(self, clinic: Clinic) -> None:
        self.clinic = clinic
        self.expired = self.errors = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="clinic-sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                self.expired += await requests.sweep(self.clinic)
            except Exception:  # the store may be briefly unreachable; the next sweep retries
                self.errors += 1
                if self.errors == 1 or self.errors % 100 == 0:
                    log.exception("clinic sweep failed (%d failures so far)", self.errors)
            await asyncio.sleep(self.clinic.settings.sweep_seconds)
