"""A second device for a connected member: the clinic admits or refuses it.

A link's token is the member's own: joining with it again replaces the member's connection
(a reload, a new network), as docs/signaling.md describes. A PIN is different: whoever has
the PIN gets a token of its own, marked with a device id (control.join, claim ``d``), and a
PIN join from another device than the connected member's would silently take that member's
seat (issue 12 item 10: a guessed PIN cut the real client off). So such a join waits: the
room asks its hosts (`admission_request`), a host answers (`admit` with ``allow``), and the
device then joins (replacing the connection, which closes with 4009) or is refused (4003,
``not admitted:``). Unanswered after ``media.admission_timeout_seconds``, it is refused.
A member who is away (dropped, inside its grace) is resumed by a PIN join without asking.
"""

from __future__ import annotations

import asyncio
import collections
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol


class Channel(Protocol):
    def send(self, message: dict[str, Any]) -> None: ...


class AdmissionNeeded(Exception):
    """The join must wait for a host's answer (Room.join raises it; signaling asks)."""

    def __init__(self, room: Any) -> None:
        super().__init__("a host must admit this device")
        self.room = room


def device_of(grant: Any) -> str | None:
    """The device id of a PIN-issued grant (None for a link's token)."""
    device = getattr(grant, "device", None)
    return device if isinstance(device, str) else None


def needs_admission(present: bool, seated_device: str | None, grant: Any) -> bool:
    """A PIN join from another device than the connected member's."""
    device = device_of(grant)
    return present and device is not None and device != seated_device


@dataclass
class Pending:
    id: str
    message: dict[str, Any]
    decision: asyncio.Future[bool]


class Admissions:
    """The open admission requests of one room. ``hosts()`` yields the channels of the
    present hosts; every request and its outcome goes to all of them (several clinic tabs)."""

    def __init__(
        self, hosts: Callable[[], Iterable[Channel]], counters: collections.Counter[str]
    ) -> None:
        self._hosts = hosts
        self._counters = counters
        self.pending: dict[str, Pending] = {}

    def ask(self, grant: Any) -> Pending:
        request = secrets.token_hex(6)
        message = {
            "type": "admission_request",
            "request": request,
            "participant": {"name": grant.name, "role": grant.role},
            "via": "pin",
        }
        pending = Pending(request, message, asyncio.get_running_loop().create_future())
        self.pending[request] = pending
        self._counters["admission_requested"] += 1
        for channel in self._hosts():
            channel.send(message)
        return pending

    def show_to(self, channel: Channel) -> None:
        """A host who arrives sees what is waiting."""
        for pending in self.pending.values():
            channel.send(pending.message)

    def answer(self, request: str, allow: bool) -> None:
        """A host's answer; KeyError for a request that is not (or no longer) open."""
        pending = self.pending[request]
        if not pending.decision.done():
            pending.decision.set_result(allow)
        self.close(request, "admitted" if allow else "refused")

    def close(self, request: str, outcome: str) -> None:
        """End ``request`` (answered, timeout, gone, ended); the hosts clear it. Its decision,
        when still open, is False."""
        pending = self.pending.pop(request, None)
        if pending is None:
            return
        self._counters[f"admission_{outcome}"] += 1
        for channel in self._hosts():
            channel.send({"type": "admission_closed", "request": request, "outcome": outcome})
        if not pending.decision.done():
            pending.decision.set_result(False)

    def close_all(self, outcome: str) -> None:
        for request in list(self.pending):
            self.close(request, outcome)
