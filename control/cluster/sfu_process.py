"""One SFU worker process (started by the supervisor, never by hand):

    python -m control.cluster.sfu_process < assignment.json

The assignment (JSON on stdin: the node's resolved settings, this worker's index, the number of
workers, its id and node) gives it its slice of the UDP port range and its signaling port.
It serves ``GET /ws`` and ``GET /metrics`` there, registers in the store's registry, writes
``{"ready": <signaling URL>}`` on stdout, and runs until SIGINT (sessions end, reason
``closed``) or SIGTERM (drain; see control/cluster/member.py).
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import signal
import socket
import sys
from urllib.parse import urlsplit

import uvloop
from aiohttp import web
from pydantic import BaseModel

from config.settings import Settings
from control import logs
from control.cluster.localbus import process_bus
from control.cluster.member import attach
from control.store.factory import open_store

SHUTDOWN_TIMEOUT_SECONDS = 10.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class Assignment(BaseModel):
    settings: Settings
    index: int
    count: int
    worker_id: str
    node: str
    supervisor_pid: int


def die_with_supervisor(supervisor_pid: int) -> None:
    """SIGKILL this process when its supervisor dies (Linux PR_SET_PDEATHSIG): a node killed
    outright takes its workers along, as the one process it replaces did, and their rooms are
    placed again; a restarted node finds its ports free."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != supervisor_pid:  # it died before prctl took effect
        os._exit(1)


def port_slice(settings: Settings, index: int, count: int) -> tuple[int, int]:
    """Worker ``index``'s part of media.port_min..port_max (equal, contiguous slices).
    ValueError if the range has fewer ports than workers."""
    media = settings.media
    size = (media.port_max - media.port_min + 1) // count
    if size < 1:
        raise ValueError(f"media.port_min..port_max has fewer ports than the {count} workers")
    low = media.port_min + index * size
    return low, low + size - 1


def worker_settings(settings: Settings, index: int, count: int) -> Settings:
    low, high = port_slice(settings, index, count)
    media = settings.media.model_copy(update={"port_min": low, "port_max": high})
    return settings.model_copy(update={"media": media})


def signaling_url(settings: Settings, index: int, port: int) -> str:
    """The URL clients open to signal to worker ``index`` listening on ``port``."""
    if settings.media.signaling_url:
        return settings.media.signaling_url.format(port=port, index=index)
    base = urlsplit(settings.server.base_url)
    host = base.hostname or settings.server.host
    if ":" in host:
        host = f"[{host}]"
    return f"{'wss' if base.scheme == 'https' else 'ws'}://{host}:{port}/ws"


class CannotListen(OSError):
    """The signaling port is taken (or not ours to take); the message says which setting."""


def bind(settings: Settings, index: int) -> socket.socket:
    """The listening TCP socket of worker ``index`` (signaling_port + index, or any port).
    Raises CannotListen naming the address and the setting to change."""
    first = settings.media.signaling_port
    port = first + index if first else 0
    family = socket.AF_INET6 if ":" in settings.server.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.server.host, port))
    except OSError as exc:
        sock.close()
        raise CannotListen(
            exc.errno,
            f"SFU worker {index} cannot listen for signaling on {settings.server.host}:{port} "
            f"({exc.strerror}): stop what holds the port, or set media.signaling_port "
            "(worker i listens on signaling_port + i; 0: any free port)",
        ) from exc
    return sock


async def run(assignment: Assignment) -> int:
    settings = worker_settings(assignment.settings, assignment.index, assignment.count)
    store = open_store(settings)
    await store.open()
    bus = process_bus(settings)
    await bus.open()
    try:
        sock = bind(settings, assignment.index)
    except CannotListen as exc:
        # The supervisor reads this line in place of "ready" and stops start-up with it.
        print(json.dumps({"error": exc.strerror}), flush=True)
        await bus.close()
        await store.close()
        return 1
    url = signaling_url(settings, assignment.index, sock.getsockname()[1])
    app = web.Application()
    member = attach(
        app, settings, store, bus, worker_id=assignment.worker_id, node=assignment.node, url=url
    )
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGTERM, member.drain, "SIGTERM")
    try:
        await runner.setup()
        await web.SockSite(runner, sock).start()
        print(json.dumps({"ready": url, "worker": assignment.worker_id}), flush=True)
        drained = loop.create_task(member.drained.wait())
        stopped = loop.create_task(stop.wait())
        await asyncio.wait([drained, stopped], return_when=asyncio.FIRST_COMPLETED)
        drained.cancel()
        stopped.cancel()
    finally:
        await runner.cleanup()
        await bus.close()
        await store.close()
    return 0


def main() -> int:
    assignment = Assignment.model_validate_json(sys.stdin.read())
    die_with_supervisor(assignment.supervisor_pid)
    logs.configure(
        assignment.settings.server.log_level, levels=assignment.settings.server.log_levels
    )
    return uvloop.run(run(assignment))


if __name__ == "__main__":
    sys.exit(main())
