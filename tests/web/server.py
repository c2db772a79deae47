"""`televisit serve` as a child process on a free loopback port, with a private data dir,
and the REST calls the browser tests need (department, appointments, cancel)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

START_SECONDS = 60.0
# The department every browser test uses: its clinic and where it is.
CLINIC = {"name": "Kallio Vet", "phone": "+358912345678"}
TIME_ZONE = "Europe/Helsinki"
ROOT = Path(__file__).resolve().parents[2]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class LiveServer:
    data_dir: Path
    port: int
    proc: subprocess.Popen[str] | None = None
    api_key: str = ""
    department_id: str = ""
    settings: dict[str, str] | None = None  # more TELEVISIT__ variables for this server

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "TELEVISIT__SERVER__HOST": "127.0.0.1",
                "TELEVISIT__SERVER__PORT": str(self.port),
                "TELEVISIT__SERVER__DATA_DIR": str(self.data_dir),
                "TELEVISIT__SERVER__PUBLIC_URL": "",
                "TELEVISIT__STORE__BACKEND": "sqlite",
                "TELEVISIT__MEDIA__LISTEN_ADDRESSES": '["127.0.0.1"]',
                "TELEVISIT__MEDIA__ICE_SERVERS": "[]",
                "TELEVISIT__MEDIA__SIGNALING_PORT": "0",  # SFU workers on free ports
                # Both browser contexts and every test share one address.
                "TELEVISIT__JOIN__PER_IP_PER_MINUTE": "1000",
            }
        )
        env.update(self.settings or {})
        return env

    def command(self) -> list[str]:
        """What runs the server (a container image's test runs it through podman)."""
        return [sys.executable, "-m", "control.cli", "serve"]

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            self.command(),
            cwd=ROOT,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + START_SECONDS
        banner = []
        # The banner ends with the demo organization's fresh API key.
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            banner.append(line)
            found = re.search(r"Demo API key:\s+(\S+)", line)
            if found:
                self.api_key = found.group(1)
                break
        if not self.api_key:
            self.stop()
            raise RuntimeError(
                "televisit serve did not start:\n"
                + "".join(banner)
                + self.log_path.read_text(errors="replace")[-3000:]
            )

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            # SIGINT stops at once (SIGTERM would drain: wait for the calls to end).
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        if self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None

    # --- its log and its SFU workers ---------------------------------------------------

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON lines of the server's log (stderr)."""
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def logged(self, msg: str) -> list[dict[str, Any]]:
        return [e for e in self.log_lines() if e.get("msg") == msg]

    def workers(self) -> dict[str, dict[str, Any]]:
        """SFU worker processes started so far, by signaling URL: {worker, pid, url}."""
        return {e["url"]: e for e in self.logged("SFU worker started")}

    def sfu_metrics(self) -> dict[str, float]:
        """``televisit_sfu_*`` samples (name with labels -> value) summed over the live SFU
        workers' /metrics (each worker process serves its own)."""
        out: dict[str, float] = {}
        for url in self.workers():
            metrics = url.replace("ws", "http", 1).removesuffix("/ws") + "/metrics"
            try:
                with urllib.request.urlopen(metrics, timeout=10) as resp:
                    text = resp.read().decode()
            except OSError:
                continue  # a worker that died or was replaced
            for line in text.splitlines():
                if line.startswith("televisit_sfu_") and " " in line:
                    name, value = line.rsplit(" ", 1)
                    out[name] = out.get(name, 0.0) + float(value)
        return out

    # --- REST ---------------------------------------------------------------------------

    def call(
        self, method: str, path: str, body: Any = None, *, token: str | None = None
    ) -> tuple[int, Any]:
        """(status, JSON answer) of a call with the API key, or with ``token`` (a staff login)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {token or self.api_key}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def make_department(self, language: str) -> str:
        status, body = self.call(
            "POST",
            "/api/v1/departments",
            {
                "name": "Small animals",
                "telemedicine_enabled": True,
                "default_language": language,
                "time_zone": TIME_ZONE,
                "contact": {"name": CLINIC["name"], "phone": CLINIC["phone"]},
            },
        )
        assert status == 201, body
        self.department_id = body["id"]
        return body["id"]

    def make_appointment(
        self,
        *,
        client_language: str,
        start: datetime | None = None,
        minutes: int = 30,
        client: str = "Maija Virtanen",
        patient: str = "Musti",
    ) -> dict[str, Any]:
        start = start or datetime.now(UTC) - timedelta(minutes=5)
        status, body = self.call(
            "POST",
            "/api/v1/appointments",
            {
                "department_id": self.department_id,
                "external_id": f"web-{time.time_ns()}",
                "start": iso(start),
                "end": iso(start + timedelta(minutes=minutes)),
                "provider": {"id": "vet-1", "name": "Dr. Aino Lehto"},
                "client": {"name": client, "phone": "+358401234567", "language": client_language},
                "patient": {"name": patient, "species": "dog"},
            },
        )
        assert status == 201, body
        return body

    def cancel(self, appointment_id: str) -> None:
        status, body = self.call("POST", f"/api/v1/appointments/{appointment_id}/cancel")
        assert status == 200, body
