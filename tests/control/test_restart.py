"""Nothing accepted is lost: appointments, rooms, PINs and links survive a restart,
in process (both stores) and as a real `televisit serve` killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from control import tokens

from .helpers import BASE, appointment_body, token_of

ROOT = Path(__file__).resolve().parents[2]
START_SECONDS = 60.0


async def test_join_again_after_reopening_store_and_app(
    make_store, make_client, auth, department, clock
):
    store = await make_store()
    first = await make_client(store)
    resp = await first.post(
        "/api/v1/appointments", json=appointment_body(department["id"]), headers=auth
    )
    appt = await resp.json()
    await first.close()
    await store.close()
    tokens._KEYRINGS.clear()  # a new process reads the key file again

    reopened = await make_store()
    second = await make_client(reopened)
    clock.set(BASE)
    resp = await second.post("/api/v1/join", json={"pin": appt["telemedicine"]["pin"]})
    body = await resp.json()
    assert resp.status == 200, body
    assert body["room_id"] == appt["telemedicine"]["room_id"]
    resp = await second.post(
        "/api/v1/join", json={"token": token_of(appt["telemedicine"]["token_url"])}
    )
    assert resp.status == 200, await resp.text()
    got = await second.get(f"/api/v1/appointments/{appt['id']}", headers=auth)
    assert (await got.json())["telemedicine"] == appt["telemedicine"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`televisit serve` as a child process on a free loopback port."""

    def __init__(self, data_dir: Path) -> None:
        self.port = _free_port()
        self.env = {
            **os.environ,
            "TELEVISIT__SERVER__DATA_DIR": str(data_dir),
            "TELEVISIT__SERVER__PORT": str(self.port),
            "TELEVISIT__SERVER__HOST": "127.0.0.1",
            "TELEVISIT__MEDIA__SIGNALING_PORT": "0",  # SFU workers on free ports
        }
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[str] | None = None
        self.banner: list[str] = []

    def start(self) -> str:
        """Start and wait for the banner; return the demo API key it prints."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "control.cli", "serve"],
            cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + START_SECONDS
        self.banner = []
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.banner.append(line)
            if "Demo API key:" in line:
                return line.split("Demo API key:")[1].split()[0]
        raise AssertionError(f"no banner: {self.banner}")

    def stop(self, sig: int) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)


@pytest.mark.parametrize("backend", ["sqlite"])  # the embedded default: one process, one file
async def test_serve_killed_and_restarted_keeps_rooms(tmp_path, backend):
    server = Server(tmp_path / "var")
    key = server.start()
    try:
        headers = {"Authorization": f"Bearer {key}"}
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.url}/api/v1/departments", headers=headers) as resp:
                [dept] = (await resp.json())["departments"]
            assert dept["telemedicine_enabled"] is True
            body = appointment_body(dept["id"], start_at=start)
            async with http.post(
                f"{server.url}/api/v1/appointments", json=body, headers=headers
            ) as resp:
                assert resp.status == 201, await resp.text()
                appt = await resp.json()
            pin = appt["telemedicine"]["pin"]
            async with http.post(f"{server.url}/api/v1/join", json={"pin": pin}) as resp:
                assert resp.status == 200, await resp.text()
        server.stop(signal.SIGKILL)

        new_key = server.start()
        assert new_key != key
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{server.url}/api/v1/join", json={"pin": pin}) as resp:
                joined = await resp.json()
                assert resp.status == 200, joined
            assert joined["room_id"] == appt["telemedicine"]["room_id"]
            token = token_of(appt["telemedicine"]["token_url"])
            async with http.post(f"{server.url}/api/v1/join", json={"token": token}) as resp:
                assert resp.status == 200, await resp.text()
            # The previous start's demo key was revoked; the new one works.
            async with http.get(f"{server.url}/api/v1/departments", headers=headers) as resp:
                assert resp.status == 401
            new_headers = {"Authorization": f"Bearer {new_key}"}
            async with http.get(
                f"{server.url}/api/v1/appointments/{appt['id']}", headers=new_headers
            ) as resp:
                assert (await resp.json())["telemedicine"]["pin"] == pin
            async with http.get(f"{server.url}/healthz") as resp:
                assert (await resp.json())["status"] == "ok"
        assert server.stop(signal.SIGTERM) == 0  # a graceful stop exits cleanly
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(timeout=30)


def _admin(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "control.cli", "admin", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_admin_commands(tmp_path, backend, request):
    env = {**os.environ, "TELEVISIT__SERVER__DATA_DIR": str(tmp_path)}
    if backend == "redis":
        env["TELEVISIT__STORE__BACKEND"] = "redis"
        env["TELEVISIT__STORE__REDIS_URL"] = request.getfixturevalue("redis_url")
    made = _admin(env, "create-org", "--name", "Kallio Vet")
    assert made.returncode == 0, made.stderr
    org = json.loads(made.stdout)
    assert org["org_id"].startswith("org_") and org["api_key"].startswith("tv_")
    extra = json.loads(_admin(env, "create-key", "--org", org["org_id"]).stdout)
    assert extra["org_id"] == org["org_id"] and extra["api_key"] != org["api_key"]
    revoked = _admin(env, "revoke-key", "--key-id", extra["key_id"])
    assert revoked.returncode == 0 and json.loads(revoked.stdout)["revoked_at"]

    # The keys behave as printed: the first works, the revoked one does not.
    from config import load_settings
    from control.auth import org_of_key
    from control.store.factory import open_store

    settings = load_settings(environ=env)
    store = open_store(settings)
    await store.open()
    try:
        assert await org_of_key(store, org["api_key"]) == org["org_id"]
        assert await org_of_key(store, extra["api_key"]) is None
    finally:
        await store.close()

    for args, needle in [
        (("create-key", "--org", "org_missing"), "no organization"),
        (("revoke-key", "--key-id", "key_missing"), "no API key"),
        (("create-org", "--name", "  "), "name"),
    ]:
        bad = _admin(env, *args)
        assert bad.returncode == 1 and needle in bad.stderr, bad
