"""A drained worker whose call outlives ``cluster.drain_deadline_seconds`` hands the call off
instead of ending it: it leaves the registry and closes the members' sockets with 4014, the
clients ask where to join again and continue on the other worker (same session), and the
drained worker exits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .app_client import decode_more
from .conftest import two_worker_host
from .nodes import Node, alive
from .test_workers import call, end

DEADLINE_SECONDS = 3.0


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    yield from two_worker_host(
        tmp_path_factory, TELEVISIT__CLUSTER__DRAIN_DEADLINE_SECONDS=str(DEADLINE_SECONDS)
    )


async def test_a_call_past_the_drain_deadline_moves_to_another_worker(host: Node) -> None:
    guest, clinic = await call(host)
    try:
        await decode_more([guest, clinic], frames=15, seconds=60)
        url = guest.answer["signaling_url"]
        drained = host.workers()[url]
        session = clinic.events("joined")[-1]["room"]["session"]
        host.admin("drain", "--worker", drained["worker"])
        await decode_more([guest, clinic], frames=15, seconds=60)
        await clinic.client.wait_for(lambda: clinic.rejoins and guest.rejoins, 60, "rejoins")
        assert [c.closed.code for c in guest.connections[:1]] == [4014]
        await decode_more([guest, clinic], frames=15, seconds=60)
        assert guest.answer["signaling_url"] != url
        assert guest.answer["signaling_url"] == clinic.answer["signaling_url"]
        assert clinic.events("joined")[-1]["room"]["session"] == session
        assert not clinic.events("ended") and not guest.events("ended")
        await clinic.client.wait_for(lambda: not alive(drained["pid"]), 60, "the worker to exit")
    finally:
        await end(guest, clinic)
