"""Per-receiver figures from getStats samples (pages.STATS_JS) taken every ``period`` seconds.

Video, per inbound stream: frames decoded per second, freezes and freeze time (Chromium's own
``freezeCount`` / ``totalFreezesDuration``: a frame interval over max(3x the average, average +
150 ms)), the longest stall (consecutive samples without a new frame), frame width, bitrate.
Audio: concealed share of the samples (``concealedSamples - silentConcealedSamples``) and the
longest gap (concealed milliseconds of consecutive samples that were mostly concealed; its
resolution is the sample period). Times are seconds from the start of the measured call.
"""

from __future__ import annotations

from typing import Any

AUDIO_RATE = 48_000
PLAYING_FPS = 5.0  # a stream "plays" while it decodes at least this many frames a second


def series(samples: list[dict[str, Any]], t0: float) -> dict[str, list[dict[str, Any]]]:
    """stream id -> [{t, kind, ...counters}] (absolute counters, in sample order)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for sample in samples:
        for stream in sample["inbound"]:
            out.setdefault(stream["id"], []).append({"t": sample["t"] - t0, **stream})
    return out


def rates(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per interval: t (end), fps, kbps, width, freeze_s, concealed_ms, total_ms."""
    out = []
    for a, b in zip(points, points[1:], strict=False):
        dt = b["t"] - a["t"]
        if dt <= 0:
            continue
        out.append({
            "t": round(b["t"], 2), "dt": dt,
            "fps": (b["framesDecoded"] - a["framesDecoded"]) / dt,
            "kbps": 8 * (b["bytesReceived"] - a["bytesReceived"]) / dt / 1000,
            "rtx_kbps": 8 * (b["retransmittedBytesReceived"] - a["retransmittedBytesReceived"]) / dt / 1000,
            "width": b["frameWidth"],
            "freeze_s": b["totalFreezesDuration"] - a["totalFreezesDuration"],
            "freezes": b["freezeCount"] - a["freezeCount"],
            "concealed_ms": 1000 * ((b["concealedSamples"] - b["silentConcealedSamples"])
                                    - (a["concealedSamples"] - a["silentConcealedSamples"])) / AUDIO_RATE,
            "total_ms": 1000 * (b["totalSamplesReceived"] - a["totalSamplesReceived"]) / AUDIO_RATE,
        })  # fmt: skip
    return out


def _within(points: list[dict[str, Any]], start: float, end: float) -> list[dict[str, Any]]:
    return [p for p in points if start < p["t"] <= end + 1e-9]


