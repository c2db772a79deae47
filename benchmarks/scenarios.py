"""The scenarios: start each system, drive load clients at it in steps, measure each step.

A step: bring the load to its level, let it settle, snapshot the load clients' counters and
the SFU's CPU, wait the window, snapshot again. Figures are differences over the window.
Forwarded packets are packets the subscribers received (loss is counted separately), so
"SFU CPU per forwarded packet" is (user+sys of the SFU process over the window) / (packets
delivered by it over the window).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .probes import LoadClient, LoadClientError, machine_busy, usage
from .targets import ROOT, TARGETS, Target, TargetUnavailable

LOSS_STOP = 0.02  # stop ramping a system past 2% loss...
CPU_STOP = 0.90  # ...or 90% of one core
DELIVERED_STOP = 0.80  # ...or when a fifth of what was sent never arrives


@dataclass
class Options:
    systems: list[str]
    steps: list[int]
    window: float = 10.0
    settle: float = 3.0
    server_cpu: int = 0
    client_cpu: int = 1
    bitrate: int = 1_500_000
    fps: float = 30.0
    width: int = 640
    height: int = 480
    max_seconds: float = 1800.0  # the whole run, per system
    log_dir: Path = field(default_factory=lambda: Path("."))

    def cpus(self, which: int) -> set[int] | None:
        count = os.cpu_count() or 1
        return {which} if count > 1 and which < count else None


@contextlib.contextmanager
def running(name: str, opts: Options) -> Iterator[tuple[Target, LoadClient]]:
    """The system under test and one load-client process; both stopped whatever happens."""
    target = TARGETS[name](opts.cpus(opts.server_cpu))
    client: LoadClient | None = None
    try:
        config = target.start()
        argv = [sys.executable, "-m", "benchmarks.loadgen", "--system", name,
                "--base-url", config["base_url"], "--max-seconds", str(opts.max_seconds),
                "--bitrate", str(opts.bitrate), "--fps", str(opts.fps),
                "--width", str(opts.width), "--height", str(opts.height)]  # fmt: skip
        if config.get("api_key"):
            argv += [
                "--api-key",
                config["api_key"],
                "--department-id",
                config["department_id"],
                "--data-dir",
                config["data_dir"],
            ]
        client = LoadClient(target.wrap(argv), opts.cpus(opts.client_cpu), str(ROOT),
                            str(opts.log_dir / f"loadclient-{name}.log"))  # fmt: skip
        yield target, client
    finally:
        if client is not None:
            client.stop()
        target.stop(opts.log_dir)


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


@dataclass
class Idle:
    """The SFU process before any load: what it costs doing nothing (timers, the control
    plane's sweepers in Televisit's one-process setup), subtracted for the marginal figure."""

    rss: int
    cpu_per_second: float


def idle(target: Target, seconds: float) -> Idle:
    u0, t0 = usage(target.pid), time.monotonic()
    time.sleep(seconds)
    u1 = usage(target.pid)
    return Idle(u1.rss_bytes, (u1.cpu_seconds - u0.cpu_seconds) / (time.monotonic() - t0))


def measure(target: Target, client: LoadClient, opts: Options, participants: int,
            base: Idle, extra: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """One window's figures (see the module docstring)."""
    time.sleep(opts.settle)
    before, u0 = client.request("snapshot"), usage(target.pid)
    c0, t0 = usage(client.proc.pid).cpu_seconds, time.monotonic()
    m0 = machine_busy()
    rss_peak = 0
    while time.monotonic() - t0 < opts.window:
        time.sleep(min(1.0, opts.window - (time.monotonic() - t0)))
        rss_peak = max(rss_peak, usage(target.pid).rss_bytes)
    after, u1 = client.request("snapshot"), usage(target.pid)
    seconds = time.monotonic() - t0
    client_cpu = usage(client.proc.pid).cpu_seconds - c0
    others = machine_busy() - m0 - client_cpu - (u1.cpu_seconds - u0.cpu_seconds)
    d = {k: after["totals"].get(k, 0) - before["totals"].get(k, 0) for k in after["totals"]}
    cpu = u1.cpu_seconds - u0.cpu_seconds
    fwd = d.get("rx_packets", 0)
    expected = d.get("rx_expected", 0)
    sent = d.get("tx_packets", 0)
    lat = after["latencies_ms"] or {}
    return {
        **extra,
        "participants": participants,
        "seconds": round(seconds, 2),
        "forwarded_pps": fwd / seconds,
        "forwarded_mbps": d.get("rx_bytes", 0) * 8 / seconds / 1e6,
        "sent_pps": sent / seconds,
        # packets delivered per packet the subscribed publishers sent: ~100% for a forwarder;
        # a transcoder that falls behind sends fewer frames (no RTP loss, just less video)
        "delivered_pct": 100 * fwd / (sent * extra.get("fanout", 1)) if sent else None,
        "sfu_cpu_pct": 100 * cpu / seconds,
        "sfu_us_per_packet": cpu * 1e6 / fwd if fwd else None,
        "sfu_us_per_packet_marginal":
            max(0.0, cpu - base.cpu_per_second * seconds) * 1e6 / fwd if fwd else None,
        "sfu_idle_cpu_pct": 100 * base.cpu_per_second,
        "client_cpu_pct": 100 * client_cpu / seconds,
        # everything else on the machine (other users' tests...): the noise in these numbers
        "others_cpu_pct": 100 * max(0.0, others) / seconds,
        "loss_down_pct": 100 * max(0, expected - fwd) / expected if expected else None,
        "loss_up_pct": 100 * max(0, d.get("up_lost_reported", 0)) / sent if sent else None,
        "nacks_down": d.get("nacks_sent", 0),
        "recovered_down": d.get("rx_recovered", 0),
        "nacks_up": d.get("nacks_received", 0),
        "retransmitted_up": d.get("tx_retransmitted", 0),
        "plis_up": d.get("plis_received", 0),
        "latency_p50_ms": lat.get("p50"),
        "latency_p99_ms": lat.get("p99"),
        "latency_samples": after["latency_samples"],
        "sfu_rss_mb": rss_peak / 1e6,
        "sfu_mb_per_participant": (rss_peak - base.rss) / 1e6 / participants if participants else None,
        "sfu_sockets": u1.sockets,
        "decoded_frames": after["decoded_frames"],
        "join_errors": extra.get("join_errors", []) + before["join_errors"] + after["join_errors"],
    }  # fmt: skip


