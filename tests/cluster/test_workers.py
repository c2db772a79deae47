"""Two SFU worker processes on one host (SQLite, the local bus): new rooms spread across both
and a call on each decodes both ways; a worker killed with SIGKILL mid-call has its room placed
again and both parties decode again (same session, "reconnecting" in between, never "ended");
a drained worker takes no new rooms, keeps its call, and exits when the call ends; SIGTERM
drains the whole node, which then exits."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import urllib.request
from typing import Any

from .app_client import AppClient, decode_more
from .nodes import Node, alive

GRACE_SECONDS = 30.0  # media.reconnect_grace_seconds (default): the session survives this long


def metrics_url(signaling_url: str) -> str:
    return signaling_url.replace("ws://", "http://", 1).removesuffix("/ws") + "/metrics"


def sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in the metrics")


async def call(node: Node) -> tuple[AppClient, AppClient]:
    """A client (by PIN) and the clinic (host link) in a fresh appointment's room."""
    tele = node.make_appointment(client_language="en")["telemedicine"]
    guest = AppClient(node.base, {"pin": tele["pin"]})
    clinic = AppClient(node.base, {"token": tele["host_url"].rsplit("/", 1)[1]})
    await guest.start()
    await clinic.start()
    assert guest.answer["signaling_url"] == clinic.answer["signaling_url"]
    return guest, clinic


async def end(*clients: AppClient) -> None:
    if clients[0].client is not None and clients[0].client.closed is None:
        await clients[0].hangup()
        await clients[0].client.wait_for(lambda: clients[0].client.last("ended"), 20, "ended")
    for client in clients:
        await client.close()


async def test_rooms_spread_across_both_workers_and_each_call_decodes(host: Node) -> None:
    assert len(host.admin("workers")) == 2
    first = await call(host)
    second = await call(host)
    try:
        urls = {first[0].answer["signaling_url"], second[0].answer["signaling_url"]}
        assert len(urls) == 2, "both rooms went to one worker"
        await decode_more([*first, *second], frames=15, seconds=60)
        for url in urls:
            text = await asyncio.to_thread(
                lambda u=url: urllib.request.urlopen(metrics_url(u), timeout=10).read().decode()
            )
            assert sample(text, "televisit_sfu_rooms") == 1
            assert sample(text, "televisit_sfu_participants") == 2
            assert "televisit_sfu_worker_cpu_share" in text
        placed = {e["room_id"]: e for e in host.logged("room placed")}
        rooms = [c[0].answer["room_id"] for c in (first, second)]
        assert {placed[r]["worker"] for r in rooms} == {host.workers()[u]["worker"] for u in urls}
    finally:
        await end(*first)
        await end(*second)


async def test_a_worker_killed_mid_call_comes_back_on_another(host: Node) -> None:
    guest, clinic = await call(host)
    try:
        await decode_more([guest, clinic], frames=15, seconds=60)
        url = guest.answer["signaling_url"]
        killed = host.workers()[url]
        session = clinic.events("joined")[-1]["room"]["session"]
        started = len(host.logged("SFU worker started"))

        os.kill(killed["pid"], signal.SIGKILL)
        at = time.monotonic()
        await decode_more([guest, clinic], frames=15, seconds=GRACE_SECONDS)
        print(f"both parties decode again {time.monotonic() - at:.2f} s after the SIGKILL")

        assert guest.answer["signaling_url"] != url
        assert guest.answer["signaling_url"] == clinic.answer["signaling_url"]
        for client in (guest, clinic):
            assert client.rejoins >= 1
            joined = client.events("joined")[-1]
            assert joined["resumed"] and joined["room"]["session"] == session
            assert not client.events("ended")
        # Whoever came back first saw the other one "reconnecting", not gone.
        statuses = [
            p["status"]
            for c in (guest, clinic)
            for p in c.events("joined")[-1]["room"]["participants"]
        ]
        assert "reconnecting" in statuses
        assert any(
            e["worker"] == killed["worker"]
            for e in host.logged("SFU worker died; its rooms move to other workers")
        )
        await guest.client.wait_for(
            lambda: len(host.logged("SFU worker started")) > started, 60, "a new worker"
        )
    finally:
        await end(guest, clinic)


async def test_a_drained_worker_keeps_its_call_takes_no_new_rooms_then_exits(host: Node) -> None:
    guest, clinic = await call(host)
    try:
        await decode_more([guest, clinic], frames=15, seconds=60)
        url = guest.answer["signaling_url"]
        drained: dict[str, Any] = host.workers()[url]
        assert host.admin("drain", "--worker", drained["worker"]) == {
            "draining": [drained["worker"]]
        }
        for _ in range(2):
            tele = host.make_appointment(client_language="en")["telemedicine"]
            status, answer = host.call("POST", "/api/v1/join", {"pin": tele["pin"]})
            assert status == 200 and answer["signaling_url"] != url
        await decode_more([guest, clinic], frames=30, seconds=60)
        assert alive(drained["pid"])
    finally:
        await end(guest, clinic)
    await guest.connections[-1].wait_for(
        lambda: not alive(drained["pid"]), 60, "the drained worker to exit"
    )
    exits = host.logged("SFU worker exited after draining")
    assert [e["worker"] for e in exits] == [drained["worker"]]


def test_sigterm_drains_the_node_and_it_exits(host: Node) -> None:
    assert host.proc is not None
    host.proc.send_signal(signal.SIGTERM)
    assert host.proc.wait(timeout=60) == 0
    assert host.logged("node draining")
