"""What Televisit decided during a call: its adaptation trace, read back from the SFU's log.

The harness runs Televisit with ``server.log_levels = {"televisit.adaptation" = "debug"}``:
every allocation (a subscriber leg's estimate, its inputs and, per video subscription, the
layer forwarded, the layer wanted, the share, paused or not) and every REMB sent to a
publisher is one JSON log line (media_server/participant.py ``_trace_allocation``).
``read(path, since, until, names)`` turns the lines of one call into time series per party:
participant ids (``member.generation``) become party names through ``names`` (member id ->
party name, from each page's ``session.self``).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

LOGGER = "televisit.adaptation"
# What the harness sets for Televisit so that the trace is written.
ENV = {
    "TELEVISIT__SERVER__LOG_LEVELS": '{"televisit.adaptation" = "debug"}',
    "TELEVISIT__SERVER__LOG_LEVEL": "info",
}


def _name(participant: str | None, names: dict[str, str]) -> str | None:
    if participant is None:
        return None
    return names.get(participant.rsplit(".", 1)[0], participant)


def read(path: str | Path, since: float, until: float, names: dict[str, str]) -> dict[str, Any]:
    """{"allocations": {receiver: [{t, estimate_bps, remb_bps, demand_bps, sent_bps, loss,
    streams: [{from, layer, wanted, target_bps, paused, rtt_ms}]}]}, "rembs": {publisher:
    [{t, remb_bps}]}} with ``t`` in seconds from ``since`` (wall clock, time.time())."""
    allocations: dict[str, list[dict[str, Any]]] = {}
    rembs: dict[str, list[dict[str, Any]]] = {}
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return {"allocations": allocations, "rembs": rembs}
    for line in lines:
        if LOGGER not in line:
            continue
        try:
            entry = json.loads(line)
            at = datetime.fromisoformat(entry["ts"]).timestamp()
        except (ValueError, KeyError):
            continue
        if entry.get("logger") != LOGGER or not since <= at <= until:
            continue
        who = _name(entry.get("participant"), names)
        t = round(at - since, 2)
        if entry["msg"] == "remb":
            rembs.setdefault(who or "?", []).append({"t": t, "remb_bps": entry["remb_bps"]})
        elif entry["msg"] == "allocation":
            streams = [{**{k: v for k, v in s.items() if k != "stream"},
                        "from": _name(s.get("stream"), names)} for s in entry["streams"]]  # fmt: skip
            allocations.setdefault(who or "?", []).append({
                "t": t, **{k: entry.get(k) for k in ("estimate_bps", "unheld_bps", "remb_bps",
                           "demand_bps", "sent_bps", "loss", "raw_loss", "window_packets", "legs",
                           "verified_bps", "probing", "probes", "probes_failed", "delay",
                           "acked_bps")},
                "streams": streams,
            })  # fmt: skip
    return {"allocations": allocations, "rembs": rembs}


def layer_time(allocations: list[dict[str, Any]], publisher: str, start: float, end: float
               ) -> dict[str, float]:  # fmt: skip
    """Share of [start, end] each layer (rid, "paused", or "-" for one layer; "rid/T<n>":
    only its temporal layers up to n, a lower frame rate) of ``publisher``'s video was
    forwarded to this receiver, from its allocations."""
    spans: dict[str, float] = {}
    points = [(a["t"], s) for a in allocations for s in a["streams"] if s.get("from") == publisher]
    for (t, s), (t_next, _) in zip(points, [*points[1:], (end, None)], strict=True):
        a, b = max(t, start), min(t_next, end)
        if b > a:
            key = "paused" if s["paused"] else (s["layer"] or "-")
            if not s["paused"] and s.get("temporal") is not None:
                key += f"/T{s['temporal']}"
            spans[key] = spans.get(key, 0.0) + b - a
    total = sum(spans.values())
    return {k: round(v / total, 3) for k, v in spans.items()} if total else {}