def _joined(client: LoadClient, added: dict[str, Any]) -> dict[str, Any]:
    """Join figures of the joins just made (the snapshot consumes them)."""
    snap = client.request("snapshot")
    first = snap["first_frame_s"]
    return {
        "join_to_first_frame_p50_s": _pct(first, 0.5),
        "join_to_first_frame_p95_s": _pct(first, 0.95),
        "no_video": added["no_video"],
        "join_errors": snap["join_errors"],
    }


def consults(name: str, opts: Options, bar: tqdm) -> list[dict[str, Any]]:
    """N rooms x 2 participants, ramped through ``opts.steps`` until loss or CPU says stop."""
    rows: list[dict[str, Any]] = []
    with running(name, opts) as (target, client):
        base = idle(target, opts.settle)
        rooms = 0
        for n in opts.steps:
            bar.set_postfix_str(f"{name}: {n} consults")
            added = client.request("add", count=n - rooms, decode=rooms == 0)
            rooms = added["rooms"]
            row = measure(target, client, opts, 2 * rooms, base, {
                "system": name, "scenario": "consults", "consults": rooms,
                **_joined(client, added),
            })  # fmt: skip
            rows.append(row)
            bar.update(1)
            reason = _stop_reason(row, rooms, n)
            if reason:
                row["stopped"] = reason
                bar.update(len(opts.steps) - len(rows))
                break
    return rows


def _stop_reason(row: dict[str, Any], rooms: int, wanted: int) -> str:
    if rooms < wanted or row["join_errors"]:
        return f"joins failed ({rooms} of {wanted} rooms): {row['join_errors'][:1]}"
    if row["no_video"]:
        return f"{row['no_video']} participants got no video"
    if (row["delivered_pct"] or 0) < 100 * DELIVERED_STOP:
        return f"only {row['delivered_pct']:.0f}% of the packets sent were delivered"
    if (row["loss_down_pct"] or 0) > 100 * LOSS_STOP:
        return f"loss {row['loss_down_pct']:.1f}% > {100 * LOSS_STOP:.0f}%"
    if row["sfu_cpu_pct"] > 100 * CPU_STOP:
        return f"SFU CPU {row['sfu_cpu_pct']:.0f}% > {100 * CPU_STOP:.0f}% of a core"
    if row["client_cpu_pct"] > 100 * CPU_STOP:
        return f"load client CPU {row['client_cpu_pct']:.0f}%: the load generator is the limit"
    return ""


