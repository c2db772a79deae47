"""The systems under test as processes: start, where load clients reach them, pid to sample, stop.

Each target runs pinned to the SFU core; load clients run pinned to the other (scenarios.py).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .netns import Namespace

ROOT = Path(__file__).resolve().parents[1]
START_SECONDS = 60.0
JANUS_LIBS = Path("/usr/lib/x86_64-linux-gnu/janus")


class TargetUnavailable(RuntimeError):
    """The system cannot run here (not installed, no root): skipped with this message."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Measured processes run at a higher priority than whatever else shares the machine (as root),
# so other work on the same cores disturbs the figures less. Same for every system.
PRIORITY = -10


def prepare(cpus: set[int] | None) -> Callable[[], None]:
    """preexec_fn of a measured process: pinned to ``cpus``, raised priority when allowed."""

    def apply() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)
        if os.geteuid() == 0:
            os.nice(PRIORITY)

    return apply


def _wait_http(url: str, proc: subprocess.Popen[Any], wrap: Callable[[list[str]], list[str]] | None = None
               ) -> None:  # fmt: skip
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        if wrap is None:
            try:
                urllib.request.urlopen(url, timeout=2).read()
                return
            except urllib.error.HTTPError:
                return  # an error status is an answer: the server is up
            except OSError:
                pass
        elif (
            subprocess.run(wrap(["curl", "-sf", "-m", "2", "-o", "/dev/null", url])).returncode == 0
        ):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {START_SECONDS} s")


