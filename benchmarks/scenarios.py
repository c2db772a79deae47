"""The scenarios: start each system, drive load clients at it in steps, measure each step.

A step: bring the load to its level, let it settle, snapshot the load clients' counters and
the SFU's CPU, wait the window, snapshot again. Figures are differences over the window.
Forwarded packets are packets the subscribers received (loss is counted separately), so
"SFU CPU per forwarded packet" is (user+sys of the SFU process over the window) / (packets
delivered by it over the window).

A step is *valid* when the load it measured is the load it was meant to be: every join
succeeded and every participant got video, the load clients sent at least LOAD_MIN of the
nominal packets/s (publishers x what one loop sends), no load core was saturated, and the SFU
neither lost packets nor ran out of its core. The first invalid step stops the ramp; it is
reported with its reason (``stopped``) and what limited it (``limit``: "load" for the load
generator, "sfu" for the system under test, "joins"), and it never enters a ratio, a mean or a
slope (report.py). A load client failing mid-ramp ends the ramp the same way: the completed
steps are kept.
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

import psutil
from tqdm import tqdm

from .probes import LoadClient, LoadClientError, LoadGroup, machine_busy, usage
from .targets import ROOT, TARGETS, Target, TargetUnavailable

LOSS_STOP = 0.02  # stop ramping a system past 2% loss...
CPU_STOP = 0.90  # ...or 90% of one core (the SFU's, or any core the load clients run on)
DELIVERED_STOP = 0.80  # ...or when a fifth of what was sent never arrives
LOAD_MIN = 0.95  # ...or when the load clients sent less than 95% of the nominal load


@dataclass
class Options:
    systems: list[str]
    steps: list[int]
    window: float = 10.0
    settle: float = 3.0
    server_cpus: list[int] = field(default_factory=lambda: [0])
    workers: int = 1  # televisit's SFU worker processes
    max_loss: float = LOSS_STOP  # a step with more downstream loss ends the ramp
    client_cpus: list[int] = field(default_factory=lambda: [1])
    load_processes: int = 1
    bitrate: int = 1_500_000
    fps: float = 30.0
    width: int = 640
    height: int = 480
    max_seconds: float = 1800.0  # the whole run, per system
    # Measure every step even past one that is not valid (the smoke run checks that each
    # system joins and forwards at every step; capacity is not its question).
    whole_ramp: bool = False
    log_dir: Path = field(default_factory=lambda: Path("."))

    def cpus(self, which: int) -> set[int] | None:
        count = os.cpu_count() or 1
        return {which} if count > 1 and which < count else None

    def server_cores(self) -> set[int] | None:
        """The cores the system under test is pinned to (None: not pinned)."""
        cores = set().union(*(self.cpus(c) or set() for c in self.server_cpus))
        return cores or None

    def client_cpu(self, index: int) -> int | None:
        """The core load process ``index`` is pinned to (spread over ``client_cpus``)."""
        cpu = self.client_cpus[index % len(self.client_cpus)]
        return cpu if self.cpus(cpu) else None


@contextlib.contextmanager
def running(name: str, opts: Options) -> Iterator[tuple[Target, LoadGroup]]:
    """The system under test and its load-client processes; all stopped whatever happens."""
    target = TARGETS[name](opts.server_cores(), workers=opts.workers)
    clients: list[LoadClient] = []
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
        cpus = [opts.client_cpu(i) for i in range(opts.load_processes)]
        for i, cpu in enumerate(cpus):
            clients.append(LoadClient(
                target.wrap(argv), None if cpu is None else {cpu}, str(ROOT),
                str(opts.log_dir / f"loadclient-{name}-{i}.log"),
            ))  # fmt: skip
        yield target, LoadGroup(clients, cpus)
    finally:
        for client in clients:
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


def measure(target: Target, load: LoadGroup, opts: Options, participants: int, publishers: int,
            base: Idle, extra: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """One window's figures (see the module docstring)."""
    time.sleep(opts.settle)
    before, u0 = load.snapshot(), usage(target.pid)
    c0, t0 = load.cpu_seconds_by_core(), time.monotonic()
    m0 = machine_busy()
    rss_peak = 0
    while time.monotonic() - t0 < opts.window:
        time.sleep(min(1.0, opts.window - (time.monotonic() - t0)))
        rss_peak = max(rss_peak, usage(target.pid).rss_bytes)
    after, u1 = load.snapshot(), usage(target.pid)
    seconds = time.monotonic() - t0
    by_core = {k: v - c0.get(k, 0.0) for k, v in load.cpu_seconds_by_core().items()}
    client_cpu = sum(by_core.values())
    others = machine_busy() - m0 - client_cpu - (u1.cpu_seconds - u0.cpu_seconds)
    d = {k: after["totals"].get(k, 0) - before["totals"].get(k, 0) for k in after["totals"]}
    cpu = u1.cpu_seconds - u0.cpu_seconds
    fwd = d.get("rx_packets", 0)
    expected = d.get("rx_expected", 0)
    sent = d.get("tx_packets", 0)
    lat = after["latencies_ms"]
    nominal = publishers * load.publisher_pps
    return {
        **extra,
        "participants": participants,
        "seconds": round(seconds, 2),
        "forwarded_pps": fwd / seconds,
        "forwarded_mbps": d.get("rx_bytes", 0) * 8 / seconds / 1e6,
        "sent_pps": sent / seconds,
        "nominal_sent_pps": nominal,
        "sent_pct": 100 * sent / seconds / nominal if nominal else None,
        # packets delivered per packet the subscribed publishers sent: ~100% for a forwarder;
        # a transcoder that falls behind sends fewer frames (no RTP loss, just less video)
        "delivered_pct": 100 * fwd / (sent * extra.get("fanout", 1)) if sent else None,
        "sfu_cpu_pct": 100 * cpu / seconds,
        "sfu_us_per_packet": cpu * 1e6 / fwd if fwd else None,
        "sfu_us_per_packet_marginal":
            max(0.0, cpu - base.cpu_per_second * seconds) * 1e6 / fwd if fwd else None,
        "sfu_idle_cpu_pct": 100 * base.cpu_per_second,
        "client_cpu_pct": 100 * client_cpu / seconds,
        # the busiest core the load processes run on: saturated means the load is the limit
        "client_core_pct": 100 * max(by_core.values(), default=0.0) / seconds,
        "load_processes": len(load.clients),
        # everything else on the machine (other users' tests...): the noise in these numbers
        "others_cpu_pct": 100 * max(0.0, others) / seconds,
        "loss_down_pct": 100 * max(0, expected - fwd) / expected if expected else None,
        "loss_up_pct": 100 * max(0, d.get("up_lost_reported", 0)) / sent if sent else None,
        "nacks_down": d.get("nacks_sent", 0),
        "recovered_down": d.get("rx_recovered", 0),
        "nacks_up": d.get("nacks_received", 0),
        "retransmitted_up": d.get("tx_retransmitted", 0),
        "plis_up": d.get("plis_received", 0),
        "latency_p50_ms": _pct(lat, 0.5),
        "latency_p99_ms": _pct(lat, 0.99),
        "latency_samples": after["latency_samples"],
        "sfu_rss_mb": rss_peak / 1e6,
        "sfu_mb_per_participant": (rss_peak - base.rss) / 1e6 / participants if participants else None,
        "sfu_sockets": u1.sockets,
        "decoded_frames": after["decoded_frames"],
        "join_errors": extra.get("join_errors", []) + before["join_errors"] + after["join_errors"],
    }  # fmt: skip


