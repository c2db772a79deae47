"""Micro-benchmark of the send-side delay-based estimate, in microseconds per packet result.

    .venv/bin/python -m benchmarks.delaybased_micro [--seconds 60] [--feedback-ms 50]

A subscriber's leg as Chrome reports it: 30 video frames a second of ``--frame-packets``
packets sent in a burst, 50 audio packets a second, a clean link with a few ms of jitter;
its transport-wide feedback every ``--feedback-ms`` (Chrome: 50-100 ms) handed to
``DownlinkEstimator.on_packet_results`` as the SFU hands it (delaybased.py: the delay
gradient, the acknowledged rate, and a probe's meter while one runs). One process, no event
loop: the CPU per result, of which a subscriber's Chrome reports about 1,000 a second.
"""

from __future__ import annotations

import argparse
import os
import random
import time

from media_server.delaybased import MEDIA, PADDING, ProbeMeter
from media_server.estimator import DownlinkEstimator, Probe


def feedbacks(seconds: float, feedback_ms: int, frame_packets: int, padding: bool):
    """Each feedback's results, ``(seq, sent_us, size, arrived_us, kind)``, in order."""
    rng = random.Random(1)
    seq, batch, arrived = 0, [], 0
    for ms in range(1, int(seconds * 1000) + 1):
        sent = ms * 1000
        packets = []
        if ms % 20 == 0:
            packets.append((120, MEDIA))
        if ms % 33 == 0:
            packets += [(1_200, MEDIA)] * frame_packets
        if padding and ms % 20 == 10:
            packets.append((1_200, PADDING))
        for i, (size, kind) in enumerate(packets):
            arrived = max(arrived, sent + i * 100 + 20_000 + rng.randrange(4_000))
            batch.append((seq, sent + i * 100, size, arrived, kind))
            seq += 1
        if ms % feedback_ms == 0:
            yield batch
            batch = []


def measure(
    seconds: float, feedback_ms: int, frame_packets: int, probing: bool
) -> tuple[float, int]:
    """(microseconds per result, results) over one run."""
    clock = [0.0]
    est = DownlinkEstimator(lambda: 0, clock=lambda: clock[0])
    batches = list(feedbacks(seconds, feedback_ms, frame_packets, probing))
    if probing:  # a probe spanning the run: every result also goes through its meter
        est.probe = Probe(0.0, seconds, 4_000_000, est.value, 0.0)
        est.probe.meter = ProbeMeter(0, int(seconds * 1e6))
    results = sum(len(b) for b in batches)
    start = time.perf_counter()
    for i, batch in enumerate(batches):
        clock[0] = (i + 1) * feedback_ms / 1000
        est.on_packet_results(batch, clock[0])
    return 1e6 * (time.perf_counter() - start) / results, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--feedback-ms", type=int, default=50)
    parser.add_argument("--frame-packets", type=int, default=5)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}")
    for probing in (False, True):
        us, n = measure(args.seconds, args.feedback_ms, args.frame_packets, probing)
        line = "with a probe's meter" if probing else "gradient + acked rate"
        print(f"{line:24s} {us:6.2f} us/result ({n} results, {n / args.seconds:.0f}/s)")


if __name__ == "__main__":
    main()
