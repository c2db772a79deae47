"""schemathesis against `televisit serve`: every operation of /api/v1/openapi.json, called
with generated valid and invalid input, answers what the document says (documented status
codes, content types and response schemas, invalid input refused, never a 5xx), so generated
clients and the server agree (issue 12 item 9). Short and derandomized in the suite
(``SCHEMATHESIS_EXAMPLES=N`` for a longer run by hand)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup

from tests.conftest import free_port

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "8"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# Signing out would end the session the rest of the run uses.
LEFT_OUT = {("POST", "/api/v1/clinic/logout")}


@dataclass
class Live:
    url: str
    api_key: str
    staff_token: str


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    port = free_port()
    env = {
        **os.environ,
        "TELEVISIT__SERVER__PORT": str(port),
        "TELEVISIT__SERVER__DATA_DIR": str(tmp_path_factory.mktemp("live")),
        "TELEVISIT__SERVER__LOG_LEVEL": "error",
        "TELEVISIT__MEDIA__LISTEN_ADDRESSES": '["127.0.0.1"]',
        "TELEVISIT__MEDIA__SIGNALING_PORT": "0",  # SFU workers on free ports
        # Generated logins and joins would otherwise be throttled within the first seconds.
        "TELEVISIT__JOIN__PER_IP_PER_MINUTE": "1000000",
        "TELEVISIT__JOIN__FAILED_PER_IP_PER_HOUR": "1000000",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "control.cli", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        banner = ""
        deadline = time.monotonic() + 60
        while "demo.admin" not in banner and time.monotonic() < deadline:
            line = proc.stdout.readline() if proc.stdout else ""
            if not line:
                break
            banner += line
        key = re.search(r"Demo API key: (\S+)", banner)
        admin = re.search(r"demo\.admin\s+(\S+)", banner)
        assert key and admin, banner
        url = f"http://127.0.0.1:{port}"
        login = requests.post(
            f"{url}/api/v1/clinic/login",
            json={"username": "demo.admin", "password": admin.group(1)},
            timeout=30,
        )
        assert login.status_code == 200, login.text
        yield Live(url, key.group(1), login.json()["token"])
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)


@pytest.fixture(scope="module")
def api_schema(live: Live) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{live.url}/api/v1/openapi.json")


def check(operation: schemathesis.APIOperation, mode: schemathesis.GenerationMode, live: Live):
    """Call ``operation`` with ``mode`` input and validate every answer (raises the failures)."""
    token = live.staff_token if operation.path.startswith("/api/v1/clinic/") else live.api_key
    headers = {"Authorization": f"Bearer {token}"} if operation.security else {}
    known = {
        p["name"] for p in operation.definition.raw.get("parameters", []) if p["in"] == "query"
    }

    @given(operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        # Unknown query parameters are ignored, as HTTP servers do; that is no "invalid input"
        # the document promises to refuse.
        assume(set(case.query or {}) <= known)
        case.call_and_validate(base_url=live.url, headers=headers, checks=CHECKS)

    run()


def test_the_server_answers_as_its_openapi_document_says(
    api_schema: schemathesis.BaseSchema, live: Live
) -> None:
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 25
    for operation in operations:
        if (operation.method.upper(), operation.path) in LEFT_OUT:
            continue
        for mode in schemathesis.GenerationMode:
            try:
                check(operation, mode, live)
            except Unsatisfiable:
                continue  # nothing to make invalid (no parameters, no body)
            except (Exception, FailureGroup) as exc:  # all operations run; all failures shown
                failures.append(
                    f"{operation.method.upper()} {operation.path} ({mode.value}): {exc}"
                )
    assert not failures, f"{len(failures)} operations disagree:\n\n" + "\n\n".join(failures)