def fanout(name: str, opts: Options, bar: tqdm) -> list[dict[str, Any]]:
    """1 publisher -> K subscribers, K through ``opts.steps``."""
    rows: list[dict[str, Any]] = []
    with running(name, opts) as (target, client):
        base = idle(target, opts.settle)
        subscribers = 0
        for k in opts.steps:
            bar.set_postfix_str(f"{name}: 1 -> {k}")
            added = client.request("fanout", count=k - subscribers)
            subscribers = added["subscribers"]
            row = measure(target, client, opts, subscribers + 1, base, {
                "system": name, "scenario": "fanout", "subscribers": subscribers,
                "fanout": subscribers,
                **_joined(client, added),
            })  # fmt: skip
            rows.append(row)
            bar.update(1)
            if reason := _stop_reason(row, subscribers, k):
                row["stopped"] = reason
                bar.update(len(opts.steps) - len(rows))
                break
    return rows


def churn(name: str, opts: Options, bar: tqdm) -> list[dict[str, Any]]:
    """Rooms opened and closed every second at each rate of ``opts.steps`` (rooms/s), over a
    base of 2 open rooms; join-to-first-frame of every new participant."""
    rows: list[dict[str, Any]] = []
    with running(name, opts) as (target, client):
        idle_rss = usage(target.pid).rss_bytes
        client.request("add", count=2, decode=True)
        client.request("snapshot")
        for rate in opts.steps:
            bar.set_postfix_str(f"{name}: {rate} rooms/s")
            t0, u0 = time.monotonic(), usage(target.pid)
            failures, first = 0, []
            for _ in range(max(1, int(opts.window))):
                tick = time.monotonic()
                client.request("remove", count=rate)
                added = client.request("add", count=rate)
                failures += rate - added["added"] + added["no_video"]
                time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
            seconds = time.monotonic() - t0
            snap = client.request("snapshot")
            first = snap["first_frame_s"]
            rows.append({
                "system": name, "scenario": "churn", "rooms_per_second": rate,
                "joins_per_second": len(first) / seconds,  # participants that got video
                "failures": failures, "errors": snap["join_errors"][:3],
                "join_to_first_frame_p50_s": _pct(first, 0.5),
                "join_to_first_frame_p95_s": _pct(first, 0.95),
                "sfu_cpu_pct": 100 * (usage(target.pid).cpu_seconds - u0.cpu_seconds) / seconds,
                "sfu_rss_mb": usage(target.pid).rss_bytes / 1e6, "idle_rss_mb": idle_rss / 1e6,
            })  # fmt: skip
            bar.update(1)
    return rows


SCENARIOS: dict[str, Callable[[str, Options, tqdm], list[dict[str, Any]]]] = {
    "consults": consults, "fanout": fanout, "churn": churn,
}  # fmt: skip


def run(scenario: str, opts: Options) -> dict[str, Any]:
    """Every system in turn (same clients, same machine, same run); unavailable ones skipped."""
    results: dict[str, Any] = {"scenario": scenario, "systems": {}, "skipped": {}}
    total = len(opts.systems) * len(opts.steps)
    with tqdm(total=total, desc=scenario, unit="step", file=sys.stderr) as bar:
        for name in opts.systems:
            started = time.monotonic()
            try:
                rows = SCENARIOS[scenario](name, opts, bar)
            except TargetUnavailable as exc:
                results["skipped"][name] = str(exc)
                bar.update(len(opts.steps))
                tqdm.write(f"{name}: {exc}", file=sys.stderr)
                continue
            except (LoadClientError, RuntimeError, OSError) as exc:
                results["skipped"][name] = f"failed: {exc}"
                tqdm.write(f"{name}: failed: {exc}", file=sys.stderr)
                continue
            results["systems"][name] = {"rows": rows, "seconds": time.monotonic() - started}
    return results
