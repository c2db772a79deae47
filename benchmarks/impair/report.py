"""The impairment harness's output: a table per receiver, and a PNG per scenario of bitrate,
frame width (the layer) and freezes over time per receiver, every system on the same axes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..report import machine

COLUMNS = [  # (key, header, format)
    ("scenario", "scenario", "{}"), ("system", "system", "{}"), ("receiver", "receiver", "{}"),
    ("fps", "fps", "{:.1f}"), ("freezes", "freezes", "{}"), ("freeze_s", "freeze s", "{:.1f}"),
    ("longest_stall_s", "stall s", "{:.1f}"), ("width_median", "width", "{}"),
    ("width_min", "min w", "{}"), ("kbps", "kbit/s", "{:.0f}"),
    ("audio_concealed_pct", "audio conc%", "{:.1f}"), ("audio_longest_gap_ms", "gap ms", "{:.0f}"),
    ("playing_after_drop_s", "plays s", "{:.1f}"), ("top_after_lift_s", "top s", "{:.1f}"),
    ("to_top_s", "start->top s", "{:.1f}"), ("joined_to_top_s", "joined->top s", "{:.1f}"),
    ("media_to_top_s", "1st frame->top s", "{:.1f}"),
    ("sfu_rtx_pps", "rtx pkt/s", "{:.0f}"), ("sfu_rtx_kbps", "rtx kbit/s", "{:.0f}"),
    ("sfu_probe_kbps", "probe kbit/s", "{:.0f}"),
    ("sender_kbps", "sender kbit/s", "{:.0f}"), ("sender_resent_kbps", "sender rtx kbit/s", "{:.0f}"),
    ("sender_estimate_kbps", "sender est kbit/s", "{:.0f}"),
    ("sender_cpu_limited", "sender cpu-lim %", "{:.0%}"), ("layers", "layers (SFU)", "{}"),
]  # fmt: skip


def _cell(row: dict[str, Any], key: str, fmt: str) -> str:
    value = row.get(key)
    if value is None or value == {}:
        return "-"
    if key == "layers":  # share of the window per layer: "f 80% h 20%"
        return " ".join(f"{k} {v:.0%}" for k, v in sorted(value.items(), key=lambda kv: -kv[1]))
    return fmt.format(value)


def load() -> dict[str, float]:
    """The machine's load average when a call starts (others share its two cores)."""
    one, five, _ = os.getloadavg()
    return {"load1": one, "load5": five}


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for entry in results["scenarios"].values()
            for call in entry["systems"].values() for row in call["rows"]]  # fmt: skip


def table(results: dict[str, Any], markdown: bool = False) -> str:
    cells = [[h for _, h, _ in COLUMNS]]
    for row in rows(results):
        cells.append([_cell(row, k, f) for k, _, f in COLUMNS])
    if markdown:
        lines = ["| " + " | ".join(c) + " |" for c in cells]
        lines.insert(1, "|" + " --- |" * len(COLUMNS))
    else:
        widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
        lines = ["  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    for name, entry in results["scenarios"].items():
        for system, call in entry["systems"].items():
            lines.append(f"{name}/{system}: load {call['load_before']['load1']:.2f} before, "
                         f"{call['load_after']['load1']:.2f} after")  # fmt: skip
    for name, why in results["skipped"].items():
        lines.append(f"{name} skipped: {why}")
    return "\n".join(lines)


def plot(name: str, entry: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    receivers = sorted({label for call in entry["systems"].values() for label in call["series"]})
    if not receivers:
        return
    fig, axes = plt.subplots(len(receivers), 1, figsize=(12, 3.2 * len(receivers)), squeeze=False)
    styles = {"televisit": "-", "janus": "--"}
    for ax, label in zip(axes[:, 0], receivers, strict=True):
        width_ax = ax.twinx()
        for system, call in entry["systems"].items():
            points = call["series"].get(label)
            if not points:
                continue
            t = [p["t"] for p in points]
            style = styles.get(system, ":")
            ax.plot(t, [p["kbps"] for p in points], style, color="tab:blue",
                    label=f"{system} kbit/s")  # fmt: skip
            width_ax.plot(t, [p["width"] if p["fps"] > 0 else 0 for p in points], style,
                          color="tab:green", label=f"{system} width")  # fmt: skip
            for p in points:
                if p["fps"] == 0 or p["freeze_s"] > 0:
                    ax.axvspan(p["t"] - p["dt"], p["t"], color="tab:red",
                               alpha=0.25 if system == "televisit" else 0.1, linewidth=0)  # fmt: skip
            if call["sfu"]:
                ax.plot([r["t"] for r in call["sfu"]],
                        [8 * r["retransmitted_bytes"] / 1000 for r in call["sfu"]], ":",
                        color="tab:purple", label=f"{system} SFU resent kbit/s")  # fmt: skip
        ax.set_title(label)
        ax.set_xlabel("s")
        ax.set_ylabel("kbit/s")
        width_ax.set_ylabel("frame width (red: frozen)")
        ax.grid(alpha=0.3)
        lines = ax.get_legend_handles_labels()
        more = width_ax.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="upper right")
    fig.suptitle(f"{name}: {entry['title']} ({machine()['cpus']} cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
