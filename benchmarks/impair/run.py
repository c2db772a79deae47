"""Run impaired calls through Televisit and Janus and measure every receiver.

    sudo .venv/bin/python -m benchmarks.impair --scenarios step,loss3 --systems televisit,janus

The process re-executes itself in a private network namespace (``unshare -n``) before it starts
anything: the SFUs, the browsers and every nft/tc rule live and die there. Per scenario and
system: start the call, wait until every party decodes every other party's video, learn each
party's UDP ports, then run the schedule while sampling every party's getStats (and
Televisit's /metrics). Output: a table on stdout, ``impair.json`` and one PNG per scenario in
``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from .. import clients, targets
from . import measure, network, pages, report, trace
from .scenarios import SCENARIOS, Scenario

MEDIA_WAIT_SECONDS = 60.0
SFU_COUNTERS = ("retransmissions", "retransmitted_bytes", "nacks_received", "packets_out",
                "bytes_out", "rembs_sent", "plis_sent", "probes", "probe_bytes",
                "temporal_dropped")  # fmt: skip


class HereNamespace:
    """benchmarks.netns.Namespace's interface for Janus, in the (private) namespace this process
    already runs in: the veth holding 127.0.0.1 that libnice needs, and no wrapping."""

    def __enter__(self) -> HereNamespace:
        if not network.private():
            raise network.NotPrivate("Janus's veth belongs in a private namespace")
        subprocess.run(["ip", "link", "del", "jv0"], capture_output=True, timeout=20)
        for argv in (["link", "add", "jv0", "type", "veth", "peer", "name", "jv1"],
                     ["addr", "add", "127.0.0.1/32", "dev", "jv0"],
                     ["link", "set", "jv0", "up"], ["link", "set", "jv1", "up"]):  # fmt: skip
            subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=20)
        return self

    def command(self, argv: list[str]) -> list[str]:
        return argv

    def remove(self) -> None:
        subprocess.run(["ip", "link", "del", "jv0"], capture_output=True, timeout=20)


class JanusHere(targets.Janus):
    def __init__(self, cpus: set[int] | None) -> None:
        super().__init__(cpus)
        self.ns = HereNamespace()  # type: ignore[assignment]


# ---- calls ------------------------------------------------------------------------------


async def televisit_call(config: dict[str, Any], scenario: Scenario, http: aiohttp.ClientSession,
                         playwright: Any) -> tuple[list[pages.Party], float]:  # fmt: skip
    """The parties of ``scenario`` in a Televisit visit, and when the call started: the first
    party opening its join link, its browser already running (as a user's is)."""
    ctx = clients.Context(system="televisit", base_url=config["base_url"], loops=[], http=http,
                          max_seconds=0, api_key=config["api_key"],
                          department_id=config["department_id"], data_dir=config["data_dir"])  # fmt: skip
    appointment = await clients._appointment(ctx, int(time.time()))
    tele = appointment["telemedicine"]
    urls = [tele["host_url"], tele["join_url"]]
    for name in scenario.parties[2:]:
        urls.append(f"{config['base_url']}/j/{_guest_token(config, tele, appointment, name)}")
    parties = [pages.VisitParty(name, "host" if n == 0 else "guest", scenario.delay_ms.get(name, 0))
               for n, name in enumerate(scenario.parties)]  # fmt: skip
    for party in parties:
        await party.launch(playwright)
    started = time.monotonic()
    for party, url in zip(parties, urls, strict=True):
        party.opened_at = time.monotonic()
        await party.join(url)
    return list(parties), started


def _guest_token(config: dict[str, Any], tele: dict[str, Any], appointment: dict[str, Any],
                 name: str) -> str:  # fmt: skip
    from config import load_settings
    from control.tokens import keyring_for

    settings = load_settings(environ={}, overrides={"server": {"data_dir": config["data_dir"]}})
    return keyring_for(settings).issue_token(
        room_id=tele["room_id"], name=name, role="guest", expires_at=time.time() + 3600,
        appointment_id=appointment["id"],
    )  # fmt: skip


async def janus_call(config: dict[str, Any], scenario: Scenario, http: aiohttp.ClientSession,
                     playwright: Any) -> tuple[list[pages.Party], float]:  # fmt: skip
    """As televisit_call, through Janus's videoroom: the call starts at the first page load."""
    ctx = clients.Context(system="janus", base_url=config["base_url"], loops=[], http=http,
                          max_seconds=0)  # fmt: skip
    room = int(time.time()) % 1_000_000
    parties = [pages.BareParty(name, "host" if n == 0 else "guest", scenario.delay_ms.get(name, 0))
               for n, name in enumerate(scenario.parties)]  # fmt: skip
    for party in parties:
        await party.launch(playwright)
    started = time.monotonic()
    sessions: list[clients.JanusSession] = []
    feeds = []
    for n, party in enumerate(parties):
        name = party.name
        party.opened_at = time.monotonic()
        await party.open()
        session = clients.JanusSession(ctx)
        sessions.append(session)
        party.closers = [session.close]  # type: ignore[attr-defined]
        await session.open()
        handle = await session.attach()
        if n == 0:
            await session.request(handle, {
                "request": "create", "room": room, "publishers": len(scenario.parties),
                "bitrate": 0, "audiocodec": "opus", "videocodec": "vp8", "is_private": True,
            })  # fmt: skip
        joined = await session.request(
            handle, {"request": "join", "ptype": "publisher", "room": room, "display": name}
        )
        feeds.append(joined["plugindata"]["data"]["id"])
        index, offer = await party.publish()
        answer = await session.request(handle, {"request": "publish", "audio": True, "video": True},
                                       {"type": "offer", "sdp": offer})  # fmt: skip
        await party.accept(index, answer["jsep"]["sdp"])
    for n, (party, session) in enumerate(zip(parties, sessions, strict=True)):
        handle = await session.attach()
        streams = [{"feed": f} for i, f in enumerate(feeds) if i != n]
        for attempt in range(40):  # a feed is listed once its peer connection is up
            try:
                offer = await session.request(handle, {"request": "join", "ptype": "subscriber",
                                                       "room": room, "streams": streams})  # fmt: skip
                break
            except clients.JoinFailed:
                if attempt == 39:
                    raise
                await asyncio.sleep(0.25)
        answer = await party.answer(offer["jsep"]["sdp"])
        await session.request(handle, {"request": "start"}, {"type": "answer", "sdp": answer})
    return list(parties), started


class TelevisitTraced(targets.Televisit):
    """Televisit writing its adaptation trace (trace.py), its one SFU worker's /metrics on a
    port known in advance (the control plane serves none)."""

    env = trace.ENV

    def start(self) -> dict[str, Any]:
        port = targets.free_port()
        self.env = {**self.env, "TELEVISIT__MEDIA__SIGNALING_PORT": str(port)}
        config = super().start()
        config["metrics_url"] = f"http://127.0.0.1:{port}/metrics"
        return config


class TelevisitSingle(TelevisitTraced):
    """Televisit answering without simulcast (media.simulcast = false): every page sends one
    layer, as to Janus; the same run tells what simulcast itself changes."""

    name = "televisit-single"
    env = {**trace.ENV, "TELEVISIT__MEDIA__SIMULCAST": "false"}


class TelevisitRemb(TelevisitTraced):
    """Televisit without transport-wide congestion control (media.transport_cc = false):
    publishers learn of their uplink from our REMB and receiver reports only."""

    name = "televisit-remb"
    env = {**trace.ENV, "TELEVISIT__MEDIA__TRANSPORT_CC": "false"}


class TelevisitProbing(TelevisitTraced):
    """Televisit probing a subscriber's leg before switching up (media.probing = true, off by
    default); the same run tells what probing changes."""

    name = "televisit-probing"
    env = {**trace.ENV, "TELEVISIT__MEDIA__PROBING": "true"}


class TelevisitTwcc(TelevisitTraced):
    """Televisit with transport-wide congestion control towards subscribers too
    (media.downlink_transport_cc = true, off by default): the pages' feedback drives the
    send-side delay-based estimate (they send no REMB then), and probes are judged by it
    (media.probing = true)."""

    name = "televisit-twcc"
    env = {
        **trace.ENV,
        "TELEVISIT__MEDIA__DOWNLINK_TRANSPORT_CC": "true",
        "TELEVISIT__MEDIA__PROBING": "true",
    }


SYSTEMS = {
    "televisit": (TelevisitTraced, televisit_call),
    "televisit-single": (TelevisitSingle, televisit_call),
    "televisit-remb": (TelevisitRemb, televisit_call),
    "televisit-probing": (TelevisitProbing, televisit_call),
    "televisit-twcc": (TelevisitTwcc, televisit_call),
    "janus": (JanusHere, janus_call),
}


# ---- measuring one call -------------------------------------------------------------------


async def _receiving(parties: list[pages.Party], first_video: dict[str, float]) -> bool:
    """Does every party decode every other party's video? Notes in ``first_video`` when each
    party first decoded a video frame (time.monotonic)."""
    want = len(parties) - 1
    done = True
    for party in parties:
        sample = await party.sample()
        video = [s for s in sample["inbound"] if s["kind"] == "video" and s["framesDecoded"] > 0]
        if video:
            first_video.setdefault(party.name, sample["t"])
        done = done and len(video) >= want
    return done


async def _sfu_counters(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    try:
        async with http.get(url) as resp:
            text = await resp.text()
    except aiohttp.ClientError:
        return {}
    out: dict[str, float] = {}
    for name in SFU_COUNTERS:
        for m in re.finditer(rf"^televisit_sfu_{name}_total(\{{[^}}]*\}})? (\S+)$", text, re.M):
            out[name] = out.get(name, 0.0) + float(m.group(2))
    return out


async def measure_call(system: str, config: dict[str, Any], scenario: Scenario, period: float,
                       playwright: Any) -> dict[str, Any]:  # fmt: skip
    """One call of ``scenario`` on ``system``: samples and the summary rows."""
    _, call = SYSTEMS[system]
    impairments: network.Impairments | None = None
    async with aiohttp.ClientSession() as http:
        parties: list[pages.Party] = []
        try:
            parties, started = await call(config, scenario, http, playwright)
            deadline = time.monotonic() + MEDIA_WAIT_SECONDS
            first_video: dict[str, float] = {}
            while not await _receiving(parties, first_video):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{system}: not every party decoded video within "
                                       f"{MEDIA_WAIT_SECONDS:.0f} s")  # fmt: skip
                await asyncio.sleep(0.5)
            for party in parties:
                await party.learn_ports()
                if isinstance(party, pages.VisitParty):
                    await party.identify()
            by_name = {p.name: p for p in parties}
            impairments = network.Impairments()
            samples: dict[str, list[dict[str, Any]]] = {p.name: [] for p in parties}
            sfu: list[dict[str, float]] = []
            t0 = time.monotonic()
            t0_wall = time.time()
            applied = -1.0
            tick = 0
            while True:
                now = time.monotonic() - t0
                for change in (
                    scenario.changes_between(applied, now + 1e-9) if now > applied else []
                ):
                    party = by_name[change.party]
                    directions = (
                        ("up", "down") if change.direction == "both" else (change.direction,)
                    )
                    for direction in directions:
                        ports = party.ports_up if direction == "up" else party.ports_down
                        for port in ports:
                            impairments.set(port, direction, change.link)
                applied = now + 1e-9
                results = await asyncio.gather(*(p.sample() for p in parties))
                for party, sample in zip(parties, results, strict=True):
                    samples[party.name].append(sample)
                if "metrics_url" in config:
                    counters = await _sfu_counters(http, config["metrics_url"])
                    counters["t"] = time.monotonic() - t0
                    sfu.append(counters)
                if now >= scenario.duration:
                    break
                tick += 1
                await asyncio.sleep(max(0.0, t0 + tick * period - time.monotonic()))
        finally:
            if impairments is not None:
                impairments.clear()
            for party in parties:
                for close in getattr(party, "closers", []):
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(close(), 10)
                with contextlib.suppress(Exception):
                    await party.close()
    names = {p.member_id: p.name for p in parties if getattr(p, "member_id", None)}
    publishers = {p.name: {mid: _party(stream, names) for mid, stream in p.stream_of_mid.items()}
                  for p in parties if getattr(p, "stream_of_mid", None)}  # fmt: skip
    decided = (trace.read(config["log_path"], t0_wall, t0_wall + scenario.duration + 1, names)
               if "log_path" in config else {"allocations": {}, "rembs": {}})  # fmt: skip
    opened = {p.name: p.opened_at for p in parties if p.opened_at is not None}
    return summarize(system, scenario, samples, t0, sfu, t0 - started, publishers,
                     decided, first_video, opened)  # fmt: skip


def _party(stream: str, names: dict[str, str]) -> str:
    return names.get(stream.rsplit(".", 1)[0], stream)


def summarize(system: str, scenario: Scenario, samples: dict[str, list[dict[str, Any]]],
              t0: float, sfu: list[dict[str, float]], setup_s: float,
              publishers: dict[str, dict[str, str]] | None = None,
              decided: dict[str, Any] | None = None,
              first_video: dict[str, float] | None = None,
              opened: dict[str, float] | None = None) -> dict[str, Any]:  # fmt: skip
    """Rows per receiving party and video stream, and the plotted series. ``publishers``:
    receiver -> mid -> publishing party (Televisit: rows name who sent the video);
    ``decided``: the SFU's adaptation trace (trace.read); ``first_video``: party -> when it
    decoded its first video frame (time.monotonic, before ``t0``); ``setup_s``: from the call's
    start (the first party opening its page, every browser already running) to ``t0``;
    ``opened``: party -> when it opened its page (time.monotonic), for ``joined_to_top_s``:
    from the later of the receiver and the sender opening theirs (a third party joins a call
    some seconds old, and its video cannot reach anyone before it has joined)."""
    start, end = scenario.window or (0.0, scenario.duration)
    rows, plotted = [], {}
    decided = decided or {"allocations": {}, "rembs": {}}
    senders = {name: measure.sender_summary(party_samples, t0, start, end)
               for name, party_samples in samples.items()}  # fmt: skip
    for name, party_samples in samples.items():
        streams = measure.series(party_samples, t0)
        audio = [measure.rates(p) for p in streams.values() if p and p[0]["kind"] == "audio"]
        audio_summaries = [measure.audio_summary(a, start, end) for a in audio]
        audio_summaries = [a for a in audio_summaries if a]
        videos = [(p[0].get("mid"), measure.rates(p)) for p in streams.values()
                  if p and p[0]["kind"] == "video"]  # fmt: skip
        for i, (mid, intervals) in enumerate(videos, 1):
            sender = (publishers or {}).get(name, {}).get(mid)
            if sender is None and len(scenario.parties) == 2:
                sender = next(p for p in scenario.parties if p != name)
            label = (f"{name} <- {sender}" if sender else
                     f"{name} <- video {i}" if len(videos) > 1 else f"{name} <- video")  # fmt: skip
            row: dict[str, Any] = {"system": system, "scenario": scenario.name, "receiver": label,
                                   **measure.video_summary(intervals, start, end)}  # fmt: skip
            if sender in senders and senders[sender]:
                row["sender_cpu_limited"] = senders[sender]["cpu_limited"]
                row["sender_kbps"] = senders[sender]["sent_kbps"]
                row["sender_resent_kbps"] = senders[sender]["resent_kbps"]
                row["sender_estimate_kbps"] = senders[sender]["estimate_kbps"]
            allocations = decided["allocations"].get(name)
            if sender and allocations:
                row["layers"] = trace.layer_time(allocations, sender, start, end)
            whole = measure.video_summary(intervals, 0.0, scenario.duration)
            row["freeze_s_call"] = whole.get("freeze_s")
            row["width_top"] = max((p["width"] for p in intervals if p["fps"] > 0), default=0)
            if audio_summaries:
                row["audio_concealed_pct"] = max(a["concealed_pct"] for a in audio_summaries)
                row["audio_longest_gap_ms"] = max(a["longest_gap_ms"] for a in audio_summaries)
            if scenario.window:
                before = [p for p in intervals if p["t"] <= start and p["fps"] > 0]
                pre_width = before[-1]["width"] if before else row["width_top"]
                row["playing_after_drop_s"] = measure.playing_within(intervals, start)
                row["top_after_lift_s"] = (measure.reaches_width(intervals, end, pre_width)
                                           if end < scenario.duration else None)  # fmt: skip
            first = measure.first_frame(intervals)
            if first is not None and row["width_top"]:
                reach = measure.reaches_width(intervals, -1.0, row["width_top"])
                # reach counts from t = -1: the sample (the end of its interval) is reach - 1
                # after t0, and the call started setup_s before t0.
                row["to_top_s"] = None if reach is None else reach - 1.0 + setup_s
                both = [opened[n] for n in (name, sender) if opened and n in opened]
                if reach is not None and len(both) == 2:
                    row["joined_to_top_s"] = max(0.0, reach - 1.0 + t0 - max(both))
                # From the first decoded frame (the call's media start), without the pages'
                # own start-up and join clicks that to_top_s includes.
                decoding_from = (first_video or {}).get(name)
                if reach is not None and decoding_from is not None:
                    row["media_to_top_s"] = max(0.0, reach - 1.0 + (t0 - decoding_from))
            rows.append(row)
            plotted[label] = intervals
    sfu_rates = []
    for a, b in zip(sfu, sfu[1:], strict=False):
        dt = b["t"] - a["t"]
        if dt > 0:
            sfu_rates.append({"t": round(b["t"], 2), **{
                k: (b.get(k, 0) - a.get(k, 0)) / dt for k in SFU_COUNTERS}})  # fmt: skip
    in_window = [r for r in sfu_rates if start < r["t"] <= end]
    if in_window:
        for row in rows:
            row["sfu_rtx_pps"] = sum(r["retransmissions"] for r in in_window) / len(in_window)
            row["sfu_rtx_kbps"] = (
                8 * sum(r["retransmitted_bytes"] for r in in_window) / len(in_window) / 1000
            )
            row["sfu_probe_kbps"] = (
                8 * sum(r.get("probe_bytes", 0) for r in in_window) / len(in_window) / 1000
            )
    # What each party's encoder sent at the end, per simulcast layer (rid): proof of layers.
    last_senders = {name: [{k: o[k] for k in ("rid", "frameWidth", "bytesSent", "targetBitrate",
                                              "qualityLimitationReason")}
                      for o in party_samples[-1]["outbound"] if o["kind"] == "video"]
               for name, party_samples in samples.items() if party_samples}  # fmt: skip
    return {"rows": rows, "series": plotted, "sfu": sfu_rates, "setup_s": setup_s,
            "senders": senders, "last_senders": last_senders, "decided": decided}  # fmt: skip


# ---- CLI -----------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.impair", description=__doc__.split("\n")[0]
    )
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="from: " + ", ".join(SCENARIOS))
    p.add_argument(
        "--systems",
        default="televisit,janus",
        help="televisit, televisit-single (media.simulcast = false), televisit-remb "
        "(media.transport_cc = false), televisit-probing (media.probing = true), "
        "televisit-twcc (media.downlink_transport_cc and media.probing = true), janus",
    )
    p.add_argument("--short", type=float, default=1.0, help="scale every scenario's times")
    p.add_argument(
        "--police-burst-ms", type=int, default=None, metavar="MS",
        help="police with a strict token bucket of MS ms of the rate (tc htb, no queue) "
        "instead of nftables' limit, whose bucket holds a second of the rate",
    )  # fmt: skip
    p.add_argument("--period", type=float, default=0.5, help="seconds between samples")
    p.add_argument("--out", default="var/impair", help="directory for JSON and PNGs")
    return p.parse_args(argv)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    names = [s for s in args.scenarios.split(",") if s]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(unknown)}")
    systems = [s for s in args.systems.split(",") if s]
    out = Path(args.out)
    results: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "machine": report.machine(), "scenarios": {}, "skipped": {}}  # fmt: skip
    async with async_playwright() as playwright:
        for system in systems:
            target_cls, _ = SYSTEMS[system]
            try:
                target = target_cls(None)
            except targets.TargetUnavailable as exc:
                results["skipped"][system] = str(exc)
                continue
            try:
                config = target.start()
                for name in names:
                    scenario = (
                        SCENARIOS[name].short(args.short) if args.short != 1 else SCENARIOS[name]
                    )
                    if args.police_burst_ms is not None:
                        scenario = scenario.strict(args.police_burst_ms)
                    load = report.load()
                    print(f"{system}: {scenario.name} ({scenario.title}, {scenario.duration:.0f} s)",
                          file=sys.stderr, flush=True)  # fmt: skip
                    try:
                        call = await measure_call(system, config, scenario, args.period, playwright)
                    except Exception as exc:  # one failed call must not lose the others
                        results["skipped"][f"{system}/{name}"] = repr(exc)
                        print(f"  failed: {exc!r}", file=sys.stderr)
                        continue
                    call["load_before"] = load
                    call["load_after"] = report.load()
                    entry = results["scenarios"].setdefault(
                        name, {"title": scenario.title, "systems": {}}
                    )
                    entry["systems"][system] = call
            finally:
                target.stop(out)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    network.enter_private()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    results = asyncio.run(main_async(args))
    out = Path(args.out)
    (out / "impair.json").write_text(json.dumps(results, indent=1, default=str))
    for name, entry in results["scenarios"].items():
        report.plot(name, entry, out / f"impair-{name}.png")
    print(report.table(results))
    print(f"\nJSON: {out / 'impair.json'}")
    return 0 if results["scenarios"] else 1
