"""Background task of each control node: expire requests whose deadline passed.

Deadlines live in the store (index ``vcreq:due``), so after a restart the first sweep catches
up. Several nodes may sweep at once; versioned writes let only one of them expire a request.
"""

from __future__ import annotations

import asyncio
import logging

from control.background import Background, worth_logging
from control.clinic import requests
from control.clinic.context import Clinic

log = logging.getLogger(__name__)


class Sweeper:
    def __init__(self, clinic: Clinic) -> None:
        self.clinic = clinic
        self.expired = self.errors = 0
        self._task = Background("clinic-sweeper")

    def start(self) -> None:
        self._task.start(self._run)

    async def stop(self) -> None:
        await self._task.stop()

    async def _run(self) -> None:
        while True:
            try:
                self.expired += await requests.sweep(self.clinic)
            except Exception:  # the store may be briefly unreachable; the next sweep retries
                self.errors += 1
                if worth_logging(self.errors):
                    log.exception("clinic sweep failed (%d failures so far)", self.errors)
            await asyncio.sleep(self.clinic.settings.sweep_seconds)
