"""`televisit serve`: the control plane (and the in-process SFU hook) on uvloop."""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import sys
import time

import uvloop
from aiohttp import web

from config.settings import Settings
from control import logs
from control.app import BUS, create_app
from control.clinic.demo import DemoLogin, banner_lines, ensure_demo_staff
from control.demo import Demo, ensure_demo
from control.join import authorize_join
from control.store import Store
from control.store.factory import open_bus, open_store
from media_server import node as sfu_node

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_SECONDS = 10.0


def attach_sfu(app: web.Application, settings: Settings, store: Store) -> None:
    """Hook for the SFU running inside this process (the embedded single-node setup):
    ``GET /ws`` (every join authorized by control.join.authorize_join), ``GET /metrics``, room
    events on the bus and sessions ended when the control plane cancels them."""
    sfu_node.attach(
        app, settings, authorize=functools.partial(authorize_join, store, settings), bus=app[BUS]
    )


def _banner(
    settings: Settings, port: int, demo: Demo | None, clinic_demo: list[DemoLogin] | None = None
) -> str:
    base = settings.server.base_url
    if not settings.server.public_url:
        base = f"http://{settings.server.host}:{port}"
    lines = [
        "Televisit is running",
        f"  API:          {base}/api/v1   (OpenAPI: {base}/api/v1/openapi.json)",
        f"  Health:       {base}/healthz",
        f"  Clinic:       {base}/clinic/",
    ]
    if demo is not None:
        lines += [
            f"  Demo org:     {demo.org_id}   department: {demo.department_id} (telemedicine on)",
            f"  Demo API key: {demo.api_key}   (a new one each start; the last one is revoked)",
            f'  Try:          curl -H "Authorization: Bearer {demo.api_key}" {base}/api/v1/departments',
        ]
        lines += banner_lines(base, clinic_demo or [])
    return "\n".join(lines)


async def run(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set (or SIGINT/SIGTERM), then shut down in order."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    store = open_store(settings)
    await store.open()
    bus = open_bus(settings)
    await bus.open()
    runner: web.AppRunner | None = None
    try:
        app = create_app(settings, store, bus=bus)
        attach_sfu(app, settings, store)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS)
        await runner.setup()
        site = web.TCPSite(runner, settings.server.host, settings.server.port)
        await site.start()
        port = runner.addresses[0][1] if runner.addresses else settings.server.port
        demo = await ensure_demo(store, time.time()) if settings.store.backend == "sqlite" else None
        clinic_demo = await ensure_demo_staff(store, demo.org_id) if demo else []
        print(_banner(settings, port, demo, clinic_demo), flush=True)
        log.info("serving", extra={"host": settings.server.host, "port": port})
        await stop.wait()
        log.info("stopping")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if runner is not None:
            await runner.cleanup()
        await bus.close()
        await store.close()


def serve(settings: Settings) -> int:
    logs.configure(settings.server.log_level)
    try:
        uvloop.run(run(settings))
    except OSError as exc:  # the port is taken, the data directory is not writable, ...
        print(f"televisit: {exc}", file=sys.stderr)
        return 1
    return 0
