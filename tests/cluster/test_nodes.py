"""Several hosts on one Redis: a control-only node on 127.0.0.1 and two SFU-only nodes on
127.0.0.2 and 127.0.0.3 (one worker each). Rooms are placed across the nodes and a call
through an SFU node decodes both ways; a node whose heartbeats stop (its worker frozen with
SIGSTOP) drops out of placement when its TTL runs out, and comes back when it beats again."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import pytest
import redis

from tests.conftest import RedisServer, free_port

from .app_client import decode_more
from .nodes import Node
from .test_workers import call, end

TTL_SECONDS = 2.0


@pytest.fixture(scope="module")
def cluster(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Node, Node, Node]]:
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    shared = {
        "TELEVISIT__STORE__BACKEND": "redis",
        "TELEVISIT__STORE__REDIS_URL": redis_server.url,
        "TELEVISIT__CLUSTER__HEARTBEAT_SECONDS": "0.5",
        "TELEVISIT__CLUSTER__HEARTBEAT_TTL_SECONDS": str(TTL_SECONDS),
    }

    def node(name: str, host: str, roles: str, **extra: str) -> Node:
        return Node(
            tmp_path_factory.mktemp(name), free_port(), name=name, host=host,
            extra={**shared, "TELEVISIT__CLUSTER__ROLES": roles, **extra},
        )  # fmt: skip

    nodes = [
        node("sfu-b", "127.0.0.2", '["sfu"]', TELEVISIT__MEDIA__WORKERS="1"),
        node("sfu-c", "127.0.0.3", '["sfu"]', TELEVISIT__MEDIA__WORKERS="1"),
        node("control", "127.0.0.1", '["control"]'),
    ]
    started: list[Node] = []
    try:
        for n in nodes:
            n.start()
            started.append(n)
        control = nodes[2]
        control.api_key = control.admin("create-org", "--name", "Kallio Vet")["api_key"]
        control.make_department("en")
        yield control, nodes[0], nodes[1]
    finally:
        for n in started:
            n.stop()


async def until_nodes(control: Node, nodes: set[str], what: str) -> None:
    deadline = time.monotonic() + 30
    while {w["node"] for w in control.admin("workers")} != nodes:
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


def placed_host(control: Node) -> str:
    """The host of the worker a new appointment's room is placed on."""
    tele = control.make_appointment(client_language="en")["telemedicine"]
    status, answer = control.call("POST", "/api/v1/join", {"pin": tele["pin"]})
    assert status == 200, answer
    return answer["signaling_url"].split("//")[1].split(":")[0]


async def test_rooms_across_nodes_and_a_silent_node_drops_out(cluster) -> None:
    control, b, c = cluster
    assert {w["node"] for w in control.admin("workers")} == {"sfu-b", "sfu-c"}
    guest, clinic = await call(control)
    try:
        await decode_more([guest, clinic], frames=15, seconds=60)
        first = guest.answer["signaling_url"].split("//")[1].split(":")[0]
        assert first in ("127.0.0.2", "127.0.0.3")
        # The next room goes to the other node (the first one's room counts against it).
        assert placed_host(control) != first
    finally:
        await end(guest, clinic)

    [frozen] = b.workers().values()
    os.kill(frozen["pid"], signal.SIGSTOP)
    try:
        await until_nodes(control, {"sfu-c"}, "sfu-b's worker to expire")
        assert {placed_host(control) for _ in range(3)} == {"127.0.0.3"}
    finally:
        os.kill(frozen["pid"], signal.SIGCONT)
    await until_nodes(control, {"sfu-b", "sfu-c"}, "sfu-b to come back")
