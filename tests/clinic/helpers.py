"""Shared pieces of the clinic tests: a clock the test moves, and a sink that keeps events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Clock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class KeptEvents:
    """An EventSink that keeps (type, audience, payload) for assertions."""

    seen: list[tuple[str, tuple[str, ...] | None, dict[str, Any]]] = field(default_factory=list)

    async def emit(
        self, type: str, org_id: str, audience: tuple[str, ...] | None, **payload: Any
    ) -> None:
        self.seen.append((type, audience, payload))

    def types_for(self, staff_id: str) -> list[str]:
        return [t for t, aud, _ in self.seen if aud is None or staff_id in aud]
