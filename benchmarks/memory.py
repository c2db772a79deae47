"""SFU memory per participant, and where it goes: N idle, then live, 1:1 consults.

The SFU side is forward_loopback's (one Participant per member, each subscribed to the
other's audio and video, in a child process), traced by tracemalloc. Phases:

- idle: every member joined and subscribed (DTLS up; with ``--chat`` a data channel open, as
  the web client and the consults harness open one), nothing sent yet;
- live: after ``--seconds`` of VP8 640x480 ~1.4 Mbit/s + Opus from every member.

Per phase: RSS growth over the SFU's empty state per participant, the part of it Python's
allocators traced, the send history's rings and slots (rtpforward.c, malloc'd: counted from
every Outbound's ``history_bytes``), and the source lines that grew most (per participant). What tracemalloc
cannot see (libsrtp, OpenSSL, the allocator's own slack) is RSS less traced.

Tracing costs memory of its own, outside what it traces: tracemalloc keeps a trace (~70-80
bytes of malloc) per live block, which at idle doubled RSS and malloc growth per participant
(24 consults, 05acb68: idle RSS +0.62 traced against +0.34 MB untraced; live +1.25 against
+0.70). ``--frames 0`` does not trace: the RSS and malloc figures to compare with another SFU.

    .venv/bin/python -m benchmarks.memory --consults 8 --seconds 10 [--top 25] [--by filename]

Not a test: figures depend on the machine's allocator and load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from . import media, rtpio
from .forward_loopback import Sfu, _pin


def _show(phase: str, report: dict[str, Any], base: dict[str, Any], participants: int) -> None:
    mb = 1e6 * participants
    malloc = ""
    if report["malloc"] is not None and base["malloc"] is not None:
        malloc = f", malloc in use +{(report['malloc'] - base['malloc']) / mb:.3f} MB"
    print(
        f"{phase}: RSS +{(report['rss'] - base['rss']) / mb:.3f} MB per participant, "
        + (f"traced +{report['traced'] / mb:.3f} MB" if "traced" in report else "not traced")
        + f"{malloc}, send history {report['history'] / mb:.3f} MB, "
        f"threads {base['threads']} -> {report['threads']}"
    )
    for where, size, blocks in report["grown"]:
        print(f"  {size / mb * 1000:8.1f} kB {blocks / participants:8.1f} blocks  {where}")


async def main_async(args: argparse.Namespace) -> None:
    _pin(args.client_cpu)
    rtpio.install()
    loops = [media.encode_video(640, 480, 30, 1_400_000), media.encode_audio()]
    if args.frames:
        os.environ["FORWARD_LOOPBACK_TRACEMALLOC"] = str(args.frames)
    sfu = Sfu(args.server_cpu)
    participants = 2 * args.consults
    try:
        base = await sfu.ask("memory", "-", ("base", None, 0, args.by), "memory")
        for i in range(args.consults):
            await sfu.join(f"a{i}", loops, send=False, chat=args.chat)
            await sfu.join(f"b{i}", loops, send=False, chat=args.chat)
            sfu.conn.send(("subscribe", f"a{i}", f"b{i}"))
            sfu.conn.send(("subscribe", f"b{i}", f"a{i}"))
        await asyncio.sleep(2)
        idle = await sfu.ask("memory", "-", ("idle", "base", args.top, args.by), "memory")
        _show("idle", idle, base, participants)
        for peer in sfu.peers.values():
            await peer.start_sending(3600)
        await asyncio.sleep(args.seconds)
        live = await sfu.ask("memory", "-", ("live", "base", args.top, args.by), "memory")
        _show("live", live, base, participants)
    finally:
        await sfu.ask("quit", "-", None, "bye")
        for peer in sfu.peers.values():
            await peer.close()
        sfu.proc.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--consults", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0, help="media before 'live'")
    parser.add_argument("--top", type=int, default=25, help="source lines shown per phase")
    parser.add_argument(
        "--by",
        choices=("lineno", "filename", "traceback"),
        default="lineno",
        help="what the top is of",
    )
    parser.add_argument(
        "--frames", type=int, default=1, help="traceback depth traced; 0: no tracing (honest RSS)"
    )
    parser.add_argument(
        "--chat", action="store_true", help="each member opens a data channel, as the web client"
    )
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
