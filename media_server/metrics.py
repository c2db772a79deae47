"""Prometheus metrics of one SFU worker, read from the plain int counters at scrape time.

Nothing on the packet path touches prometheus-client: publications, subscriptions and
participants keep plain ints, and this collector sums them when /metrics is scraped. Counters of
closed peer connections are folded into the worker's ``retired`` totals first (see
Worker._retire), so every *_total stays monotonic across hang-ups and reconnects.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from media_server.participant import Participant

if TYPE_CHECKING:
    from media_server.worker import Worker

PREFIX = "televisit_sfu_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# name -> (help, label names); every sample of participant_samples uses one of these.
COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "packets_in": ("RTP packets received from publishers", ("kind",)),
    "bytes_in": ("RTP bytes received from publishers", ("kind",)),
    "packets_out": ("RTP packets forwarded to subscribers (retransmissions excluded)", ("kind",)),
    "bytes_out": ("RTP bytes forwarded to subscribers", ("kind",)),
    "packets_dropped": ("packets not forwarded, by where and why", ("where", "reason")),
    "nacks_received": ("NACK packets received from subscribers", ()),
    "nacks_sent": ("NACK packets sent to publishers", ()),
    "retransmissions": ("packets resent to subscribers from the send history", ()),
    "retransmissions_missed": ("NACKed packets no longer in the send history", ()),
    "retransmitted_bytes": ("RTP bytes resent to subscribers", ()),
    "retransmissions_rtx": ("of the retransmissions, those sent on the RTX SSRC (RFC 4588)", ()),
    "retransmissions_throttled": (
        "NACKed packets not resent: resent within a round trip or too often",
        (),
    ),
    "retransmissions_over_budget": (
        "NACKed packets not resent: the leg's resend budget was spent",
        (),
    ),
    "retransmissions_superseded": (
        "NACKed packets not resent: sent before the keyframe a layer switch or resume began at",
        (),
    ),
    "temporal_dropped": (
        "VP8 packets not forwarded to a subscriber for their temporal layer (a lower frame rate)",
        (),
    ),
    "probes": ("bandwidth probes of subscriber legs (prober.py)", ()),
    "probes_failed": ("of the probes, those the leg did not carry (loss)", ()),
    "probe_packets": ("padding packets sent for probes (RTX resends of sent packets)", ()),
    "probe_bytes": ("RTP bytes of probe padding", ()),
    "keyframe_requests_received": ("PLI/FIR received from subscribers", ()),
    "plis_sent": ("PLIs sent to publishers (after throttling)", ()),
    "keyframe_requests_throttled": ("PLIs held back (500 ms unanswered, 300 ms once answered)", ()),
    "rtcp_packets_in": ("RTCP compound packets received", ()),
    "rtcp_packets_out": ("RTCP compound packets sent", ()),
    "rembs_sent": ("REMB estimates sent to publishers", ()),
    "transport_feedback_sent": ("transport-cc feedback packets sent to publishers", ()),
    "transport_cc_malformed": (
        "packets whose transport-cc element was not 2 bytes (read as lost)",
        (),
    ),
    "transport_feedback_received": (
        "transport-cc feedback packets read from subscribers (media.downlink_transport_cc)",
        (),
    ),
    "transport_feedback_reported_lost": (
        "packets to subscribers their transport-cc feedback reported not received",
        (),
    ),
    "transport_feedback_malformed": (
        "transport-cc feedback packets from subscribers dropped as malformed",
        (),
    ),
    "datagrams_unstamped": (
        "datagrams read without the kernel's receive time (arrival taken when read)",
        (),
    ),
    "media_faults": ("exceptions on the media path (each also logged once per type)", ()),
    "peer_connections": ("peer connections created", ()),
}

Key = tuple[str, tuple[str, ...]]


def participant_samples(p: Participant) -> Iterator[tuple[Key, int]]:
    """Every counter of one peer connection, as ((metric, label values), value)."""
    yield ("peer_connections", ()), 1
    yield ("rtcp_packets_in", ()), p.rtcp_packets_in
    yield ("rtcp_packets_out", ()), p.rtcp_packets_out
    yield ("rembs_sent", ()), p.rembs_sent
    if p.transport_feedback is not None:
        yield ("transport_feedback_sent", ()), p.transport_feedback.packets_sent
        yield ("transport_cc_malformed", ()), p.transport_feedback.arrivals.malformed
    if p.departures is not None:
        yield ("transport_feedback_received", ()), p.departures.feedbacks
        yield ("transport_feedback_reported_lost", ()), p.departures.reported_lost
        yield ("transport_feedback_malformed", ()), p.departures.malformed
    yield ("datagrams_unstamped", ()), p.datagrams_unstamped
    yield ("media_faults", ()), p.faults.count
    yield ("probes", ()), p.downlink.probes
    yield ("probes_failed", ()), p.downlink.probes_failed
    for reason, n in p.dropped.items():
        yield ("packets_dropped", ("participant", reason)), n
    for pub in p.publications:
        yield ("packets_in", (pub.kind,)), pub.packets_in
        yield ("bytes_in", (pub.kind,)), pub.bytes_in
        yield ("nacks_sent", ()), pub.nacks_sent
        yield ("plis_sent", ()), pub.plis_sent
        yield ("rembs_sent", ()), pub.rembs_sent
        yield ("keyframe_requests_throttled", ()), pub.keyframe_requests_throttled
        for reason, n in pub.dropped.items():
            yield ("packets_dropped", ("publication", reason)), n
    for sub in p.subscriptions:
        yield ("packets_out", (sub.kind,)), sub.packets_out
        yield ("bytes_out", (sub.kind,)), sub.bytes_out
        yield ("nacks_received", ()), sub.nacks_received
        yield ("retransmissions", ()), sub.retransmissions
        yield ("retransmissions_missed", ()), sub.retransmissions_missed
        yield ("retransmitted_bytes", ()), sub.retransmitted_bytes
        yield ("retransmissions_rtx", ()), sub.retransmissions_rtx
        yield ("retransmissions_throttled", ()), sub.retransmissions_throttled
        yield ("retransmissions_over_budget", ()), sub.retransmissions_over_budget
        yield ("retransmissions_superseded", ()), sub.retransmissions_superseded
        yield ("keyframe_requests_received", ()), sub.keyframe_requests
        yield ("temporal_dropped", ()), sub.temporal_dropped
        yield ("probe_packets", ()), sub.probe_packets
        yield ("probe_bytes", ()), sub.probe_bytes
        for reason, n in sub.dropped.items():
            yield ("packets_dropped", ("subscription", reason)), n


def add_samples(totals: collections.Counter[Key], participants: Iterable[Participant]) -> None:
    for p in participants:
        for key, value in participant_samples(p):
            totals[key] += value


def worker_totals(worker: Worker) -> collections.Counter[Key]:
    """Every counter of the worker: its closed peer connections' plus its live ones'."""
    totals = collections.Counter(worker.retired)
    add_samples(totals, worker.live_participants)
    return totals


def room_loss(participants: Iterable[Participant]) -> dict[str, float]:
    """Loss ratio per leg of a room's live connections: publisher legs from our own receive
    statistics, subscriber legs from what the subscribers' receiver reports say."""
    received = lost_in = sent = lost_out = 0
    for p in participants:
        for pub in p.publications:
            received += pub.packets_in
            lost_in += max(0, pub.packets_lost)
        for sub in p.subscriptions:
            sent += sub.packets_out
            lost_out += max(0, sub.packets_lost)
    return {
        "publisher": lost_in / (received + lost_in) if received + lost_in else 0.0,
        "subscriber": lost_out / sent if sent else 0.0,
    }


