"""Media-path exceptions: counted always, logged once per (place, exception type).

The media path runs per packet; an exception there must neither kill the receive loop nor
flood the log, and it must never vanish silently.
"""

from __future__ import annotations

import logging

log = logging.getLogger("media_server.media_path")


class Faults:
    """Exception counts of one participant's media path (plain ints for the metrics)."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.count = 0
        self.by_place: dict[str, int] = {}
        self._logged: set[tuple[str, type]] = set()

    def record(self, place: str, exc: BaseException) -> None:
        self.count += 1
        self.by_place[place] = self.by_place.get(place, 0) + 1
        key = (place, type(exc))
        if key not in self._logged:
            self._logged.add(key)
            log.error("%s: %s failed (logged once per type)", self.owner, place, exc_info=exc)
