"""The scenarios of issue 13: who is in the call and what their network does when.

A scenario is a list of parties (the first is the host, the rest guests) and a schedule of
``Change(at, party, direction, link)``: from second ``at`` of the measured call, that
direction of that party's path is ``link`` (network.Link). ``delay_ms`` of a party is fixed for
the call (its browser adds it). ``short()`` scales a scenario down for the test suite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from .network import CLEAN, Link


@dataclass(frozen=True)
class Change:
    at: float  # seconds from the start of the measured call
    party: str
    direction: str  # "up" | "down" | "both"
    link: Link


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    duration: float  # seconds measured
    parties: tuple[str, ...] = ("clinic", "client")
    delay_ms: dict[str, int] = field(default_factory=dict)  # one-way, per party
    schedule: tuple[Change, ...] = ()
    # (from, to) seconds: the constrained phase the summary looks at (None: the whole call)
    window: tuple[float, float] | None = None

    def changes_between(self, t0: float, t1: float) -> list[Change]:
        return [c for c in self.schedule if t0 <= c.at < t1]

    def short(self, factor: float) -> Scenario:
        """The same scenario with every time multiplied by ``factor``."""
        return replace(
            self,
            duration=self.duration * factor,
            schedule=tuple(replace(c, at=c.at * factor) for c in self.schedule),
            window=None if self.window is None else tuple(t * factor for t in self.window),
        )

    def strict(self, burst_ms: int) -> Scenario:
        """The same scenario with every policer strict: a bucket of ``burst_ms`` of its rate
        (network.Link.burst_ms) where nftables' holds a second."""
        changes = tuple(replace(c, link=replace(c.link, burst_ms=burst_ms))
                        if c.link.police_kbps else c for c in self.schedule)  # fmt: skip
        if changes == self.schedule:
            return self
        title = f"{self.title}; strict policer, {burst_ms} ms bucket"
        return replace(self, title=title, schedule=changes)


def _both(at: float, party: str, link: Link) -> Change:
    return Change(at, party, "both", link)


def _step(name: str, how: str, link: Callable[[int], Link]) -> Scenario:
    """The client's downlink 2 Mbit/s, 500 kbit/s from 20 s, 2 Mbit/s again from 40 s."""
    return Scenario(
        name, f"client downlink {how} 2 Mbit/s -> 500 kbit/s at 20 s -> 2 Mbit/s at 40 s", 60.0,
        schedule=tuple(Change(at, "client", "down", link(kbps))
                       for at, kbps in ((0, 2000), (20, 500), (40, 2000))),
        window=(20.0, 40.0),
    )  # fmt: skip


RTT_DELAY = 50  # ms each way: a 100 ms round trip to the SFU

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("clean", "clean loopback", 30.0),
        Scenario(
            "loss3", "3% random loss both ways on the client, 100 ms RTT", 60.0,
            delay_ms={"client": RTT_DELAY}, schedule=(_both(0, "client", Link(loss_pct=3)),),
        ),
        Scenario(
            "loss10", "10% random loss both ways on the client, 100 ms RTT", 60.0,
            delay_ms={"client": RTT_DELAY}, schedule=(_both(0, "client", Link(loss_pct=10)),),
        ),
        _step("step", "policed", lambda kbps: Link(police_kbps=kbps)),
        _step("step_shaped", "shaped (400 ms queue)", lambda kbps: Link(shape_kbps=kbps)),
        Scenario(
            "cap300", "client policed at 300 kbit/s both ways for the whole call", 60.0,
            schedule=(_both(0, "client", Link(police_kbps=300)),), window=(10.0, 60.0),
        ),
        Scenario(
            "down150", "client downlink policed at 150 kbit/s for the whole call", 60.0,
            schedule=(Change(0, "client", "down", Link(police_kbps=150)),), window=(10.0, 60.0),
        ),
        Scenario(
            "three", "three parties; guest2's downlink policed 500 kbit/s from 10 s", 40.0,
            parties=("clinic", "client", "guest2"),
            schedule=(Change(10, "guest2", "down", Link(police_kbps=500)),),
            window=(10.0, 40.0),
        ),
    )
}  # fmt: skip

__all__ = ["CLEAN", "Change", "Link", "SCENARIOS", "Scenario"]
