"""Requests per second of the control plane on one core: appointment creation and join by PIN.

Starts `televisit serve` (embedded SQLite store, or --backend redis with --redis-url) pinned to
one CPU, then drives it from this process (pinned to another CPU when there is one) over
loopback at a fixed concurrency, each phase bounded by a request count and a time limit:

    .venv/bin/python -m benchmarks.control_rate [--concurrency 16] [--count 3000] [--seconds 30]

Prints one JSON object: per phase the requests, errors, requests/s and latency percentiles.
Not a test: numbers depend on the machine (and on whatever else runs on it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from benchmarks.targets import prepare

ROOT = Path(__file__).resolve().parents[1]
START_SECONDS = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    data_dir: Path, port: int, args: argparse.Namespace
) -> tuple[subprocess.Popen[str], str]:
    env = {
        **os.environ,
        "TELEVISIT__SERVER__DATA_DIR": str(data_dir),
        "TELEVISIT__SERVER__PORT": str(port),
        "TELEVISIT__SERVER__LOG_LEVEL": args.log_level,
        # Throttling would measure the limiter, not the server.
        "TELEVISIT__JOIN__PER_IP_PER_MINUTE": "100000000",
        "TELEVISIT__JOIN__FAILED_PER_IP_PER_HOUR": "100000000",
        "TELEVISIT__JOIN__FAILED_PER_MINUTE": "100000000",
        "TELEVISIT__STORE__BACKEND": args.backend,
        "TELEVISIT__MEDIA__SIGNALING_PORT": "0",
    }
    if args.redis_url:
        env["TELEVISIT__STORE__REDIS_URL"] = args.redis_url
    proc = subprocess.Popen(
        [sys.executable, "-m", "control.cli", "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        # pinned, and at the media benchmarks' raised priority when root (targets.prepare)
        preexec_fn=prepare({args.server_cpu} if args.server_cpu < (os.cpu_count() or 1) else None),
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if "Demo API key:" in line:
            return proc, line.split("Demo API key:")[1].split()[0]
        if args.backend == "redis" and "Clinic:" in line:
            return proc, ""  # no demo org on redis: the caller creates one
    proc.kill()
    raise SystemExit("the server did not start")


def cpu_seconds(pid: int) -> float:
    """user+sys CPU seconds of a process so far (all its threads)."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