def video_summary(intervals: list[dict[str, Any]], start: float, end: float) -> dict[str, Any]:
    part = _within(intervals, start, end)
    if not part:
        return {}
    span = sum(p["dt"] for p in part)
    stall = longest = 0.0
    for p in part:
        stall = stall + p["dt"] if p["fps"] == 0 else 0.0
        longest = max(longest, stall)
    widths = sorted(p["width"] for p in part if p["fps"] > 0) or [0]
    return {
        "fps": sum(p["fps"] * p["dt"] for p in part) / span,
        "freezes": sum(p["freezes"] for p in part),
        "freeze_s": sum(p["freeze_s"] for p in part),
        "longest_stall_s": longest,
        "width_median": widths[len(widths) // 2],
        "width_min": widths[0],
        "kbps": sum(p["kbps"] * p["dt"] for p in part) / span,
        "rtx_kbps": sum(p["rtx_kbps"] * p["dt"] for p in part) / span,
    }


def audio_summary(intervals: list[dict[str, Any]], start: float, end: float) -> dict[str, Any]:
    part = _within(intervals, start, end)
    total = sum(p["total_ms"] for p in part)
    if not part or not total:
        return {}
    gap = longest = 0.0
    for p in part:
        concealed = min(p["concealed_ms"], p["dt"] * 1000)
        if concealed >= 0.9 * p["dt"] * 1000:
            gap += concealed
        else:
            gap = concealed
        longest = max(longest, gap)
        if concealed < 0.9 * p["dt"] * 1000:
            gap = 0.0
    return {
        "concealed_pct": 100 * sum(p["concealed_ms"] for p in part) / total,
        "longest_gap_ms": longest,
    }


def playing_within(intervals: list[dict[str, Any]], at: float, hold: float = 2.0) -> float | None:
    """Seconds after ``at`` until the stream plays (>= PLAYING_FPS) for ``hold`` seconds."""
    part = [p for p in intervals if p["t"] > at]
    for i, p in enumerate(part):
        begin = p["t"] - p["dt"]
        run = [q for q in part[i:] if q["t"] <= begin + hold + 1e-9]
        if run and run[-1]["t"] >= begin + hold - 0.6 and all(q["fps"] >= PLAYING_FPS for q in run):
            return max(0.0, begin - at)
    return None


def reaches_width(intervals: list[dict[str, Any]], at: float, width: int) -> float | None:
    """Seconds after ``at`` until frames of at least ``width`` are decoded."""
    for p in intervals:
        if p["t"] > at and p["fps"] > 0 and p["width"] >= width:
            return p["t"] - at
    return None


def first_frame(intervals: list[dict[str, Any]]) -> float | None:
    return next((p["t"] for p in intervals if p["fps"] > 0), None)


def sender_summary(samples: list[dict[str, Any]], t0: float, start: float, end: float
                   ) -> dict[str, Any]:  # fmt: skip
    """What one party's video encoder did in [start, end]: the share of that time it was
    limited by CPU or bandwidth (Chromium's qualityLimitationDurations: a starved CPU makes
    the encoder scale down by itself, which is not network adaptation), what it sent (kbit/s,
    every RTP stream, ``sent_kbps``) and of that what it resent (``resent_kbps``: its uplink's
    losses, repaired), the median of its send-side estimate (the selected
    candidate pair's availableOutgoingBitrate, kbit/s, ``estimate_kbps``, None when Chromium
    gives none), and per layer (rid, "" for one layer) the median frame width, target bitrate
    and frames per second."""
    part = [s for s in samples if start <= s["t"] - t0 <= end + 1e-9]
    if len(part) < 2:
        return {}
    first, last = part[0], part[-1]

    def limited(sample: dict[str, Any]) -> dict[str, float]:
        video = [o for o in sample["outbound"] if o["kind"] == "video" and o.get("limited")]
        return video[0]["limited"] if video else {}

    a, b = limited(first), limited(last)
    span = sum(b.values()) - sum(a.values())
    share = {k: round((b.get(k, 0) - a.get(k, 0)) / span, 3) for k in b} if span > 0 else {}
    layers: dict[str, dict[str, Any]] = {}
    for rid in sorted({o["rid"] for s in part for o in s["outbound"] if o["kind"] == "video"}):
        points = [
            o for s in part for o in s["outbound"] if o["kind"] == "video" and o["rid"] == rid
        ]

        def median(key: str, points: list[dict[str, Any]] = points) -> float:
            values = sorted(p.get(key, 0) for p in points)
            return values[len(values) // 2]

        layers[rid] = {"width": median("frameWidth"), "target_bps": median("targetBitrate"),
                       "fps": median("framesPerSecond")}  # fmt: skip
    span_s = last["t"] - first["t"]

    def sent(key: str) -> float | None:
        total = sum(o.get(key, 0) for o in last["outbound"])
        total -= sum(o.get(key, 0) for o in first["outbound"])
        return 8 * total / span_s / 1000 if span_s > 0 else None

    estimates = sorted(s["pair"]["outgoing"] for s in part
                       if s.get("pair") and s["pair"].get("outgoing") is not None)  # fmt: skip
    return {"cpu_limited": share.get("cpu", 0.0), "bandwidth_limited": share.get("bandwidth", 0.0),
            "sent_kbps": sent("bytesSent"), "resent_kbps": sent("retransmittedBytesSent"),
            "estimate_kbps": estimates[len(estimates) // 2] / 1000 if estimates else None,
            "layers": layers}  # fmt: skip
