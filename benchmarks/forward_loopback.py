"""SFU CPU per forwarded packet for N concurrent 1:1 consults, media path only, on loopback.

The SFU side (one Participant per member, each subscribed to the other's audio and video,
uvloop) runs in a child process pinned to one core; the load peers (benchmarks/peer.py:
pre-encoded VP8 + Opus replayed as raw RTP, so they cost little) run in this process on the
other core. SDP goes over a pipe: no WebSocket, no control plane, so the figure is the media
path's own cost (decrypt, route, statistics, NACK/REMB/RR bookkeeping, rewrite, history,
encrypt, send, and the event loop around it).

    .venv/bin/python -m benchmarks.forward_loopback --consults 1,4,8 --window 10 [--floor]

us/pkt = (CPU seconds of the SFU process) / (packets it forwarded), over the window; the CPU
time is the scheduler's (``/proc/<pid>/task/*/schedstat``, nanoseconds: at one consult the
process uses ~13 ms/s, and ``os.times``' 10 ms ticks were +-8% of that over 10 s), the user
and sys columns are ``os.times``' split of it. ``wake/s/part``: the times per second the SFU
process went to sleep and was woken (voluntary context switches, all threads) per
participant; ``ms/s/part``: its CPU per participant.

--silent connects the participants and subscribes them but sends no media: what a participant
costs by itself (timers, RTCP, ICE consent), the fixed part of us/pkt at low load.
--transport-cc puts the transport-cc extension in the peers' offers, as Chrome's have, so the
SFU negotiates it and sends them feedback (media_server/feedback.py); the load peers do not
number their packets, so the feedback is empty and this measures its timers, not its content.
--chat has each peer open a data channel, as the web client and the consults harness do.

--floor also measures, for each N right after Televisit, a reference SFU process with the same
peer connections, DTLS, compiled SRTP and sockets and event loop whose participants hand each
decrypted packet to one Python method that sends it unchanged (re-encrypted) to the subscriber
(``FloorParticipant``): no parsing, statistics, NACK, bandwidth estimate, header rewrite or
history. It is the floor of a forwarder with one Python call per packet on this machine in
this run: the Python path before rtpforward.c could not go below it; the compiled path can.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import time
from multiprocessing.connection import Connection
from typing import Any

from . import media, rtpio
from .peer import LoadPeer


def _pin(cpu: int) -> None:
    if cpu < os.cpu_count():
        os.sched_setaffinity(0, {cpu})


# ---- the SFU process -------------------------------------------------------------------------


def sfu_process(conn: Connection, cpu: int, floor: bool = False) -> None:
    import uvloop

    _pin(cpu)
    if os.environ.get("FORWARD_LOOPBACK_TRACEMALLOC"):  # benchmarks/memory.py
        import tracemalloc

        tracemalloc.start(int(os.environ["FORWARD_LOOPBACK_TRACEMALLOC"]))
    profile = os.environ.get("FORWARD_LOOPBACK_PROFILE")
    if not profile:
        uvloop.run(_sfu(conn, floor))
        return
    import cProfile

    with cProfile.Profile(time.process_time) as profiler:
        uvloop.run(_sfu(conn, floor))
    profiler.dump_stats(profile)


def floor_participant() -> type:
    from media_server.participant import Participant

    class FloorParticipant(Participant):
        """Decrypted packets go back out unchanged (re-encrypted) to the publication's
        subscribers, through one Python call per packet and no bookkeeping: what the Python
        path before the compiled one could never go below."""

        floor_in = 0
        floor_out = 0

        def _route(self, ssrc: int, publication: Any) -> None:
            self._by_ssrc[ssrc] = publication  # no compiled route: every packet comes here

        def on_rtp(self, data: bytes) -> None:
            publication = self._by_ssrc.get(int.from_bytes(data[8:12], "big"))
            if publication is None:
                return
            self.floor_in += 1
            for subscription in publication.subscriptions:
                send = subscription.out.send
                if send is not None:
                    send(data)
                    self.floor_out += 1

        @property
        def packets_in(self) -> int:
            return self.floor_in

    return FloorParticipant


def _cpu_and_wakeups() -> tuple[int, int]:
    """(CPU nanoseconds, voluntary context switches) of this process, all threads: the
    scheduler's own counts, (0, 0) where /proc has none."""
    ns = switches = 0
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/schedstat") as f:
                ns += int(f.read().split()[0])
            with open(f"/proc/self/task/{task}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        switches += int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return 0, 0
    return ns, switches


async def _sfu(conn: Connection, floor: bool) -> None:
    from config import load_settings
    from media_server.participant import Participant

    factory = floor_participant() if floor else Participant

    settings = load_settings(
        environ={}, overrides={"media": {"listen_addresses": ["127.0.0.1"], "ice_servers": []}}
    ).media
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    loop.add_reader(conn.fileno(), lambda: inbox.put_nowait(conn.recv()))
    participants: dict[str, Participant] = {}

    def make(name: str) -> Participant:
        async def on_offer(sdp: str) -> None:
            conn.send(("offer", name, sdp))

        return factory(
            name, settings=settings, on_offer=on_offer, on_publication=lambda p: None,
            on_chat=lambda p, m: None, on_state=lambda p, s: None,
        )  # fmt: skip

    def forwarded() -> int:
        return sum(
            getattr(p, "floor_out", 0) + sum(s.packets_out for s in p.subscriptions)
            for p in participants.values()
        )

    while True:
        kind, name, body = await inbox.get()
        if kind == "offer":
            participants[name] = make(name)
            conn.send(("answer", name, await participants[name].handle_offer(body)))
        elif kind == "answer":
            await participants[name].handle_answer(body)
        elif kind == "subscribe":  # name subscribes to body's publications
            for publication in participants[body].publications:
                await participants[name].subscribe(publication)
        elif kind == "stats":
            t = os.times()
            drops = sum(
                sum(s.dropped.values()) for p in participants.values() for s in p.subscriptions
            )
            # Received and dropped before routing (SRTP, unknown SSRC...): a consult that forwards
            # nothing shows up here rather than as a silently lower packet rate.
            received = sum(p.packets_in for p in participants.values())
            refused = sum(sum(p.dropped.values()) for p in participants.values())
            # socket wake-ups and the datagrams they brought (Leg.read_ready's batching)
            legs = [p._leg for p in participants.values() if p._leg is not None]
            wakes = sum(getattr(leg, "read_calls", 0) for leg in legs)
            datagrams = sum(getattr(leg, "datagrams_read", 0) for leg in legs)
            cpu_ns, switches = _cpu_and_wakeups()
            conn.send(("stats", name, (t.user, t.system, forwarded(), drops, received, refused,
                                       wakes, datagrams, cpu_ns, switches)))  # fmt: skip
        elif kind == "memory":
            report = memory_report(body)
            report["history"] = sum(
                s.out.history_bytes for p in participants.values() for s in p.subscriptions
            )
            conn.send(("memory", name, report))
        elif kind == "quit":
            for participant in participants.values():
                await participant.close()
            conn.send(("bye", name, None))
            return


_snapshots: dict[str, Any] = {}


def _malloc_in_use() -> int | None:
    """Bytes glibc's malloc has handed out and not got back (mallinfo2), None elsewhere."""
    import ctypes

    class Mallinfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
            "fordblks", "keepcost")]  # fmt: skip

    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = Mallinfo2
    info = mallinfo2()
    return int(info.uordblks + info.hblkhd)


