"""The impairment harness's own parts: it never touches the root namespace, its rules do what
they say (a private namespace, real UDP through nftables), and its figures come out of getStats
counters as defined."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.impair import measure, network, trace

ROOT = Path(__file__).resolve().parents[2]


def test_no_rule_is_set_outside_a_private_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(network.ROOT_NETNS_ENV, raising=False)
    assert not network.private()
    with pytest.raises(network.NotPrivate):
        network.Impairments()


def _can_unshare() -> bool:
    return os.geteuid() == 0 and shutil.which("unshare") and shutil.which("nft")


UDP_PROBE = """
import os, socket, sys, time
from benchmarks.impair import network
network.enter_private()
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22); rx.bind(("127.0.0.1", 0)); rx.settimeout(0.2)
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); tx.bind(("127.0.0.1", 0))
port = rx.getsockname()[1]
imp = network.Impairments()
def arrived(n, pause=0.0):
    for i in range(n):
        tx.sendto(bytes(1000), ("127.0.0.1", port))
        if pause: time.sleep(pause)
    got = 0
    try:
        while True:
            rx.recv(2000); got += 1
    except socket.timeout:
        return got
clean = arrived(400)
imp.set(port, "down", network.Link(loss_pct=30))
lossy = arrived(400)
imp.set(port, "down", network.Link(police_kbps=400))
policed = arrived(400)
imp.set(port, "down", network.Link(police_kbps=400, burst_ms=50))
time.sleep(0.2)
strict = arrived(400)
time.sleep(0.1)  # the bucket fills again
under = arrived(40, pause=0.025)  # 40 kB/s, under the policer's 50
imp.set(port, "down", network.CLEAN)
back = arrived(400)
imp.clear()
print(clean, lossy, policed, strict, under, back)
"""


@pytest.mark.skipif(not _can_unshare(), reason="needs root, unshare and nft")
def test_rules_drop_and_police_only_inside_their_namespace() -> None:
    before = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    done = subprocess.run([sys.executable, "-c", UDP_PROBE], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    clean, lossy, policed, strict, under, back = (int(v) for v in done.stdout.split())
    assert clean == 400 and back == 400
    assert 200 < lossy < 350  # ~30% random loss
    # 400 kbit/s = 50 kB/s. nftables' policer: a second of the rate and 100 ms (55 kB) then
    # drops; the strict one: a bucket of 50 ms (~3 packets) then drops, no queue.
    assert 40 <= policed <= 60
    assert strict <= 8
    assert under == 40  # under the rate, nothing is dropped
    after = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert network.TABLE not in after and before == after  # the root namespace untouched


def _sample(t: float, frames: int, freezes: int = 0, freeze_s: float = 0.0, width: int = 640,
            nbytes: int = 0, concealed: int = 0, total: int = 0) -> dict:  # fmt: skip
    video = {"kind": "video", "id": "v", "framesDecoded": frames, "freezeCount": freezes,
             "totalFreezesDuration": freeze_s, "frameWidth": width, "bytesReceived": nbytes,
             "retransmittedBytesReceived": 0, "concealedSamples": 0, "silentConcealedSamples": 0,
             "totalSamplesReceived": 0}  # fmt: skip
    audio = {**video, "kind": "audio", "id": "a", "framesDecoded": 0, "frameWidth": 0,
             "concealedSamples": concealed, "totalSamplesReceived": total}  # fmt: skip
    return {"t": t, "inbound": [video, audio]}


def test_figures_from_counters() -> None:
    # 20 fps for 2 s, a 1.5 s stall (one freeze), 20 fps again at 320 wide; audio concealed
    # fully for the 1 s in the middle of the stall.
    samples = [
        _sample(0.0, 0), _sample(0.5, 10), _sample(1.0, 20), _sample(1.5, 30), _sample(2.0, 40),
        _sample(2.5, 40), _sample(3.0, 40), _sample(3.5, 40, 1, 1.5),
        _sample(4.0, 50, 1, 1.5, 320), _sample(4.5, 60, 1, 1.5, 320),
    ]  # fmt: skip
    for i, s in enumerate(samples):
        concealed = 0 if s["t"] <= 2.5 else min(48_000, int((s["t"] - 2.5) * 48_000))
        s["inbound"][1]["concealedSamples"] = concealed
        s["inbound"][1]["totalSamplesReceived"] = i * 24_000
        s["inbound"][0]["bytesReceived"] = i * 25_000
    streams = measure.series(samples, 0.0)
    video, audio = measure.rates(streams["v"]), measure.rates(streams["a"])
    summary = measure.video_summary(video, 0.0, 4.5)
    assert summary["freezes"] == 1 and summary["freeze_s"] == 1.5
    assert summary["longest_stall_s"] == pytest.approx(1.5)
    assert summary["fps"] == pytest.approx(60 / 4.5)
    assert summary["width_min"] == 320 and summary["kbps"] == pytest.approx(400)
    assert measure.playing_within(video, 2.0, hold=0.9) == pytest.approx(1.5)
    assert measure.reaches_width(video, 2.0, 320) == pytest.approx(2.0)
    sound = measure.audio_summary(audio, 0.0, 4.5)
    assert sound["longest_gap_ms"] == pytest.approx(1000)
    assert sound["concealed_pct"] == pytest.approx(100 * 1000 / 4500)


def test_time_to_top_counts_from_the_later_of_the_pair_joining() -> None:
    # guest2 opened its page 3 s after the clinic (the call's start); the clinic decodes
    # guest2's video at its top width from 2 s after t0, which came 4 s after the start.
    from benchmarks.impair.run import summarize
    from benchmarks.impair.scenarios import Scenario

    scenario = Scenario("three", "three parties", 5.0, parties=("clinic", "client", "guest2"))
    t0 = 100.0
    samples = []
    for i in range(11):
        sample = _sample(t0 + i * 0.5, i * 10, width=1280 if i * 0.5 >= 2.0 else 320)
        sample["inbound"][0]["mid"] = "1"
        sample["outbound"] = []
        samples.append(sample)
    done = summarize("televisit", scenario, {"clinic": samples}, t0, [], 4.0,
                     publishers={"clinic": {"1": "guest2"}},
                     opened={"clinic": t0 - 4.0, "client": t0 - 3.5, "guest2": t0 - 1.0})  # fmt: skip
    (row,) = done["rows"]
    assert row["receiver"] == "clinic <- guest2"
    assert row["to_top_s"] == pytest.approx(6.0)  # from the call's start
    assert row["joined_to_top_s"] == pytest.approx(3.0)  # from guest2's joining


def test_the_adaptation_trace_is_read_back_per_party(tmp_path: Path) -> None:
    # Log lines as the SFU writes them (control/logs.py JsonFormatter): the client (member c)
    # is forwarded the clinic's (member k) layer f for 2 s, then q for 1 s, then paused 1 s.
    import json
    from datetime import UTC, datetime

    def line(t: float, layer: str, paused: bool = False) -> str:
        stream = {"stream": "k.1", "layer": layer, "paused": paused, "target_bps": 1}
        return json.dumps({
            "ts": datetime.fromtimestamp(1000 + t, UTC).isoformat(timespec="milliseconds"),
            "level": "debug", "logger": trace.LOGGER, "msg": "allocation",
            "participant": "c.1", "estimate_bps": 9, "streams": [stream],
        })  # fmt: skip

    log = tmp_path / "stderr.log"
    log.write_text("\n".join([line(0, "f"), "not json " + trace.LOGGER, line(2, "q"),
                              line(3, "q", paused=True), line(9, "f")]) + "\n")  # fmt: skip
    decided = trace.read(log, 1000, 1005, {"c": "client", "k": "clinic"})
    points = decided["allocations"]["client"]
    assert [p["t"] for p in points] == [0, 2, 3] and points[0]["streams"][0]["from"] == "clinic"
    assert trace.layer_time(points, "clinic", 0, 4) == {"f": 0.5, "q": 0.25, "paused": 0.25}
