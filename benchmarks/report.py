"""The report: ratios to Janus and to the baseline, a terminal table, JSON and a PNG plot."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

# Figures compared across systems at the same load level; lower is better for all of them.
RATIO_FIGURES = (
    "sfu_us_per_packet",
    "sfu_us_per_packet_marginal",
    "sfu_cpu_pct",
    "latency_p50_ms",
    "sfu_mb_per_participant",
)
LEVEL = {"consults": "consults", "fanout": "subscribers", "churn": "rooms_per_second"}
COLUMNS = [  # (key, header, format)
    ("system", "system", "{}"), ("level", "N", "{}"),
    ("valid", "valid", "{}"),
    ("forwarded_pps", "fwd pkt/s", "{:.0f}"), ("forwarded_mbps", "Mbit/s", "{:.1f}"),
    ("sent_pct", "sent%", "{:.0f}"),
    ("sfu_us_per_packet", "us/pkt", "{:.1f}"),
    ("sfu_us_per_packet_marginal", "us/pkt-idle", "{:.1f}"), ("sfu_cpu_pct", "CPU%", "{:.0f}"),
    ("client_core_pct", "client%", "{:.0f}"), ("others_cpu_pct", "others%", "{:.0f}"), ("delivered_pct", "deliv%", "{:.0f}"),
    ("loss_down_pct", "loss dn%", "{:.2f}"), ("loss_up_pct", "loss up%", "{:.2f}"),
    ("nacks_down", "NACK dn", "{}"), ("nacks_up", "NACK up", "{}"),
    ("retransmitted_up", "rtx up", "{}"),
    ("latency_p50_ms", "lat p50 ms", "{:.2f}"), ("latency_p99_ms", "lat p99 ms", "{:.2f}"),
    ("join_to_first_frame_p50_s", "j2f p50 s", "{:.2f}"),
    ("join_to_first_frame_p95_s", "j2f p95 s", "{:.2f}"),
    ("sfu_mb_per_participant", "MB/part", "{:.2f}"), ("sfu_sockets", "sockets", "{}"),
    ("ratio_janus_sfu_us_per_packet", "us/pkt vs janus", "{:.2f}x"),
    ("ratio_baseline_sfu_us_per_packet", "us/pkt vs base", "{:.3f}x"),
]  # fmt: skip
CHURN_COLUMNS = [
    ("system", "system", "{}"), ("rooms_per_second", "rooms/s", "{}"),
    ("joins_per_second", "joins/s", "{:.1f}"), ("failures", "failures", "{}"),
    ("join_to_first_frame_p50_s", "j2f p50 s", "{:.2f}"),
    ("join_to_first_frame_p95_s", "j2f p95 s", "{:.2f}"), ("sfu_cpu_pct", "CPU%", "{:.0f}"),
]  # fmt: skip


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "kernel": platform.release()}  # fmt: skip


def commit() -> str:
    """The commit measured (with "+dirty" when the work tree differs from it)."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout
    except OSError:
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty.strip() else "")


def add_ratios(results: dict[str, Any]) -> None:
    """Each valid row's figures divided by the same figure of Janus / the baseline at the same
    level (valid rows only: a step where a ramp stopped compares nothing), plus a summary over
    the levels both reached, the CPU slopes over valid rows and each system's capacity."""
    level = LEVEL[results["scenario"]]
    systems = results["systems"]
    by_level = {
        name: {row.get(level): row for row in data["rows"] if row.get("valid")}
        for name, data in systems.items()
    }
    for data in systems.values():
        for row in data["rows"]:
            row["level"] = row.get(level)
            if not row.get("valid"):
                continue
            for other in ("janus", "baseline"):
                ref = by_level.get(other, {}).get(row.get(level))
                for key in RATIO_FIGURES:
                    if ref and row.get(key) is not None and ref.get(key):
                        row[f"ratio_{other}_{key}"] = row[key] / ref[key]
    summary: dict[str, Any] = {}
    for name in systems:
        for other in ("janus", "baseline"):
            if other == name or other not in systems:
                continue
            for key in RATIO_FIGURES:
                ratios = [r[f"ratio_{other}_{key}"] for r in systems[name]["rows"]
                          if f"ratio_{other}_{key}" in r]  # fmt: skip
                if ratios:
                    summary[f"{name}/{other} {key}"] = {
                        "mean": sum(ratios) / len(ratios), "levels": len(ratios),
                    }  # fmt: skip
    results["ratios"] = summary
    results["slopes"] = {name: s for name, data in systems.items()
                         if (s := cpu_slope(data["rows"])) is not None}  # fmt: skip
    if results["scenario"] != "churn":
        results["capacity"] = {name: capacity(data["rows"], level)
                               for name, data in systems.items()}  # fmt: skip