def memory_report(request: tuple[str, str | None, int, str]) -> dict[str, Any]:
    """This process's RSS (bytes) and, when tracemalloc traces, a snapshot kept as ``name``
    with the allocations grown since snapshot ``since`` (None: none), the ``top`` largest
    by ``by`` (tracemalloc's key: "lineno", "filename" or "traceback") of the allocating
    frame: [(where, bytes, blocks)]."""
    import gc

    import psutil

    name, since, top, by = request
    gc.collect()
    process = psutil.Process()
    out: dict[str, Any] = {
        "rss": process.memory_info().rss, "threads": process.num_threads(), "grown": [],
        "malloc": _malloc_in_use(),
    }  # fmt: skip
    import tracemalloc

    if not tracemalloc.is_tracing():
        return out
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    _snapshots[name] = snapshot
    if since is not None:
        stats = snapshot.compare_to(_snapshots[since], by)
        out["traced"] = sum(s.size_diff for s in stats)
        out["grown"] = [
            (" <- ".join(str(f) for f in reversed(s.traceback)), s.size_diff, s.count_diff)
            for s in sorted(stats, key=lambda s: -s.size_diff)[:top]
        ]
    return out


# ---- the load side ---------------------------------------------------------------------------


class Sfu:
    def __init__(self, cpu: int, floor: bool = False) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=sfu_process, args=(child, cpu, floor), daemon=True)
        self.proc.start()
        self.peers: dict[str, LoadPeer] = {}
        self.replies: dict[tuple[str, str], asyncio.Future[Any]] = {}
        self._answering: set[asyncio.Task[None]] = set()
        asyncio.get_running_loop().add_reader(self.conn.fileno(), self._read)

    def _read(self) -> None:
        try:
            kind, name, body = self.conn.recv()
        except EOFError:  # the SFU process is gone
            asyncio.get_running_loop().remove_reader(self.conn.fileno())
            return
        if kind == "offer":  # renegotiation: the peer answers, in order
            task = asyncio.ensure_future(self._answer(name, body))
            self._answering.add(task)
            task.add_done_callback(self._answering.discard)
        else:
            self.replies.pop((kind, name)).set_result(body)

    async def _answer(self, name: str, sdp: str) -> None:
        self.conn.send(("answer", name, await self.peers[name].answer(sdp)))

    async def ask(self, kind: str, name: str, body: Any, reply: str) -> Any:
        future = self.replies[(reply, name)] = asyncio.get_running_loop().create_future()
        self.conn.send((kind, name, body))
        return await asyncio.wait_for(future, 60)

    async def join(
        self,
        name: str,
        loops: list[media.EncodedLoop],
        send: bool = True,
        chat: bool = False,
        transport_cc: bool = False,
    ) -> LoadPeer:
        """A peer publishing ``loops``, sending them at once unless not ``send``; with ``chat``
        it opens a data channel as the web client does (SCTP over the DTLS connection); its
        offer names the transport-cc extension, as Chrome's does, if ``transport_cc``."""
        peer = self.peers[name] = LoadPeer()
        peer.publish(loops)
        if chat:
            peer.pc.createDataChannel("chat")
        offer = await peer.offer()
        if transport_cc:
            offer = with_transport_cc(offer)
        await peer.accept(await self.ask("offer", name, offer, "answer"))
        if send:
            await peer.start_sending(3600)
        return peer


