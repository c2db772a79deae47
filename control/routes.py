"""The whole control API in one routes table (see ROUTES).

Each row: method, path, handler, summary, request model, response model (and the success
status, whether it takes the organization's API key, a tag). control/app.py mounts the rows;
control/openapi.py documents them. Add a row here for every new endpoint.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from pydantic import BaseModel

from control import appointment_api, departments, join
from control.clinic import api as clinic_api
from control.health import health_handler
from control.models import (
    Appointment,
    AppointmentCreate,
    AppointmentList,
    AppointmentPatch,
    Department,
    DepartmentCreate,
    DepartmentList,
    DepartmentPatch,
    Health,
    JoinRequest,
    JoinResponse,
    SendLinks,
    SendResult,
)
from control.openapi import openapi_handler

API = "/api/v1"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    # "apikey": Authorization: Bearer tv_... (clinic software); "staff": a virtual clinic
    # login; None: public.
    auth: str | None = "apikey"
    tag: str = "appointments"
    query: tuple[tuple[str, str], ...] = ()


def _doc(handler: Handler) -> str:
    return (handler.__doc__ or handler.__name__.replace("_", " ")).strip().splitlines()[0]


# fmt: off
ROUTES: list[Route] = [
    Route("GET", "/healthz", health_handler, "Liveness and store check",
          response=Health, auth=None, tag="operations"),
    Route("GET", f"{API}/openapi.json", openapi_handler, "This API's OpenAPI 3.1 document",
          auth=None, tag="operations"),
    # departments
    Route("POST", f"{API}/departments", departments.create_handler, "Create a department",
          DepartmentCreate, Department, status=201, tag="departments"),
    Route("GET", f"{API}/departments", departments.list_handler, "List departments",
          response=DepartmentList, tag="departments"),
    Route("GET", f"{API}/departments/{{id}}", departments.get_handler, "Get a department",
          response=Department, tag="departments"),
    Route("PATCH", f"{API}/departments/{{id}}", departments.update_handler,
          "Change a department's settings (telemedicine, language, time zone, contact)",
          DepartmentPatch, Department, tag="departments"),
    # appointments
    Route("POST", f"{API}/appointments", appointment_api.create_handler,
          "Book an appointment (idempotent on external_id: 201 new, 200 the same again)",
          AppointmentCreate, Appointment, status=201),
    Route("GET", f"{API}/appointments", appointment_api.list_handler,
          "List appointments by start time and provider", response=AppointmentList,
          query=(("from", "ISO 8601 time: appointments starting at or after it"),
                 ("to", "ISO 8601 time: appointments starting at or before it"),
                 ("provider_id", "only this provider's appointments"),
                 ("limit", "page size, 1..500 (default 100)"),
                 ("offset", "skip this many (see next_offset)"))),
    Route("GET", f"{API}/appointments/{{id}}", appointment_api.get_handler,
          "Get an appointment with its telemedicine room and link delivery",
          response=Appointment),
    Route("PATCH", f"{API}/appointments/{{id}}", appointment_api.update_handler,
          "Change an appointment (a new client or provider revokes that side's old links)",
          AppointmentPatch, Appointment),
    Route("POST", f"{API}/appointments/{{id}}/cancel", appointment_api.cancel_handler,
          "Cancel an appointment: its PIN, links and tokens stop working at once",
          response=Appointment),
    Route("POST", f"{API}/appointments/{{id}}/telemedicine/send", appointment_api.send_handler,
          "Send or resend the client's links by SMS and/or email",
          SendLinks, SendResult, status=202),
    # joining
    Route("POST", f"{API}/join", join.join_handler,
          "Join a room by PIN (native apps) or by a link's token (rate limited)",
          JoinRequest, JoinResponse, auth=None, tag="join"),
    # virtual clinic (control/clinic/api.py lists its handlers)
    *[
        Route(method, API + path, handler, _doc(handler), request, response, status=status,
              auth=auth, tag="clinic")
        for method, path, handler, request, response, status, auth in clinic_api.ROUTES
    ],
]
# fmt: on


def add_routes(router: web.UrlDispatcher, routes: list[Route] = ROUTES) -> None:
    for route in routes:
        router.add_route(route.method, route.path, route.handler)
