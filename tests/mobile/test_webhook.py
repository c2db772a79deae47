"""Submissions reach a real local HTTP receiver through the notify outbox: signed, with the
submission id as Idempotency-Key, once each even when the receiver fails first (both stores)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiohttp import web

from control.clinic.webhook import signature
from control.notify.outbox import DUE_INDEX

from .helpers import API, Clinic, key

SECRET = "mobile-webhook-secret"
GAUZE = "4006381333931"


class Receiver:
    """Clinic software's webhook endpoint: answers ``fail`` first, then 204; keeps the rest."""

    def __init__(self) -> None:
        self.fail: list[int] = []
        self.calls = 0
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def hook(self, request: web.Request) -> web.Response:
        self.calls += 1
        if self.fail:
            return web.Response(status=self.fail.pop(0))
        self.got.append((dict(request.headers), await request.read()))
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/televisit", self.hook)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/televisit"

    def events(self) -> list[dict]:
        return [json.loads(body) for _, body in self.got]


@pytest.fixture
async def receiver():
    r = Receiver()
    await r.start()
    yield r
    await r.runner.cleanup()


@pytest.fixture
def settings_overrides(receiver):
    return {
        "mobile": {"webhook_url": receiver.url, "webhook_secret": SECRET},
        "notify": {"poll_seconds": 0.05, "backoff_base_seconds": 0.05, "backoff_max_seconds": 0.2},
    }


async def until(cond, seconds: float = 30.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_each_submission_arrives_once_signed_after_failures(
    clinic: Clinic, make_client, store, receiver
):
    await clinic.enable()
    await clinic.family(1, history=0)
    await clinic.put("stock", "s-1", {"gtin": GAUZE, "name": "Gauze", "unit": "box"})
    device = await clinic.device()
    receiver.fail = [503, 503]  # the first attempt and its first retry fail
    await make_client(store, background=True, clock=time.time)  # a node running the outbox
    k = key()
    made = []
    for resp in (
        await clinic.note(device, "n-1", "Limping", k=k),
        await clinic.note(device, "n-1", "Limping", k=k),  # a repeat: no second delivery
        await clinic.scan(device, GAUZE, 2),
    ):
        assert resp.status in (200, 201)
        made.append((await resp.json())["submission_id"])
    await until(lambda: len(receiver.got) >= 2)
    await asyncio.sleep(0.5)  # time for a duplicate to show up, if there were one
    assert sorted(e["id"] for e in receiver.events()) == sorted({made[0], made[2]})
    for headers, body in receiver.got:
        event = json.loads(body)
        assert headers["X-Televisit-Signature"] == signature(SECRET, body)
        assert headers["Idempotency-Key"] == event["id"]
        assert headers["X-Televisit-Event"] == event["type"]
        assert "request_hash" not in event and "acked_at" not in event
    note = next(e for e in receiver.events() if e["type"] == "note.saved")
    assert note["note"]["text"] == "Limping" and note["device"]["name"] == "Phone"
    assert await store.count(DUE_INDEX) == 0


async def test_a_refusing_receiver_fails_the_message_but_pull_still_has_it(
    clinic: Clinic, make_client, store, receiver
):
    await clinic.enable()
    await clinic.family(1, history=0)
    device = await clinic.device()
    receiver.fail = [400]
    await make_client(store, background=True, clock=time.time)
    resp = await clinic.note(device, "n-1", "kept for the pull API")
    sub_id = (await resp.json())["submission_id"]
    await until(lambda: receiver.calls == 1)
    for _ in range(100):
        if await store.count(DUE_INDEX) == 0:
            break
        await asyncio.sleep(0.05)
    assert await store.count(DUE_INDEX) == 0 and receiver.got == []
    pending = await (
        await clinic.client.get(f"{API}/mobile/submissions", headers=clinic.api)
    ).json()
    assert [s["id"] for s in pending["submissions"]] == [sub_id]