def _joined(load: LoadGroup, added: dict[str, Any]) -> dict[str, Any]:
    """Join figures of the joins just made (the snapshot consumes them)."""
    snap = load.snapshot()
    first = snap["first_frame_s"]
    return {
        "join_to_first_frame_p50_s": _pct(first, 0.5),
        "join_to_first_frame_p95_s": _pct(first, 0.95),
        "join_to_first_frame_samples": len(first),
        "no_video": added["no_video"],
        "join_errors": snap["join_errors"],
    }


def judge(
    row: dict[str, Any], reached: int, wanted: int, cores: int = 1, max_loss: float = LOSS_STOP
) -> None:
    """Mark ``row`` valid, or give it the reason the ramp stops there and what limited it
    (``cores``: how many cores the system under test may use; ``max_loss``: a fraction)."""
    row["sfu_cores"] = cores
    reason, limit = _stop_reason(row, reached, wanted, cores, max_loss)
    row["valid"] = not reason
    if reason:
        row["stopped"], row["limit"] = reason, limit


def _stop_reason(
    row: dict[str, Any], reached: int, wanted: int, cores: int, max_loss: float
) -> tuple[str, str]:
    if reached < wanted or row["join_errors"]:
        return f"joins failed ({reached} of {wanted}): {row['join_errors'][:1]}", "joins"
    if row["no_video"]:
        return f"{row['no_video']} participants got no video", "joins"
    if row["client_core_pct"] > 100 * CPU_STOP:
        return (f"a load core at {row['client_core_pct']:.0f}%: the load generator is the "
                "limit", "load")  # fmt: skip
    if row["sent_pct"] is not None and row["sent_pct"] < 100 * LOAD_MIN:
        return (f"the load clients sent {row['sent_pps']:.0f} of {row['nominal_sent_pps']:.0f} "
                "pkt/s", "load")  # fmt: skip
    if (row["delivered_pct"] or 0) < 100 * DELIVERED_STOP:
        return f"only {row['delivered_pct']:.0f}% of the packets sent were delivered", "sfu"
    if (row["loss_down_pct"] or 0) > 100 * max_loss:
        return f"loss {row['loss_down_pct']:.2f}% > {100 * max_loss:g}%", "sfu"
    if row["sfu_cpu_pct"] > 100 * CPU_STOP * cores:
        return (f"SFU CPU {row['sfu_cpu_pct']:.0f}% > {100 * CPU_STOP:.0f}% of its "
                f"{cores} core(s)", "sfu")  # fmt: skip
    return "", ""