async def run_phase(
    name: str, make_request: Callable[[int], Awaitable[int]], args: argparse.Namespace,
    server_pid: int,
) -> dict[str, Any]:  # fmt: skip
    """``concurrency`` loops share a counter; stop at ``count`` requests or ``seconds``.

    Besides requests/s (which the machine's other load and this client's own core bound), the
    server's CPU per request: 1e6 / that is what one core of the server carries at most."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    issued = 0
    deadline = time.monotonic() + args.seconds

    async def loop() -> None:
        nonlocal issued
        while issued < args.count and time.monotonic() < deadline:
            n = issued
            issued += 1
            t0 = time.perf_counter()
            try:
                status = await make_request(n)
            except aiohttp.ClientError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            latencies.append(time.perf_counter() - t0)
            if status >= 400:
                errors[str(status)] = errors.get(str(status), 0) + 1

    started = time.perf_counter()
    server0, client0 = cpu_seconds(server_pid), time.process_time()
    await asyncio.gather(*(loop() for _ in range(args.concurrency)))
    elapsed = time.perf_counter() - started
    server_cpu, client_cpu = cpu_seconds(server_pid) - server0, time.process_time() - client0
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 2)

    return {
        "phase": name,
        "requests": len(latencies),
        "errors": errors,
        "seconds": round(elapsed, 2),
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "server_cpu_pct": round(100 * server_cpu / elapsed, 1),
        "client_cpu_pct": round(100 * client_cpu / elapsed, 1),
        "server_us_per_request": round(1e6 * server_cpu / max(1, len(latencies)), 1),
        "per_core_per_second": round(len(latencies) / server_cpu, 1) if server_cpu else None,
        "latency_ms": {
            "p50": pct(0.50),
            "p90": pct(0.90),
            "p99": pct(0.99),
            "mean": round(statistics.fmean(latencies) * 1000, 2),
        },
    }


async def bench(
    base: str, key: str, args: argparse.Namespace, server_pid: int
) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {key}"}
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        async with http.get(f"{base}/api/v1/departments", headers=headers) as resp:
            department_id = (await resp.json())["departments"][0]["id"]
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
        pins: list[str] = []
        run_id = os.urandom(4).hex()

        async def create(n: int) -> int:
            body = {
                "department_id": department_id,
                "external_id": f"bench-{run_id}-{n}",
                "start": (start + timedelta(minutes=n % 600)).isoformat(),
                "end": (start + timedelta(minutes=n % 600 + 30)).isoformat(),
                "provider": {"id": f"vet-{n % 20}", "name": "Dr. Bench"},
                "client": {"name": "Client", "phone": "+358401234567", "email": "c@example.com"},
                "patient": {"name": "Musti", "species": "dog"},
            }
            async with http.post(f"{base}/api/v1/appointments", json=body, headers=headers) as resp:
                data = await resp.json()
                if resp.status == 201 and n % 600 < 50:  # rooms open within the early window
                    pins.append(data["telemedicine"]["pin"])
                return resp.status

        async def join(n: int) -> int:
            async with http.post(f"{base}/api/v1/join", json={"pin": pins[n % len(pins)]}) as resp:
                await resp.read()
                return resp.status

        created = await run_phase("create appointment", create, args, server_pid)
        if not pins:
            raise SystemExit("no appointment was created")
        joined = await run_phase("join by PIN", join, args, server_pid)
        return [created, joined]


def _create_org(args: argparse.Namespace, data_dir: Path) -> str:
    """On redis there is no demo org: make one with a department."""
    env = {**os.environ, "TELEVISIT__STORE__BACKEND": "redis", "TELEVISIT__STORE__REDIS_URL": args.redis_url,
           "TELEVISIT__SERVER__DATA_DIR": str(data_dir)}  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-m", "control.cli", "admin", "create-org", "--name", "Bench"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)["api_key"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--count", type=int, default=3000, help="requests per phase at most")
    p.add_argument("--seconds", type=float, default=30.0, help="time per phase at most")
    p.add_argument("--backend", choices=["sqlite", "redis"], default="sqlite")
    p.add_argument("--redis-url", default="")
    p.add_argument("--log-level", default="info", help="the server's (info logs every request)")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument(
        "--data-dir", default=None, help="where the SQLite file lives (default: a temp dir)"
    )
    args = p.parse_args()
    if args.backend == "redis" and not args.redis_url:
        p.error("--backend redis needs --redis-url")
    cpus = os.cpu_count() or 1
    if args.client_cpu < cpus and args.client_cpu != args.server_cpu:
        os.sched_setaffinity(0, {args.client_cpu})
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="tv-bench-", dir=args.data_dir) as tmp:
        data_dir = Path(tmp)
        key = ""
        if args.backend == "redis":
            key = _create_org(args, data_dir)
        proc, demo_key = start_server(data_dir, port, args)
        try:
            key = key or demo_key
            if args.backend == "redis":
                asyncio.run(_add_department(f"http://127.0.0.1:{port}", key))
            results = asyncio.run(bench(f"http://127.0.0.1:{port}", key, args, proc.pid))
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    print(json.dumps({
        "backend": args.backend, "concurrency": args.concurrency, "server_cpu": args.server_cpu,
        "cpus": cpus, "server_log_level": args.log_level, "results": results,
    }, indent=2))  # fmt: skip
    return 0


async def _add_department(base: str, key: str) -> None:
    async with aiohttp.ClientSession() as http:
        body = {"name": "Bench", "telemedicine_enabled": True}
        headers = {"Authorization": f"Bearer {key}"}
        async with http.post(f"{base}/api/v1/departments", json=body, headers=headers) as resp:
            resp.raise_for_status()


if __name__ == "__main__":
    sys.exit(main())