def with_transport_cc(offer: str) -> str:
    """``offer`` with ``a=extmap`` of the transport-cc URI in each media section, under a
    one-byte id (RFC 8285: 1-14) it does not use."""
    from media_server import rtpheader

    lines = offer.split("\r\n")
    used = {
        int(line[9:].split()[0].split("/")[0]) for line in lines if line.startswith("a=extmap:")
    }
    ident = min(set(range(1, 15)) - used)
    out = []
    for line in lines:
        out.append(line)
        if line.startswith(("m=audio", "m=video")):
            out.append(f"a=extmap:{ident} {rtpheader.URI_TRANSPORT_CC}")
    return "\r\n".join(out)


async def measure(
    consults: int,
    window: float,
    settle: float,
    loops: list[Any],
    cpu: int,
    floor: bool = False,
    **join: bool,
) -> dict[str, float]:
    """One step: ``consults`` consults through a fresh SFU process (the floor's if ``floor``),
    each peer joining with ``join`` (Sfu.join's send, chat, transport_cc)."""
    sfu = Sfu(cpu, floor)
    try:
        for i in range(consults):
            await sfu.join(f"a{i}", loops, **join)
            await sfu.join(f"b{i}", loops, **join)
            sfu.conn.send(("subscribe", f"a{i}", f"b{i}"))
            sfu.conn.send(("subscribe", f"b{i}", f"a{i}"))
        await asyncio.sleep(settle)
        user0, sys0, fwd0, drop0, in0, refused0, wake0, dg0, ns0, sw0 = await sfu.ask(
            "stats", "-", None, "stats"
        )
        t0 = time.monotonic()
        await asyncio.sleep(window)
        user1, sys1, fwd1, drop1, in1, refused1, wake1, dg1, ns1, sw1 = await sfu.ask(
            "stats", "-", None, "stats"
        )
        seconds = time.monotonic() - t0
        packets = fwd1 - fwd0
        cpu = (ns1 - ns0) / 1e9 if ns1 else user1 + sys1 - user0 - sys0
        participants = 2 * consults
        return {
            "consults": consults,
            "forwarded_pps": packets / seconds,
            "sfu_cpu_pct": 100 * cpu / seconds,
            "us_per_packet": 1e6 * cpu / packets if packets else float("nan"),
            "wakeups_per_participant": (sw1 - sw0) / seconds / participants,
            "ms_per_participant": 1e3 * cpu / seconds / participants,
            "us_user": 1e6 * (user1 - user0) / packets if packets else float("nan"),
            "us_sys": 1e6 * (sys1 - sys0) / packets if packets else float("nan"),
            "dropped": drop1 - drop0,
            "received_pps": (in1 - in0) / seconds,
            "refused": refused1 - refused0,
            "datagrams_per_wake": (dg1 - dg0) / (wake1 - wake0) if wake1 > wake0 else float("nan"),
        }
    finally:
        await sfu.ask("quit", "-", None, "bye")
        for peer in sfu.peers.values():
            await peer.close()
        sfu.proc.join(10)