class Target:
    name = ""
    proc: subprocess.Popen[Any] | None = None

    def __init__(self, cpus: set[int] | None, workers: int = 1) -> None:
        self.cpus = cpus
        self.workers = workers
        self.tmp = Path(tempfile.mkdtemp(prefix=f"tv-bench-{self.name}-"))

    def start(self) -> dict[str, Any]:
        """Start; return the load clients' arguments (base_url, api_key, ...)."""
        raise NotImplementedError

    def wrap(self, argv: list[str]) -> list[str]:
        """How to run a load client so it reaches this target."""
        return argv

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self, log_dir: Path | None = None) -> None:
        """Stop the process; keep its logs in ``log_dir`` (the run's output directory)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if log_dir is not None:
            for log in self.tmp.glob("*.log"):
                shutil.copy(log, log_dir / f"{self.name}-{log.name}")
        shutil.rmtree(self.tmp, ignore_errors=True)


class Televisit(Target):
    """`televisit serve` on a fresh data dir: SQLite store, demo org, media on 127.0.0.1,
    ``workers`` SFU worker processes sharing the target's cores (measured with the control
    process: probes.usage counts a process's children)."""

    name = "televisit"
    env: dict[str, str] = {}  # more settings (TELEVISIT__...) for this run

    def start(self) -> dict[str, Any]:
        port = free_port()
        env = {
            **os.environ,
            "TELEVISIT__SERVER__DATA_DIR": str(self.tmp),
            "TELEVISIT__SERVER__PORT": str(port),
            "TELEVISIT__SERVER__LOG_LEVEL": "warning",
            "TELEVISIT__MEDIA__LISTEN_ADDRESSES": '["127.0.0.1"]',
            "TELEVISIT__MEDIA__SIGNALING_PORT": "0",
            "TELEVISIT__MEDIA__WORKERS": str(self.workers),
            "TELEVISIT__JOIN__PER_IP_PER_MINUTE": "100000000",
            "TELEVISIT__JOIN__FAILED_PER_IP_PER_HOUR": "100000000",
            "TELEVISIT__JOIN__FAILED_PER_MINUTE": "100000000",
            "TELEVISIT__MEDIA__ROOM_MAX_PARTICIPANTS": "64",  # fan-out viewers (the most allowed)
            **self.env,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "control.cli", "serve"], cwd=ROOT, env=env,
            stdout=open(self.tmp / "stdout.log", "w"), stderr=open(self.tmp / "stderr.log", "w"),
            preexec_fn=prepare(self.cpus),
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        _wait_http(f"{base}/healthz", self.proc)
        out = subprocess.run(
            [sys.executable, "-m", "control.cli", "admin", "create-org", "--name", "Bench"],
            cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        key = json.loads(out.stdout)["api_key"]
        department = _request(f"{base}/api/v1/departments", key, {"name": "Bench",
                              "telemedicine_enabled": True})  # fmt: skip
        return {
            "base_url": base,
            "api_key": key,
            "department_id": department["id"],
            "data_dir": str(self.tmp),
            "log_path": str(self.tmp / "stderr.log"),  # the workers' JSON log lines too
        }


def _request(url: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(req, timeout=20) as resp:
        return json.loads(resp.read())


class Baseline(Target):
    name = "baseline"

    def start(self) -> dict[str, Any]:
        port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.baselines.relay_server", "--port", str(port)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(self.tmp / "stderr.log", "w"),
            preexec_fn=prepare(self.cpus),
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        _wait_http(f"{base}/rooms", self.proc)  # 404/405 is an answer: the server is up
        return {"base_url": base}


class Janus(Target):
    """Janus 1.1.2 videoroom from Debian's package in its own namespace (netns.py), tuned as an
    operator would run it for many small rooms on the cores it is given:

    - ``event_loops`` = those cores (one here): handles share a fixed set of event-loop
      threads instead of a thread (and its wake-ups and stack) per handle; Janus documents it
      for this case, and it measured 11-19% less CPU per packet and 35% less memory here.
    - only the HTTP transport and the videoroom plugin are loaded, no event handlers or
      loggers, ``debug_level`` 3 (warnings): nothing per packet but forwarding.
    - rooms are created with ``bitrate`` 0 (no REMB cap) and VP8/Opus, as the load sends.
    - NACK handling stays at its defaults (as Televisit's): ``nack_optimizations`` is off by
      default because, in Janus's words, it can backfire, so an operator would leave it off.
    """

    name = "janus"
    PORT = 8088

    def __init__(self, cpus: set[int] | None, workers: int = 1) -> None:
        if (
            shutil.which("janus") is None
            or not (JANUS_LIBS / "plugins/libjanus_videoroom.so").exists()
        ):
            raise TargetUnavailable("janus is not installed (apt-get install janus): skipped")
        if os.geteuid() != 0:
            raise TargetUnavailable("janus needs a network namespace (root): skipped")
        super().__init__(cpus, workers)
        self.event_loops = len(cpus) if cpus else os.cpu_count() or 1
        self.ns = Namespace()

    def _config(self) -> Path:
        conf = self.tmp / "conf"
        for folder, lib in (
            ("plugins", "libjanus_videoroom.so"),
            ("transports", "libjanus_http.so"),
        ):
            (self.tmp / folder).mkdir(parents=True)
            (self.tmp / folder / lib).symlink_to(JANUS_LIBS / folder / lib)
        for folder in ("events", "loggers"):
            (self.tmp / folder).mkdir()
        conf.mkdir()
        (conf / "janus.jcfg").write_text(f"""general: {{
    configs_folder = "{conf}"
    plugins_folder = "{self.tmp}/plugins"
    transports_folder = "{self.tmp}/transports"
    events_folder = "{self.tmp}/events"
    loggers_folder = "{self.tmp}/loggers"
    debug_level = 3
    session_timeout = 120
    event_loops = {self.event_loops}
}}
media: {{
    rtp_port_range = "20000-40000"
}}
nat: {{
    ice_enforce_list = "jv0"
}}
""")
        (conf / "janus.transport.http.jcfg").write_text(f"""general: {{
    json = "compact"
    base_path = "/janus"
    http = true
    port = {self.PORT}
    ip = "127.0.0.1"
    https = false
}}
admin: {{
    admin_base_path = "/admin"
    admin_http = false
}}
""")
        (conf / "janus.plugin.videoroom.jcfg").write_text("general: {\n}\n")
        return conf

    def start(self) -> dict[str, Any]:
        conf = self._config()
        self.ns.__enter__()
        self.proc = subprocess.Popen(
            self.ns.command(["janus", "-F", str(conf), "-C", str(conf / "janus.jcfg"), "-o",
                             "-L", str(self.tmp / "janus.log"), "-N"]),
            stdout=subprocess.DEVNULL, stderr=open(self.tmp / "stderr.log", "w"),
            preexec_fn=prepare(self.cpus),
        )  # fmt: skip
        base = f"http://127.0.0.1:{self.PORT}"
        _wait_http(f"{base}/janus/info", self.proc, self.ns.command)
        return {"base_url": base}

    def wrap(self, argv: list[str]) -> list[str]:
        return self.ns.command(argv)

    def stop(self, log_dir: Path | None = None) -> None:
        try:
            super().stop(log_dir)
        finally:
            self.ns.remove()


TARGETS: dict[str, type[Target]] = {"televisit": Televisit, "baseline": Baseline, "janus": Janus}
