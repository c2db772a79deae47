"""The SFU worker processes of one host: start N (``media.workers``, 0 = one per core), each
with its own slice of the UDP port range and its own signaling port; restart one that dies;
drain them all, or one, on request (SIGTERM, or ``televisit admin drain`` on the bus topic
``sfu:drain``: ``{"node": id}`` or ``{"worker": id}``).

A worker that dies unexpectedly (a crash, SIGKILL, the OOM killer) is removed from the registry
at once, so its rooms are placed again on the next join (its clients rejoin through the control
plane within a second), and a new process takes its slot after RESTART_SECONDS. A worker that
exits after draining alone (``televisit admin drain --worker``) is replaced the same way: a
drain recycles a worker. When the node drains, nothing is restarted and ``finished`` is set
once every worker has exited.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import sys
from dataclasses import dataclass, field
from typing import Any

from config.settings import Settings
from control.bus import EventBus
from control.cluster.registry import DRAIN_TOPIC, Registry
from control.cluster.sfu_process import Assignment
from control.store import Store

log = logging.getLogger(__name__)

READY_SECONDS = 60.0
RESTART_SECONDS = 1.0
STOP_SECONDS = 15.0
RETRY_SECONDS = 1.0


def worker_count(settings: Settings) -> int:
    return settings.media.workers or len(os.sched_getaffinity(0))


@dataclass
class Slot:
    index: int
    worker_id: str = ""
    url: str = ""
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)


class WorkerFailed(RuntimeError):
    """A worker process did not start (its stderr is in the node's log)."""


class Supervisor:
    def __init__(self, settings: Settings, store: Store, bus: EventBus, *, node: str) -> None:
        self.settings = settings
        self.registry = Registry(store)
        self.bus = bus
        self.node = node
        self.slots = [Slot(i) for i in range(worker_count(settings))]
        self.draining = False
        self.stopping = False
        self.finished = asyncio.Event()
        self._follower: asyncio.Task[None] | None = None

    @property
    def urls(self) -> list[str]:
        return [slot.url for slot in self.slots]

    async def start(self) -> None:
        """Start every worker and return once each is registered. Raises WorkerFailed."""
        await asyncio.gather(*(self._spawn(slot) for slot in self.slots))
        self._follower = asyncio.get_running_loop().create_task(self._follow_drains())

    async def _spawn(self, slot: Slot) -> None:
        slot.worker_id = f"{self.node}-w{slot.index}-{secrets.token_hex(3)}"
        assignment = Assignment(
            settings=self.settings,
            index=slot.index,
            count=len(self.slots),
            worker_id=slot.worker_id,
            node=self.node,
            supervisor_pid=os.getpid(),
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "control.cluster.sfu_process",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        slot.proc = proc
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(assignment.model_dump_json().encode())
        await proc.stdin.drain()
        proc.stdin.close()
        said: Any = None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), READY_SECONDS)
            said = json.loads(line)
            slot.url = said["ready"]
        except (TimeoutError, ValueError, KeyError, TypeError) as exc:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            # A worker that knows why it cannot start says so ({"error": ...}).
            why = said.get("error") if isinstance(said, dict) else None
            raise WorkerFailed(why or f"SFU worker {slot.index} did not start ({exc!r})") from exc
        log.info(
            "SFU worker started",
            extra={"worker": slot.worker_id, "pid": proc.pid, "url": slot.url},
        )
        slot.watcher = asyncio.get_running_loop().create_task(self._watch(slot, proc))

    async def _watch(self, slot: Slot, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        if self.stopping:
            return
        if code != 0:
            # Its rooms must be placed again now, not when its heartbeat runs out.
            await self.registry.remove(slot.worker_id)
            log.error(
                "SFU worker died; its rooms move to other workers",
                extra={"worker": slot.worker_id, "exit": code},
            )
        else:
            log.info("SFU worker exited after draining", extra={"worker": slot.worker_id})
        if self.draining:
            if all(s.proc is None or s.proc.returncode is not None for s in self.slots):
                self.finished.set()
            return
        await asyncio.sleep(RESTART_SECONDS)
        while not (self.stopping or self.draining):
            slot.restarts += 1
            try:
                await self._spawn(slot)
                return
            except (WorkerFailed, OSError) as exc:
                log.error("SFU worker restart failed: %s", exc)
                await asyncio.sleep(RESTART_SECONDS)

    def _signal(self, signum: int) -> None:
        for slot in self.slots:
            if slot.proc is not None and slot.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.proc.send_signal(signum)

    def drain(self) -> None:
        """Every worker drains (SIGTERM); ``finished`` is set when the last one exited."""
        if self.draining:
            return
        self.draining = True
        log.info("node draining", extra={"node": self.node, "workers": len(self.slots)})
        self._signal(signal.SIGTERM)
        if all(s.proc is None or s.proc.returncode is not None for s in self.slots):
            self.finished.set()

    async def _follow_drains(self) -> None:
        while True:
            try:
                async with self.bus.subscribe(DRAIN_TOPIC) as feed:
                    async for event in feed:
                        if event.get("node") == self.node:
                            self.drain()
                        for slot in self.slots:
                            if slot.proc is not None and event.get("worker") == slot.worker_id:
                                with contextlib.suppress(ProcessLookupError):
                                    slot.proc.send_signal(signal.SIGTERM)
            except Exception:
                log.exception("supervisor: drain follower failed; subscribing again")
                await asyncio.sleep(RETRY_SECONDS)

    async def stop(self) -> None:
        """Stop every worker now (SIGINT: sessions end), SIGKILL after STOP_SECONDS."""
        self.stopping = True
        if self._follower is not None:
            self._follower.cancel()
        self._signal(signal.SIGINT)
        procs = [s.proc for s in self.slots if s.proc is not None]
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), STOP_SECONDS)
        except TimeoutError:
            self._signal(signal.SIGKILL)
            await asyncio.gather(*(p.wait() for p in procs))
        for slot in self.slots:
            if slot.watcher is not None:
                slot.watcher.cancel()
        for slot in self.slots:
            with contextlib.suppress(Exception):
                await self.registry.remove(slot.worker_id)
