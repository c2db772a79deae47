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

    def send(self, cmd: str, **fields: Any) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps({"cmd": cmd, **fields}) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise LoadClientError("load client exited") from None

    def request(self, cmd: str, **fields: Any) -> dict[str, Any]:
        self.send(cmd, **fields)
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


class LoadGroup:
    """Several load-client processes driven as one: rooms go to the process with the fewest,
    commands go to all of them before any answer is awaited (so joins run in parallel), and
    snapshots add up. ``cpus[i]`` is the core process i is pinned to (None: not pinned)."""

    def __init__(self, clients: list[LoadClient], cpus: list[int | None]) -> None:
        self.clients = clients
        self.cpus = cpus
        self.rooms = [0] * len(clients)
        self.publisher_pps = float(clients[0].ready.get("publisher_pps", 0.0))

    def _all(self, cmd: str, shares: list[dict[str, Any]]) -> list[dict[str, Any]]:
        asked = [
            (c, fields)
            for c, fields in zip(self.clients, shares, strict=True)
            if fields is not None
        ]
        for client, fields in asked:
            client.send(cmd, **fields)
        return [client._next(cmd) for client, _ in asked]

    def add(self, count: int, decode: bool) -> dict[str, Any]:
        """``count`` more rooms, spread; the first room of process 0 decodes when ``decode``."""
        split = [0] * len(self.clients)
        for _ in range(count):
            i = min(range(len(split)), key=lambda k: self.rooms[k] + split[k])
            split[i] += 1
        shares = [{"count": n, "decode": decode and i == 0} if n else None
                  for i, n in enumerate(split)]  # fmt: skip
        answers = self._all("add", shares)
        for i, answer in zip([i for i, n in enumerate(split) if n], answers, strict=True):
            self.rooms[i] = answer["rooms"]
        return {
            "rooms": sum(self.rooms),
            "added": sum(a["added"] for a in answers),
            "no_video": sum(a["no_video"] for a in answers),
            "errors": [e for a in answers for e in a["errors"]],
        }

    def remove(self, count: int) -> dict[str, Any]:
        """The oldest rooms first, taken from the processes holding the most."""
        split = [0] * len(self.clients)
        for _ in range(count):
            i = max(range(len(split)), key=lambda k: self.rooms[k] - split[k])
            split[i] += 1
        answers = self._all("remove", [{"count": n} if n else None for n in split])
        for i, answer in zip([i for i, n in enumerate(split) if n], answers, strict=True):
            self.rooms[i] = answer["rooms"]
        return {"rooms": sum(self.rooms), "removed": sum(a["removed"] for a in answers)}

    def fanout(self, count: int) -> dict[str, Any]:
        """Fan-out stays in process 0: latency is matched against the publisher's send times,
        which only its own process knows."""
        return self.clients[0].request("fanout", count=count)

    def snapshot(self) -> dict[str, Any]:
        snaps = self._all("snapshot", [{}] * len(self.clients))
        totals: dict[str, int] = {}
        for snap in snaps:
            for key, value in snap["totals"].items():
                totals[key] = totals.get(key, 0) + value
        return {
            "totals": totals,
            "decoded_frames": sum(s["decoded_frames"] for s in snaps),
            "latencies_ms": [x for s in snaps for x in s["latencies_ms"]],
            "latency_samples": sum(s["latency_samples"] for s in snaps),
            "first_frame_s": [x for s in snaps for x in s["first_frame_s"]],
            "join_errors": [e for s in snaps for e in s["join_errors"]],
        }

    def cpu_seconds_by_core(self) -> dict[int | None, float]:
        """CPU seconds of the load processes, added up per core they are pinned to."""
        out: dict[int | None, float] = {}
        for client, cpu in zip(self.clients, self.cpus, strict=True):
            out[cpu] = out.get(cpu, 0.0) + usage(client.proc.pid).cpu_seconds
        return out

    def stop(self) -> None:
        for client in self.clients:
            client.stop()


@dataclass
class Usage:
    cpu_seconds: float
    rss_bytes: int
    sockets: int


def usage(pid: int) -> Usage:
    """user+sys CPU (all threads), resident memory and open socket descriptors of the process
    and its live children (Televisit's SFU worker processes)."""
    root = psutil.Process(pid)
    cpu = rss = sockets = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            with proc.oneshot():
                times = proc.cpu_times()
                cpu += times.user + times.system
                rss += proc.memory_info().rss
        except psutil.NoSuchProcess:
            if proc is root:
                raise
            continue
        try:
            for fd in os.listdir(f"/proc/{proc.pid}/fd"):
                try:
                    sockets += os.readlink(f"/proc/{proc.pid}/fd/{fd}").startswith("socket:")
                except OSError:
                    continue
        except OSError:
            pass
    return Usage(cpu, rss, sockets)


def machine_busy() -> float:
    """CPU seconds all cores spent busy since boot."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0)