def failed_step(
    name: str, scenario: str, key: str, level: int, exc: BaseException
) -> dict[str, Any]:
    """The row of a step that could not be measured (a load client or the SFU went away)."""
    sfu_gone = isinstance(exc, psutil.Error)
    return {
        "system": name, "scenario": scenario, key: level, "valid": False, "failed": True,
        "stopped": f"{'the SFU' if sfu_gone else 'a load client'} failed: {exc}"[:300],
        "limit": "sfu" if sfu_gone else "load",
    }  # fmt: skip


STEP_ERRORS = (LoadClientError, psutil.Error)


def consults(name: str, opts: Options, bar: tqdm, rows: list[dict[str, Any]]) -> None:
    """N rooms x 2 participants, ramped through ``opts.steps`` until a step is invalid."""
    with running(name, opts) as (target, load):
        base = idle(target, opts.settle)
        for n in opts.steps:
            bar.set_postfix_str(f"{name}: {n} consults")
            try:
                added = load.add(n - sum(load.rooms), decode=not rows)
                rooms = added["rooms"]
                row = measure(target, load, opts, 2 * rooms, 2 * rooms, base, {
                    "system": name, "scenario": "consults", "consults": rooms,
                    **_joined(load, added),
                })  # fmt: skip
            except STEP_ERRORS as exc:
                rows.append(failed_step(name, "consults", "consults", n, exc))
                break
            judge(row, rooms, n, len(opts.server_cores() or {0}), opts.max_loss)
            rows.append(row)
            bar.update(1)
            if not row["valid"] and not opts.whole_ramp:
                break


