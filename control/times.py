"""Times cross the API and the store as ISO 8601 UTC strings ending in Z, to the second."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def iso_at(epoch: float) -> str:
    return iso(datetime.fromtimestamp(epoch, UTC))


def epoch(text: str) -> float:
    """Seconds since the epoch of a stored time string."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
