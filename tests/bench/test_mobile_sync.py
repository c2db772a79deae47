"""benchmarks/mobile_sync.py cannot rot: a tiny run seeds, serves and syncs for real. Only that
it measured something (statuses, item counts, a delta smaller than the full sync), never
timing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_mobile_sync_benchmark_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.mobile_sync",
         "--appointments", "6", "--history", "12", "--repeat", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    steps = {s["step"]: s for s in json.loads(done.stdout)["steps"]}
    full = steps["first sync (full)"]
    assert full["status"] == 200 and full["items"]["appointments"] == 6
    assert full["items"]["history"] == 12 and full["json_bytes"] > full["body_bytes_gzip"] > 0
    assert steps["after no change (304)"]["status"] == 304
    assert steps["after no change (304)"]["json_bytes"] == 0
    delta = steps["delta after one history change"]
    assert delta["items"]["history"] == 1 and delta["wire_bytes"] < full["wire_bytes"]
    assert steps["delta after one appointment change"]["items"]["appointments"] == 1
