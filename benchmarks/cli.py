"""`televisit bench SCENARIO`: load benchmarks of Televisit's SFU side by side with Janus and an
aiortc MediaRelay baseline (same clients, same machine, same run). See benchmarks/RESULTS.md.

Imports stay light here: control/cli.py builds its parser from ``add_arguments``.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SYSTEMS = ("televisit", "janus", "baseline")
DEFAULT_STEPS = {
    "consults": [1, 2, 4, 6, 8, 10, 12, 15, 20, 25, 30],
    "fanout": [1, 2, 4, 8, 12, 16, 24, 32],
    "churn": [1, 2, 4],
}
SMOKE_STEPS = {"consults": [1, 2], "fanout": [1, 2], "churn": [1]}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", choices=["consults", "fanout", "churn", "control", "codecs"])
    p.add_argument(
        "--smoke",
        action="store_true",
        help="tiny load for a few seconds (the test suite runs this)",
    )
    p.add_argument(
        "--systems", default=",".join(SYSTEMS), help="comma-separated, from: " + ", ".join(SYSTEMS)
    )
    p.add_argument("--steps", default="", help="load levels, e.g. 1,2,4,8 (consults: rooms)")
    p.add_argument("--window", type=float, default=10.0, help="seconds measured per step")
    p.add_argument("--settle", type=float, default=3.0, help="seconds before each window")
    p.add_argument("--bitrate", type=int, default=1_500_000, help="video bit/s per publisher")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--size", default="640x480", help="video frame size")
    p.add_argument(
        "--server-cpu",
        default="0",
        help="core(s) the SFU is pinned to, e.g. 0 or 0,1 (with --workers 2)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="televisit: SFU worker processes (media.workers; they share the server cores)",
    )
    p.add_argument(
        "--client-cpu",
        default="1",
        help="core(s) the load clients use, e.g. 1 or 1,2,3 (spread in turn)",
    )
    p.add_argument(
        "--load-processes",
        type=int,
        default=1,
        help="load-client processes (consults and churn spread rooms over them)",
    )
    p.add_argument(
        "--max-loss",
        type=float,
        default=2.0,
        help="consults: percent of downstream loss that ends the ramp (capacity at < this)",
    )
    p.add_argument("--concurrency", type=int, default=16, help="control: requests in flight")
    p.add_argument("--out", default="var/bench", help="directory for JSON, PNG and logs")
    # fmt: skip


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # unwinds through every finally: processes and namespaces go


def run(args: argparse.Namespace) -> int:
    from . import report, scenarios

    signal.signal(signal.SIGTERM, _terminate)
    # Ctrl-C must unwind even when started in the background (where SIGINT is ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.scenario == "control":
        return _control(args, out, report)
    if args.scenario == "codecs":
        from . import codecs

        return codecs.run(out, smoke=args.smoke)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        print(f"televisit bench: unknown system(s) {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    steps = [int(s) for s in args.steps.split(",") if s] or (
        SMOKE_STEPS if args.smoke else DEFAULT_STEPS)[args.scenario]  # fmt: skip
    width, height = (int(v) for v in args.size.split("x"))
    opts = scenarios.Options(
        systems=systems, steps=steps,
        window=3.0 if args.smoke else args.window, settle=1.0 if args.smoke else args.settle,
        server_cpus=[int(c) for c in args.server_cpu.split(",")], workers=args.workers,
        max_loss=args.max_loss / 100,
        client_cpus=[int(c) for c in args.client_cpu.split(",")],
        load_processes=max(1, args.load_processes), bitrate=args.bitrate,
        fps=args.fps, width=width, height=height, log_dir=out,
        max_seconds=300.0 if args.smoke else 1800.0, whole_ramp=args.smoke,
    )  # fmt: skip
    started = time.time()
    try:
        results = scenarios.run(args.scenario, opts)
    except KeyboardInterrupt:
        print("televisit bench: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    results.update({
        "command": "televisit bench " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["bench"] else sys.argv[1:]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "machine": report.machine(), "commit": report.commit(),
        "options": {k: str(v) for k, v in vars(opts).items()},
    })  # fmt: skip
    report.add_ratios(results)
    json_path, png = report.write(results, out)
    print(report.table(results))
    print(f"\nJSON: {json_path}" + (f"\nplot: {png}" if png else ""))
    return 0 if results["systems"] else 1


def _control(args: argparse.Namespace, out: Path, report: Any) -> int:
    """Join-by-PIN and appointment creation requests/s (benchmarks/control_rate.py)."""
    count, seconds = ("200", "5") if args.smoke else ("3000", "30")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.control_rate", "--concurrency", str(args.concurrency),
         "--count", count, "--seconds", seconds, "--log-level", "warning",
         "--server-cpu", args.server_cpu.split(",")[0],
         "--client-cpu", args.client_cpu.split(",")[0]],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if done.returncode:
        print(done.stderr[-2000:], file=sys.stderr)
        return done.returncode
    results = {"scenario": "control", "machine": report.machine(), **json.loads(done.stdout)}
    (out / "bench-control.json").write_text(json.dumps(results, indent=2))
    for phase in results["results"]:
        lat = phase["latency_ms"]
        print(
            f"{phase['phase']:>20}: {phase['requests_per_second']:8.1f} req/s  "
            f"p50 {lat['p50']} ms  p99 {lat['p99']} ms  errors {phase['errors'] or 0}"
        )
    print(f"\nJSON: {out / 'bench-control.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="televisit bench", description=__doc__.split("\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
