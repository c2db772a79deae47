"""Listen addresses, the UDP port range and the announced address (media_server/ports.py)."""

from __future__ import annotations

import socket

import pytest

from media_server import ports

from .peers import wait_for
from .test_garbage import media_address


def candidates(sdp: str) -> list[tuple[str, int]]:
    out = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line.split()
            out.append((parts[4], int(parts[5])))
    return out


def free_range(size: int) -> tuple[int, int]:
    """A run of ``size`` ports that are free right now (probed, not assumed)."""
    for base in range(41000, 60000, 97):
        socks = []
        try:
            for port in range(base, base + size):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base, base + size - 1
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no free port range")


async def test_candidates_use_the_port_range_and_media_flows(make_call) -> None:
    low, high = free_range(8)
    call = await make_call(port_min=low, port_max=high)
    await wait_for(lambda: call.b.client.frames("video") >= 10, 30, "video")
    for side in (call.a, call.b):
        found = candidates(side.participant.pc.localDescription.sdp)
        assert found and all(host == "127.0.0.1" and low <= port <= high for host, port in found)


async def test_announce_address_replaces_the_bound_one(make_call) -> None:
    # Bound on every interface, announced as 127.0.0.1 (what a 1:1 NAT setup looks like from
    # inside: the client only ever learns the announced address, and media still flows).
    call = await make_call(listen_addresses=["0.0.0.0"], announce_address="127.0.0.1")
    await wait_for(lambda: call.b.client.frames("video") >= 10, 30, "video via announce")
    found = candidates(call.a.participant.pc.localDescription.sdp)
    assert set(found) == {("127.0.0.1", found[0][1])}


def test_announce_is_per_address_family() -> None:
    policy = ports.GatherPolicy(addresses=("::1", "127.0.0.1"), announce_address="203.0.113.7")
    assert ports._announced(policy, "127.0.0.1") == "203.0.113.7"
    assert ports._announced(policy, "::1") == "::1"


def test_a_full_range_fails_clearly() -> None:
    low, high = free_range(2)
    taken = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    try:
        for s, port in zip(taken, (low, high), strict=True):
            s.bind(("127.0.0.1", port))
        with pytest.raises(ports.PortRangeExhausted, match=f"{low}-{high}"):
            ports.bind_udp("127.0.0.1", low, high)
    finally:
        for s in taken:
            s.close()
    sock = ports.bind_udp("127.0.0.1", low, high)
    assert low <= sock.getsockname()[1] <= high
    sock.close()


def test_outside_a_policy_aioice_is_untouched() -> None:
    ports.install()
    assert ports._policy.get() is None
    with ports.gathering(ports.GatherPolicy(addresses=("127.0.0.1",))):
        assert ports._policy.get() is not None
    assert ports._policy.get() is None


async def test_media_address_helper_reads_host_candidates(make_call) -> None:
    call = await make_call()
    host, port = media_address(call.a.participant.pc.localDescription.sdp)
    assert host == "127.0.0.1" and port > 0
