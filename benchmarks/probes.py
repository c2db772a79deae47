"""Talking to load-client processes, and sampling the SFU process from the OS."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
from dataclasses import dataclass
from typing import Any

import psutil

from .targets import prepare

REPLY_SECONDS = 120.0


class LoadClientError(RuntimeError):
    pass


class LoadClient:
    """A loadgen.py process; ``request`` sends one command and waits (bounded) for its answer."""

    def __init__(self, argv: list[str], cpus: set[int] | None, cwd: str, log_path: str) -> None:
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            text=True, preexec_fn=prepare(cpus),
        )  # fmt: skip
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.ready = self._next("start")

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _next(self, what: str, seconds: float = REPLY_SECONDS) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=seconds)
        except queue.Empty:
            raise LoadClientError(f"load client: no answer to {what} in {seconds} s") from None
        if line is None:
            raise LoadClientError(f"load client exited ({self.proc.poll()}) during {what}")
        return json.loads(line)

    def request(self, cmd: str, **fields: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps({"cmd": cmd, **fields}) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise LoadClientError("load client exited") from None
        return self._next(cmd)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.request("stop")
                self.proc.wait(60)
            except (LoadClientError, subprocess.TimeoutExpired, OSError, ValueError):
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


@dataclass
class Usage:
    cpu_seconds: float
    rss_bytes: int
    sockets: int


def usage(pid: int) -> Usage:
    """user+sys CPU of the process (all threads), resident memory, open socket descriptors."""
    proc = psutil.Process(pid)
    with proc.oneshot():
        times = proc.cpu_times()
        rss = proc.memory_info().rss
    sockets = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                sockets += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
            except OSError:
                continue
    except OSError:
        pass
    return Usage(times.user + times.system, rss, sockets)


def machine_busy() -> float:
    """CPU seconds all cores spent busy since boot."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0)