async def main_async(args: argparse.Namespace) -> None:
    _pin(args.client_cpu)
    rtpio.install()
    loops = [
        media.encode_video(args.width, args.height, args.fps, args.bitrate),
        media.encode_audio(),
    ]
    print(
        f"# {args.width}x{args.height} VP8 {args.bitrate // 1000} kbit/s {args.fps:g} fps + Opus, "
        f"window {args.window:g} s; SFU on CPU {args.server_cpu}, peers on CPU {args.client_cpu}"
    )
    print(
        f"{'sfu':>9} {'consults':>8} {'fwd pkt/s':>10} {'SFU CPU%':>9} {'us/pkt':>7} {'user':>6} "
        f"{'sys':>6} {'dropped':>8} {'in pkt/s':>9} {'refused':>8} {'x floor':>8} {'dg/wake':>8} "
        f"{'wake/s/part':>11} {'ms/s/part':>9}"
    )
    for n in [int(x) for x in args.consults.split(",")]:
        common = (n, args.window, args.settle, loops, args.server_cpu)
        join = {"send": not args.silent, "chat": args.chat, "transport_cc": args.transport_cc}
        rows = [("televisit", await measure(*common, **join))]
        if args.floor:
            rows.append(("floor", await measure(*common, True, **join)))
        floor_us = rows[-1][1]["us_per_packet"] if args.floor else float("nan")
        for name, row in rows:
            print(
                f"{name:>9} {n:8d} {row['forwarded_pps']:10.0f} {row['sfu_cpu_pct']:9.1f} "
                f"{row['us_per_packet']:7.1f} {row['us_user']:6.1f} {row['us_sys']:6.1f} "
                f"{row['dropped']:8d} {row['received_pps']:9.0f} {row['refused']:8d} "
                f"{row['us_per_packet'] / floor_us:8.2f} {row['datagrams_per_wake']:8.2f} "
                f"{row['wakeups_per_participant']:11.1f} {row['ms_per_participant']:9.2f}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--consults", default="1,4,8")
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--bitrate", type=int, default=1_500_000)
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--floor", action="store_true", help="also measure the floor reference")
    parser.add_argument(
        "--silent", action="store_true", help="peers connect and send no media (fixed costs)"
    )
    parser.add_argument("--chat", action="store_true", help="each peer opens a data channel")
    parser.add_argument(
        "--transport-cc", action="store_true", help="peers' offers carry transport-cc (Chrome's)"
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
