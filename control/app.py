"""Builds the aiohttp application: middlewares, services on app keys, the routes table."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from config.settings import Settings
from control import logs
from control.auth import KeyCache
from control.bus import EventBus, InProcessBus
from control.clinic import api as clinic_api
from control.clinic.node import ClinicNode
from control.clinic.pages import add_pages as add_clinic_pages
from control.mobile import api as mobile_api
from control.mobile import loginkeys
from control.mobile.pages import add_pages as add_staff_app
from control.notify import OutboxWorker
from control.problems import Problem, from_http_error
from control.ratelimit import JoinLimiter
from control.routes import add_routes
from control.services import SERVICES, Services
from control.store import Store
from control.tokens import keyring_for
from control.web.pages import add_pages as add_visit_pages

log = logging.getLogger(__name__)

BUS = web.AppKey("bus", EventBus)


@web.middleware
async def problems(request: web.Request, handler: logs.Handler) -> web.StreamResponse:
    """Every error leaves as application/problem+json; nothing unexpected leaks details."""
    try:
        return await handler(request)
    except Problem as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects
        return from_http_error(exc).response()
    except Exception:
        log.exception(
            "unhandled error", extra={"method": request.method, "path": logs.safe_path(request)}
        )
        return Problem(500, "internal", "the server failed; the error is logged").response()


def create_app(
    settings: Settings,
    store: Store,
    *,
    bus: EventBus | None = None,
    clock: Callable[[], float] = time.time,
    background: bool = True,
) -> web.Application:
    """The control plane on an opened ``store``. With ``background`` the app runs its
    workers while it runs (the notify outbox worker, the virtual clinic's sweeper and
    webhook); the caller owns the store and the bus."""
    app = web.Application(
        middlewares=[logs.access_log(settings.server.proxy_networks), problems],
        client_max_size=settings.server.max_body_bytes,
    )
    bus = bus or InProcessBus()
    outbox_worker = OutboxWorker(store, settings, clock=clock) if background else None
    app[SERVICES] = Services(
        settings=settings,
        store=store,
        keyring=keyring_for(settings),
        limiter=JoinLimiter(settings.join, store),
        api_keys=KeyCache(store),
        clock=clock,
        outbox_worker=outbox_worker,
        bus=bus,
    )
    app[BUS] = bus
    clinic = ClinicNode(store, bus, settings, clock=clock)
    app[clinic_api.NODE] = clinic
    app[clinic_api.THROTTLE] = clinic_api.LoginThrottle()
    app[mobile_api.LIMITER] = loginkeys.limiter(store)
    add_routes(app.router)
    add_clinic_pages(app.router)
    add_staff_app(app.router)
    add_visit_pages(app.router)

    if background:

        async def workers(app: web.Application) -> AsyncIterator[None]:
            assert outbox_worker is not None
            await outbox_worker.start()
            await clinic.start()
            try:
                yield
            finally:
                await clinic.stop()
                await outbox_worker.stop()

        app.cleanup_ctx.append(workers)
    return app