def fanout(name: str, opts: Options, bar: tqdm, rows: list[dict[str, Any]]) -> None:
    """1 publisher -> K subscribers, K through ``opts.steps``."""
    with running(name, opts) as (target, load):
        base = idle(target, opts.settle)
        subscribers = 0
        for k in opts.steps:
            bar.set_postfix_str(f"{name}: 1 -> {k}")
            try:
                added = load.fanout(k - subscribers)
                subscribers = added["subscribers"]
                row = measure(target, load, opts, subscribers + 1, 1, base, {
                    "system": name, "scenario": "fanout", "subscribers": subscribers,
                    "fanout": subscribers,
                    **_joined(load, added),
                })  # fmt: skip
            except STEP_ERRORS as exc:
                rows.append(failed_step(name, "fanout", "subscribers", k, exc))
                break
            judge(row, subscribers, k)
            rows.append(row)
            bar.update(1)
            if not row["valid"] and not opts.whole_ramp:
                break


def churn(name: str, opts: Options, bar: tqdm, rows: list[dict[str, Any]]) -> None:
    """Rooms opened and closed every second at each rate of ``opts.steps`` (rooms/s), over a
    base of 2 open rooms; join-to-first-frame of every new participant."""
    with running(name, opts) as (target, load):
        idle_rss = usage(target.pid).rss_bytes
        load.add(2, decode=True)
        load.snapshot()
        for rate in opts.steps:
            bar.set_postfix_str(f"{name}: {rate} rooms/s")
            t0, u0 = time.monotonic(), usage(target.pid)
            failures = 0
            try:
                for _ in range(max(1, int(opts.window))):
                    tick = time.monotonic()
                    load.remove(rate)
                    added = load.add(rate, decode=False)
                    failures += rate - added["added"] + added["no_video"]
                    time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
                seconds = time.monotonic() - t0
                snap = load.snapshot()
            except STEP_ERRORS as exc:
                rows.append(failed_step(name, "churn", "rooms_per_second", rate, exc))
                break
            first = snap["first_frame_s"]
            rows.append({
                "system": name, "scenario": "churn", "rooms_per_second": rate,
                "joins_per_second": len(first) / seconds,  # participants that got video
                "failures": failures, "errors": snap["join_errors"][:3], "valid": not failures,
                "join_to_first_frame_p50_s": _pct(first, 0.5),
                "join_to_first_frame_p95_s": _pct(first, 0.95),
                "sfu_cpu_pct": 100 * (usage(target.pid).cpu_seconds - u0.cpu_seconds) / seconds,
                "sfu_rss_mb": usage(target.pid).rss_bytes / 1e6, "idle_rss_mb": idle_rss / 1e6,
            })  # fmt: skip
            bar.update(1)


SCENARIOS: dict[str, Callable[[str, Options, tqdm, list[dict[str, Any]]], None]] = {
    "consults": consults, "fanout": fanout, "churn": churn,
}  # fmt: skip


def run(scenario: str, opts: Options) -> dict[str, Any]:
    """Every system in turn (same clients, same machine, same run); unavailable ones skipped
    (``skipped``: not installed, cannot run here). A system that fails (an exception, or a step
    that could not be measured) is in ``failed`` with why, never in ``skipped``, and keeps the
    steps it completed."""
    results: dict[str, Any] = {"scenario": scenario, "systems": {}, "skipped": {}, "failed": {}}
    total = len(opts.systems) * len(opts.steps)
    with tqdm(total=total, desc=scenario, unit="step", file=sys.stderr) as bar:
        for name in opts.systems:
            started = time.monotonic()
            rows: list[dict[str, Any]] = []
            try:
                SCENARIOS[scenario](name, opts, bar, rows)
            except TargetUnavailable as exc:
                results["skipped"][name] = str(exc)
                tqdm.write(f"{name}: {exc}", file=sys.stderr)
            except (LoadClientError, RuntimeError, OSError, psutil.Error) as exc:
                results["failed"][name] = str(exc)
                tqdm.write(f"{name}: failed: {exc}", file=sys.stderr)
            bar.update(len(opts.steps) * (opts.systems.index(name) + 1) - bar.n)
            broken = [r["stopped"] for r in rows if r.get("failed")]
            if broken and name not in results["failed"]:
                results["failed"][name] = broken[0]
            if rows:
                results["systems"][name] = {"rows": rows, "seconds": time.monotonic() - started}
            elif name not in results["skipped"] and name not in results["failed"]:
                results["failed"][name] = "no step ran"
    return results
