"""A load-client process: joins rooms on one system under test and reports counters.

The orchestrator (scenarios.py) starts it (pinned to another core than the SFU, inside Janus's
network namespace for Janus) and talks JSON lines: commands on stdin, one answer per command on
stdout. It exits on `stop`, when stdin closes, or after --max-seconds, whatever comes first.

Commands: {"cmd": "add", "count": n, "decode": bool} opens n rooms (2 participants each);
{"cmd": "remove", "count": n} closes the oldest n rooms; {"cmd": "snapshot"} returns cumulative
counters plus latency samples and join-to-first-frame times collected since the last snapshot;
{"cmd": "stop"}.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import time
from typing import Any

import aiohttp
import uvloop

from . import media, rtpio
from .clients import FANOUT, ROOMS, Context, Member

JOIN_CONCURRENCY = 4
LATENCY_KEEP = 20_000  # latency samples per snapshot (evenly subsampled beyond that)
FIRST_FRAME_SECONDS = 20.0


class LoadProcess:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.rooms: list[list[Member]] = []
        self.closed: list[list[Member]] = []  # counters of rooms already closed still count
        self.join_errors: list[str] = []
        self.first_frame: list[float] = []
        self._opened = 0
        self.fan: tuple[Member, dict[str, Any]] | None = None
        self.viewers: list[Member] = []

    async def add(self, count: int, decode: bool) -> dict[str, Any]:
        gate = asyncio.Semaphore(JOIN_CONCURRENCY)
        new: list[list[Member]] = []

        async def one(i: int) -> None:
            async with gate:
                self._opened += 1
                try:
                    members = await asyncio.wait_for(
                        ROOMS[self.ctx.system](self.ctx, self._opened, decode and i == 0), 60
                    )
                except Exception as exc:  # reported to the orchestrator, which decides
                    self.join_errors.append(f"{type(exc).__name__}: {exc}"[:300])
                    return
                new.append(members)
                self.rooms.append(members)

        await asyncio.gather(*(one(i) for i in range(count)))
        pending = await self._first_frames([m for room in new for m in room])
        return {"rooms": len(self.rooms), "added": len(new), "no_video": len(pending),
                "errors": self.join_errors[-5:]}  # fmt: skip

    async def _first_frames(self, members: list[Member]) -> list[Member]:
        """Join-to-first-frame (join start to the first packet of a keyframe from the other side) of
        ``members``; returns those that got no video in time."""
        deadline = time.monotonic() + FIRST_FRAME_SECONDS
        pending = list(members)
        while pending and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            for m in [m for m in pending if m.first_keyframe_at]:
                self.first_frame.append(m.first_keyframe_at - m.started)
                pending.remove(m)
        return pending

    async def fanout(self, count: int) -> dict[str, Any]:
        """Add ``count`` subscribers to this process's one publisher (created on first use)."""
        publisher, viewer = FANOUT[self.ctx.system]
        if self.fan is None:
            try:
                self.fan = await asyncio.wait_for(publisher(self.ctx, 0), 60)
            except Exception as exc:
                self.join_errors.append(f"publisher: {type(exc).__name__}: {exc}"[:300])
                return {"subscribers": 0, "added": 0, "no_video": 0, "errors": self.join_errors}
            self.rooms.append([self.fan[0]])
        gate = asyncio.Semaphore(JOIN_CONCURRENCY)
        new: list[Member] = []

        async def one(i: int) -> None:
            async with gate:
                try:
                    assert self.fan is not None
                    member = await asyncio.wait_for(viewer(self.ctx, self.fan[1], i, i == 0), 60)
                except Exception as exc:
                    self.join_errors.append(f"{type(exc).__name__}: {exc}"[:300])
                    return
                new.append(member)
                self.viewers.append(member)

        start = len(self.viewers)
        await asyncio.gather(*(one(start + i) for i in range(count)))
        pending = await self._first_frames(new)
        return {"subscribers": len(self.viewers), "added": len(new), "no_video": len(pending),
                "errors": self.join_errors[-5:]}  # fmt: skip

    async def remove(self, count: int) -> dict[str, Any]:
        gone, self.rooms = self.rooms[:count], self.rooms[count:]
        for room in gone:
            for member in room:
                await member.close()
        self.closed += gone
        return {"rooms": len(self.rooms), "removed": len(gone)}

    def snapshot(self) -> dict[str, Any]:
        totals: dict[str, int] = {}
        latencies: list[float] = []
        decoded = 0
        for room in self.rooms + self.closed + [self.viewers]:
            for member in room:
                decoded += member.decoded_frames
                for peer in member.peers:
                    for key, value in peer.meter.snapshot().items():
                        totals[key] = totals.get(key, 0) + value
                    latencies += peer.meter.latencies
                    peer.meter.latencies = []
        first, self.first_frame = self.first_frame, []
        errors, self.join_errors = self.join_errors, []
        return {
            "rooms": len(self.rooms), "totals": totals, "decoded_frames": decoded,
            # an even subsample: the orchestrator merges several load processes' samples
            "latencies_ms": [x * 1000 for x in latencies[:: 1 + len(latencies) // LATENCY_KEEP]],
            "latency_samples": len(latencies),
            "first_frame_s": first, "join_errors": errors,
        }  # fmt: skip

    async def close(self) -> None:
        for member in self.viewers:
            await member.close()
        await self.remove(len(self.rooms))


async def _main(args: argparse.Namespace) -> None:
    rtpio.install()
    loops = [
        media.encode_video(args.width, args.height, args.fps, args.bitrate),
        media.encode_audio(),
    ]
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=60)
    ) as http:
        ctx = Context(args.system, args.base_url, loops, http, args.max_seconds,
                      args.api_key, args.department_id, args.data_dir)  # fmt: skip
        load = LoadProcess(ctx)
        reader = asyncio.StreamReader()
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        deadline = time.monotonic() + args.max_seconds
        _emit({
            "event": "ready", "video_bitrate": loops[0].bitrate,
            # what one publisher sends: the orchestrator checks each step's load against it
            "publisher_pps": sum(loop.packets_per_second for loop in loops),
        })  # fmt: skip
        try:
            while time.monotonic() < deadline:
                try:
                    line = await asyncio.wait_for(reader.readline(), deadline - time.monotonic())
                except TimeoutError:
                    break
                if not line:
                    break
                command = json.loads(line)
                if command["cmd"] == "stop":
                    break
                if command["cmd"] == "add":
                    _emit(await load.add(command["count"], command.get("decode", False)))
                elif command["cmd"] == "fanout":
                    _emit(await load.fanout(command["count"]))
                elif command["cmd"] == "remove":
                    _emit(await load.remove(command["count"]))
                elif command["cmd"] == "snapshot":
                    _emit(load.snapshot())
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(load.close(), 60)
            _emit({"event": "stopped"})


def _emit(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--system", choices=sorted(ROOMS), required=True)
    p.add_argument("--base-url", required=True)
    p.add_argument("--api-key", default="")
    p.add_argument("--department-id", default="")
    p.add_argument("--data-dir", default="", help="televisit: its data dir (fan-out tokens)")
    p.add_argument("--max-seconds", type=float, default=600)
    p.add_argument("--bitrate", type=int, default=1_500_000)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # A decoder joining mid-stream fails until the next keyframe: expected, not news.
    logging.getLogger("aiortc.rtcrtpreceiver").setLevel(logging.ERROR)
    uvloop.run(_main(args))


if __name__ == "__main__":
    main()