def capacity(rows: list[dict[str, Any]], level: str) -> dict[str, Any]:
    """The load one core of the SFU carried: the last valid step, and whether it is the SFU's
    limit or only a lower bound ("at least": the ramp ended, or the load generator gave out
    first; then the SFU's CPU share there says how much room was left)."""
    valid = [r for r in rows if r.get("valid")]
    stop = next((r for r in rows if not r.get("valid")), None)
    if not valid:
        return {"level": None, "at_least": False,
                "text": f"no valid step ({stop['stopped'] if stop else 'none ran'})"}  # fmt: skip
    last = valid[-1]
    at_least = stop is None or stop.get("limit") == "load"
    share = last.get("sfu_cpu_pct") or 0.0
    cores = last.get("sfu_cores", 1)
    full = CPU_FULL * cores
    text = (
        f"{'at least ' if at_least else ''}{last[level]} {level} (SFU at {share:.0f}% of "
        f"{'its core' if cores == 1 else f'one core, on {cores} cores'}"
    )
    if at_least and share > 0:
        text += f"; ~{last[level] * full / share:.0f} if its CPU grew linearly to {full:.0f}%"
    text += ")" + (f"; next step: {stop['stopped']}" if stop else "; the ramp ended")
    return {"level": last[level], "at_least": at_least, "sfu_cpu_pct": share, "text": text}


CPU_FULL = 90.0  # the SFU CPU share of each core at which a ramp stops (scenarios.CPU_STOP)


def cpu_slope(rows: list[dict[str, Any]]) -> float | None:
    """Least-squares slope of SFU CPU against forwarded packets/s over the valid steps, in us
    per extra forwarded packet: the cost of more load without the fixed part."""
    points = [(r["forwarded_pps"], r["sfu_cpu_pct"] / 100) for r in rows
              if r.get("valid") and r.get("forwarded_pps")
              and r.get("sfu_cpu_pct") is not None]  # fmt: skip
    if len(points) < 3:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    var = sum((x - mx) ** 2 for x, _ in points)
    if not var:
        return None
    return 1e6 * sum((x - mx) * (y - my) for x, y in points) / var


def _cell(row: dict[str, Any], key: str, fmt: str) -> str:
    value = row.get(key)
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return fmt.format(value)


def table(results: dict[str, Any]) -> str:
    columns = CHURN_COLUMNS if results["scenario"] == "churn" else COLUMNS
    rows = [r for data in results["systems"].values() for r in data["rows"]]
    cells = [[h for _, h, _ in columns]]
    for row in rows:
        cells.append([
            _cell(row, k, f) for k, _, f in columns
        ])  # fmt: skip
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for name, data in results["systems"].items():
        for row in data["rows"]:
            if row.get("stopped"):
                lines.append(f"{name} stopped at {row['level']}: {row['stopped']}")
    for name, why in results["skipped"].items():
        lines.append(f"{name} skipped: {why}")
    for name, why in results.get("failed", {}).items():
        lines.append(f"{name} failed mid-ramp (completed steps kept): {why}")
    for name, cap in results.get("capacity", {}).items():
        lines.append(f"{name} capacity: {cap['text']}")
    for name, slope in results.get("slopes", {}).items():
        lines.append(
            f"{name}: {slope:.1f} us of SFU CPU per extra forwarded packet (fit over steps)"
        )
    for key, value in results.get("ratios", {}).items():
        lines.append(f"ratio {key}: {value['mean']:.3f} (mean over {value['levels']} valid levels)")
    return "\n".join(lines)


def markdown_table(results: dict[str, Any]) -> str:
    columns = CHURN_COLUMNS if results["scenario"] == "churn" else COLUMNS
    out = ["| " + " | ".join(h for _, h, _ in columns) + " |",
           "|" + " --- |" * len(columns)]  # fmt: skip
    for data in results["systems"].values():
        for row in data["rows"]:
            out.append("| " + " | ".join(_cell(row, k, f) for k, _, f in columns) + " |")
    return "\n".join(out)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    level = LEVEL[results["scenario"]]
    for data in results["systems"].values():
        for r in data["rows"]:
            if r.get("delivered_pct") is not None:
                r.setdefault("undelivered_pct", max(0.0, 100 - r["delivered_pct"]))
    panels = [("sfu_cpu_pct", "SFU CPU, % of one core"),
              ("undelivered_pct", "packets sent but not delivered, %\n(RTP loss, queued, or dropped by a transcoder)"),
              ("sfu_us_per_packet", "SFU CPU per forwarded packet, us")]  # fmt: skip
    fig, axes = plt.subplots(1, len(panels), figsize=(15, 4.6))
    colors = {"televisit": "tab:blue", "janus": "tab:orange", "baseline": "tab:red"}
    for ax, (key, title) in zip(axes, panels, strict=True):
        for name, data in results["systems"].items():
            points = [(r[level], r[key]) for r in data["rows"] if r.get(key) is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", label=name, color=colors.get(name))
        if key == "sfu_cpu_pct":
            ax.axhline(100, color="grey", linestyle=":", linewidth=1)
        if key == "sfu_us_per_packet":
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel(f"number of {level.replace('_', ' ')}")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"televisit bench {results['scenario']} - {results['machine']['cpus']} cores, "
                 f"{results['machine']['cpu_model']}")  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: dict[str, Any], out_dir: Path) -> tuple[Path, Path | None]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"bench-{results['scenario']}"
    json_path = out_dir / f"{stem}.json"
    json_path.write_text(json.dumps(results, indent=2, default=str))
    png = None
    if results["scenario"] in ("consults", "fanout") and results["systems"]:
        png = out_dir / f"{stem}.png"
        plot(results, png)
    return json_path, png
