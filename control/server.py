"""`televisit serve`: this node's roles on uvloop: the control plane (REST API, pages,
placement) and/or the supervisor of its SFU worker processes (control/cluster/)."""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
import sys
import time

import uvloop
from aiohttp import web

from config.settings import Settings
from control import logs
from control.app import BUS, create_app
from control.clinic.demo import DemoLogin, banner_lines, ensure_demo_staff
from control.cluster.localbus import BusHub, hub_path
from control.cluster.member import SfuMember
from control.cluster.member import attach as attach_member
from control.cluster.supervisor import Supervisor, WorkerFailed
from control.demo import Demo, ensure_demo
from control.store import Store
from control.store.factory import open_bus, open_store
from control.tokens import keyring_for

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_SECONDS = 10.0


def attach_sfu(app: web.Application, settings: Settings, store: Store) -> SfuMember:
    """An SFU worker inside this process's app (tests, embedding): ``GET /ws`` (every join
    authorized by control.join.authorize_join and placed by the registry), ``GET /metrics``,
    room events on the app's bus; it registers as one more worker whose signaling URL is this
    server's ``/ws``. ``televisit serve`` runs its workers as processes instead."""
    base = settings.server.base_url
    scheme, _, rest = base.partition("://")
    url = f"{'wss' if scheme == 'https' else 'ws'}://{rest}/ws"
    node = node_id(settings)
    return attach_member(
        app, settings, store, app[BUS], worker_id=f"{node}-in-process", node=node, url=url
    )


def node_id(settings: Settings) -> str:
    return settings.cluster.node_id or socket.gethostname()


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
    """Serve this node's roles until ``stop`` is set or SIGINT, then shut down in order.

    SIGTERM drains the node's SFU workers (see control/cluster/member.py) and stops once the
    last one exited; a node without the sfu role stops at once.
    """
    stop = stop or asyncio.Event()
    roles = set(settings.cluster.roles)
    loop = asyncio.get_running_loop()
    store = open_store(settings)
    await store.open()
    bus = open_bus(settings)
    await bus.open()
    hub = BusHub(bus, hub_path(settings)) if settings.store.backend == "sqlite" else None
    runner: web.AppRunner | None = None
    supervisor: Supervisor | None = None
    try:
        port = settings.server.port
        if "control" in roles:
            app = create_app(settings, store, bus=bus)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS)
            await runner.setup()
            site = web.TCPSite(runner, settings.server.host, settings.server.port)
            await site.start()
            port = runner.addresses[0][1] if runner.addresses else settings.server.port
        if hub is not None:
            await hub.open()
        if "sfu" in roles:
            keyring_for(settings)  # a generated secret exists before the workers read it
            supervisor = Supervisor(settings, store, bus, node=node_id(settings))
            await supervisor.start()
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(
            signal.SIGTERM, supervisor.drain if supervisor is not None else stop.set
        )
        if "control" in roles:
            demo = (
                await ensure_demo(store, time.time())
                if settings.store.backend == "sqlite"
                else None
            )
            clinic_demo = await ensure_demo_staff(store, demo.org_id) if demo else []
            print(_banner(settings, port, demo, clinic_demo), flush=True)
        log.info(
            "serving",
            extra={
                "host": settings.server.host,
                "port": port,
                "roles": sorted(roles),
                "workers": supervisor.urls if supervisor else [],
            },
        )
        waits = [loop.create_task(stop.wait())]
        if supervisor is not None:
            waits.append(loop.create_task(supervisor.finished.wait()))
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in waits:
            task.cancel()
        log.info("stopping")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if supervisor is not None:
            await supervisor.stop()
        if runner is not None:
            await runner.cleanup()
        if hub is not None:
            await hub.close()
        await bus.close()
        await store.close()


def serve(settings: Settings) -> int:
    logs.configure(settings.server.log_level, levels=settings.server.log_levels)
    try:
        uvloop.run(run(settings))
    except (OSError, WorkerFailed) as exc:  # a port is taken, the data directory is not
        # writable, ...: one line saying so, not a traceback
        print(f"televisit: {exc}", file=sys.stderr)
        if getattr(exc, "errno", None) == errno.EADDRINUSE:
            print(
                "televisit: another program listens there: stop it, or choose another port "
                "(--port or server.port)",
                file=sys.stderr,
            )
        return 1
    return 0
