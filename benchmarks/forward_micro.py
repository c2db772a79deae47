"""Micro-benchmark of the SFU's per-packet forwarding path, in microseconds per packet.

Measured in one process, on the same packets, in the same run, against a reference that every
Python RTP forwarder would otherwise pay: aiortc's ``RtpPacket.parse`` + ``serialize``.

    .venv/bin/python -m benchmarks.forward_micro [--packets 200000] [--uvloop]

Lines:
- reference: RtpPacket.parse + serialize (mid, abs-send-time, audio-level extensions)
- rewrite: rtpheader.parse + Subscription.forward (SSRC/PT/seq/ts/MID rewrite in place, history
  store), send is a no-op
- rewrite+srtp: the same, the send protects with transport.FastSrtp (AES-CM-128-HMAC-SHA1-80)
- SRTP protect alone: pylibsrtp.Session.protect vs transport.FastSrtp.protect (the SFU's)
- receive+forward: Participant-level routing + Publication.on_rtp (RR statistics, NACK list,
  bandwidth estimator) + one Subscription.forward, no SRTP
- datagram: the whole synchronous path of one datagram: SRTP unprotect, parse, Publication.on_rtp,
  Subscription.forward, SRTP protect (only the socket calls are missing)
- fan-out to N: receive once, forward to N subscriptions (per packet *sent*)

Packets come five to a frame, the fifth with the marker bit (the bandwidth estimator runs on it).

No network and no event loop: the path is synchronous, so these are the Python work per
packet (the kernel's sendto and the SRTP decrypt on receive come on top;
benchmarks/forward_loopback.py measures the whole SFU process on loopback).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pylibsrtp
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpParameters,
)
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from media_server import rtpheader
from media_server.faults import Faults
from media_server.publication import Publication
from media_server.subscription import Subscription
from media_server.transport import FastSrtp

PUB_EXT = {rtpheader.URI_MID: 4, rtpheader.URI_ABS_SEND_TIME: 2, rtpheader.URI_AUDIO_LEVEL: 1}
SUB_EXT = {rtpheader.URI_MID: 1, rtpheader.URI_ABS_SEND_TIME: 3, rtpheader.URI_AUDIO_LEVEL: 2}
VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
PAYLOAD = bytes([0x90, 0x80, 0x80, 0x01, 0x10]) + bytes(1195)  # VP8 keyframe start, 1200 B


def ext_map(ids: dict[str, int]) -> HeaderExtensionsMap:
    m = HeaderExtensionsMap()
    m.configure(
        RTCRtpParameters(
            headerExtensions=[RTCRtpHeaderExtensionParameters(id=i, uri=u) for u, i in ids.items()]
        )
    )
    return m


def packets(n: int) -> list[bytes]:
    m = ext_map(PUB_EXT)
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
        out.append(p.serialize(m))
    return out


def timed(fn: Callable[[], None], count: int) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best / count * 1e6


def srtp_sender(inbound: bool = False) -> pylibsrtp.Session:
    policy = pylibsrtp.Policy(
        key=bytes(range(30)),
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


def subscription(
    source: Publication, send: Callable[[bytes], Coroutine[Any, Any, None]]
) -> Subscription:
    sub = Subscription(source, history_packets=1024, faults=Faults("bench"))
    sub.bind(
        ssrc=7,
        payload_type=100,
        mid="3",
        extensions=SUB_EXT,
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
    args = parser.parse_args()
    data = packets(args.packets)
    m_in = ext_map(PUB_EXT)
    n = len(data)

    def reference() -> None:
        for d in data:
            RtpPacket.parse(d, m_in).serialize(m_in)

    standalone = publication()
    rewrite_sub = subscription(standalone, nothing)
    standalone.detach(rewrite_sub)

    def rewrite() -> None:
        for d in data:
            rewrite_sub.forward(d, rtpheader.parse(d))

    srtp = FastSrtp(srtp_sender())

    def protect(d: bytes) -> None:
        srtp.protect(d)

    def session_protect() -> None:
        session = srtp_sender()
        for d in data:
            session.protect(d)

    def fast_protect() -> None:
        fast = FastSrtp(srtp_sender())
        for d in data:
            fast.protect(d)

    protected_sub = subscription(publication(), protect)
    protected_sub.source.detach(protected_sub)

    def rewrite_srtp() -> None:
        for d in data:
            protected_sub.forward(d, rtpheader.parse(d))

    full_pub = publication()
    subscription(full_pub, nothing)

    def receive_forward() -> None:
        for d in data:
            h = rtpheader.parse(d)
            full_pub.on_rtp(d, h)

    publisher_srtp = FastSrtp(srtp_sender())
    encrypted = [publisher_srtp.protect(d) for d in data]

    def datagram() -> None:
        whole_pub = publication()
        rx = FastSrtp(srtp_sender(inbound=True))  # fresh: replays are refused
        unprotect = rx.unprotect
        subscription(whole_pub, FastSrtp(srtp_sender()).protect)
        for d in encrypted:
            plain = unprotect(d)
            whole_pub.on_rtp(plain, rtpheader.parse(plain))

    fan_pub = publication()
    for _ in range(args.fanout):
        subscription(fan_pub, nothing)

    def fan_out() -> None:
        for d in data:
            fan_pub.on_rtp(d, rtpheader.parse(d))

    ref = timed(reference, n)
    rows = [
        ("reference: RtpPacket.parse + serialize", ref),
        ("rewrite (parse, rewrite in place, history)", timed(rewrite, n)),
        ("rewrite + SRTP protect", timed(rewrite_srtp, n)),
        ("SRTP protect: pylibsrtp.Session", timed(session_protect, n)),
        ("SRTP protect: FastSrtp", timed(fast_protect, n)),
        ("receive (stats, NACK, estimator) + forward", timed(receive_forward, n)),
        ("datagram: SRTP in, receive, forward, SRTP out", timed(datagram, n)),
        (f"fan-out to {args.fanout}, per packet sent", timed(fan_out, n * args.fanout)),
    ]
    print(
        f"# {n} packets of 1200 B payload, 3 header extensions; python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; best of 3"
    )
    print(f"{'path':48} {'us/packet':>10} {'x reference':>12}")
    for name, us in rows:
        print(f"{name:48} {us:10.2f} {us / ref:12.2f}")


if __name__ == "__main__":
    main()
