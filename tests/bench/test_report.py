"""The harness's judgement: which steps count, what a ratio is taken over, what the capacity
is, and that a load client failing mid-ramp keeps the steps already measured. No load runs
here: rows are built by hand (the smoke test runs the real thing)."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from benchmarks import report, scenarios
from benchmarks.probes import LoadClientError


def _row(system: str, consults: int, us: float, cpu: float, **extra: Any) -> dict[str, Any]:
    row = {
        "system": system, "scenario": "consults", "consults": consults,
        "forwarded_pps": 400.0 * consults, "sfu_us_per_packet": us, "sfu_cpu_pct": cpu,
        "sent_pps": 400.0 * consults, "nominal_sent_pps": 400.0 * consults, "sent_pct": 100.0,
        "delivered_pct": 100.0, "loss_down_pct": 0.0, "client_core_pct": 30.0,
        "join_errors": [], "no_video": 0,
    }  # fmt: skip
    row.update(extra)
    scenarios.judge(row, consults, consults)
    return row


def test_a_short_load_a_saturated_load_core_and_loss_each_invalidate_a_step() -> None:
    assert _row("televisit", 4, 20.0, 10.0)["valid"]
    short = _row("televisit", 32, 20.0, 10.0, sent_pps=4748.0, sent_pct=37.0)
    assert (short["valid"], short["limit"]) == (False, "load")
    assert "4748 of 12800" in short["stopped"]
    assert _row("televisit", 8, 20.0, 10.0, client_core_pct=99.0)["limit"] == "load"
    assert _row("televisit", 8, 20.0, 10.0, loss_down_pct=3.0)["limit"] == "sfu"
    assert _row("televisit", 8, 20.0, 95.0)["limit"] == "sfu"
    failed = {"join_errors": ["JoinFailed: 503"]}
    assert _row("televisit", 8, 20.0, 10.0, **failed)["limit"] == "joins"


def _results(rows: list[dict[str, Any]]) -> dict[str, Any]:
    systems: dict[str, Any] = {}
    for row in rows:
        systems.setdefault(row["system"], {"rows": []})["rows"].append(row)
    results = {"scenario": "consults", "systems": systems, "skipped": {}}
    report.add_ratios(results)
    return results


def test_ratios_slopes_and_capacity_count_valid_steps_only() -> None:
    results = _results([
        _row("televisit", 4, 20.0, 3.2), _row("televisit", 8, 18.0, 5.8),
        _row("televisit", 16, 17.0, 10.9),
        # the ramp stopped here: a starved load makes the SFU look cheap
        _row("televisit", 32, 2.0, 1.0, sent_pct=37.0),
        _row("janus", 4, 40.0, 6.4), _row("janus", 8, 36.0, 11.5),
        _row("janus", 16, 34.0, 21.8), _row("janus", 32, 30.0, 38.4),
    ])  # fmt: skip
    ratio = results["ratios"]["televisit/janus sfu_us_per_packet"]
    assert ratio["levels"] == 3
    assert ratio["mean"] == pytest.approx((20 / 40 + 18 / 36 + 17 / 34) / 3)
    rows = results["systems"]["televisit"]["rows"]
    assert "ratio_janus_sfu_us_per_packet" not in rows[-1]
    # slope over the three valid steps only: (10.9 - 3.2)% of a core over 4800 pkt/s
    assert results["slopes"]["televisit"] == pytest.approx(1e6 * 0.077 / 4800, rel=0.05)
    televisit = results["capacity"]["televisit"]
    assert (televisit["level"], televisit["at_least"]) == (16, True)
    assert televisit["text"].startswith("at least 16 consults (SFU at 11% of its core")
    janus = results["capacity"]["janus"]
    assert (janus["level"], janus["at_least"]) == (32, True) and "the ramp ended" in janus["text"]


def test_capacity_is_exact_when_the_sfu_stopped_the_ramp() -> None:
    results = _results([_row("janus", 64, 30.0, 80.0), _row("janus", 96, 26.0, 99.0)])
    cap = results["capacity"]["janus"]
    assert (cap["level"], cap["at_least"]) == (64, False)
    assert cap["text"].startswith("64 consults") and "SFU CPU 99%" in cap["text"]


def test_a_load_client_failing_mid_ramp_keeps_the_steps_already_measured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Load:
        rooms = [0]

        def add(self, count: int, decode: bool) -> dict[str, Any]:
            if self.rooms[0] >= 2:
                raise LoadClientError("load client exited (-9) during add")
            self.rooms[0] += count
            return {"rooms": self.rooms[0], "added": count, "no_video": 0, "errors": []}

    @contextlib.contextmanager
    def running(name: str, opts: scenarios.Options) -> Any:
        yield object(), Load()

    def measure(target: Any, load: Any, opts: Any, participants: int, publishers: int,
                base: Any, extra: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
        return _row("televisit", extra["consults"], 20.0, 5.0)

    monkeypatch.setattr(scenarios, "running", running)
    monkeypatch.setattr(scenarios, "idle", lambda target, seconds: None)
    monkeypatch.setattr(scenarios, "measure", measure)
    monkeypatch.setattr(scenarios, "_joined", lambda load, added: {})
    opts = scenarios.Options(systems=["televisit"], steps=[1, 2, 4, 8])
    results = scenarios.run("consults", opts)
    rows = results["systems"]["televisit"]["rows"]
    assert [r["consults"] for r in rows] == [1, 2, 4]
    assert [r["valid"] for r in rows] == [True, True, False]
    assert rows[-1]["limit"] == "load" and "exited" in rows[-1]["stopped"]
