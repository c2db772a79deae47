"""The OpenAPI 3.1 document, generated from control/routes.py and the pydantic models."""

from __future__ import annotations

import inspect
import re
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import BaseModel

if TYPE_CHECKING:
    from control.routes import Route

from control.bodies import CONTENT_CODINGS, MAX_ID_CHARS
from control.models import ID_PATTERN, ProblemBody

TITLE = "Televisit control API"
VERSION = "1"
_PARAM = re.compile(r"{(\w+)}")
_SECURITY = {"apikey": "apiKey", "staff": "staffSession", "device": "mobileDevice"}
ID_SCHEMA = {"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS, "pattern": ID_PATTERN}
TIME_SCHEMA = {"type": "string", "format": "date-time"}
_STRING = {"type": "string"}


class _Schemas:
    """Component schemas collected from every model, referenced as #/components/schemas/X."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def ref(self, model: type[BaseModel], mode: str) -> dict[str, str]:
        schema = model.model_json_schema(
            ref_template="#/components/schemas/{model}",
            mode=mode,  # type: ignore[arg-type]
        )
        for name, sub in schema.pop("$defs", {}).items():
            self.components.setdefault(name, sub)
        self.components.setdefault(model.__name__, schema)
        return {"$ref": f"#/components/schemas/{model.__name__}"}


def _problem_response(schemas: _Schemas, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/problem+json": {"schema": schemas.ref(ProblemBody, "serialization")}
        },
    }


def _operation(route: Route, schemas: _Schemas) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": route.summary,
        "operationId": f"{route.handler.__module__.rsplit('.', 1)[-1]}.{route.handler.__name__}",
        "tags": [route.tag],
    }
    # Path ids are store keys: what cannot be one is simply not found (control.bodies).
    params = [
        {"name": name, "in": "path", "required": True, "schema": ID_SCHEMA}
        for name in _PARAM.findall(route.path)
    ]
    params += [
        {
            "name": q[0],
            "in": "query",
            "required": False,
            "description": q[1],
            "schema": q[2] if len(q) > 2 else _STRING,
        }
        for q in route.query
    ]
    if params:
        op["parameters"] = params
    if route.request is not None:
        op["requestBody"] = {
            # A body without fields (Empty) may be left out altogether.
            "required": bool(route.request.model_fields),
            "content": {"application/json": {"schema": schemas.ref(route.request, "validation")}},
        }
    ok: dict[str, Any] = {"description": "success"}
    if route.response is not None:
        ok["content"] = {
            "application/json": {"schema": schemas.ref(route.response, "serialization")}
        }
    if route.status == 101:
        ok["description"] = inspect.cleandoc(route.handler.__doc__ or "a WebSocket")
        op["responses"] = {"101": ok}
        op["responses"]["400"] = _problem_response(schemas, "not a WebSocket upgrade request")
        op["responses"]["403"] = _problem_response(schemas, "another site's page (Origin)")
    else:
        op["responses"] = {str(route.status): ok}
    if route.request is not None:
        op["responses"]["400"] = _problem_response(
            schemas, "malformed JSON, or a body that does not decode as its Content-Encoding says"
        )
        op["responses"]["413"] = _problem_response(schemas, "body over server.max_body_bytes")
        op["responses"]["415"] = _problem_response(
            schemas, f"a Content-Encoding other than {', '.join(CONTENT_CODINGS)}"
        )
        op["responses"]["422"] = _problem_response(schemas, "invalid input (field named)")
    if route.auth is not None:
        op["security"] = [{_SECURITY[route.auth]: []}]
        op["responses"]["401"] = _problem_response(schemas, "missing or unknown credentials")
        if route.auth == "staff":
            op["responses"]["403"] = _problem_response(schemas, "not allowed for this account")
    if _PARAM.search(route.path):
        op["responses"]["404"] = _problem_response(schemas, "not found (or another org's)")
    for status, text in route.responses:
        if status < 300 and route.response is not None:
            op["responses"][str(status)] = {**ok, "description": text}
        elif status < 400:
            op["responses"][str(status)] = {"description": text}
        else:
            op["responses"][str(status)] = _problem_response(schemas, text)
    op["responses"]["default"] = _problem_response(schemas, "error")
    return op


def document(routes: list[Route] | None = None) -> dict[str, Any]:
    if routes is None:
        from control.routes import ROUTES  # the table lists this document's own route

        routes = ROUTES
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION},
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.components.items())),
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an organization's API key, tv_...",
                },
                "staffSession": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a virtual clinic staff login (tvs_...) or its cookie",
                },
                "mobileDevice": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a staff mobile app's device token (tvm_...)",
                },
            },
        },
    }


async def openapi_handler(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of this API."""
    return web.json_response(document())
