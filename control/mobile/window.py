"""The app's three days: yesterday, today and tomorrow in each department's own time zone.

A department in Helsinki and one in New York have different "today"s at the same instant, and
a day is not always 24 hours (daylight saving time): each window runs from local midnight
starting yesterday to local midnight after tomorrow, computed with zoneinfo. The signature of
all windows changes when any department's day turns (or a department is added, renamed or moves
time zone); a device's cursor from another signature gets a full sync.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from control.times import iso_at

DAYS = (-1, 0, 1)


@dataclass(frozen=True, slots=True)
class Window:
    department_id: str
    name: str
    time_zone: str
    days: tuple[date, ...]
    start: float  # epoch seconds, local midnight opening yesterday
    end: float  # epoch seconds, local midnight closing tomorrow (exclusive)

    def holds(self, moment: float) -> bool:
        return self.start <= moment < self.end

    def public(self) -> dict[str, Any]:
        return {
            "id": self.department_id,
            "name": self.name,
            "time_zone": self.time_zone,
            "days": [d.isoformat() for d in self.days],
            "start": iso_at(self.start),
            "end": iso_at(self.end),
        }


def _midnight(day: date, zone: ZoneInfo) -> float:
    return datetime.combine(day, time(0), zone).timestamp()


def window_of(department: dict[str, Any], now: float) -> Window:
    """The window of one department record (with its ``time_zone``) at ``now``."""
    zone = ZoneInfo(department["time_zone"])
    today = datetime.fromtimestamp(now, UTC).astimezone(zone).date()
    days = tuple(today + timedelta(days=d) for d in DAYS)
    return Window(
        department["id"],
        department["name"],
        department["time_zone"],
        days,
        _midnight(days[0], zone),
        _midnight(days[-1] + timedelta(days=1), zone),
    )


def signature(windows: list[Window], version: str) -> str:
    """12 hex characters naming these windows (and the sync format ``version``)."""
    text = "\n".join(
        f"{w.department_id}\t{w.name}\t{w.time_zone}\t{w.days[1]}"
        for w in sorted(windows, key=lambda w: w.department_id)
    )
    return hashlib.sha256(f"{version}\n{text}".encode()).hexdigest()[:12]