class WorkerCollector(Collector):
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        worker = self.worker
        load = worker.load()
        yield GaugeMetricFamily(PREFIX + "rooms", "live room sessions", value=load.rooms)
        yield GaugeMetricFamily(
            PREFIX + "participants", "members with a live connection", value=load.participants
        )
        totals = worker_totals(worker)
        for name, (help_text, labels) in COUNTERS.items():
            family = CounterMetricFamily(PREFIX + name, help_text, labels=list(labels))
            for (metric, values), value in sorted(totals.items()):
                if metric == name:
                    family.add_metric(list(values), value)
            if not labels and not family.samples:
                family.add_metric([], 0)
            yield family
        loss = GaugeMetricFamily(
            PREFIX + "room_loss_ratio",
            "packet loss of a room's live connections, per leg",
            labels=["room", "leg"],
        )
        for room in list(worker.rooms.values()):
            for leg, ratio in room_loss(room.participants()).items():
                loss.add_metric([room.id, leg], ratio)
        yield loss
        yield _labelled(
            "signaling_errors", "bad signaling messages, by error code", "code",
            worker.signaling_errors,
        )  # fmt: skip
        yield _labelled(
            "sessions_ended", "room sessions ended, by reason", "reason", worker.sessions_ended
        )
        yield _labelled("room_events", "session-layer events, by kind", "event", worker.counters)
        yield from _transcoder_metrics(worker)
        started = CounterMetricFamily(PREFIX + "sessions_started", "room sessions started")
        started.add_metric([], worker.sessions_started)
        yield started


def _labelled(
    name: str, help_text: str, label: str, counts: collections.Counter[str]
) -> CounterMetricFamily:
    family = CounterMetricFamily(PREFIX + name, help_text, labels=[label])
    for value, n in sorted(counts.items()):
        family.add_metric([value], n)
    return family


def _transcoder_metrics(worker: Worker) -> Iterator[Metric]:
    registry = worker.transcoders
    yield GaugeMetricFamily(
        PREFIX + "transcoders",
        "transcoders running (the only decoders in the SFU process)",
        value=len(registry.running),
    )
    started = CounterMetricFamily(PREFIX + "transcoders_started", "transcoders started")
    started.add_metric([], registry.started)
    yield started
    totals = registry.totals()
    frames = CounterMetricFamily(
        PREFIX + "transcoded_frames",
        "video frames through transcoders, by what happened to them",
        labels=["what"],
    )
    for what in ("decoded", "encoded", "dropped"):
        frames.add_metric([what], totals.get(f"frames_{what}", 0))
    yield frames
    cpu = CounterMetricFamily(
        PREFIX + "transcoder_cpu_seconds", "CPU time of the transcoder threads"
    )
    cpu.add_metric([], totals.get("cpu_seconds", 0.0))
    yield cpu


def registry_for(worker: Worker) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkerCollector(worker))
    return registry


def metrics_handler(registry: CollectorRegistry) -> web.Handler:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE})

    return handle
