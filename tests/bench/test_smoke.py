"""The benchmark harness cannot rot: `televisit bench consults --smoke` runs end to end against
Televisit (and Janus and the relay baseline where they can run) and writes a sane report.
No performance assertions: only that the harness measured something real."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import targets
from benchmarks.cli import SMOKE_STEPS
from benchmarks.rtpio import KEYFRAME_MIN_INTERVAL, KeyframeRequests, TransportMeter

ROOT = Path(__file__).resolve().parents[2]


def _bench(*args: str, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "control.cli", "bench", *args, "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


@pytest.mark.timeout(660)
def test_consults_smoke_runs_every_system_and_reports(tmp_path: Path) -> None:
    """Every system (Televisit, Janus, the relay baseline) joins and forwards at every step of
    the smoke ramp; none is skipped or failed (make test installs Janus), and each step is
    checked, not only the first."""
    done = _bench("consults", "--smoke", out=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "bench-consults.json").read_text())
    assert (tmp_path / "bench-consults.png").stat().st_size > 0
    assert results["scenario"] == "consults" and results["machine"]["cpus"] >= 1
    assert results["skipped"] == {} and results["failed"] == {}, (
        results["skipped"],
        results["failed"],
        done.stderr[-3000:],
    )
    assert set(results["systems"]) == {"televisit", "janus", "baseline"}
    for name, data in results["systems"].items():
        rows = data["rows"]
        assert [r["consults"] for r in rows] == SMOKE_STEPS["consults"], (name, rows)
        for row in rows:
            # Joined: everyone, with video; forwarded: packets reached the other side.
            assert not row.get("failed") and row["join_errors"] == [], (name, row)
            assert row["no_video"] == 0 and row["join_to_first_frame_p50_s"] is not None, row
            assert row["forwarded_pps"] > 0 and row["sent_pps"] > 0, (name, row)
            assert row["delivered_pct"] > 0 and row["decoded_frames"] > 0, (name, row)
            assert row["sfu_us_per_packet"] > 0 and row["sfu_rss_mb"] > 0, (name, row)
            if name != "baseline":  # the relay baseline re-encodes; the SFUs pass bytes on
                assert row["latency_samples"] > 0, (name, row)
    table = done.stdout
    assert "televisit" in table and "janus" in table and "us/pkt" in table


def test_unknown_system_is_refused(tmp_path: Path) -> None:
    done = _bench("consults", "--smoke", "--systems", "televisit,nosuch", out=tmp_path)
    assert done.returncode == 2 and "nosuch" in done.stderr


def test_janus_missing_is_a_clear_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(targets.shutil, "which", lambda name: None)
    with pytest.raises(targets.TargetUnavailable, match="janus is not installed"):
        targets.Janus(None)


def _rtp(seq: int, pt: int = 96, ssrc: int = 5, keyframe: bool = True) -> bytes:
    vp8 = b"\x90\x80\x80\x01" + (b"\x00" if keyframe else b"\x01")  # descriptor, P bit
    return struct.pack("!BBHII", 0x80, pt, seq, 0, ssrc) + vp8 + bytes(29)


def test_first_frame_is_the_first_keyframe_not_the_first_packet() -> None:
    """Join-to-first-frame ends at a frame a decoder can show: delta frames forwarded before
    the keyframe (Janus does) do not end it."""
    meter = TransportMeter()
    meter.learn_sdp("m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n")
    meter.on_rtp(_rtp(1, keyframe=False), 1.0)
    meter.on_rtp(_rtp(2, keyframe=False), 1.5)
    assert meter.first_keyframe_at == 0.0
    meter.on_rtp(_rtp(3), 2.0)
    meter.on_rtp(_rtp(4), 2.5)
    assert meter.first_keyframe_at == 2.0


def test_meter_counts_loss_nacks_retransmissions_and_wraparound() -> None:
    meter = TransportMeter()
    meter.learn_sdp("m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n")
    nacks = [meter.on_rtp(_rtp(seq), 0.0) for seq in (65533, 65534, 1, 2)]  # 65535, 0 missing
    assert nacks[2] == [65535, 0]
    assert meter.on_rtp(_rtp(0), 0.0) == []  # a retransmission fills the gap
    assert meter.on_rtp(_rtp(0), 0.0) == []  # a duplicate does not count twice
    assert meter.on_rtp(b"\x80\x60", 0.0) == []  # garbage is ignored
    stream = meter.inbound[5]
    assert (stream.kind, stream.expected, stream.packets) == ("video", 6, 5)
    assert (stream.lost, stream.recovered, stream.duplicates, stream.nacks_sent) == (1, 1, 1, 2)


def test_the_load_publisher_answers_a_pli_as_a_browser_does() -> None:
    """A PLI is obliged unless one was obliged within the interval (libwebrtc's rule): the
    first request, right after the loop's own keyframe, gets a keyframe at the next frame; a
    second within the interval is dropped, a third after it obliged. Times are given, not
    measured."""
    requests, start = KeyframeRequests(), 100.0  # the loop's keyframe went out at ``start``
    assert not requests.take(start + 0.03)  # no request: the loop goes on
    requests.wanted = True
    assert requests.take(start + 0.06)
    requests.wanted = True
    assert not requests.take(start + 0.06 + KEYFRAME_MIN_INTERVAL / 2)
    assert not requests.take(start + 0.06 + KEYFRAME_MIN_INTERVAL * 2)  # dropped, not deferred
    requests.wanted = True
    assert requests.take(start + 0.06 + KEYFRAME_MIN_INTERVAL * 2)


def _module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


@pytest.mark.timeout(330)
def test_forward_loopback_measures_televisit_and_its_floor() -> None:
    done = _module(
        "benchmarks.forward_loopback", "--consults", "1", "--window", "2", "--settle", "2",
        "--floor",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {line.split()[0]: line.split() for line in done.stdout.splitlines()[2:]}
    assert set(rows) == {"televisit", "floor"}, done.stdout
    for name, row in rows.items():
        forwarded, received, dropped = float(row[2]), float(row[8]), int(row[7])
        # One consult forwards its two publishers' ~200 packets/s each way, all of them.
        assert forwarded > 100 and forwarded == pytest.approx(received, rel=0.05), (name, row)
        assert dropped == 0 and float(row[4]) > 0, (name, row)


@pytest.mark.timeout(200)
def test_forward_micro_runs_every_line() -> None:
    done = _module("benchmarks.forward_micro", "--packets", "3000")
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if not line.startswith(("#", "path"))]
    assert len(lines) == 7 and all(float(line.split()[-2]) > 0 for line in lines), done.stdout
