"""Where the SFU's ICE sockets live: listen addresses, a UDP port range and an announced address.

aioice gathers on every interface except 127.0.0.1, on random ports, and announces what it bound.
Operators need a port range (firewalls), an address to announce (1:1 NAT) and a choice of
interfaces (multi-homed hosts, loopback-only tests). aioice has none of these, so this module
wraps one private aioice method, ``Connection.get_component_candidates``: while a
``GatherPolicy`` is active (``with gathering(policy):`` around ``setLocalDescription``, which is
where aiortc gathers), host candidates are bound by us; everything else (TURN relay candidates,
STUN server-reflexive ones from our sockets) still comes from aioice. Outside a policy aioice
behaves as shipped, so other peer connections in the process are untouched.

The sockets bound here get a ``GuardedStunProtocol``: aioice's ``StunProtocol`` lets a STUN
message it cannot read (a known attribute cut short: ``struct.error``) escape into the event
loop, which logs a traceback at ERROR for every such datagram. The guarded one drops it and
counts it (``malformed_stun`` in the owning participant's ``dropped``, registered with
``count_drops``), logged once per socket.

``tests/media_path/test_hooks.py`` fails loudly if the aioice names used here move.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ipaddress
import logging
import random
import socket
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import aioice.ice
from aioice import stun
from aioice.candidate import Candidate, candidate_foundation, candidate_priority

from config.settings import MediaSettings

log = logging.getLogger(__name__)

_ORIGINAL = aioice.ice.Connection.get_component_candidates
_policy: contextvars.ContextVar[GatherPolicy | None] = contextvars.ContextVar(
    "televisit_gather_policy", default=None
)
SOCKET_BUFFER_BYTES = 1 << 20


_drops: weakref.WeakKeyDictionary[aioice.ice.Connection, dict[str, int]] = (
    weakref.WeakKeyDictionary()
)


def count_drops(connection: aioice.ice.Connection, dropped: dict[str, int]) -> None:
    """Count the datagrams ``connection``'s sockets refuse in ``dropped`` (reason -> count)."""
    _drops[connection] = dropped


class GuardedStunProtocol(aioice.ice.StunProtocol):
    """aioice's protocol for one ICE socket, which never lets a datagram raise.

    aioice parses every datagram as STUN and hands what is not STUN (``ValueError``) to the
    connection; anything else its parser raises (``struct.error`` for an attribute shorter
    than its type needs, RFC 8489 14) would reach the event loop. Such a datagram is dropped
    and counted as ``malformed_stun``; an exception while aioice handles a parsed message as
    ``stun_error``. Each kind is logged once per socket."""

    _logged: set[str] | None = None

    def datagram_received(self, data: bytes | str, addr: tuple[Any, ...]) -> None:
        try:
            stun.parse_message(data)  # type: ignore[arg-type]
        except ValueError:
            pass  # not STUN: aioice passes it on as data
        except Exception as exc:
            self._refuse("malformed_stun", exc)
            return
        try:
            super().datagram_received(data, addr)
        except Exception as exc:
            self._refuse("stun_error", exc)

    def _refuse(self, reason: str, exc: Exception) -> None:
        dropped = _drops.get(self.receiver)
        if dropped is not None:
            dropped[reason] = dropped.get(reason, 0) + 1
        if self._logged is None:
            self._logged = set()
        if reason not in self._logged:
            self._logged.add(reason)
            log.warning("ICE: dropped a datagram (%s: %r); counted, logged once", reason, exc)


class PortRangeExhausted(OSError):
    """Every port of the configured range is taken on one listen address."""


@dataclass(frozen=True)
class GatherPolicy:
    """Which addresses to bind, on which ports, and what to announce instead."""

    addresses: tuple[str, ...] = ()  # empty: every interface address aioice would use
    port_min: int = 0  # 0: any port the kernel picks
    port_max: int = 0
    announce_address: str = ""

    @classmethod
    def from_settings(cls, media: MediaSettings) -> GatherPolicy:
        return cls(
            addresses=tuple(media.listen_addresses),
            port_min=media.port_min,
            port_max=media.port_max,
            announce_address=media.announce_address,
        )


@contextlib.contextmanager
def gathering(policy: GatherPolicy) -> Iterator[None]:
    """Gather host candidates by ``policy`` for the code (and tasks it starts) inside."""
    install()
    token = _policy.set(policy)
    try:
        yield
    finally:
        _policy.reset(token)


def install() -> None:
    """Wrap aioice's candidate gathering (idempotent)."""
    if aioice.ice.Connection.get_component_candidates is not _get_component_candidates:
        aioice.ice.Connection.get_component_candidates = _get_component_candidates


def bind_udp(address: str, port_min: int, port_max: int) -> socket.socket:
    """A non-blocking UDP socket bound to ``address`` on a free port of the range."""
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    if not port_min:
        ports: Sequence[int] = [0]
    else:
        # Start at a random port so concurrent connections rarely collide on the same one.
        span = range(port_min, port_max + 1)
        start = random.randrange(len(span))
        ports = [*span[start:], *span[:start]]
    for port in ports:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((address, port))
        except OSError:
            sock.close()
            continue
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
        return sock
    raise PortRangeExhausted(f"no free UDP port in {port_min}-{port_max} on {address}")


def _announced(policy: GatherPolicy, bound: str) -> str:
    if not policy.announce_address:
        return bound
    announce_version = ipaddress.ip_address(policy.announce_address).version
    return (
        policy.announce_address
        if ipaddress.ip_address(bound).version == announce_version
        else bound
    )


async def _host_candidates(
    connection: aioice.ice.Connection, component: int, policy: GatherPolicy
) -> list[aioice.ice.StunProtocol]:
    loop = asyncio.get_running_loop()
    addresses = list(policy.addresses) or aioice.ice.get_host_addresses(
        use_ipv4=connection._use_ipv4, use_ipv6=connection._use_ipv6
    )
    protocols = []
    for address in addresses:
        try:
            sock = bind_udp(address, policy.port_min, policy.port_max)
        except OSError as exc:
            log.warning("ICE: cannot bind %s: %s", address, exc)
            continue
        _, protocol = await loop.create_datagram_endpoint(
            lambda: GuardedStunProtocol(connection), sock=sock
        )
        bound_host, bound_port = sock.getsockname()[:2]
        host = _announced(policy, bound_host)
        protocol.local_candidate = Candidate(
            foundation=candidate_foundation("host", "udp", host),
            component=component,
            transport="udp",
            priority=candidate_priority(component, "host"),
            host=host,
            port=bound_port,
            type="host",
        )
        protocols.append(protocol)
    return protocols


async def _get_component_candidates(
    self: aioice.ice.Connection,
    component: int,
    addresses: list[str],
    timeout: int = 5,  # noqa: ASYNC109 - aioice signature
) -> list[Candidate]:
    policy = _policy.get()
    if policy is None:
        return await _ORIGINAL(self, component, addresses, timeout)
    protocols = await _host_candidates(self, component, policy)
    self._protocols += protocols
    candidates = [p.local_candidate for p in protocols]
    if self.stun_server:
        tasks = [
            asyncio.create_task(aioice.ice.server_reflexive_candidate(p, self.stun_server))
            for p in protocols
            if ipaddress.ip_address(p.local_candidate.host).version == 4
        ]
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=timeout)
            candidates += [t.result()[0] for t in done if t.exception() is None]
            for task in pending:
                task.cancel()
    # TURN relay candidates: aioice's own code, with no host addresses of its own.
    return candidates + await _ORIGINAL(self, component, [], timeout)
