"""Micro-benchmark of the SFU's per-packet forwarding path, in microseconds per packet.

Measured in one process, on the same packets, in the same run, against a reference that every
Python RTP forwarder would otherwise pay: aiortc's ``RtpPacket.parse`` + ``serialize``.

    .venv/bin/python -m benchmarks.forward_micro [--packets 100000] [--fanout 4]
        [--downlink-transport-cc]

Lines (the path is compiled: media_server/rtpforward.c):
- reference: RtpPacket.parse + serialize (mid, abs-send-time, audio-level, transport-cc
  extensions; the subscriber's leg negotiated the first three)
- rewrite: Outbound.forward (parse, SSRC/PT/seq/ts rewrite, extension plan, history); the send
  is a Python no-op
- SRTP protect: pylibsrtp.Session.protect vs a Leg's send (protect, then the Leg's
  ``send_queued``, a Python no-op here, stands in for the socket)
- receive+forward: Inbound.receive (RR statistics, NACK check, frame bytes, the bandwidth
  estimator's Python hook once per frame) + one Outbound, sent through a Leg (SRTP protect)
- datagram: the whole synchronous path of one datagram: Leg.datagram_received (SRTP unprotect,
  route by SSRC, the transport-cc arrival recorded), Inbound, Outbound, Leg send (SRTP protect);
  only the socket calls are missing
- fan-out to N: receive once, forward to N subscriptions (per packet *sent*)

Packets come five to a frame, the fifth with the marker bit (the bandwidth estimator runs on it).
``--downlink-transport-cc``: the subscribers' legs negotiated transport-cc
(media.downlink_transport_cc): every packet sent gets the leg's transport sequence and is
recorded (rtpforward.Departures).

No network and no event loop: the path is synchronous, so these are the CPU work per packet
without the kernel (benchmarks/forward_loopback.py measures the whole SFU process on loopback).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import pylibsrtp
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
)
from aiortc.rtp import RtpPacket

from media_server import rtpheader
from media_server.faults import Faults
from media_server.publication import Publication
from media_server.rtpforward import Arrivals, Departures, Leg
from media_server.subscription import Subscription
from media_server.transport import set_keys

PUB_EXT = {
    rtpheader.URI_MID: 4,
    rtpheader.URI_ABS_SEND_TIME: 2,
    rtpheader.URI_AUDIO_LEVEL: 1,
    rtpheader.URI_TRANSPORT_CC: 5,
}
SUB_EXT = {rtpheader.URI_MID: 1, rtpheader.URI_ABS_SEND_TIME: 3, rtpheader.URI_AUDIO_LEVEL: 2}
SUB_TCC_ID = 6  # the subscribers' transport-cc id with --downlink-transport-cc
VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
PAYLOAD = bytes([0x90, 0x80, 0x80, 0x01, 0x10]) + bytes(1195)  # VP8 keyframe start, 1200 B


def packets(n: int) -> list[bytes]:
    m = rtpheader.extension_map(PUB_EXT)
    out = []
    for i in range(n):
        # Five packets a frame, the last with the marker bit (640x480 VP8 at 1.5 Mbit/s).
        p = RtpPacket(
            payload_type=96, sequence_number=i & 0xFFFF, timestamp=3000 * (i // 5), ssrc=42,
            marker=int(i % 5 == 4),
        )  # fmt: skip
        p.payload = PAYLOAD
        p.extensions.mid = "1"
        p.extensions.abs_send_time = (i * 7) & 0xFFFFFF
        p.extensions.audio_level = (False, 30)
        p.extensions.transport_sequence_number = i & 0xFFFF
        out.append(p.serialize(m))
    return out


def timed(fn: Callable[[], None], count: int) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best / count * 1e6


def srtp_sender(inbound: bool = False, key: bytes = bytes(range(30))) -> pylibsrtp.Session:
    """An SRTP session keyed as aiortc keys one (AES_CM_128_HMAC_SHA1_80, any SSRC)."""
    policy = pylibsrtp.Policy(
        key=key,
        ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND
        if inbound
        else pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
        srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    )
    policy.allow_repeat_tx = True
    return pylibsrtp.Session(policy=policy)


def publication() -> Publication:
    return Publication(
        participant_id="bench",
        kind="video",
        mid="1",
        codec=VP8,
        ssrc=42,
        extensions=PUB_EXT,
        send_rtcp=lambda data: None,
    )


def leg(inbound: pylibsrtp.Session | None = None, departures: bool = False) -> Leg:
    """A connected Leg without a socket (its send_queued does nothing); ``departures``: it
    stamps and records a transport sequence in what it sends."""
    rx, tx = inbound or srtp_sender(inbound=True), srtp_sender()
    out = Leg(on_rtp=nothing, on_rtcp=nothing, dropped={}, faults=Faults("bench"))
    if departures:
        out.departures = Departures(SUB_TCC_ID, {})
    set_keys(out, rx, tx)
    out.send_queued = nothing
    out.connected = True
    return out


def subscription(
    source: Publication, send: Callable[[bytes], Any], extensions: dict[str, int] = SUB_EXT
) -> Subscription:
    sub = Subscription(source, history_packets=1024, faults=Faults("bench"))
    sub.bind(
        ssrc=7,
        payload_type=100,
        mid="3",
        extensions=extensions,
        send_rtp=send,
        send_rtcp=lambda d: None,
    )
    return sub


def nothing(data: bytes) -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=100_000)
    parser.add_argument("--fanout", type=int, default=4)
    parser.add_argument("--downlink-transport-cc", action="store_true")
    args = parser.parse_args()
    stamps = args.downlink_transport_cc
    sub_ext = {**SUB_EXT, rtpheader.URI_TRANSPORT_CC: SUB_TCC_ID} if stamps else SUB_EXT
    data = packets(args.packets)
    m_in = rtpheader.extension_map(PUB_EXT)
    n = len(data)

    def reference() -> None:
        for d in data:
            RtpPacket.parse(d, m_in).serialize(m_in)

    standalone = publication()
    rewrite_sub = subscription(standalone, nothing, sub_ext)
    standalone.detach(rewrite_sub)
    rewrite_out = rewrite_sub.out

    def rewrite() -> None:
        for d in data:
            rewrite_out.forward(d)

    def session_protect() -> None:
        session = srtp_sender()
        for d in data:
            session.protect(d)

    def leg_send() -> None:
        send = leg()
        for d in data:
            send(d)

    # Every run below starts on fresh SRTP sessions: a session refuses to protect a sequence
    # number it has left behind, and the next run resends the same packets.
    def receive_forward() -> None:
        pub = publication()
        sub = subscription(pub, leg(departures=stamps), sub_ext)
        receive = pub.inbound.receive
        for d in data:
            receive(d)
        assert sub.packets_out == n, sub.dropped

    publisher_srtp = srtp_sender()
    encrypted = [publisher_srtp.protect(d) for d in data]

    def datagram() -> None:
        whole_pub = publication()
        publisher = leg()
        publisher.routes[42] = whole_pub.inbound
        publisher.arrivals = Arrivals(PUB_EXT[rtpheader.URI_TRANSPORT_CC])
        sub = subscription(whole_pub, leg(departures=stamps), sub_ext)
        received = publisher.datagram_received
        addr = ("127.0.0.1", 9)
        for d in encrypted:
            received(d, addr)
        assert sub.packets_out == n, sub.dropped

    def fan_out() -> None:
        pub = publication()
        subs = [subscription(pub, leg(departures=stamps), sub_ext) for _ in range(args.fanout)]
        receive = pub.inbound.receive
        for d in data:
            receive(d)
        assert all(sub.packets_out == n for sub in subs), [sub.dropped for sub in subs]

    ref = timed(reference, n)
    rows = [
        ("reference: RtpPacket.parse + serialize", ref),
        ("rewrite (parse, rewrite, history)", timed(rewrite, n)),
        ("SRTP protect: pylibsrtp.Session", timed(session_protect, n)),
        ("SRTP protect: Leg send", timed(leg_send, n)),
        ("receive (stats, NACK, estimator) + forward", timed(receive_forward, n)),
        ("datagram: SRTP in, receive, forward, SRTP out", timed(datagram, n)),
        (f"fan-out to {args.fanout}, per packet sent", timed(fan_out, n * args.fanout)),
    ]
    print(
        f"# {n} packets of 1200 B payload, 4 header extensions; python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; best of 3"
        + ("; subscribers' legs stamp transport-cc" if stamps else "")
    )
    print(f"{'path':48} {'us/packet':>10} {'x reference':>12}")
    for name, us in rows:
        print(f"{name:48} {us:10.2f} {us / ref:12.2f}")


if __name__ == "__main__":
    main()
