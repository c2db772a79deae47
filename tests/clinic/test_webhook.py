"""The webhook: signed JSON POSTs to a real local HTTP server, retried after failures."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from config import load_settings
from control.clinic.webhook import Webhook, signature


async def _receiver(fail_first: int):
    got: list[tuple[dict, dict]] = []
    calls = {"n": 0}

    async def hook(request: web.Request) -> web.Response:
        calls["n"] += 1
        if calls["n"] <= fail_first:
            return web.Response(status=503)
        got.append((dict(request.headers), await request.read()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/hook", got, calls


async def _wait_for(cond, seconds: float = 30.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_signed_delivery_with_retry():
    runner, url, got, calls = await _receiver(fail_first=2)
    settings = load_settings(
        environ={},
        overrides={
            "clinic": {"webhook_url": url, "webhook_secret": "s3cret", "webhook_max_attempts": 4}
        },
    )
    hook = Webhook(settings.clinic)
    await hook.start()
    try:
        hook.enqueue({"id": "ev_1", "type": "request.created", "request": {"id": "rq_1"}})
        await _wait_for(lambda: hook.delivered == 1)
    finally:
        await hook.stop()
        await runner.cleanup()
    assert calls["n"] == 3  # two refusals, then delivered
    headers, body = got[0]
    assert json.loads(body)["request"]["id"] == "rq_1"
    assert headers["X-Televisit-Event"] == "request.created"
    assert headers["X-Televisit-Signature"] == signature("s3cret", body)


async def test_gives_up_after_max_attempts_and_counts():
    runner, url, got, calls = await _receiver(fail_first=100)
    settings = load_settings(
        environ={}, overrides={"clinic": {"webhook_url": url, "webhook_max_attempts": 2}}
    )
    hook = Webhook(settings.clinic)
    await hook.start()
    try:
        hook.enqueue({"id": "ev_2", "type": "request.expired"})
        await _wait_for(lambda: hook.failed == 1)
    finally:
        await hook.stop()
        await runner.cleanup()
    assert calls["n"] == 2 and got == []


def test_disabled_without_url():
    hook = Webhook(load_settings(environ={}).clinic)
    hook.enqueue({"id": "ev_3", "type": "x"})
    assert not hook.enabled and hook.queue.qsize() == 0


async def test_clinic_events_reach_the_webhook(tmp_path):
    """Through the real app: a request and its decline are POSTed to the configured URL."""
    from control.app import create_app
    from control.clinic import api, requests
    from control.clinic.accounts import create_staff
    from control.store.factory import open_bus, open_store

    runner, url, got, _ = await _receiver(fail_first=0)
    settings = load_settings(
        environ={},
        overrides={"server": {"data_dir": str(tmp_path)}, "clinic": {"webhook_url": url}},
    )
    store, bus = open_store(settings), open_bus(settings)
    await store.open()
    await bus.open()
    app = create_app(settings, store, bus=bus, background=False)
    node = app[api.NODE]
    await node.webhook.start()
    try:
        prov = await create_staff(store, "o1", username="p1", display_name="P", password="x" * 8,
                                  groups=["provide"])  # fmt: skip
        prov = await requests.set_availability(node.clinic, prov, True)
        desk = await create_staff(store, "o1", username="d1", display_name="D", password="x" * 8,
                                  groups=["request"])  # fmt: skip
        r = await requests.create_request(node.clinic, desk, prov.id)
        await requests.decline(node.clinic, prov, r.id, "busy")
        await _wait_for(lambda: node.webhook.delivered == 3)
    finally:
        await node.webhook.stop()
        await runner.cleanup()
        await bus.close()
        await store.close()
    sent = [json.loads(body) for _, body in got]
    assert [e["type"] for e in sent] == [
        "provider.availability",
        "request.created",
        "request.declined",
    ]
    assert sent[2]["request"]["note"] == "busy" and sent[2]["org_id"] == "o1"
    assert len({e["id"] for e in sent}) == 3
