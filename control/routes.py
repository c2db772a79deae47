"""The whole control API in one routes table (see ROUTES).

Each row: method, path, handler, summary, request model, response model (and the success
status, whether it takes the organization's API key, a tag). control/app.py mounts the rows;
control/openapi.py documents them. Add a row here for every new endpoint.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from control import appointment_api, departments, join
from control.clinic import api as clinic_api
from control.health import health_handler
from control.mobile import api as mobile_api
from control.mobile.schemas import (
    AckBody,
    AckOut,
    ClientIn,
    ClientOut,
    ConsultationIn,
    ConsultationOut,
    DeviceLoginBody,
    DeviceLoginOut,
    DeviceMeOut,
    DevicesOut,
    HistoryIn,
    HistoryOut,
    LoginKeyOut,
    MobileSettingsBody,
    MobileSettingsOut,
    NoteBody,
    NoteSaved,
    PatientIn,
    PatientOut,
    ScanBody,
    ScanSaved,
    StockItemIn,
    StockItemOut,
    SubmissionsOut,
    SyncOut,
)
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
from control.openapi import ID_SCHEMA, TIME_SCHEMA, openapi_handler

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
    # login; "device": a staff mobile app's device token; None: public.
    auth: str | None = "apikey"
    tag: str = "appointments"
    # Query parameters (all optional): (name, what it means[, its JSON schema: a string if
    # none is given]).
    query: tuple[tuple[str, str] | tuple[str, str, dict[str, Any]], ...] = ()
    # Other answers worth documenting: (status, what it means).
    responses: tuple[tuple[int, str], ...] = ()


def _doc(handler: Handler) -> str:
    return (handler.__doc__ or handler.__name__.replace("_", " ")).strip().splitlines()[0]


THROTTLED = (429, "too many attempts (Retry-After)")

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
          AppointmentCreate, Appointment, status=201,
          responses=((200, "the same appointment again: created before with these fields"),)),
    Route("GET", f"{API}/appointments", appointment_api.list_handler,
          "List appointments by start time and provider", response=AppointmentList,
          query=(("from", "appointments starting at or after it", TIME_SCHEMA),
                 ("to", "appointments starting at or before it (not before from)", TIME_SCHEMA),
                 ("provider_id", "only this provider's appointments", ID_SCHEMA),
                 ("limit", "page size (default 100)", {"type": "integer", "minimum": 1,
                                                       "maximum": appointment_api.MAX_PAGE}),
                 ("offset", "skip this many (see next_offset)",
                  {"type": "integer", "minimum": 0, "maximum": appointment_api.MAX_OFFSET}))),
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
          SendLinks, SendResult, status=202,
          responses=((409, "cancelled, over, telemedicine off in its department, or the "
                           "client changed while sending"),)),
    # joining
    Route("POST", f"{API}/join", join.join_handler,
          "Join a room by PIN (native apps) or by a link's token (rate limited)",
          JoinRequest, JoinResponse, auth=None, tag="join", responses=(THROTTLED,)),
    # virtual clinic (control/clinic/api.py lists its handlers)
    *[
        Route(method, API + path, handler, _doc(handler), request, response, status=status,
              auth=auth, tag="clinic",
              responses=(THROTTLED,) if handler is clinic_api.login else ())
        for method, path, handler, request, response, status, auth in clinic_api.ROUTES
    ],
    # staff mobile app (control/mobile/): what clinic software pushes and pulls
    *[
        Route("PUT", f"{API}/mobile/{name}/{{id}}", put, _doc(put), model, out, tag="mobile",
              responses=((201, "created (200: replaced or unchanged)"),
                         (409, "another stock item has this gtin")))
        for name, put, model, out in (
            ("clients", mobile_api.put_client, ClientIn, ClientOut),
            ("patients", mobile_api.put_patient, PatientIn, PatientOut),
            ("history", mobile_api.put_history, HistoryIn, HistoryOut),
            ("consultations", mobile_api.put_consultation, ConsultationIn, ConsultationOut),
            ("stock", mobile_api.put_stock, StockItemIn, StockItemOut),
        )
    ],
    Route("GET", f"{API}/mobile/submissions", mobile_api.list_submissions,
          _doc(mobile_api.list_submissions), response=SubmissionsOut, tag="mobile",
          query=(("limit", "page size (default 100)",
                  {"type": "integer", "minimum": 1, "maximum": mobile_api.MAX_PAGE}),)),
    Route("POST", f"{API}/mobile/submissions/ack", mobile_api.ack_submissions,
          _doc(mobile_api.ack_submissions), AckBody, AckOut, tag="mobile"),
    # ... what staff do in their profile and administrators in the settings
    Route("GET", f"{API}/mobile/settings", mobile_api.get_settings,
          _doc(mobile_api.get_settings), response=MobileSettingsOut, auth="staff", tag="mobile"),
    Route("PUT", f"{API}/mobile/settings", mobile_api.put_settings,
          _doc(mobile_api.put_settings), MobileSettingsBody, MobileSettingsOut, auth="staff",
          tag="mobile", responses=((403, "not an administrator"),)),
    Route("POST", f"{API}/mobile/login-key", mobile_api.create_login_key,
          _doc(mobile_api.create_login_key), response=LoginKeyOut, status=201, auth="staff",
          tag="mobile", responses=((403, "no group 'mobile', or the app is off"),)),
    Route("GET", f"{API}/mobile/devices", mobile_api.my_devices, _doc(mobile_api.my_devices),
          response=DevicesOut, auth="staff", tag="mobile"),
    Route("GET", f"{API}/mobile/org/devices", mobile_api.org_devices,
          _doc(mobile_api.org_devices), response=DevicesOut, auth="staff", tag="mobile"),
    Route("DELETE", f"{API}/mobile/devices/{{id}}", mobile_api.revoke_device,
          _doc(mobile_api.revoke_device), status=204, auth="staff", tag="mobile"),
    # ... and what the app calls
    Route("POST", f"{API}/mobile/device-login", mobile_api.device_login,
          _doc(mobile_api.device_login), DeviceLoginBody, DeviceLoginOut, status=201, auth=None,
          tag="mobile", responses=((401, "wrong, used or expired key"),
                                   (403, "no group 'mobile', or the app is off"),
                                   (429, "too many wrong keys (Retry-After)"))),
    *[
        Route(method, f"{API}/mobile/app/{path}", fn, _doc(fn), body, out, status=status,
              auth="device", tag="mobile", query=query,
              responses=((403, "the app is off for the organization, or no group 'mobile'"),
                         *extra))
        for method, path, fn, body, out, status, query, extra in (
            ("GET", "me", mobile_api.device_me, None, DeviceMeOut, 200, (), ()),
            ("POST", "sign-out", mobile_api.device_sign_out, None, None, 204, (), ()),
            ("GET", "sync", mobile_api.sync, None, SyncOut, 200,
             (("cursor", "the last answer's cursor (or send it as If-None-Match)"),),
             ((304, "nothing changed since the cursor"),)),
            ("PUT", "notes/{id}", mobile_api.save_note, NoteBody, NoteSaved, 200, (),
             ((201, "a new note (200: an edit, or a repeat of a key)"),
              (409, "changed on another device (current: the note now), or a key reused"))),
            ("POST", "stock-scans", mobile_api.scan_stock, ScanBody, ScanSaved, 201, (),
             ((200, "a repeat of a key: the first answer"), (409, "a key reused"))),
        )
    ],
]
# fmt: on


def add_routes(router: web.UrlDispatcher, routes: list[Route] = ROUTES) -> None:
    for route in routes:
        router.add_route(route.method, route.path, route.handler)
